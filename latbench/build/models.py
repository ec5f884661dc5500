"""Any model a user brings -> one .tflite file in the cache, and what its inputs are.

Kinds (`MODEL_KINDS`, by file name): a `.tflite` is taken as it is (copied into the
cache under the hash of its bytes, so the file timed is the file checked); a `.keras` or
`.h5` Keras model is loaded with Keras' safe mode (no Lambda code runs) and converted with
the project's recipe (`build/convert.py`: fp32, or full-integer int8 with its generated
representative data); a SavedModel folder is converted from its signature (`--signature`).
latbench's own arch.json goes through `nets/load.py` and `convert_arch` as before.

Every file is read in a worker process (TensorFlow and the flatbuffer parser live there):
a hostile file that crashes the parser costs that process and ends as one line. Input shapes
come from the model; a dynamic dimension other than the batch is refused naming the tensor,
unless `input_shape` fixes it (Keras and SavedModel inputs; a `.tflite` must be exported with
fixed shapes).
"""

from __future__ import annotations

import hashlib
import os
import stat
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

from latbench.build.cache import cache_dir, converter_version
from latbench.errors import InputError

MAX_MODEL_BYTES = 1 << 30  # 1 GiB: a mobile model larger than this is refused, not read
MODEL_KINDS = {  # file name ending -> kind
    ".tflite": "tflite",
    ".keras": "keras",
    ".h5": "keras",
    ".json": "arch",
}


@dataclass(frozen=True)
class ModelFile:
    """A model ready to time: the .tflite in the cache and what it was made from."""

    path: Path  # the .tflite to time
    name: str
    kind: str  # tflite | keras | savedmodel | arch
    source: str  # the file or folder the user gave
    precision: str  # fp32 | int8 | as-is (a .tflite, whatever it holds)
    inputs: list[dict[str, Any]] = field(default_factory=list)  # name, shape, dtype
    extra: dict[str, Any] = field(default_factory=dict)  # ops, subgraphs, signatures


def model_kind(path: Path) -> str:
    """The kind of a model path, or an InputError listing the kinds there are."""
    p = Path(path)
    if p.is_dir():
        if (p / "saved_model.pb").is_file():
            return "savedmodel"
        raise InputError(f"{p} is a folder without saved_model.pb (not a SavedModel)", "MODEL")
    kind = MODEL_KINDS.get(p.suffix.lower())
    if kind is None:
        raise InputError(
            f"{p}: unknown model kind {p.suffix!r}; latbench measures .tflite, .keras, .h5, "
            f"a SavedModel folder or an arch.json",
            "MODEL",
        )
    return kind


def _check_file(path: Path) -> int:
    """Size of a regular file (no FIFO, device or link target games), within the cap."""
    try:
        st = os.stat(path)
    except OSError as exc:
        raise InputError(f"cannot read {path}: {exc.strerror}", "MODEL") from None
    if not stat.S_ISREG(st.st_mode):
        raise InputError(f"{path} is not a regular file", "MODEL")
    if st.st_size > MAX_MODEL_BYTES:
        raise InputError(
            f"{path} is {st.st_size / 2**20:.0f} MiB, over the {MAX_MODEL_BYTES >> 20} MiB limit",
            "MODEL",
        )
    return st.st_size


def parse_input_shape(text: str | None) -> tuple[int, ...] | None:
    """`--input-shape 1,224,224,3` -> (1, 224, 224, 3); every dimension 1..65536."""
    if not text:
        return None
    try:
        dims = tuple(int(x) for x in text.replace("x", ",").split(","))
    except ValueError:
        raise InputError(f"{text!r} is not a shape like 1,224,224,3", "--input-shape") from None
    if not dims or len(dims) > 8 or not all(1 <= d <= 65536 for d in dims):
        raise InputError(f"{text!r}: 1 to 8 dimensions, each 1..65536", "--input-shape")
    return dims


