"""The calibrated default predictor (predictors/scaled.py)."""

import random

import numpy as np
import pytest

from latbench.errors import InputError
from latbench.predictors import FEATURES, KINDS, LutSumPredictor, NotFitted, ScaledLutPredictor


def _col(X, name):
    return X[:, FEATURES.index(name)]


@pytest.fixture
def nets(synthetic_tiny):
    sp, table, _ = synthetic_tiny
    rng = random.Random(1)
    archs = [sp.decode(sp.sample(rng)) for _ in range(60)]
    return table.features(archs)


def test_learns_a_per_kind_in_network_bias_the_lut_sum_cannot(nets):
    X = nets
    factors = {k: 1.05 + 0.03 * i for i, k in enumerate(KINDS)}  # 1.05 .. 1.29
    y = sum(f * _col(X, f"lut_ms_{k}") for k, f in factors.items())
    p = ScaledLutPredictor().fit(X[:40], y[:40])
    held = np.abs(p.predict(X[40:]) - y[40:]) / y[40:]
    assert held.max() < 0.01
    assert np.mean(np.abs(LutSumPredictor().predict(X[40:]) - y[40:]) / y[40:]) > 0.08


def test_is_never_worse_than_the_lut_sum_on_its_calibration_networks(nets):
    rng = np.random.default_rng(0)
    X = nets
    for noise in (0.0, 0.05, 0.3):
        y = _col(X, "lut_ms") * rng.lognormal(0, noise, len(X))
        p = ScaledLutPredictor().fit(X, y)

        def err(pred, y=y):
            return np.mean(((pred - y) / y) ** 2)

        assert err(p.predict(X)) <= err(LutSumPredictor().predict(X)) + 1e-12


def test_coefficients_stay_physically_sane(nets):
    X = nets
    # a target where unconstrained least squares wants a negative factor for one kind
    se = sum(_col(X, f"lut_ms_{k}") for k in KINDS if k.endswith("_se"))
    y = _col(X, "lut_ms") * 1.2 - 0.9 * se + 0.001
    p = ScaledLutPredictor().fit(X, np.maximum(y, 1e-3))
    s = p.to_dict()["coef"]
    glob = p.scales_.mean()
    assert all(v > 0 for k, v in s.items() if k.startswith("lut_ms_"))
    assert max(p.scales_) / min(p.scales_) <= 4.0 + 1e-9 and glob > 0


def test_few_networks_give_a_global_scale_for_a_slower_device(nets):
    """Five measurements of a device 3x slower than the prior: one shrunk scale, no wild kinds."""
    X = nets
    y = 3.0 * _col(X, "lut_ms")
    p = ScaledLutPredictor().fit(X[:5], y[:5])
    np.testing.assert_allclose(p.predict(X[5:]), y[5:], rtol=0.02)
    assert p.ridge_ >= 100


def test_predictions_outside_the_calibrated_correction_are_clipped(nets):
    X = nets
    y = _col(X, "lut_ms") * 1.1
    p = ScaledLutPredictor().fit(X, y)
    lo, hi = p.ratio_range_
    assert lo == pytest.approx(1.1) and hi == pytest.approx(1.1)
    wild = X[:1].copy()
    wild[0, FEATURES.index("layers")] *= 50  # overhead term alone would move it far
    ratio = p.predict(wild)[0] / _col(wild, "lut_ms")[0]
    assert lo - 1e-9 <= ratio <= hi + 1e-9


def test_check_range_names_what_lies_outside(nets):
    X = nets
    p = ScaledLutPredictor().fit(X, _col(X, "lut_ms"))
    big = X[:1] * 10
    assert p.check_range(X[:3]) == [[], [], []]
    reasons = p.check_range(big)[0]
    assert any(r.startswith("lut_ms ") and "outside the calibrated" in r for r in reasons)


def test_round_trips_through_a_plain_dict(nets):
    X = nets
    p = ScaledLutPredictor(memory=("params_m",)).fit(X, _col(X, "lut_ms") * 1.2 + 0.01)
    q = ScaledLutPredictor.from_dict(p.to_dict())
    np.testing.assert_allclose(q.predict(X), p.predict(X))


def test_bad_input_and_unfitted_use_are_named_errors(nets):
    with pytest.raises(NotFitted, match="latbench calibrate"):
        ScaledLutPredictor().predict(nets)
    with pytest.raises(InputError, match="positive"):
        ScaledLutPredictor().fit(nets[:3], np.array([1.0, -1.0, 2.0]))
    d = ScaledLutPredictor().fit(nets, _col(nets, "lut_ms")).to_dict()
    d["coef"]["lut_ms_conv"] = -1.0
    with pytest.raises(InputError, match="predictor.coef"):
        ScaledLutPredictor.from_dict(d)
