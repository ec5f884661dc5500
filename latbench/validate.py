"""Predicted vs measured on held-out networks: metrics, a CSV and a scatter PNG.

Held-out networks come from another seed than calibration. The zoo networks
are reported one by one; since calibration may have seen them, each zoo
network is predicted by predictors refitted without it (leave-one-out).
"""

from __future__ import annotations

import io
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import numpy as np

from .calibrate import NetResult, training_set
from .predict import PREDICTOR_KINDS, LayerTable, make_predictors


@dataclass(frozen=True)
class Metrics:
    n: int
    mape: float
    rmse_ms: float
    within5: float
    within10: float
    kendall_tau: float
    spearman_rho: float


def metrics(pred: np.ndarray, meas: np.ndarray) -> Metrics:
    from scipy.stats import kendalltau, spearmanr

    pred, meas = np.asarray(pred, float), np.asarray(meas, float)
    rel = np.abs(pred - meas) / meas
    many = len(meas) > 2
    return Metrics(
        n=len(meas),
        mape=float(rel.mean() * 100),
        rmse_ms=float(np.sqrt(np.mean((pred - meas) ** 2))),
        within5=float((rel <= 0.05).mean() * 100),
        within10=float((rel <= 0.10).mean() * 100),
        kendall_tau=float(kendalltau(pred, meas).statistic) if many else float("nan"),
        spearman_rho=float(spearmanr(pred, meas).statistic) if many else float("nan"),
    )


def predict_heldout(table: LayerTable, train: Sequence[NetResult], test: Sequence[NetResult]
                    ) -> tuple[dict[str, np.ndarray], np.ndarray, list[NetResult]]:
    """Fit every predictor on `train`, predict `test`: (kind -> predictions, measured, rows)."""
    X, y, _ = training_set(table, train)
    Xt, yt, rows = training_set(table, test)
    preds = {k: p.fit(X, y).predict(Xt) for k, p in make_predictors().items()}
    return preds, yt, rows


def zoo_leave_one_out(table: LayerTable, train: Sequence[NetResult], zoo: Sequence[NetResult]
                      ) -> list[dict]:
    """Each zoo network predicted by predictors fitted without it."""
    out = []
    for z in zoo:
        if z.median_ms is None:
            continue
        rest = [r for r in train if r.network.arch.digest() != z.network.arch.digest()]
        preds, yt, _ = predict_heldout(table, rest, [z])
        row = {"name": z.network.arch.name, "measured_ms": float(yt[0])}
        for k in PREDICTOR_KINDS:
            row[f"{k}_ms"] = float(preds[k][0])
            row[f"{k}_err_pct"] = float((preds[k][0] - yt[0]) / yt[0] * 100)
        out.append(row)
    return out


def axis_range(preds: dict[str, np.ndarray], meas: np.ndarray, zoo: Sequence[dict] = ()
               ) -> tuple[float, float]:
    """One range for both axes of every panel, holding every plotted point (held-out and
    zoo, measured and predicted by every predictor), with a 10 % margin."""
    vals = [np.asarray(meas, float).ravel(), *(np.asarray(p, float).ravel() for p in preds.values())]
    for z in zoo:
        vals.append(np.array([z["measured_ms"], *(z[f"{k}_ms"] for k in preds)], float))
    allv = np.concatenate(vals)
    allv = allv[np.isfinite(allv)]
    return float(allv.min()) * 0.9, float(allv.max()) * 1.1


def scatter_png(path: Path, preds: dict[str, np.ndarray], meas: np.ndarray, title: str,
                zoo: Sequence[dict] = ()) -> None:
    """Predicted vs measured, one panel per predictor, with the +-10 % band; the axes hold
    every plotted point (held-out and zoo)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    kinds = list(preds)
    fig, axes = plt.subplots(1, len(kinds), figsize=(4.2 * len(kinds), 4.2), squeeze=False)
    lo, hi = axis_range(preds, meas, zoo)
    for ax, k in zip(axes[0], kinds):
        m = metrics(preds[k], meas)
        ax.fill_between([lo, hi], [lo * 0.9, hi * 0.9], [lo * 1.1, hi * 1.1], color="0.9",
                        label="±10 %")
        ax.plot([lo, hi], [lo, hi], "k--", lw=0.8)
        ax.scatter(meas, preds[k], s=14, label="held-out")
        if zoo:
            ax.scatter([z["measured_ms"] for z in zoo], [z[f"{k}_ms"] for z in zoo], s=22,
                       marker="^", color="C3", label="zoo (leave-one-out)")
        ax.set(xlim=(lo, hi), ylim=(lo, hi), xlabel="measured (ms)", ylabel="predicted (ms)",
               title=f"{k}: MAPE {m.mape:.1f} %, τ {m.kendall_tau:.2f}")
        ax.legend(loc="upper left", fontsize=8)
    fig.suptitle(title)
    fig.tight_layout()
    from .fileio import write_atomic

    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=110)
    write_atomic(path, buf.getvalue())
    plt.close(fig)
