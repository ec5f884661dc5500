"""A .tflite graph -> its operators, each as a single-operator model with a canonical key.

TFLite's converter has already fused conv + bias + activation, so the operators of subgraph 0
are the kernels a device runs. `decompose` lists them: each becomes an `OpSpec` whose key
names the builtin operator and its version, its options (stride, padding, dilation, fused
activation, depth multiplier, ... sorted by name; fields at their zero default left out, so a
newer schema adding a field leaves existing keys alone), every input in order (`const:` for a
constant tensor, whose buffer is kept), the outputs, and the quantization kind (none /
per-tensor / per-channel). Operators that cannot stand alone are refused by name: custom ops,
Flex (TensorFlow) ops, control flow (WHILE, IF, CALL_ONCE and any operator that calls another
subgraph) and resource variables.

`extract_op` cuts one operator out with the schema's object API: its non-constant inputs
become the model's inputs, its constant tensors keep their buffers (XNNPACK packs weights as
it would in the network), its outputs are the model's outputs, and its operator code and
version are kept.

Reading is bounds-checked (the flatbuffer reader raises on any offset outside the buffer);
every failure is an InputError naming the problem. Callers run this in a worker process
(`decompose_files`), so even a crash of the reader costs one model, not latbench. The schema
module is loaded from TensorFlow's files without importing TensorFlow (fast workers).
"""

from __future__ import annotations

import importlib.util
import sys
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any

from latbench.build.cache import cache_dir, content_hash
from latbench.errors import InputError

QUANT_KINDS = ("none", "per-tensor", "per-channel")
# Operators that run other subgraphs or keep state: they cannot be timed alone.
CONTROL_FLOW = {"WHILE", "IF", "CALL_ONCE"}
STATEFUL = {"VAR_HANDLE", "READ_VARIABLE", "ASSIGN_VARIABLE", "HASHTABLE", "HASHTABLE_FIND",
            "HASHTABLE_IMPORT", "HASHTABLE_SIZE"}  # fmt: skip
ENUM_OPTIONS = {"padding": "Padding", "fusedActivationFunction": "ActivationFunctionType"}
INT_TYPES = {"INT8", "UINT8", "INT16"}


@lru_cache(maxsize=1)
def tflite_schema():
    """TensorFlow's generated TFLite schema module, loaded alone (flatbuffers + numpy only)."""
    if "tensorflow.lite.python.schema_py_generated" in sys.modules:
        return sys.modules["tensorflow.lite.python.schema_py_generated"]
    spec = importlib.util.find_spec("tensorflow")
    if spec is None or not spec.submodule_search_locations:
        raise InputError("TensorFlow is not installed (its TFLite schema reads the model)")
    path = Path(list(spec.submodule_search_locations)[0]) / "lite/python/schema_py_generated.py"
    mod_spec = importlib.util.spec_from_file_location("latbench_tflite_schema", path)
    mod = importlib.util.module_from_spec(mod_spec)  # type: ignore[arg-type]
    mod_spec.loader.exec_module(mod)  # type: ignore[union-attr]
    return mod


@dataclass(frozen=True)
class OpSpec:
    """One operator of a TFLite graph, as an operator LUT row names it.

    The columns (all but `source` and `index`) are the row's fields; `key` is built from them.
    `source` / `index` say where to cut the operator from (not part of the row).
    """

    op: str  # builtin name, e.g. CONV_2D
    version: int
    options: str  # name=value,... sorted
    inputs: str  # dtype[shape] per input, "const:" for constants, "-" for an absent optional
    outputs: str
    quant: str  # none | per-tensor | per-channel
    precision: str  # the LUT's precision: int8 when activations are integers, else fp32
    source: str = field(default="", compare=False, metadata={"column": False})
    index: int = field(default=-1, compare=False, metadata={"column": False})

    @property
    def key(self) -> str:
        return (
            f"{self.op}/v{self.version}|{self.options}|in={self.inputs}|out={self.outputs}"
            f"|q={self.quant}"
        )

    def to_dict(self) -> dict[str, Any]:
        return {
            "op": self.op, "version": self.version, "options": self.options,
            "inputs": self.inputs, "outputs": self.outputs, "quant": self.quant,
            "precision": self.precision,
        }  # fmt: skip


@dataclass
class Decomposition:
    """What `decompose` found in a model: operators to time, and those refused (by name)."""

    ops: list[OpSpec]  # in graph order (duplicates kept: a model's sum counts each)
    refused: dict[str, str]  # operator name -> why it cannot be timed alone
    precision: str
    subgraphs: int
    # operator indexes whose kernel the runtime folds into a neighbour's (RUNTIME_FUSIONS)
    fused: frozenset[int] = frozenset()


