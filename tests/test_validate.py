"""Metrics and intervals of validate (validate.py)."""

import numpy as np
import pytest

from latbench.validate import metrics, wilson


def test_wilson_interval_matches_the_textbook_values():
    lo, hi = wilson(50, 50)
    assert hi == 100.0 and lo == pytest.approx(92.87, abs=0.01)  # 50/50: [92.9, 100]
    lo, hi = wilson(45, 50)
    assert (lo, hi) == (pytest.approx(78.64, abs=0.01), pytest.approx(95.65, abs=0.01))
    assert wilson(0, 10)[0] == 0.0


def test_metrics_report_shares_with_their_intervals():
    meas = np.array([10.0, 10.0, 10.0, 10.0])
    pred = np.array([10.2, 9.4, 11.5, 10.0])  # +2 %, -6 %, +15 %, 0 %
    m = metrics(pred, meas)
    assert m.within5 == 50.0 and m.within10 == 75.0
    assert m.within10_ci == wilson(3, 4)
    assert m.mape == pytest.approx((2 + 6 + 15 + 0) / 4)
    assert m.max_abs_pct == pytest.approx(15.0)