def prepare_model(
    path: Path,
    precision: str = "fp32",
    input_shape: Sequence[int] | None = None,
    signature: str | None = None,
) -> ModelFile:
    """The .tflite to time for a model file or folder (converted and cached as needed)."""
    import multiprocessing as mp
    from concurrent.futures import ProcessPoolExecutor
    from concurrent.futures.process import BrokenProcessPool

    path = Path(path)
    kind = model_kind(path)
    if kind == "arch":
        raise InputError(f"{path}: an arch.json is measured through its network", "MODEL")
    if kind != "savedmodel":
        _check_file(path)
    if kind == "tflite":
        with open(path, "rb") as f:
            head = f.read(8)
        if len(head) < 8 or head[4:8] != b"TFL3":
            raise InputError(f"{path} is not a TFLite flatbuffer (no TFL3 identifier)", "MODEL")
    if kind == "keras" and path.suffix.lower() == ".keras":
        import zipfile

        if not zipfile.is_zipfile(path):  # refused before a worker imports TensorFlow
            raise InputError(f"{path} is not a .keras archive (not a zip file)", "MODEL")
    if kind == "tflite" and input_shape:
        raise InputError(
            "a .tflite is timed with the shapes it was exported with; export it with the shape "
            "you want (--input-shape applies to Keras and SavedModel inputs)",
            "--input-shape",
        )
    import os

    from latbench.procs import pool_initializer

    with ProcessPoolExecutor(
        1,
        mp_context=mp.get_context("spawn"),
        initializer=pool_initializer,  # the worker dies with this process
        initargs=(os.getpid(),),
    ) as pool:
        try:
            res = pool.submit(
                _prepare_worker, str(path), kind, precision, input_shape, signature
            ).result()
        except BrokenProcessPool:
            raise InputError(
                f"{path}: reading the model crashed the converter process (a damaged or "
                f"hostile file?)",
                "MODEL",
            ) from None
    if "error" in res:
        raise InputError(f"{path}: {res['error']}", res.get("field") or "MODEL")
    return ModelFile(
        Path(res["path"]),
        res["name"],
        kind,
        str(path),
        res["precision"],
        res["inputs"],
        res.get("extra", {}),
    )


def model_cache_path(data: bytes, recipe: str) -> Path:
    """Where a user model's .tflite lives: the hash of its bytes (and of the recipe made it)."""
    h = hashlib.sha256(data + recipe.encode() + converter_version().encode()).hexdigest()[:24]
    return cache_dir() / "models" / f"{h}.tflite"


# ---- the worker process --------------------------------------------------------------


def _prepare_worker(
    path: str, kind: str, precision: str, input_shape, signature: str | None
) -> dict[str, Any]:
    from latbench.quiet import quiet_tensorflow

    quiet_tensorflow()
    try:
        if kind == "tflite":
            return _take_tflite(Path(path), signature)
        if kind == "keras":
            return _convert_keras_file(Path(path), precision, input_shape)
        return _convert_savedmodel(Path(path), precision, input_shape, signature)
    except InputError as exc:
        return {"error": str(exc.args[0]).split(": ", 1)[-1] if exc.field else str(exc),
                "field": exc.field}  # fmt: skip
    except Exception as exc:  # noqa: BLE001 - a file the tools cannot read is one line
        return {"error": f"cannot read it ({type(exc).__name__}: {str(exc)[:200]})"}


def describe_tflite(data: bytes) -> dict[str, Any]:
    """Inputs, operators and signatures of a .tflite flatbuffer, read with bounds checks:
    a structure pointing outside the buffer is an InputError, never a crash."""
    if len(data) < 8 or data[4:8] != b"TFL3":
        raise InputError("not a TFLite flatbuffer (no TFL3 identifier)")
    from latbench.build.tflite_ops import tflite_schema

    schema = tflite_schema()  # the schema alone: reading a .tflite never imports TensorFlow

    try:
        m = schema.Model.GetRootAsModel(data, 0)
        if m.SubgraphsLength() < 1:
            raise InputError("the model has no subgraph")
        sg = m.Subgraphs(0)
        inputs = []
        for i in range(sg.InputsLength()):
            t = sg.Tensors(sg.Inputs(i))
            shape = [int(x) for x in t.ShapeAsNumpy()] if t.ShapeLength() else []
            sig = [int(x) for x in t.ShapeSignatureAsNumpy()] if t.ShapeSignatureLength() else shape
            name = (t.Name() or b"").decode("utf-8", "replace")
            inputs.append({"name": name, "shape": shape, "signature": sig, "type": t.Type()})
        codes = [m.OperatorCodes(i) for i in range(m.OperatorCodesLength())]
        ops: dict[str, int] = {}
        names = {v: k for k, v in vars(schema.BuiltinOperator).items() if not k.startswith("_")}
        for i in range(sg.OperatorsLength()):
            c = codes[sg.Operators(i).OpcodeIndex()]
            code = max(c.BuiltinCode(), c.DeprecatedBuiltinCode())
            op = (
                (c.CustomCode() or b"custom").decode("utf-8", "replace")
                if code == schema.BuiltinOperator.CUSTOM
                else names.get(code, f"op{code}")
            )
            ops[op] = ops.get(op, 0) + 1
        sigs = [
            (m.SignatureDefs(i).SignatureKey() or b"").decode("utf-8", "replace")
            for i in range(m.SignatureDefsLength())
        ]
    except InputError:
        raise
    except Exception as exc:  # noqa: BLE001 - any out-of-bounds read of a damaged buffer
        kind = type(exc).__name__
        if type(exc).__module__ not in ("builtins", None):
            kind = f"{type(exc).__module__}.{kind}"
        raise InputError(f"a damaged flatbuffer (reading it failed: {kind})") from None
    return {"inputs": inputs, "ops": ops, "subgraphs": m.SubgraphsLength(), "signatures": sigs}