def op_path(spec: OpSpec) -> Path:
    """Where the single-operator model of a key lives in the conversion cache."""
    return cache_dir() / "ops" / f"{content_hash(spec.key)}.tflite"


def load_model(data: bytes):
    """The flatbuffer as a schema ModelT (object API), or an InputError for a damaged one."""
    if len(data) < 8 or data[4:8] != b"TFL3":
        raise InputError("not a TFLite flatbuffer (no TFL3 identifier)")
    schema = tflite_schema()
    try:
        model = schema.ModelT.InitFromObj(schema.Model.GetRootAsModel(data, 0))
    except Exception as exc:  # noqa: BLE001 - any out-of-bounds read of a damaged buffer
        raise InputError(
            f"a damaged flatbuffer (reading it failed: {type(exc).__name__})"
        ) from None
    if not model.subgraphs:
        raise InputError("the model has no subgraph")
    return model


def _names(enum_cls) -> dict[int, str]:
    return {v: k for k, v in vars(enum_cls).items() if not k.startswith("_")}


def _text(x) -> str:
    return x.decode("utf-8", "replace") if isinstance(x, bytes) else str(x or "")


def _value(v) -> str | None:
    """An option's value as key text; None when it is at its zero default (left out)."""
    import numpy as np

    if isinstance(v, np.generic):
        v = v.item()
    if (
        v is None
        or v is False
        or (isinstance(v, (int, float)) and not isinstance(v, bool) and v == 0)
    ):
        return None
    if v is True:
        return "true"
    if isinstance(v, (list, tuple, np.ndarray)):
        return "[" + ",".join(str(int(x)) if float(x).is_integer() else repr(float(x))
                              for x in list(v)) + "]" if len(v) else None  # fmt: skip
    if isinstance(v, (int, float)):
        return str(v) if isinstance(v, int) or not float(v).is_integer() else str(int(v))
    return None  # nested tables (rare): their presence is in the op name and version


def options_text(opts) -> str:
    """`name=value,...` sorted by name: enums by name, zero defaults left out."""
    if opts is None:
        return ""
    schema = tflite_schema()
    parts = []
    for name, v in sorted(vars(opts).items()):
        if name in ENUM_OPTIONS:
            text = _names(getattr(schema, ENUM_OPTIONS[name])).get(int(v), str(v))
        else:
            text = _value(v)
        if text is not None:
            parts.append(f"{name}={text}")
    return ",".join(parts)


def _calls_subgraph(opts) -> bool:
    return opts is not None and any(k.lower().endswith("subgraphindex") for k in vars(opts))


def _quant_kind(t) -> str:
    q = t.quantization
    n = 0 if q is None or q.scale is None else len(q.scale)
    return "none" if n == 0 else "per-tensor" if n == 1 else "per-channel"


def is_const(model, t) -> bool:
    """A tensor whose values are in the file (weights, bias, shape operands)."""
    if t.buffer <= 0 or t.buffer >= len(model.buffers):
        return False
    b = model.buffers[t.buffer]
    return (b.data is not None and len(b.data) > 0) or b.offset > 1


def op_name(model, op) -> tuple[str, int, Any]:
    """(name, version, operator code) of an operator; custom ops as CUSTOM:name."""
    schema = tflite_schema()
    if not 0 <= op.opcodeIndex < len(model.operatorCodes):
        raise InputError(f"an operator names opcode {op.opcodeIndex}, outside the table")
    c = model.operatorCodes[op.opcodeIndex]
    code = max(c.builtinCode, c.deprecatedBuiltinCode)
    if code == schema.BuiltinOperator.CUSTOM:
        custom = _text(c.customCode) or "?"
        return (f"FLEX:{custom}" if custom.startswith("Flex") else f"CUSTOM:{custom}"), c.version, c
    return _names(schema.BuiltinOperator).get(code, f"OP{code}"), c.version, c


def _tensor(sg, i: int):
    if not 0 <= i < len(sg.tensors):
        raise InputError(f"an operator names tensor {i}, outside the subgraph's {len(sg.tensors)}")
    return sg.tensors[i]


def _ttext(sg, i: int, types: dict[int, str]) -> str:
    t = _tensor(sg, i)
    shape = [] if t.shape is None else [int(x) for x in t.shape]
    return f"{types.get(t.type, str(t.type)).lower()}[{','.join(map(str, shape))}]"


