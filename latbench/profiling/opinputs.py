"""Each operator's inputs as its network computes them, saved beside its single-operator model.

Some kernels' time depends on the data: the host's int8 RELU (not taken by XNNPACK) branches
on each value and costs 2-3x on uniform random bytes what it costs on a network's activations
(BENCHMARKS, issue 22). So `extract_to_cache` (the operator LUT's extraction worker) runs
each source model once, by the built-in kernels with all tensors kept, on the inputs a whole
model is timed on (devices/litert.random_inputs), and writes every operator's model
(build/tflite_ops.extract_op) together with its inputs (build/tflite_ops.inputs_path); the
host times an operator on them (devices/host_worker).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from latbench.build.tflite_ops import (
    OpSpec,
    extract_op,
    inputs_path,
    is_const,
    load_model,
    op_inputs,
    op_path,
    tflite_schema,
)

# Above this many bytes of activations a source model is not run to capture them (the
# interpreter keeps every tensor): its operators are timed on random inputs.
ACTIVATIONS_CAP = 1 << 30


def activation_bytes(model) -> int:
    """The bytes of subgraph 0's non-constant tensors, from their shapes in the flatbuffer."""
    import numpy as np

    schema = tflite_schema()
    sizes = {schema.TensorType.INT8: 1, schema.TensorType.UINT8: 1, schema.TensorType.INT16: 2,
             schema.TensorType.FLOAT16: 2, schema.TensorType.INT64: 8,
             schema.TensorType.FLOAT64: 8}  # fmt: skip
    total = 0
    for t in model.subgraphs[0].tensors or []:
        if not is_const(model, t):
            shape = [max(int(d), 1) for d in (t.shape if t.shape is not None else [])]
            total += int(np.prod(shape, dtype=np.float64)) * sizes.get(t.type, 4)
    return total


def activations(data: bytes, model, wanted: set[int]) -> dict[int, Any]:
    """The `wanted` tensors of subgraph 0 after one run of the model (`data`, and `model` its
    parsed flatbuffer, build/tflite_ops.load_model) on the inputs it is timed
    on (devices/litert.random_inputs), by the built-in kernels with all tensors kept (XNNPACK
    would keep its own); {} when the model does not run here or is over ACTIVATIONS_CAP, and a
    tensor that cannot be read is left out."""
    from latbench.devices.litert import interpreter_class, op_resolver_type, random_inputs

    if not wanted or activation_bytes(model) > ACTIVATIONS_CAP:
        return {}
    Interpreter, _, _ = interpreter_class()
    try:
        it = Interpreter(
            model_content=data,
            num_threads=1,
            experimental_preserve_all_tensors=True,
            experimental_op_resolver_type=op_resolver_type("builtin_without_default_delegates"),
        )
        it.allocate_tensors()
        for i, x in random_inputs(it):
            it.set_tensor(i, x)
        it.invoke()
    except Exception:  # noqa: BLE001 - a model the built-in kernels cannot run: random inputs
        return {}
    out = {}
    for i in wanted:
        try:
            out[i] = it.get_tensor(i)
        except Exception:  # noqa: BLE001 - a tensor with no data: that operator goes random
            continue
    return out


def _network_inputs(model, index: int, got: dict[int, Any]) -> dict[str, Any] | None:
    """Operator `index`'s inputs from the captured tensors, as its model takes them (in0,
    in1, ...), or None when one is missing or would be refused when read (devices/litert.
    saved_inputs: another shape than its tensor's, values that are not finite)."""
    from latbench.devices.litert import input_problem

    sg = model.subgraphs[0]
    arrays = {}
    for n, i in enumerate(op_inputs(model, index)):
        x = got.get(i)
        t = sg.tensors[i]  # op_inputs checked the index
        shape = [int(d) for d in (t.shape if t.shape is not None else [])]
        if x is None or input_problem(x, shape):
            return None
        arrays[f"in{n}"] = x
    return arrays


def extract_to_cache(specs: list[OpSpec]) -> list[tuple[str, str | None, str | None]]:
    """(key, cached path, error) for each spec, each source model read (and run) once.

    Beside each single-operator model go its inputs as the source model computed them
    (`inputs_path`), so the operator is timed on its network's activations; the model and its
    inputs are written together, from the same source. An operator whose source the built-in
    kernels cannot run (or whose inputs would not be taken back) gets no inputs file and is
    timed on random inputs."""
    import io

    import numpy as np

    from latbench.fileio import write_atomic

    done: dict[int, tuple[str, str | None, str | None]] = {}
    by_source: dict[str, list[tuple[int, OpSpec]]] = {}
    first: dict[str, int] = {}  # a key given twice: the first one's model and inputs
    for k, s in enumerate(specs):
        path = op_path(s)
        if path.exists() and inputs_path(path).exists():
            done[k] = (s.key, str(path), None)
        elif s.key not in first:
            first[s.key] = k
            by_source.setdefault(s.source, []).append((k, s))
    for source, todo in by_source.items():  # one source's tensors in memory at a time
        try:
            data = Path(source).read_bytes()
            model = load_model(data)
            wanted = {i for _, s in todo for i in op_inputs(model, s.index)}
            got = activations(data, model, wanted)
        except Exception as exc:  # noqa: BLE001 - this model's operators fail, others go on
            for k, s in todo:
                done[k] = (s.key, None, f"extract: {type(exc).__name__}: {str(exc)[:200]}")
            continue
        for k, s in todo:
            try:
                path = op_path(s)
                write_atomic(path, extract_op(model, s.index))
                arrays = _network_inputs(model, s.index, got)
                if arrays is not None:
                    buf = io.BytesIO()
                    np.savez(buf, **arrays)
                    write_atomic(inputs_path(path), buf.getvalue())
                done[k] = (s.key, str(path), None)
            except Exception as exc:  # noqa: BLE001 - this operator fails, the others go on
                done[k] = (s.key, None, f"extract: {type(exc).__name__}: {str(exc)[:200]}")
        del got
    return [done[k] if k in done else done[first[s.key]] for k, s in enumerate(specs)]
