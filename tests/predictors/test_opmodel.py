"""The operator-level predictor: the layer predictor's family on TFLite operators, fitted on
whole models, saved and loaded like a layer predictor file, and refused when its operator LUT
changed."""

import json

import numpy as np
import pytest

from latbench.build.tflite_ops import decompose
from latbench.calibration.opcalib import fit_models, read_model_measurements
from latbench.devices.measure import Measurement
from latbench.errors import InputError
from latbench.predictors.features import OP_FEATURES, OPS
from latbench.predictors.opmodel import input_hw, load_op_model, op_rows
from latbench.predictors.opsum import op_sum
from latbench.predictors.stagewise import StagewisePredictor
from latbench.profiling.lut import Row
from latbench.profiling.oplut import ModelOps, OpLUT, op_lut_path
from tests.build.test_tflite_ops import FIXTURES, FP32

META = {"fingerprint": {"device": "host"}, "converter": "c", "precision": "fp32"}
# in a network, convolutions run at 0.8 of their isolated time, depthwise at 1.5, the rest
# at 0.6, and every operator saves 0.05 ms of invocation overhead
TRUTH = {"CONV_2D": 0.8, "DEPTHWISE_CONV_2D": 1.5}


def _lut(ops) -> OpLUT:
    lut = OpLUT(meta=dict(META))
    for i, o in enumerate(ops):
        ms = 0.2 + 0.3 * i
        lut.append(Row(o, "ok", Measurement(ms, ms, ms, 0.0, ms, 10, 0.01)))
    return lut


@pytest.fixture(scope="module")
def models():
    """20 'models': the fixture's five operators repeated 1-6 times each, and their latency
    in a network by TRUTH (1 % noise)."""
    base = decompose(FP32, str(FIXTURES / "net_fp32.tflite")).ops
    lut = _lut(base)
    rng = np.random.default_rng(1)
    out, y = [], []
    for i in range(20):
        d = decompose(FP32)
        d.ops[:] = [o for o in base for _ in range(int(rng.integers(1, 7)))]
        m = ModelOps(f"m{i}", f"m{i}.tflite", FIXTURES / "net_fp32.tflite", d)
        out.append(m)
        t = sum(TRUTH.get(o.op, 0.6) * lut.median(o.key) - 0.05 for o in d.ops)
        y.append(t * rng.normal(1, 0.01))
    return lut, out, np.array(y)


def test_operator_rows_add_up_to_the_plain_sum_split_by_family_and_input_size():
    model = ModelOps("net", "net.tflite", FIXTURES / "net_fp32.tflite", decompose(FP32))
    pred = op_sum(model, _lut(model.ops), "host")
    rows = op_rows(pred)
    i = {f: k for k, f in enumerate(OP_FEATURES)}
    assert rows[:, i["lut_ms"]].sum() == pytest.approx(pred.total_ms)
    kinds = [i[f] for f in OPS.kind_features]
    assert rows[:, kinds].sum() == pytest.approx(pred.total_ms)  # the families partition it
    assert rows[0, i["lut_ms_conv"]] > 0 and rows[1, i["lut_ms_dwconv"]] > 0
    assert rows[0, i["lut_ms_hw16"]] > 0 and rows[4, i["lut_ms_hw1"]] > 0  # FC: 2-D input
    assert input_hw("const:float32[8,3,3,3];float32[1,56,56,8]") == 56


def test_the_operator_predictor_beats_the_plain_sum_and_its_file_loads_back(tmp_path, models):
    lut, ms, y = models
    lut.save(op_lut_path(tmp_path, "host", "", "fp32"))
    fit = fit_models(lut, "host", ms, y, device="host", precision="fp32", mode="measured",
                     source="m.csv", source_sha="0")  # fmt: skip
    loo = fit.selection["mape"]
    assert fit.selection["default"] == "opwise" and loo["opwise"] < loo["lut"] / 3, loo
    assert np.all(fit.fitted["opwise"].coef_[: len(OPS.kinds)] >= 0)  # scales non-negative
    path = fit.save(tmp_path / "host_ops_fp32.predictor.json")
    doc = json.loads(path.read_text())
    assert doc["space"] == "ops" and doc["predictors"]["opwise"]["features"] == "ops"
    om = load_op_model("host", "fp32", tmp_path)  # found by its name
    pred = op_sum(ms[0], om.lut, "host")
    assert om.name == "opwise"
    assert om.predict([pred])[0] == pytest.approx(fit.fitted["opwise"].predict(fit.X[:1])[0])
    shares = om.breakdown(pred)
    assert min(shares) >= 0 and sum(shares) == pytest.approx(om.predict([pred])[0])
    assert load_op_model("host", "fp32", tmp_path, method="lut").predict([pred])[0] == (
        pytest.approx(pred.total_ms)
    )
    # a measured operator changed since: refused, with the command that refits it
    changed = OpLUT.load(op_lut_path(tmp_path, "host", "", "fp32"))
    key = next(iter(changed.rows))
    m = changed.rows[key].measurement
    changed.rows[key] = Row(changed.rows[key].spec, "ok", Measurement(*(2 * m.median_ms,) * 5,
                                                                        10, 0.01))  # fmt: skip
    changed.save(op_lut_path(tmp_path, "host", "", "fp32"))
    with pytest.raises(InputError, match="stale.*calibrate --ops"):
        load_op_model("host", "fp32", tmp_path)


