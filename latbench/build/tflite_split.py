"""Split one converted .tflite holding many independent layers into one file each.

Converting a layer costs a fixed ~1 s of tracing and MLIR set-up; converting
64 layers side by side in one graph costs little more than one. The converted
graph is a union of disconnected components; this module cuts it back into
single-layer models (ops, tensors and weights of one component each), which
are byte-for-byte what the converter would have made for that layer alone,
minus the unrelated parts.
"""

from __future__ import annotations

import flatbuffers
import numpy as np
from tensorflow.lite.python import schema_py_generated as schema

_IDENT = b"TFL3"


def _load(buf: bytes) -> "schema.ModelT":
    return schema.ModelT.InitFromObj(schema.Model.GetRootAsModel(buf, 0))


def _pack(model: "schema.ModelT") -> bytes:
    b = flatbuffers.Builder(1024)
    b.Finish(model.Pack(b), file_identifier=_IDENT)
    return bytes(b.Output())


def _name(t) -> str:
    n = t.name
    return n.decode() if isinstance(n, bytes) else n


def split_model(buf: bytes) -> list[bytes]:
    """One model per (i-th input, i-th output) pair of a one-subgraph model.

    The converter keeps the tf.function's argument order for inputs and the
    order of a returned tuple for outputs, so pair i is layer i.
    """
    model = _load(buf)
    if len(model.subgraphs) != 1:
        raise ValueError(f"expected one subgraph, got {len(model.subgraphs)}")
    sg = model.subgraphs[0]
    if len(sg.inputs) != len(sg.outputs):
        raise ValueError(f"{len(sg.inputs)} inputs but {len(sg.outputs)} outputs")
    producer: dict[int, int] = {}
    for oi, op in enumerate(sg.operators):
        for t in op.outputs:
            producer[int(t)] = oi
    return [_extract(model, sg, int(i), int(o), producer) for i, o in zip(sg.inputs, sg.outputs)]


def _extract(model, sg, in_t: int, out_t: int, producer: dict[int, int]) -> bytes:
    ops: set[int] = set()
    stack = [out_t]
    seen_t: set[int] = set()
    while stack:
        t = stack.pop()
        if t in seen_t or t < 0:
            continue
        seen_t.add(t)
        oi = producer.get(t)
        if oi is None or oi in ops:
            continue
        ops.add(oi)
        op = sg.operators[oi]
        stack.extend(int(x) for x in op.inputs)
        if op.intermediates is not None:
            stack.extend(int(x) for x in op.intermediates)
    if in_t not in seen_t:
        raise ValueError("output does not depend on its input: components are mixed up")
    tensors = sorted(seen_t)
    t_map = {old: new for new, old in enumerate(tensors)}
    buf_map: dict[int, int] = {0: 0}
    new_buffers = [schema.BufferT()]

    def remap_buffer(b: int) -> int:
        if b not in buf_map:
            buf_map[b] = len(new_buffers)
            new_buffers.append(model.buffers[b])
        return buf_map[b]

    new_tensors = []
    for old in tensors:
        t = schema.TensorT()
        t.__dict__.update(sg.tensors[old].__dict__)
        t.buffer = remap_buffer(t.buffer)
        new_tensors.append(t)

    def remap(idx) -> np.ndarray:
        return np.array([t_map[int(i)] if int(i) >= 0 else -1 for i in idx], dtype=np.int32)

    new_ops = []
    for oi in sorted(ops):
        op = sg.operators[oi]
        new = schema.OperatorT()
        new.__dict__.update(op.__dict__)
        new.inputs = remap(op.inputs)
        new.outputs = remap(op.outputs)
        if op.intermediates is not None:
            new.intermediates = remap(op.intermediates)
        new_ops.append(new)
    sub = schema.SubGraphT()
    sub.__dict__.update(sg.__dict__)
    sub.tensors = new_tensors
    sub.operators = new_ops
    sub.inputs = np.array([t_map[in_t]], dtype=np.int32)
    sub.outputs = np.array([t_map[out_t]], dtype=np.int32)

    m = schema.ModelT()
    m.__dict__.update(model.__dict__)
    m.subgraphs = [sub]
    metadata = []
    for md in model.metadata or []:
        new_md = schema.MetadataT()
        new_md.name = md.name
        new_md.buffer = remap_buffer(md.buffer)
        metadata.append(new_md)
    m.metadata = metadata
    m.buffers = new_buffers
    sig = schema.SignatureDefT()
    sig.signatureKey = "serving_default"
    sig.subgraphIndex = 0
    ti_in, ti_out = schema.TensorMapT(), schema.TensorMapT()
    ti_in.name, ti_in.tensorIndex = "x", t_map[in_t]
    ti_out.name, ti_out.tensorIndex = "y", t_map[out_t]
    sig.inputs, sig.outputs = [ti_in], [ti_out]
    m.signatureDefs = [sig]
    return _pack(m)
