"""A .tflite cut into single-operator models: keys pinned, shapes and values reproduced, and
custom, Flex, control-flow and damaged inputs refused by name or as one line."""

import os
from pathlib import Path

import numpy as np
import pytest

from latbench.build.tflite_ops import (
    decompose,
    decompose_files,
    extract_op,
    load_model,
    tflite_schema,
)
from latbench.errors import InputError

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "tflite"
FP32 = (FIXTURES / "net_fp32.tflite").read_bytes()
INT8 = (FIXTURES / "net_int8.tflite").read_bytes()


def _interpreter(**kw):
    from latbench.devices.litert import interpreter_class

    interp = interpreter_class()[0](**kw)
    interp.allocate_tensors()
    return interp


def test_the_keras_network_decomposes_into_its_kernels_in_graph_order():
    assert [o.op for o in decompose(FP32).ops] == [
        "CONV_2D", "DEPTHWISE_CONV_2D", "ADD", "MEAN", "FULLY_CONNECTED"
    ]  # fmt: skip
    d = decompose(INT8)
    assert [o.op for o in d.ops] == [
        "QUANTIZE", "CONV_2D", "DEPTHWISE_CONV_2D", "ADD", "MEAN", "FULLY_CONNECTED", "DEQUANTIZE"
    ]  # fmt: skip
    assert d.precision == "int8" and decompose(FP32).precision == "fp32" and not d.refused


def test_operator_keys_are_pinned():
    fp = {o.op: o.key for o in decompose(FP32).ops}
    assert fp["CONV_2D"] == (
        "CONV_2D/v1|dilationHFactor=1,dilationWFactor=1,fusedActivationFunction=RELU6,"
        "padding=SAME,strideH=2,strideW=2|in=float32[1,16,16,3];const:float32[8,3,3,3];"
        "const:float32[8]|out=float32[1,8,8,8]|q=none"
    )
    assert fp["DEPTHWISE_CONV_2D"] == (
        "DEPTHWISE_CONV_2D/v1|depthMultiplier=1,dilationHFactor=1,dilationWFactor=1,"
        "fusedActivationFunction=NONE,padding=SAME,strideH=1,strideW=1|in=float32[1,8,8,8];"
        "const:float32[1,3,3,8];const:float32[8]|out=float32[1,8,8,8]|q=none"
    )
    assert fp["MEAN"] == "MEAN/v1||in=float32[1,8,8,8];const:int32[2]|out=float32[1,8]|q=none"
    assert fp["FULLY_CONNECTED"] == (
        "FULLY_CONNECTED/v1|fusedActivationFunction=NONE|in=float32[1,8];const:float32[4,8];-"
        "|out=float32[1,4]|q=none"
    )
    q = {o.op: o.key for o in decompose(INT8).ops}
    assert q["CONV_2D"] == (
        "CONV_2D/v3|dilationHFactor=1,dilationWFactor=1,fusedActivationFunction=RELU6,"
        "padding=SAME,strideH=2,strideW=2|in=int8[1,16,16,3];const:int8[8,3,3,3];"
        "const:int32[8]|out=int8[1,8,8,8]|q=per-channel"
    )
    assert q["ADD"] == (
        "ADD/v2|fusedActivationFunction=NONE,potScaleInt16=true|in=int8[1,8,8,8];"
        "int8[1,8,8,8]|out=int8[1,8,8,8]|q=per-tensor"
    )
    assert decompose(FP32) == decompose(bytes(FP32))  # the same bytes, the same keys


@pytest.mark.parametrize("data", [FP32, INT8], ids=["fp32", "int8"])
def test_each_single_operator_model_runs_and_reproduces_the_output_shape(data):
    model = load_model(data)
    sg = model.subgraphs[0]
    for o in decompose(data).ops:
        one = _interpreter(model_content=extract_op(model, o.index))
        want = [list(sg.tensors[int(t)].shape) for t in sg.operators[o.index].outputs]
        assert [list(d["shape"]) for d in one.get_output_details()] == want, o.key
        one.invoke()  # and it runs


