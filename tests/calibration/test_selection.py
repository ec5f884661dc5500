"""The default predictor earns its place: judged out of sample against the plain LUT sum at
calibration, demoted by validate when it loses on held-out networks (calibration/calibrate.py,
calibration/jobs.py, predictors/model.py)."""

import json
import random

import numpy as np
import pytest

from latbench.calibration.calibrate import NetResult, Network, fit_and_save, judge_predictors
from latbench.calibration.jobs import validate
from latbench.errors import InputError
from latbench.predictors import FEATURES, KINDS, load_predictor


def _lut_ms(X):
    return X[:, FEATURES.index("lut_ms")]


def _nets(sp, n, seed):
    rng = random.Random(seed)
    tokens = [sp.sample(rng) for _ in range(n)]
    return tokens, [sp.decode(t) for t in tokens]


def _fit(sp, table, tmp, y_of, n=30, seed=2):
    _, archs = _nets(sp, n, seed)
    y = y_of(table.features(archs))
    results = [
        NetResult(Network(a, f"space:{i}"), float(v)) for i, (a, v) in enumerate(zip(archs, y))
    ]
    meas = tmp / "calib.csv"
    meas.write_text("network,latency_ms\n")
    return fit_and_save(
        table,
        results,
        tmp,
        device="host",
        space=sp.name,
        precision="fp32",
        measurements=meas,
        mode="test",
    )


def test_a_real_in_network_bias_makes_the_calibrated_predictor_the_default(synthetic_tiny):
    """Each kind of layer runs 5-29 % slower inside a network than alone (as on real CPUs)."""
    sp, table, tmp = synthetic_tiny

    def y_of(X):
        noise = np.random.default_rng(0).lognormal(0, 0.01, len(X))  # 1 % timing noise
        return noise * sum(
            (1.05 + 0.03 * i) * X[:, FEATURES.index(f"lut_ms_{k}")] for i, k in enumerate(KINDS)
        )

    *_, path = _fit(sp, table, tmp, y_of)
    doc = json.loads(path.read_text())
    sel = doc["selection"]
    assert doc["default"] == sel["default"] == "scaled"  # regression fits as well: simpler wins
    assert sel["method"] == "10-fold cross-validation" and sel["networks"] == 30
    assert sel["mape"]["scaled"] < 2 < 5 < sel["mape"]["lut"]
    model = load_predictor("host", "fp32", tmp, "tiny")
    assert model.name == "scaled" and "LUT sum" in model.reason


def test_disturbed_calibration_networks_leave_the_lut_sum_in_charge(synthetic_tiny):
    """Networks timed at the LUT's speed, except a few timed while the machine was busy (3x):
    a fit pulled by them predicts every network worse than the plain sum, out of sample."""
    sp, table, tmp = synthetic_tiny

    def y_of(X):
        y = _lut_ms(X) * np.random.default_rng(0).lognormal(0, 0.01, len(X))
        y[::6] *= 3.0
        return y

    *_, path = _fit(sp, table, tmp, y_of)
    sel = json.loads(path.read_text())["selection"]
    assert sel["default"] == "lut" and sel["mape"]["lut"] < sel["mape"]["scaled"]
    assert load_predictor("host", "fp32", tmp, "tiny").name == "lut"


def test_few_networks_are_judged_by_leave_one_out_and_too_few_not_at_all():
    rng = np.random.default_rng(1)
    X = np.abs(rng.normal(1, 0.3, (12, len(FEATURES)))) + 0.1
    y = 1.1 * _lut_ms(X)
    assert judge_predictors(X, y)["method"] == "leave-one-out"
    tiny = judge_predictors(X[:3], y[:3])
    assert (
        tiny["method"] == "none"
        and tiny["default"] == "scaled"
        and "cannot judge" in tiny["reason"]
    )


def test_a_free_fit_with_fewer_than_two_networks_per_parameter_is_never_the_default():
    # latency exactly linear in the regression's features: it is the best out of sample, but
    # on 12 networks its 15 free parameters make it ineligible; on 40 it is chosen
    rng = np.random.default_rng(2)
    X = np.abs(rng.normal(1, 0.3, (40, len(FEATURES)))) + 0.1
    y = 0.5 * _lut_ms(X) + 0.4 * X[:, FEATURES.index("macs_m")] + 1.0
    few = judge_predictors(X[:12], y[:12])
    assert few["not_eligible"] == ["regression"] and few["default"] != "regression"
    assert "not eligible" in few["reason"]
    many = judge_predictors(X, y)
    assert many["not_eligible"] == [] and many["default"] == "regression"


def test_recalibrating_unchanged_data_leaves_the_file_byte_for_byte(synthetic_tiny):
    sp, table, tmp = synthetic_tiny
    *_, path = _fit(sp, table, tmp, lambda X: 1.1 * _lut_ms(X))
    first = path.read_bytes()
    _fit(sp, table, tmp, lambda X: 1.1 * _lut_ms(X))
    assert path.read_bytes() == first


def test_validate_demotes_a_default_that_loses_to_the_lut_sum_until_recalibration(synthetic_tiny):
    sp, table, tmp = synthetic_tiny
    _fit(sp, table, tmp, lambda X: 1.1 * _lut_ms(X))  # calibrated at 1.1x the LUT
    tokens, archs = _nets(sp, 15, seed=7)  # held out: the device is back at the LUT's speed
    held = tmp / "held.csv"
    held.write_text(
        "network,latency_ms\n"
        + "".join(
            f"{sp.format_tokens(t)},{float(v)}\n"
            for t, v in zip(tokens, _lut_ms(table.features(archs)))
        )
    )
    v = validate(
        device="host",
        precision="fp32",
        space_name="tiny",
        lut_dir=tmp,
        n_archs=1,
        seed=7,
        with_zoo=False,
        keras_refs=False,
        passes=1,
        measurements=held,
        out_dir=tmp / "report",
        workers=1,
        progress=False,
        log=lambda s: None,
    )
    assert v.verdict and v.verdict["demoted"] == "scaled"
    assert v.verdict["mape"]["scaled"] > v.verdict["mape"]["lut"]
    model = load_predictor("host", "fp32", tmp, "tiny")
    assert model.name == "lut" and "validate" in model.reason
    asked = load_predictor("host", "fp32", tmp, "tiny", method="scaled")
    assert asked.name == "scaled" and "asked" in asked.reason
    with pytest.raises(InputError, match="--predictor-method"):
        load_predictor("host", "fp32", tmp, "tiny", method="magic")
    _fit(sp, table, tmp, lambda X: 1.1 * _lut_ms(X))  # recalibration: a new judgement
    assert load_predictor("host", "fp32", tmp, "tiny").name == "scaled"
