"""Find the LiteRT interpreter: ai-edge-litert, else tflite_runtime, else TensorFlow's.

Also the kernel sets the interpreter can run a model with (OP_RESOLVERS): a host profile's
`op_resolver` option names one, e.g. the built-in kernels without the default XNNPACK
delegate, a different per-op cost profile on the same CPU.
"""

from __future__ import annotations

from importlib import metadata
from typing import Any


def interpreter_class() -> tuple[Any, str, str]:
    """(Interpreter class, runtime name, version) of the best runtime installed."""
    try:
        from ai_edge_litert.interpreter import Interpreter

        return Interpreter, "ai-edge-litert", metadata.version("ai-edge-litert")
    except ImportError:
        pass
    try:
        from tflite_runtime.interpreter import Interpreter  # type: ignore

        return Interpreter, "tflite-runtime", metadata.version("tflite-runtime")
    except ImportError:
        pass
    import tensorflow as tf  # last resort: slower import, same kernels

    return tf.lite.Interpreter, "tensorflow", tf.__version__


# LiteRT's OpResolverType names, lower-case as a profile writes them: which kernels run
#   auto                               the built-in kernels plus the default XNNPACK delegate
#   builtin                            the same (the default delegate applied explicitly)
#   builtin_ref                        the reference kernels (plain C++, no XNNPACK, slow)
#   builtin_without_default_delegates  the built-in optimized kernels (ruy, eigen), no XNNPACK
OP_RESOLVERS = ("auto", "builtin", "builtin_ref", "builtin_without_default_delegates")


def op_resolver_type(name: str) -> Any:
    """The runtime's OpResolverType member for one of OP_RESOLVERS."""
    Interpreter, runtime, _ = interpreter_class()
    if runtime == "tensorflow":
        import tensorflow as tf

        enum = tf.lite.experimental.OpResolverType
    else:
        import importlib

        enum = importlib.import_module(Interpreter.__module__).OpResolverType
    return enum[name.upper()]


# ---- the inputs a model is timed on ----------------------------------------------------

# A single-operator model is timed on its network's activations when they lie beside it
# (build/tflite_ops.inputs_path, written by profiling/opinputs.py; `saved_inputs` reads them).


def random_inputs(interp, seed: int = 0) -> list[tuple[int, Any]]:
    """(tensor index, array) per model input: uniform over an integer type's range, standard
    normal for floats, from `seed`; what a whole model is timed on and what the operators'
    network activations are computed from."""
    import numpy as np

    rng = np.random.default_rng(seed)
    out = []
    for d in interp.get_input_details():
        shape, dtype = d["shape"], d["dtype"]
        if np.issubdtype(dtype, np.integer):
            info = np.iinfo(dtype)
            x = rng.integers(info.min, info.max, size=shape, endpoint=True).astype(dtype)
        else:
            x = rng.standard_normal(shape).astype(dtype)
        out.append((d["index"], x))
    return out


def input_problem(x, shape: list[int], dtype=None) -> str | None:
    """Why an array cannot be a model input of `shape` (and `dtype`, when given): another
    shape or type, values that are not finite; None when it can."""
    import numpy as np

    if list(x.shape) != list(shape) or (dtype is not None and x.dtype != np.dtype(dtype)):
        return f"is {x.dtype}{list(x.shape)}, the model takes {np.dtype(dtype or x.dtype)}{shape}"
    if x.dtype.kind == "f" and not np.isfinite(x).all():
        return "holds values that are not finite"
    return None


def saved_inputs(path, interp) -> list[tuple[int, Any]]:
    """The arrays of an `.inputs.npz` file for the model in `interp`, every one checked
    against the model's inputs (names, shape, type, finite values); a ValueError naming the
    file and the input otherwise. No pickled objects are loaded."""
    import zipfile

    import numpy as np

    details = interp.get_input_details()
    want = sum(int(np.prod(d["shape"])) * np.dtype(d["dtype"]).itemsize for d in details)
    size = path.stat().st_size
    if size > 2 * want + 65536:  # the arrays and the zip's own records, no more
        raise ValueError(f"{path}: {size} bytes for {want} bytes of inputs")
    try:
        with zipfile.ZipFile(path) as zf:  # stored members no bigger than the inputs: numpy
            for m in zf.infolist():  # would allocate a member's declared shape first
                if m.compress_type != zipfile.ZIP_STORED or m.file_size > want + 4096:
                    raise ValueError(f"member {m.filename!r} is compressed or too big")
        with np.load(path, allow_pickle=False) as z:
            names = sorted(z.files)
            if names != sorted(f"in{i}" for i in range(len(details))):
                raise ValueError(f"holds {names}, the model takes {len(details)} input(s)")
            out = []
            for i, d in enumerate(details):
                x = z[f"in{i}"]
                why = input_problem(x, [int(v) for v in d["shape"]], d["dtype"])
                if why:
                    raise ValueError(f"in{i} {why}")
                out.append((d["index"], x))
            return out
    except (OSError, zipfile.BadZipFile, ValueError, KeyError, EOFError, TypeError) as exc:
        raise ValueError(f"{path}: {exc}") from None