def _take_tflite(path: Path, signature: str | None) -> dict[str, Any]:
    from latbench.fileio import write_atomic

    data = path.read_bytes()
    info = describe_tflite(data)
    if signature is not None and signature not in info["signatures"]:
        raise InputError(
            f"no signature {signature!r}; it has {info['signatures'] or 'none'}", "--signature"
        )
    if len(info["signatures"]) > 1 and signature != info["signatures"][0]:
        raise InputError(
            f"it has several signatures {info['signatures']}; latbench times the first "
            f"({info['signatures'][0]!r}): pass --signature {info['signatures'][0]} to agree, "
            f"or export the one you want alone",
            "--signature",
        )
    for t in info["inputs"]:
        dyn = [i for i, d in enumerate(t["signature"]) if d < 0 and i > 0]  # not the batch
        if dyn:
            raise InputError(
                f"input {t['name']!r} has a dynamic dimension (shape signature {t['signature']}); "
                f"export it with fixed shapes",
                "MODEL",
            )
    out = model_cache_path(data, "tflite-as-is")
    if not out.exists():
        write_atomic(out, data)
    from latbench.build.tflite_ops import tflite_schema

    schema = tflite_schema()
    types = {v: k.lower() for k, v in vars(schema.TensorType).items() if not k.startswith("_")}
    inputs = [
        {"name": t["name"], "shape": t["shape"], "dtype": types.get(t["type"], str(t["type"]))}
        for t in info["inputs"]
    ]
    return {
        "path": str(out),
        "name": path.stem,
        "precision": "as-is",
        "inputs": inputs,
        "extra": {"ops": info["ops"], "subgraphs": info["subgraphs"]},
    }


def _fixed_shape(name: str, shape: Sequence[int | None], override) -> tuple[int, ...]:
    """Batch 1; any other unknown dimension must come from --input-shape."""
    if override is not None:
        if len(override) != len(shape):
            raise InputError(
                f"input {name!r} has {len(shape)} dimensions {list(shape)}; --input-shape gave "
                f"{len(override)}",
                "--input-shape",
            )
        return tuple(int(d) for d in override)
    dims = [1 if i == 0 and d is None else d for i, d in enumerate(shape)]
    if any(d is None for d in dims):
        raise InputError(
            f"input {name!r} has a dynamic dimension ({list(shape)}); fix it with "
            f"--input-shape 1,224,224,3 (say)",
            "--input-shape",
        )
    return tuple(int(d) for d in dims)


def _keras_version() -> str:
    """Keras' own version: it rebuilds a model from its config, so it is part of a Keras recipe
    (TensorFlow's, the converter's, is in every cache key already: model_cache_path)."""
    from importlib import metadata

    try:
        return metadata.version("keras")
    except metadata.PackageNotFoundError:
        return "unknown"


def _recipe_path(recipe: str, precision: str) -> Path:
    return model_cache_path(recipe.encode().hex().encode(), f"{recipe}|{precision}")


def _cached(recipe: str, precision: str) -> dict[str, Any] | None:
    """A conversion made before under this recipe: its .tflite and what it was made from
    (the sidecar .json), or None when either is missing or does not read as written."""
    import json

    out = _recipe_path(recipe, precision)
    try:
        meta = json.loads(out.with_suffix(".json").read_text())
        info = describe_tflite(out.read_bytes())
        name, inputs = meta["name"], meta["inputs"]
        ok = (
            isinstance(name, str)
            and isinstance(inputs, list)
            and all(
                isinstance(t, dict)
                and isinstance(t.get("name"), str)
                and isinstance(t.get("dtype"), str)
                and isinstance(t.get("shape"), list)
                and all(
                    isinstance(d, int) and not isinstance(d, bool) and d > 0 for d in t["shape"]
                )
                for t in inputs
            )
        )
    except (OSError, ValueError, KeyError, TypeError, InputError):
        return None  # converted again, and both files rewritten
    if not ok:
        return None
    extra = {"ops": info["ops"], "subgraphs": info["subgraphs"]}
    return {"path": str(out), "name": name, "precision": precision, "inputs": inputs,
            "extra": extra}  # fmt: skip