def decompose(data: bytes, source: str = "") -> Decomposition:
    """The operators of subgraph 0 (keys, in graph order) and the refused ones by name."""
    model = load_model(data)
    schema = tflite_schema()
    types = _names(schema.TensorType)
    sg = model.subgraphs[0]
    raw = []
    refused: dict[str, str] = {}
    int_acts = False
    try:
        for idx, op in enumerate(sg.operators or []):
            name, version, _ = op_name(model, op)
            opts = op.builtinOptions
            opts2 = getattr(op, "builtinOptions2", None)
            why = (
                "a custom operator" if name.startswith("CUSTOM:")
                else "a TensorFlow (Flex) operator" if name.startswith("FLEX:")
                else "control flow (runs another subgraph)"
                if name in CONTROL_FLOW or _calls_subgraph(opts) or _calls_subgraph(opts2)
                else "a resource or table operator (state)" if name in STATEFUL
                else ""
            )  # fmt: skip
            if why:
                refused[name] = why
                continue
            ins, kinds = [], set()
            for i in [int(x) for x in (op.inputs if op.inputs is not None else [])]:
                if i < 0:
                    ins.append("-")
                    continue
                t = _tensor(sg, i)
                if t.buffer > 0 and t.buffer < len(model.buffers):
                    if model.buffers[t.buffer].offset > 1:
                        raise InputError("its weights are stored outside the flatbuffer "
                                         "(a >2 GiB model); latbench reads in-file weights only")  # fmt: skip
                const = is_const(model, t)
                ins.append(("const:" if const else "") + _ttext(sg, i, types))
                kinds.add(_quant_kind(t))
                if not const and types.get(t.type) in INT_TYPES and _quant_kind(t) != "none":
                    int_acts = True
            outs = []
            for i in [int(x) for x in (op.outputs if op.outputs is not None else [])]:
                outs.append(_ttext(sg, i, types))
                kinds.add(_quant_kind(_tensor(sg, i)))
            quant = max(kinds or {"none"}, key=QUANT_KINDS.index)
            opt_text = options_text(opts)
            if opts2 is not None:
                opt_text = ",".join(x for x in (opt_text, options_text(opts2)) if x)
            raw.append((name, version, opt_text, ";".join(ins), ";".join(outs), quant, idx))
    except InputError:
        raise
    except Exception as exc:  # noqa: BLE001 - a damaged table inside the buffer
        raise InputError(
            f"a damaged flatbuffer (reading it failed: {type(exc).__name__})"
        ) from None
    precision = "int8" if int_acts else "fp32"
    ops = [OpSpec(n, v, o, i, out, q, precision, source, idx) for n, v, o, i, out, q, idx in raw]
    fused = fused_ops(model, precision)
    return Decomposition(ops, refused, precision, len(model.subgraphs), fused)


# Operators whose kernel the runtime folds into a neighbour's, so that in the network they
# are no kernel of their own: their isolated rows are still measured, but a model's operator
# sum counts them 0. Each rule was found by timing blocks with and without the pattern on
# the host's XNNPACK (ai-edge-litert 2.3; benchmarks/runtime_fusions.py, BENCHMARKS.md):
#   pad-into-conv: a zero PAD of the two spatial dimensions read only by a [depthwise]
#     convolution (XNNPACK's "fuse Constant Pad node downstream into Convolution 2D"); any
#     precision.
#   swish-mul (int8): MUL(x, LOGISTIC(x)) with the LOGISTIC read only by that MUL, in a
#     quantized model: the block with the pair times the same as with the LOGISTIC alone,
#     while the same MUL of x and the sigmoid of another tensor costs its isolated row
#     (fp32 keeps both kernels: the MUL costs its row there).
# Other runtimes (a phone's GPU delegate, the reference kernels) may fold differently: phone
# op profiles (profiling/innetwork.py) show it operator by operator.
RUNTIME_FUSIONS = ("pad-into-conv", "swish-mul")
FUSED_PAD = ("PAD", frozenset({"CONV_2D", "DEPTHWISE_CONV_2D"}))