@pytest.mark.filterwarnings("ignore:Warning. Enabling `experimental_preserve_all_tensors`")
@pytest.mark.parametrize("data", [FP32, INT8], ids=["fp32", "int8"])
def test_a_single_operator_model_computes_what_the_operator_computes_in_the_network(data):
    full = _interpreter(model_content=data, experimental_preserve_all_tensors=True)
    inp = full.get_input_details()[0]
    full.set_tensor(inp["index"], np.random.default_rng(1).standard_normal(inp["shape"]).astype(
        np.float32))  # fmt: skip
    full.invoke()
    model = load_model(data)
    sg = model.subgraphs[0]
    for o in decompose(data).ops:
        if o.op not in ("CONV_2D", "DEPTHWISE_CONV_2D"):
            continue
        op = sg.operators[o.index]
        one = _interpreter(model_content=extract_op(model, o.index))
        (x,) = one.get_input_details()  # weights and bias are constants, not inputs
        one.set_tensor(x["index"], full.get_tensor(int(op.inputs[0])))
        one.invoke()
        got = one.get_tensor(one.get_output_details()[0]["index"])
        np.testing.assert_array_equal(got, full.get_tensor(int(op.outputs[0])))


def edited(data: bytes, custom: str | None) -> bytes:
    """The fp32 network with its ADD turned into a custom operator named `custom`."""
    import flatbuffers

    schema = tflite_schema()
    m = load_model(data)
    code = schema.OperatorCodeT()
    code.builtinCode = code.deprecatedBuiltinCode = schema.BuiltinOperator.CUSTOM
    code.customCode, code.version = custom, 1
    m.operatorCodes.append(code)
    for op in m.subgraphs[0].operators:
        if m.operatorCodes[op.opcodeIndex].builtinCode == schema.BuiltinOperator.ADD:
            op.opcodeIndex, op.builtinOptions, op.builtinOptionsType = (
                len(m.operatorCodes) - 1,
                None,
                0,
            )
    b = flatbuffers.Builder(1024)
    b.Finish(m.Pack(b), file_identifier=b"TFL3")
    return bytes(b.Output())


def test_custom_flex_and_control_flow_operators_are_refused_by_name():
    d = decompose(edited(FP32, "MyPostProcess"))
    assert d.refused == {"CUSTOM:MyPostProcess": "a custom operator"}
    assert [o.op for o in d.ops] == ["CONV_2D", "DEPTHWISE_CONV_2D", "MEAN", "FULLY_CONNECTED"]
    assert decompose(edited(FP32, "FlexAddV2")).refused == {
        "FLEX:FlexAddV2": "a TensorFlow (Flex) operator"
    }
    w = decompose((FIXTURES / "while.tflite").read_bytes())
    assert w.refused == {"WHILE": "control flow (runs another subgraph)"} and w.subgraphs == 3


