"""Predictor files: JSON, named per device/space/precision, bound to their LUT
(predictors/files.py, predictors/model.py)."""

import json
import random

import numpy as np
import pytest

from latbench.calibration.calibrate import NetResult, Network, fit_and_save
from latbench.devices.measure import summarize
from latbench.errors import InputError
from latbench.predictors import load_predictor, predictor_path
from latbench.profiling.lut import LUT, Row


def _calibrate(sp, table, lut_dir, n=20, device="host", scale=1.1):
    rng = random.Random(2)
    archs = [sp.decode(sp.sample(rng)) for _ in range(n)]
    X = table.features(archs)
    results = [NetResult(Network(a, "space:2"), float(x[0]) * scale) for a, x in zip(archs, X)]
    meas = lut_dir / "m.csv"
    meas.write_text("network,latency_ms\n")
    fit_and_save(
        table,
        results,
        lut_dir,
        device=device,
        space=sp.name,
        precision="fp32",
        measurements=meas,
        mode="test",
    )
    return archs


def test_file_is_plain_json_named_per_device_space_precision(synthetic_tiny):
    sp, table, tmp = synthetic_tiny
    archs = _calibrate(sp, table, tmp)
    path = tmp / "host_tiny_fp32.predictor.json"
    assert path == predictor_path(tmp, "host", "tiny", "fp32")
    doc = json.loads(path.read_text())  # plain JSON: nothing to execute on load
    assert doc["lut"]["device"] == "host" and doc["calibration"]["networks"] == 20
    assert set(doc["predictors"]) == {"scaled", "lut", "flops", "regression", "stagewise"}
    model = load_predictor("host", "fp32", tmp, "tiny", require_calibrated=True)
    assert model.name == "scaled"
    np.testing.assert_allclose(
        model.predict(archs[:3]) / table.features(archs[:3])[:, 0], 1.1, rtol=1e-6
    )
    assert model.predict_tokens(sp, np.array([sp.sample(random.Random(9))])).shape == (1,)


def test_an_edited_lut_row_refuses_the_stale_predictor_naming_it(synthetic_tiny):
    sp, table, tmp = synthetic_tiny
    archs = _calibrate(sp, table, tmp)
    key = archs[0].layers()[1].key
    lut = LUT.load(tmp / "host_tiny_fp32.csv")
    lut.rows[key] = Row(lut.rows[key].spec, "ok", summarize([9.0]))
    lut.save()
    with pytest.raises(InputError, match="stale") as e:
        load_predictor("host", "fp32", tmp, "tiny")
    assert key in str(e.value) and "latbench calibrate" in str(e.value)


def test_another_protocol_is_another_lut(synthetic_tiny):
    sp, table, tmp = synthetic_tiny
    _calibrate(sp, table, tmp)
    f = tmp / "host_tiny_fp32.csv"
    f.write_text(f.read_text().replace('"min_runs": 15', '"min_runs": 30'))
    with pytest.raises(InputError, match="other settings"):
        load_predictor("host", "fp32", tmp, "tiny")


def test_rows_added_to_the_lut_later_keep_the_predictor_valid(synthetic_tiny, tiny_arch_dict):
    from latbench.nets.load import arch_from_dict

    sp, table, tmp = synthetic_tiny
    _calibrate(sp, table, tmp)
    lut = LUT.load(tmp / "host_tiny_fp32.csv")
    for s in arch_from_dict(tiny_arch_dict).layers():
        if s.key not in lut.rows:
            lut.append(Row(s, "ok", summarize([0.5])))
    model = load_predictor("host", "fp32", tmp, "tiny")
    assert model.predict([arch_from_dict(tiny_arch_dict)])[0] > 0


def test_a_file_edited_by_hand_is_refused(synthetic_tiny):
    sp, table, tmp = synthetic_tiny
    _calibrate(sp, table, tmp)
    path = tmp / "host_tiny_fp32.predictor.json"
    doc = json.loads(path.read_text())
    doc["predictors"]["scaled"]["kind"] = "os.system"
    path.write_text(json.dumps(doc))
    with pytest.raises(InputError, match="unknown kind 'os.system'"):
        load_predictor("host", "fp32", tmp, "tiny")
    path.write_text('{"format": "latbench-predictor/1"}')
    with pytest.raises(InputError, match="not a latbench-predictor/2"):
        load_predictor("host", "fp32", tmp, "tiny")


def test_a_device_name_that_is_not_a_plain_word_is_refused(tmp_path):
    with pytest.raises(InputError, match="device"):
        predictor_path(tmp_path, "../etc/x", "tiny", "fp32")


def test_without_a_predictor_file_the_lut_sum_answers(synthetic_tiny):
    sp, table, tmp = synthetic_tiny
    model = load_predictor("host", "fp32", tmp, "tiny")
    arch = sp.decode(sp.sample(random.Random(4)))
    assert model.name == "lut" and model.predict([arch])[0] == pytest.approx(
        table.features([arch])[0, 0]
    )
    with pytest.raises(InputError, match="latbench calibrate --device host --space tiny"):
        load_predictor("host", "fp32", tmp, "tiny", require_calibrated=True)


def test_no_lut_is_a_clear_error(tmp_path):
    with pytest.raises(InputError, match="latbench profile --device host"):
        load_predictor("host", "fp32", tmp_path)


def test_identity_changes_with_the_lut_contents(synthetic_tiny):
    sp, table, tmp = synthetic_tiny
    _calibrate(sp, table, tmp)
    before = load_predictor("host", "fp32", tmp, "tiny").identity()
    assert before["predictor"] == "scaled" and before["predictor_sha"]
    lut = LUT.load(tmp / "host_tiny_fp32.csv")
    from latbench.nets.arch import LayerSpec

    extra = LayerSpec("conv", 9, 3, 9, 5, 3, 1, 1.0)  # a layer no network of the space has
    assert extra.key not in lut.rows
    lut.append(Row(extra, "ok", summarize([0.1])))
    after = load_predictor("host", "fp32", tmp, "tiny").identity()
    assert after["lut"] != before["lut"] and after["predictor_sha"] == before["predictor_sha"]