def fused_ops(model, precision: str, rules: tuple[str, ...] = RUNTIME_FUSIONS) -> frozenset[int]:
    """Indexes of subgraph 0's operators that one of `rules` (RUNTIME_FUSIONS) folds away."""
    sg = model.subgraphs[0]
    ops = list(sg.operators or [])
    names = [op_name(model, op)[0] for op in ops]
    readers: dict[int, list[int]] = {}  # tensor -> the operators reading it
    made_by: dict[int, int] = {}  # tensor -> the operator writing it
    for j, op in enumerate(ops):
        for i in op.inputs if op.inputs is not None else []:
            if i >= 0:
                readers.setdefault(int(i), []).append(j)
        for i in op.outputs if op.outputs is not None else []:
            made_by[int(i)] = j
    outputs = {int(i) for i in (sg.outputs if sg.outputs is not None else [])}

    def only_reader(tensor: int) -> int | None:
        r = readers.get(tensor, [])
        return r[0] if len(r) == 1 and tensor not in outputs else None

    out = set()
    for idx, op in enumerate(ops):
        ins = [int(x) for x in (op.inputs if op.inputs is not None else [])]
        outs = [int(x) for x in (op.outputs if op.outputs is not None else [])]
        if "pad-into-conv" in rules and names[idx] == FUSED_PAD[0] and len(outs) == 1 and ins:
            src, dst = _tensor(sg, ins[0]), _tensor(sg, outs[0])
            a = [] if src.shape is None else [int(x) for x in src.shape]
            b = [] if dst.shape is None else [int(x) for x in dst.shape]
            spatial = len(a) == len(b) == 4 and a[0] == b[0] and a[3] == b[3]
            reader = only_reader(outs[0])
            if spatial and reader is not None and names[reader] in FUSED_PAD[1]:
                out.add(idx)
        elif (
            "swish-mul" in rules and names[idx] == "MUL" and precision == "int8"
            and len(ins) == 2 and -1 not in ins
            and not getattr(op.builtinOptions, "fusedActivationFunction", 0)
        ):  # fmt: skip
            for x, gate in (ins, ins[::-1]):
                j = made_by.get(gate)
                if (
                    j is not None and names[j] == "LOGISTIC"
                    and [int(t) for t in (ops[j].inputs if ops[j].inputs is not None else [])]
                    == [x] and only_reader(gate) == idx
                ):  # fmt: skip
                    out.add(idx)
                    break
    return frozenset(out)


def extract_op(model, index: int) -> bytes:
    """The single-operator model of operator `index` of subgraph 0 (a schema ModelT)."""
    import flatbuffers
    import numpy as np

    schema = tflite_schema()
    sg = model.subgraphs[0]
    op = sg.operators[index]
    ins = [int(x) for x in (op.inputs if op.inputs is not None else [])]
    outs = [int(x) for x in (op.outputs if op.outputs is not None else [])]
    inter = [int(x) for x in (op.intermediates if op.intermediates is not None else [])]
    used: list[int] = []
    for i in [*ins, *outs, *inter]:
        if i >= 0 and i not in used:
            used.append(i)
    t_map = {old: new for new, old in enumerate(used)}
    buffers = [schema.BufferT()]  # buffer 0: the empty one, by convention
    buf_map: dict[int, int] = {}
    tensors = []
    for old in used:
        src = _tensor(sg, old)
        t = schema.TensorT()
        t.__dict__.update(src.__dict__)
        if is_const(model, src):
            if src.buffer not in buf_map:
                b = schema.BufferT()
                b.data = model.buffers[src.buffer].data
                buf_map[src.buffer] = len(buffers)
                buffers.append(b)
            t.buffer = buf_map[src.buffer]
        else:
            t.buffer = 0
        tensors.append(t)
    model_inputs = [t_map[i] for i in op_inputs(model, index)]

    def remap(idx: list[int]):
        return np.array([t_map[i] if i >= 0 else -1 for i in idx], dtype=np.int32)

    new_op = schema.OperatorT()
    new_op.__dict__.update(op.__dict__)
    new_op.opcodeIndex = 0
    new_op.inputs, new_op.outputs = remap(ins), remap(outs)
    if op.intermediates is not None:
        new_op.intermediates = remap(inter)
    sub = schema.SubGraphT()
    sub.tensors, sub.operators = tensors, [new_op]
    sub.inputs = np.array(model_inputs, dtype=np.int32)
    sub.outputs = remap([i for i in outs if i >= 0])
    sub.name = "op"
    m = schema.ModelT()
    m.version = model.version or 3
    m.operatorCodes = [model.operatorCodes[op.opcodeIndex]]
    m.subgraphs, m.buffers = [sub], buffers
    m.description = "latbench single operator"
    sig = schema.SignatureDefT()
    sig.signatureKey, sig.subgraphIndex = "serving_default", 0
    sig.inputs = [_tmap(f"x{n}", t) for n, t in enumerate(model_inputs)]
    sig.outputs = [_tmap(f"y{n}", int(t)) for n, t in enumerate(sub.outputs)]
    m.signatureDefs = [sig]
    b = flatbuffers.Builder(1024)
    b.Finish(m.Pack(b), file_identifier=b"TFL3")
    return bytes(b.Output())


