"""The run's two figures (matplotlib, Agg): the Pareto front and reward over samples."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np

from latbench.plotting import pyplot, save_figure

LATENCY_LABELS = {
    # a spot-checked sample is drawn at its measured latency, the others at the prediction
    "lut": "latency (ms; measured where spot-checked, else predicted)",
    "device": "measured latency (ms, end to end on the device)",
    "flops": "multiply-accumulates (millions; --latency flops)",
}
UNITS = {"flops": "M MACs"}


def baseline_latency(b: dict, latency: str) -> float | None:
    """A baseline's latency of the same kind as the samples' (predicted or measured)."""
    key = "meas_ms" if latency == "device" else "pred_ms"
    v = b.get(key)
    return v if v is not None else (b.get("lat_ms") if key not in b else None)


def pareto_png(
    rows: list[dict],
    front: list[int],
    baselines: list[dict],
    target_ms: float,
    path: Path,
    latency: str = "lut",
) -> None:
    """All samples, the front as a staircase, zoo baselines as labelled stars.

    `latency` is the search's --latency: the x axis says whether it shows predicted or
    measured latency, and the baselines use the same kind.
    """
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(6.4, 4.4))
    ok = [r for r in rows if math.isfinite(r["lat_ms"]) and math.isfinite(r["accuracy"])]
    if ok:
        ax.scatter(
            [r["lat_ms"] for r in ok],
            [r["accuracy"] for r in ok],
            s=10,
            alpha=0.4,
            color="tab:blue",
            label="sampled",
        )
    if front:
        fx = [rows[i]["lat_ms"] for i in front]
        fy = [rows[i]["accuracy"] for i in front]
        ax.step(fx, fy, where="post", color="tab:red", lw=1.2)
        ax.scatter(fx, fy, s=24, color="tab:red", label="Pareto front", zorder=3)
    for b in baselines:
        lat = baseline_latency(b, latency)
        if lat is not None and b.get("accuracy") is not None:
            ax.scatter([lat], [b["accuracy"]], marker="*", s=120, color="black", zorder=4)
            ax.annotate(
                b["name"],
                (lat, b["accuracy"]),
                textcoords="offset points",
                xytext=(5, -10),
                fontsize=8,
            )
    ax.axvline(
        target_ms,
        color="gray",
        ls="--",
        lw=1,
        label=f"target {target_ms:g} {UNITS.get(latency, 'ms')}",
    )
    ax.set_xlabel(LATENCY_LABELS.get(latency, "latency (ms)"))
    ax.set_ylabel("proxy accuracy")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8, loc="lower right")
    fig.tight_layout()
    save_figure(fig, path, dpi=110)


def reward_png(rows: list[dict], path: Path, window: int = 16) -> None:
    """Each sample's reward, its running mean and the best so far."""
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(6.4, 3.6))
    r = np.array([x["reward"] for x in rows], float)
    if len(r):
        idx = np.arange(len(r))
        ax.scatter(idx, r, s=8, alpha=0.4, label="reward")
        k = min(window, len(r))
        ax.plot(
            idx[k - 1 :],
            np.convolve(np.nan_to_num(r), np.ones(k) / k, "valid"),
            color="tab:orange",
            label=f"mean of {k}",
        )
        ax.plot(idx, np.fmax.accumulate(np.nan_to_num(r)), color="tab:green", label="best so far")
    ax.set_xlabel("sample")
    ax.set_ylabel("reward")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    save_figure(fig, path, dpi=110)
