"""Per-stage scales shrunk toward the global fit (predictors/stagewise.py)."""

import math
import random

import numpy as np
import pytest

from latbench.errors import InputError
from latbench.predictors import (
    FEATURES,
    HW_BUCKETS,
    PREDICTORS,
    LayerTable,
    NotFitted,
    ScaledLutPredictor,
    SpaceTable,
    StagewisePredictor,
)

# the target device's speed relative to the prior, per feature-map size (a phone whose
# mid-resolution stages are slower and late stages faster than the host's)
STAGE_RATIO = dict(zip(HW_BUCKETS, (1.0, 1.0, 1.0, 0.85, 1.25, 1.15, 0.9, 1.0, 1.0)))


@pytest.fixture(scope="module")
def fbnet_nets():
    """(X, lut-like features) of 400 fbnet-cifar100 networks on a LUT whose layer times
    follow MACs with 15 % per-layer scatter, as a measured table does."""
    from latbench.devices.measure import summarize
    from latbench.nets.spaces import get_space
    from latbench.profiling.lut import LUT, Row

    sp = get_space("fbnet-cifar100")
    meta = {"fingerprint": {"device": "host"}, "converter": "c", "precision": "fp32"}
    lut = LUT(meta=meta)
    rng = np.random.default_rng(0)
    for s in sp.enumerate_specs():
        lut.rows[s.key] = Row(
            s, "ok", summarize([(0.004 + s.macs() / 3e8) * rng.lognormal(0, 0.15)])
        )
    r = random.Random(1)
    tokens = np.array([sp.sample(r) for _ in range(400)])
    return SpaceTable(sp, LayerTable(lut, "host", "fp32")).features(tokens)


def _target(X, planted: bool, seed: int = 0):
    """2x slower than the prior, 0.3 ms per network, 1 % timing noise; per-stage if planted."""
    ratio = STAGE_RATIO if planted else dict.fromkeys(HW_BUCKETS, 1.0)
    y = sum(ratio[b] * X[:, FEATURES.index(f"lut_ms_hw{b}")] for b in HW_BUCKETS) * 2.0 + 0.3
    return y * np.random.default_rng(seed).lognormal(0, 0.01, len(y))


def _heldout_mape(cls, X, y, k, seeds=range(5)):
    out = []
    for seed in seeds:
        idx = np.random.default_rng(seed).permutation(len(y))
        tr, te = idx[:k], idx[k:]
        p = cls().fit(X[tr], y[tr])
        out.append(float(np.mean(np.abs(p.predict(X[te]) - y[te]) / y[te])) * 100)
    return float(np.median(out))


def test_recovers_a_planted_per_stage_speed_ratio_from_ten_networks_better_than_scaled(
    fbnet_nets,
):
    y = _target(fbnet_nets, planted=True)
    stage = _heldout_mape(StagewisePredictor, fbnet_nets, y, 10)
    scaled = _heldout_mape(ScaledLutPredictor, fbnet_nets, y, 10)
    assert stage < 0.75 * scaled, (stage, scaled)
    assert stage < 2.0


def test_with_three_networks_it_is_the_global_fit_and_no_worse_than_scaled(fbnet_nets):
    for planted in (True, False):
        y = _target(fbnet_nets, planted)
        stage = _heldout_mape(StagewisePredictor, fbnet_nets, y, 3)
        assert stage <= _heldout_mape(ScaledLutPredictor, fbnet_nets, y, 3) + 1e-9
    p = StagewisePredictor().fit(fbnet_nets[:3], y[:3])
    assert p.ridge_ == [math.inf, math.inf] and p.free_parameters() == 2


def test_without_a_stage_effect_it_stays_near_scaled(fbnet_nets):
    y = _target(fbnet_nets, planted=False)
    for k in (5, 10):
        stage = _heldout_mape(StagewisePredictor, fbnet_nets, y, k)
        assert stage <= _heldout_mape(ScaledLutPredictor, fbnet_nets, y, k) * 1.1


def test_layer_scales_stay_positive_and_the_network_overhead_non_negative(fbnet_nets):
    y = _target(fbnet_nets, planted=True)
    p = StagewisePredictor(ridge=(0.0, 0.0)).fit(fbnet_nets[:30], y[:30])
    c = p.to_dict()["coef"]
    s = p.prior_[0]
    kinds = [v for k, v in c.items() if k.startswith("lut_ms_") and "hw" not in k]
    hws = [v for k, v in c.items() if k.startswith("lut_ms_hw")]
    assert min(kinds) + min(hws) >= 0.1 * s - 1e-9
    assert c["network"] >= 0


def test_round_trips_through_a_plain_dict_and_is_in_the_table(fbnet_nets):
    import json

    y = _target(fbnet_nets, planted=True)
    p = StagewisePredictor().fit(fbnet_nets[:12], y[:12])
    d = json.loads(json.dumps(p.to_dict()))
    q = PREDICTORS["stagewise"].from_dict(d)
    np.testing.assert_allclose(q.predict(fbnet_nets), p.predict(fbnet_nets))
    assert q.free_parameters() == p.free_parameters()


def test_bad_input_and_unfitted_use_are_named_errors(fbnet_nets):
    with pytest.raises(NotFitted):
        StagewisePredictor().predict(fbnet_nets)
    with pytest.raises(InputError, match="positive"):
        StagewisePredictor().fit(fbnet_nets[:5], np.array([1.0, 2.0, -1.0, 1.0, 1.0]))
    with pytest.raises(InputError) as e:
        StagewisePredictor(ridge=(1.0,))
    assert e.value.field == "predictor.ridge"
    with pytest.raises(InputError, match="malformed stagewise"):
        StagewisePredictor.from_dict({"kind": "stagewise"})