def _tmap(name: str, index: int):
    t = tflite_schema().TensorMapT()
    t.name, t.tensorIndex = name, index
    return t


def op_inputs(model, index: int) -> list[int]:
    """The tensors of subgraph 0 that become operator `index`'s model inputs in
    `extract_op`, in their order: its non-constant, non-variable inputs, each once."""
    sg = model.subgraphs[0]
    op = sg.operators[index]
    out: list[int] = []
    for i in [int(x) for x in (op.inputs if op.inputs is not None else [])]:
        if i >= 0 and i not in out:
            t = _tensor(sg, i)
            if not is_const(model, t) and not t.isVariable:
                out.append(i)
    return out


# An operator's inputs as its network gave them, beside its single-operator model:
# `X.tflite` -> `X.inputs.npz`, arrays in0, in1, ... in the order of the model's inputs
# (profiling/opinputs.py writes them, devices/litert.saved_inputs reads them).
INPUTS_SUFFIX = ".inputs.npz"


def inputs_path(op_model: Path) -> Path:
    """Where a single-operator model's network inputs live."""
    return Path(op_model).with_suffix(INPUTS_SUFFIX)


# ---- the worker process --------------------------------------------------------------


def _decompose_worker(path: str) -> dict[str, Any]:
    try:
        d = decompose(Path(path).read_bytes(), path)
    except InputError as exc:
        return {"error": str(exc)}
    except Exception as exc:  # noqa: BLE001 - one line for any reader failure
        return {"error": f"cannot read it ({type(exc).__name__}: {str(exc)[:200]})"}
    return {"decomposition": d}


def decompose_files(paths: list[Path]) -> list[Decomposition | str]:
    """Decompose each .tflite in a worker process tied to this one: a Decomposition, or one
    line saying why the model is refused (a damaged file, a reader that died)."""
    import multiprocessing as mp
    import os
    from concurrent.futures import ProcessPoolExecutor
    from concurrent.futures.process import BrokenProcessPool

    from latbench.procs import pool_initializer

    out: list[Decomposition | str] = []
    pool = None
    try:
        for p in paths:
            if pool is None:
                pool = ProcessPoolExecutor(
                    1,
                    mp_context=mp.get_context("spawn"),
                    initializer=pool_initializer,  # the worker dies with this process
                    initargs=(os.getpid(),),
                )
            try:
                res = pool.submit(_decompose_worker, str(p)).result()
            except BrokenProcessPool:
                pool.shutdown(wait=False)
                pool = None  # a fresh worker for the next model
                out.append("reading its operators crashed the reader process (a damaged file?)")
                continue
            out.append(res["decomposition"] if "decomposition" in res else res["error"])
    finally:
        if pool is not None:
            pool.shutdown()
    return out


def prefix_model(model, k: int) -> bytes:
    """Subgraph 0 cut after its first `k` operators (a schema ModelT; k = 0: no operator):
    the model's inputs, those operators, and as outputs every tensor they produce that none of
    them reads (plus the model outputs among them). Timing prefixes k and k+1 apart gives
    operator k's marginal cost inside the network (the stand-in phone's operator profile)."""
    import copy

    import flatbuffers
    import numpy as np

    m = copy.copy(model)
    sg = copy.copy(model.subgraphs[0])
    ops = list(sg.operators or [])[:k]
    produced, read = [], set()
    for op in ops:
        read |= {int(i) for i in (op.inputs if op.inputs is not None else []) if i >= 0}
        produced += [int(i) for i in (op.outputs if op.outputs is not None else []) if i >= 0]
    graph_out = {int(i) for i in (sg.outputs if sg.outputs is not None else [])}
    outs = [t for t in produced if t not in read or t in graph_out]
    if not outs:  # no operator: the inputs pass straight through
        outs = [int(i) for i in sg.inputs]
    sg.operators = ops
    sg.outputs = np.array(outs, dtype=np.int32)
    m.subgraphs = [sg]
    m.signatureDefs = None
    b = flatbuffers.Builder(1024)
    b.Finish(m.Pack(b), file_identifier=b"TFL3")
    return bytes(b.Output())
