"""The search's Pareto figure says which latency it shows, and its stars use the same kind."""

from latbench.search.plots import LATENCY_LABELS, baseline_latency, pareto_png

BASE = {
    "name": "mobilenet_v2_x1",
    "accuracy": 0.56,
    "pred_ms": 24.6,
    "meas_ms": 25.1,
    "lat_ms": 24.6,
}


def test_a_baseline_star_uses_the_samples_kind_of_latency():
    assert baseline_latency(BASE, "lut") == 24.6
    assert baseline_latency(BASE, "device") == 25.1
    assert baseline_latency({**BASE, "meas_ms": None}, "device") is None  # never mixes kinds
    old = {"name": "x", "accuracy": 0.5, "lat_ms": 3.0}  # a baselines.json from before
    assert baseline_latency(old, "lut") == 3.0


def test_the_latency_axis_says_predicted_or_measured(tmp_path, monkeypatch):
    import matplotlib.axes

    labels = []
    orig = matplotlib.axes.Axes.set_xlabel
    monkeypatch.setattr(
        matplotlib.axes.Axes,
        "set_xlabel",
        lambda self, s, *a, **k: (labels.append(s), orig(self, s, *a, **k))[1],
    )
    rows = [{"lat_ms": 20.0, "accuracy": 0.5}, {"lat_ms": 26.0, "accuracy": 0.6}]
    for kind in ("lut", "device"):
        pareto_png(rows, [0, 1], [BASE], 25.0, tmp_path / f"{kind}.png", latency=kind)
        assert (tmp_path / f"{kind}.png").stat().st_size > 1000
    assert labels == [LATENCY_LABELS["lut"], LATENCY_LABELS["device"]]
    assert "predicted" in labels[0] and "measured" in labels[1]
