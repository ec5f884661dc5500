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
