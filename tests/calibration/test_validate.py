"""validate.py: metrics, intervals and the report figure (every plotted set inside the axes)."""

import numpy as np
import pytest

from latbench.calibration.validate import axis_range, metrics, scatter_png, wilson


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


def _zoo_row(name, measured, **preds):
    row = {"name": name, "measured_ms": measured}
    for k, v in preds.items():
        row[f"{k}_ms"] = v
        row[f"{k}_err_pct"] = (v - measured) / measured * 100
    return row


def test_zoo_points_below_the_held_out_ones_are_inside_the_axes():
    preds = {"lut": np.array([2.0, 3.0]), "regression": np.array([2.1, 2.9])}
    meas = np.array([2.05, 3.1])
    zoo = [
        _zoo_row("mobilenet_v3_small", 1.0, lut=0.813, regression=0.9),
        _zoo_row("efficientnet_b0", 9.0, lut=8.0, regression=9.5),
    ]
    lo, hi = axis_range(preds, meas, zoo)
    every = [*meas, *preds["lut"], *preds["regression"]]
    every += [v for z in zoo for k, v in z.items() if k.endswith("_ms")]
    assert lo < min(every) and hi > max(every)
    assert lo < 0.813  # the -18.7 % miss of the report is in frame


def test_the_figure_is_written(tmp_path):
    preds = {"lut": np.array([2.0, 3.0, 4.0])}
    scatter_png(
        tmp_path / "p.png", preds, np.array([2.2, 3.1, 4.4]), "t", [_zoo_row("z", 1.0, lut=0.8)]
    )
    assert (tmp_path / "p.png").read_bytes()[:4] == b"\x89PNG"
