"""Any model's operator sum: every occurrence counted, the breakdown adds up, and what stands
in its way (missing, failed or untimeable operators) is named."""

import pytest

from latbench.build.tflite_ops import decompose
from latbench.devices.measure import Measurement
from latbench.errors import InputError
from latbench.predictors.opsum import FailedOps, MissingOps, op_sum
from latbench.profiling.lut import Row
from latbench.profiling.oplut import ModelOps, OpLUT
from tests.build.test_tflite_ops import FIXTURES, FP32


def _model(data: bytes, name: str = "net") -> ModelOps:
    return ModelOps(name, f"{name}.tflite", FIXTURES / f"{name}.tflite", decompose(data))


def _lut(ops, ms=lambda i: 1.0 + i, status="ok") -> OpLUT:
    lut = OpLUT(meta={"precision": "fp32"})
    for i, o in enumerate(ops):
        m = Measurement(ms(i), ms(i), ms(i), 0.0, ms(i), 10, 0.01) if status == "ok" else None
        lut.append(Row(o, status, m))
    return lut


def test_the_operator_sum_counts_every_occurrence_and_its_shares_add_up():
    model = _model(FP32)
    p = op_sum(model, _lut(model.ops), "host")
    assert p.total_ms == pytest.approx(1 + 2 + 3 + 4 + 5)
    doc = p.to_dict()
    assert [o["op"] for o in doc["operators"]][0] == "CONV_2D"
    assert sum(o["share"] for o in doc["operators"]) == pytest.approx(1.0)
    assert p.by_op()[0] == ("FULLY_CONNECTED", 1, 5.0)
    twice = ModelOps("two", "two.tflite", FIXTURES, decompose(FP32))
    twice.decomposition.ops.extend(twice.ops)  # the same operators again: counted again
    assert op_sum(twice, _lut(model.ops), "host").total_ms == pytest.approx(30)


def test_missing_failed_and_untimeable_operators_are_named():
    model = _model(FP32)
    with pytest.raises(MissingOps, match=r"1 operator\(s\) of net.tflite missing.*FULLY_CONNECTED"):
        op_sum(model, _lut(model.ops[:4]), "host")
    with pytest.raises(FailedOps, match="5 operator"):
        op_sum(model, _lut(model.ops, status="failed"), "host")
    loop = _model((FIXTURES / "while.tflite").read_bytes(), "while")
    with pytest.raises(InputError, match="WHILE .control flow"):
        op_sum(loop, _lut(model.ops), "host")