def _convert_fn(fn, precision: str, shapes, recipe: str, name: str, inputs) -> dict[str, Any]:
    import json

    from latbench.build.convert import _convert
    from latbench.fileio import write_atomic

    data = _convert(fn, precision, shapes)
    out = _recipe_path(recipe, precision)
    write_atomic(out, data)
    # the sidecar last: a cache entry counts only once both are whole
    write_atomic(out.with_suffix(".json"), json.dumps({"name": name, "inputs": inputs}).encode())
    info = describe_tflite(data)
    return {
        "path": str(out),
        "name": name,
        "precision": precision,
        "inputs": inputs,
        "extra": {"ops": info["ops"], "subgraphs": info["subgraphs"]},
    }


def keras_tflite(
    model, precision: str, input_shape=None, digest: str = "", recipe: str = ""
) -> dict[str, Any]:
    """An in-memory Keras model -> cached .tflite (one input; batch 1). `recipe` keys the
    cache (default: the digest given, else the model's JSON, and the input shape): a model
    converted before under the same key is not converted again."""
    import tensorflow as tf

    if len(model.inputs) != 1:
        raise InputError(f"the model has {len(model.inputs)} inputs; latbench takes one", "MODEL")
    t = model.inputs[0]
    shape = _fixed_shape(t.name, tuple(t.shape), input_shape)
    if not digest:  # the architecture and the weights (int8 scales come from the weights)
        h = hashlib.sha256(model.to_json().encode())
        for w in model.weights:
            h.update(w.numpy().tobytes())
        digest = h.hexdigest()
    recipe = recipe or f"keras-{_keras_version()}|{digest}|{shape}"
    hit = _cached(recipe, precision)
    if hit is not None:
        return hit
    fn = tf.function(lambda x: model(x, training=False), autograph=False).get_concrete_function(
        tf.TensorSpec(shape, tf.float32, name="x")
    )
    return _convert_fn(
        fn,
        precision,
        [shape],
        recipe,
        model.name,
        [{"name": t.name, "shape": list(shape), "dtype": "float32"}],
    )


def _convert_keras_file(path: Path, precision: str, input_shape) -> dict[str, Any]:
    """A .keras / .h5 file, looked up in the cache by its bytes before Keras loads it. Keras
    loads those very bytes (a private copy), so a file rewritten meanwhile cannot put another
    model's conversion under this key."""
    import tempfile

    data = path.read_bytes()
    digest = hashlib.sha256(data).hexdigest()
    shape = None if input_shape is None else tuple(int(d) for d in input_shape)
    recipe = f"keras-file-{_keras_version()}|{digest}|{shape}"
    out = _cached(recipe, precision)
    if out is None:
        import keras

        with tempfile.TemporaryDirectory(prefix="latbench-keras-") as tmp:
            copy = Path(tmp) / f"model{path.suffix.lower()}"
            copy.write_bytes(data)
            model = keras.models.load_model(copy, compile=False, safe_mode=True)
        out = keras_tflite(model, precision, input_shape, digest, recipe)
    out["name"] = path.stem
    return out


def _convert_savedmodel(path: Path, precision: str, input_shape, signature) -> dict[str, Any]:
    h = hashlib.sha256()
    for f in sorted(path.rglob("*")):
        if f.is_file():  # each name and content length-prefixed: no two folders hash alike
            for part in (f.relative_to(path).as_posix().encode(), f.read_bytes()):
                h.update(len(part).to_bytes(8, "little"))
                h.update(part)
    shape_arg = None if input_shape is None else tuple(int(d) for d in input_shape)
    recipe = f"savedmodel|{h.hexdigest()}|{signature}|{shape_arg}"
    hit = _cached(recipe, precision)
    if hit is not None:
        hit["name"] = path.name
        return hit
    import tensorflow as tf

    loaded = tf.saved_model.load(str(path))
    sigs = list(loaded.signatures.keys())
    key = signature or ("serving_default" if "serving_default" in sigs else (sigs or [None])[0])
    if key is None or key not in sigs:
        raise InputError(f"no signature {key!r}; the SavedModel has {sigs}", "--signature")
    fn = loaded.signatures[key]
    specs = list(fn.structured_input_signature[1].values())
    if len(specs) != 1:
        raise InputError(f"signature {key!r} has {len(specs)} inputs; latbench takes one", "MODEL")
    spec = specs[0]
    shape = _fixed_shape(spec.name, tuple(spec.shape.as_list()), input_shape)
    conc = tf.function(lambda x: fn(x), autograph=False).get_concrete_function(
        tf.TensorSpec(shape, spec.dtype, name="x")
    )
    return _convert_fn(
        conc,
        precision,
        [shape],
        recipe,
        path.name,
        [{"name": spec.name, "shape": list(shape), "dtype": spec.dtype.name}],
    )