def test_a_fixed_multiple_of_the_sum_is_judged_one_scale_and_round_trips(tmp_path, models):
    """Models whose in-network time is 1.15x their operator sum (2 % noise), whatever their
    operator count: the one-scale candidate (`ratio`) is within one standard error of every
    richer fit, so it is the default, and it predicts from the file as fitted."""
    lut, ms, _ = models
    lut.save(op_lut_path(tmp_path, "host", "", "fp32"))
    rng = np.random.default_rng(3)
    y = np.array([1.15 * op_sum(m, lut, "host").total_ms for m in ms]) * rng.normal(1, 0.02, 20)
    fit = fit_models(lut, "host", ms, y, device="host", precision="fp32", mode="measured",
                     source="m.csv", source_sha="0")  # fmt: skip
    assert fit.selection["default"] == "ratio", fit.selection
    assert fit.fitted["ratio"].scale_ == pytest.approx(1.15, rel=0.02)
    fit.save(tmp_path / "host_ops_fp32.predictor.json")
    om = load_op_model("host", "fp32", tmp_path)
    pred = op_sum(ms[0], om.lut, "host")
    assert om.name == "ratio"
    assert om.predict([pred])[0] == pytest.approx(fit.fitted["ratio"].scale_ * pred.total_ms)
    assert sum(om.breakdown(pred)) == pytest.approx(om.predict([pred])[0])
    doc = json.loads((tmp_path / "host_ops_fp32.predictor.json").read_text())
    doc["predictors"]["ratio"]["scale"] = "nan"
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps(doc))
    with pytest.raises(InputError, match="scale"):
        load_op_model("host", "fp32", tmp_path, predictor_file=bad)


def test_a_layer_predictor_file_and_a_damaged_one_are_refused_in_one_line(tmp_path, models):
    lut, ms, y = models
    lut.save(op_lut_path(tmp_path, "host", "", "fp32"))
    path = fit_models(lut, "host", ms, y, device="host", precision="fp32", mode="measured",
                      source="m.csv", source_sha="0").save(tmp_path / "p.json")  # fmt: skip
    doc = json.loads(path.read_text())
    layer = tmp_path / "layer.json"
    layer.write_text(json.dumps({**doc, "space": "mnasnet"}))
    with pytest.raises(InputError, match="is a layer predictor"):
        load_op_model("host", "fp32", tmp_path, layer)
    bad = tmp_path / "bad.json"
    doc["predictors"]["opwise"]["features"] = "__import__('os')"
    bad.write_text(json.dumps(doc))
    with pytest.raises(InputError, match="unknown features"):
        load_op_model("host", "fp32", tmp_path, bad)
    doc["predictors"]["opwise"]["features"] = "ops"
    doc["predictors"]["opwise"]["coef"]["lut_ms_conv"] = float("1e300")
    bad.write_text(json.dumps(doc))
    with pytest.raises(InputError, match="within"):
        load_op_model("host", "fp32", tmp_path, bad)


def test_with_few_models_the_fit_is_the_global_scale_and_layer_files_keep_their_form():
    X = np.abs(np.random.default_rng(0).normal(1, 0.3, (3, len(OP_FEATURES))))
    X[:, OP_FEATURES.index("layers")] = 10
    p = StagewisePredictor(schema=OPS).fit(X, X[:, 0] * 0.9)
    assert p.ridge_ == [float("inf")] * 2 and p.predict(X) == pytest.approx(X[:, 0] * 0.9)
    assert (
        "features"
        not in StagewisePredictor()
        .fit(np.abs(np.random.default_rng(0).normal(1, 0.1, (3, 23))), np.ones(3))
        .to_dict()
    )


def test_a_few_shot_measurements_file_is_checked_row_by_row(tmp_path):
    f = tmp_path / "m.csv"
    f.write_text("model,latency_ms\na.tflite,1.5\nb.keras,2\n")
    assert read_model_measurements(f) == [(tmp_path / "a.tflite", 1.5), (tmp_path / "b.keras", 2)]
    for body, match in (
        ("model,ms\na,1\n", "model,latency_ms"),
        ("model,latency_ms\na,1\na,2\n", "row 3: the same model as row 2"),
        ("model,latency_ms\na,nan\n", r"row 2 \(a\): latency_ms"),
        ("model,latency_ms\n", "no measurements"),
    ):
        f.write_text(body)
        with pytest.raises(InputError, match=match):
            read_model_measurements(f)
