import pytest

from latbench.nets.spaces import get_space
from latbench.search.run import Calibration, SearchConfig, fastest_candidates


def test_drift_and_recalibration_by_hand():
    c = Calibration(threshold=0.10, recalibrate=False)
    c.observe(10.0, 10.5)
    assert not c.drifted()  # one check is not a trend
    c.observe(12.0, 8.0)  # +50 %
    assert c.recent_error() == pytest.approx((abs(10 / 10.5 - 1) + 0.5) / 2)
    assert c.drifted() and c.scale == 1.0
    r = Calibration(threshold=0.10, recalibrate=True)
    for p, m in [(10.0, 8.0), (20.0, 16.0), (30.0, 24.0)]:
        r.observe(p, m)
    assert r.scale == pytest.approx(0.8)  # median measured/predicted
    assert r.recent_error() == pytest.approx(0.0) and not r.drifted()


def test_fastest_candidates_are_cheapest_corner():
    space = get_space("mnasnet")
    archs = [space.decode(t) for t in fastest_candidates(space)]
    assert all(
        b.repeats == max(1, n - 1) for a in archs for b, (_, n, _) in zip(a.blocks, space.skeleton)
    )
    assert min(a.macs() for a in archs) < space.decode([1] * space.num_tokens).macs()


def test_config_json_round_trip():
    cfg = SearchConfig(target_ms=8.0, baselines=("mobilenet_v2_x1", "mnasnet_a1"))
    assert SearchConfig.from_json(cfg.to_json()) == cfg
