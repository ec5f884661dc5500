import itertools
import math

import numpy as np
import pytest

from latbench.devices.measure import Protocol, ci_rel, median_ci, run_protocol, summarize


def test_median_ci_brackets_the_median_and_shrinks_with_n():
    rng = np.random.default_rng(0)
    small = rng.normal(10, 1, 30)
    large = rng.normal(10, 1, 3000)
    lo, hi = median_ci(small)
    assert lo <= np.median(small) <= hi
    assert ci_rel(large) < ci_rel(small) / 5


def test_protocol_stops_early_on_stable_timer():
    p = Protocol(warmup_runs=3, min_runs=15, max_runs=400, batch_runs=5, max_seconds=60)
    calls = itertools.count()
    m = run_protocol(lambda: (next(calls), 1.0)[1], p)
    assert m.runs == 15 and m.median_ms == 1.0 and m.ci_rel == 0.0
    assert next(calls) == 18  # 3 warm-up + 15 timed


def test_protocol_hits_run_cap_on_noisy_timer():
    rng = np.random.default_rng(1)
    p = Protocol(
        warmup_runs=0, min_runs=10, max_runs=50, batch_runs=10, max_seconds=60, target_ci=0.001
    )
    m = run_protocol(lambda: float(rng.lognormal(0, 0.5)), p)
    assert m.runs == 50 and m.ci_rel > 0.001


def test_protocol_respects_time_cap():
    t = itertools.count()
    p = Protocol(
        warmup_runs=0, min_runs=10, max_runs=10_000, batch_runs=10, max_seconds=5, target_ci=0.0
    )
    m = run_protocol(lambda: 1.0 + (next(t) % 2), p, clock=lambda: next(t) * 0.1)
    assert m.runs < 10_000


def test_summary_statistics():
    m = summarize([1, 2, 3, 4, 100])
    assert m.median_ms == 3 and m.p10_ms == pytest.approx(1.4) and m.runs == 5
    assert m.std_ms == pytest.approx(np.std([1, 2, 3, 4, 100], ddof=1))
    assert math.isfinite(m.ci_rel)


def _burst(med: float, ci: float = 0.005, flags=()):
    from latbench.devices.measure import Measurement

    return Measurement(med, med * 0.99, med * 1.01, med * 0.01, med, 20, ci, {"flags": list(flags)})


def test_bursts_that_disagree_widen_the_interval_beyond_any_one_burst():
    from latbench.devices.measure import combine_bursts

    m = combine_bursts([_burst(2.06), _burst(2.40), _burst(2.21)], span_s=4.0)
    # each burst claims +-0.5 %; the bursts moved 15 %: the interval says so
    assert m.ci_rel > 0.10
    assert m.median_ms == pytest.approx(2.21)
    assert m.extra["bursts"] == 3 and m.extra["ci_basis"] == "bursts"
    assert m.extra["burst_medians_ms"] == [2.06, 2.4, 2.21]
    assert m.runs == 60


def test_bursts_that_agree_keep_the_within_burst_interval_and_every_flag():
    from latbench.devices.measure import combine_bursts

    m = combine_bursts(
        [_burst(1.000, 0.01), _burst(1.001, 0.01, ["contended"]), _burst(0.999, 0.01)], 3.0
    )
    assert m.ci_rel == pytest.approx(0.01, rel=0.3)
    assert m.extra["flags"] == ["contended"]