def _damaged() -> dict[str, bytes]:
    rng = np.random.default_rng(0)
    return {
        "random": os.urandom(4096),
        "empty": b"",
        "truncated": FP32[: len(FP32) // 3],
        "header_only": FP32[:8] + b"\xff" * 64,
        "flipped": FP32[:8] + bytes(b ^ 0x5A for b in FP32[8:]),
        **{
            f"noise{i}": bytes(
                b ^ int(rng.integers(0, 256)) if rng.random() < 0.02 else b for b in FP32
            )
            for i in range(20)
        },  # fmt: skip
    }


def test_damaged_buffers_are_an_input_error_never_another_exception():
    for name, data in _damaged().items():
        try:
            d = decompose(data)
        except InputError as exc:
            assert "\n" not in str(exc), name
        else:  # a flip that left the structure readable: the operators are still well formed
            assert all(o.key for o in d.ops), name


def test_decomposition_in_the_worker_returns_one_line_per_refused_model(tmp_path):
    paths = []
    for name, data in [("good", FP32), *list(_damaged().items())[:4]]:
        (tmp_path / f"{name}.tflite").write_bytes(data)
        paths.append(tmp_path / f"{name}.tflite")
    out = decompose_files(paths)
    assert [o.op for o in out[0].ops][0] == "CONV_2D"
    assert all(isinstance(o, str) and "\n" not in o for o in out[1:])


def test_a_pad_read_only_by_a_convolution_is_marked_fused_and_counts_nothing():
    from latbench.predictors.opsum import op_sum
    from latbench.profiling.oplut import ModelOps
    from tests.predictors.test_opsum import _lut

    d = decompose((FIXTURES / "pad.tflite").read_bytes())
    names = [o.op for o in d.ops]
    assert names.count("PAD") == 2 and {names[i] for i in d.fused} == {"PAD"}
    (fused,) = d.fused
    assert names[fused + 1] == "CONV_2D" and "MAX_POOL_2D" in names  # the second PAD feeds the pool
    model = ModelOps("pad", "pad.tflite", FIXTURES / "pad.tflite", d)
    pred = op_sum(model, _lut(model.ops), "host")
    assert pred.rows[fused][1] == 0.0 and pred.to_dict()["operators"][fused]["fused"]
    assert pred.total_ms == sum(1.0 + i for i in range(len(d.ops)) if i != fused)


def test_an_int8_swish_mul_is_marked_fused_and_a_gate_or_an_fp32_swish_is_not():
    from latbench.predictors.opsum import op_sum
    from latbench.profiling.oplut import ModelOps
    from tests.predictors.test_opsum import _lut

    d8 = decompose((FIXTURES / "swish_int8.tflite").read_bytes())
    names = [o.op for o in d8.ops]
    muls = [j for j, n in enumerate(names) if n == "MUL"]
    assert d8.precision == "int8" and len(muls) == 2 and names.count("LOGISTIC") == 2
    swish, gate = sorted(muls, key=lambda j: d8.ops[j].index)
    (fused,) = d8.fused  # the swish's MUL, whose other input is its LOGISTIC's input
    assert d8.ops[swish].index == fused and d8.ops[gate].index not in d8.fused
    model = ModelOps("swish", "swish_int8.tflite", FIXTURES / "swish_int8.tflite", d8)
    pred = op_sum(model, _lut(model.ops), "host")
    assert pred.rows[swish][1] == 0.0 and pred.to_dict()["operators"][swish]["fused"]
    assert pred.rows[gate][1] > 0 and "fused" not in pred.to_dict()["operators"][gate]

    d32 = decompose((FIXTURES / "swish_fp32.tflite").read_bytes())
    assert d32.precision == "fp32" and [o.op for o in d32.ops].count("MUL") == 2
    assert d32.fused == frozenset()  # fp32 keeps both kernels (BENCHMARKS, runtime fusions)


@pytest.mark.parametrize("name", ["net_int8.tflite", "swish_int8.tflite", "net_fp32.tflite"])
def test_each_operator_is_given_its_network_inputs_and_they_chain(tmp_path, monkeypatch, name):
    """Beside each single-operator model: its inputs as the network computed them from the
    inputs a whole model is timed on. The first operator's is that model input; each later
    one's is what its producer's own model outputs on its own saved inputs (an operator whose
    key came before, in this model or another, keeps the first one's model and inputs)."""
    monkeypatch.setenv("LATBENCH_CACHE", str(tmp_path / "cache"))
    from latbench.build.tflite_ops import inputs_path, op_inputs
    from latbench.devices.litert import random_inputs, saved_inputs
    from latbench.profiling.opinputs import extract_to_cache

    src = tmp_path / name
    src.write_bytes((FIXTURES / name).read_bytes())
    data = src.read_bytes()
    d = decompose(data, str(src))
    model = load_model(data)
    sg = model.subgraphs[0]
    got = extract_to_cache(d.ops)
    assert all(err is None for _, _, err in got)
    made_by = {int(t): k for k, o in enumerate(sg.operators) for t in o.outputs}
    outputs = {}  # tensor -> what its producer's model computes on the producer's saved inputs
    seen, chained = set(), 0
    for spec, (_, path, _) in zip(d.ops, got):
        if spec.key in seen:  # a repeated key: the first operator's model and inputs
            break  # (what follows is computed from other values)
        seen.add(spec.key)
        one = _interpreter(model_path=path, experimental_op_resolver_type=_builtin())
        ins = saved_inputs(inputs_path(Path(path)), one)  # checked against the model's inputs
        for (i, x), t in zip(ins, op_inputs(model, spec.index)):
            if t in made_by:
                np.testing.assert_array_equal(x, outputs[t])
                chained += 1
            else:  # a model input: what the whole model is timed on
                whole = _interpreter(model_content=data)
                (want,) = [v for j, v in random_inputs(whole) if j == t]
                np.testing.assert_array_equal(x, want)
            one.set_tensor(i, x)
        one.invoke()
        for o, t in zip(one.get_output_details(), sg.operators[spec.index].outputs):
            outputs[int(t)] = one.get_tensor(o["index"])
    assert chained >= 2


def _builtin():
    from latbench.devices.litert import op_resolver_type

    return op_resolver_type("builtin_without_default_delegates")
