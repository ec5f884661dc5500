"""Predicted vs measured on held-out networks: metrics with intervals, CSVs and a scatter PNG.

validate evaluates the predictor *file* that predict and the search load
(every predictor it holds: the calibrated default and the baselines fitted
beside it), on networks the file was not calibrated on (its calibration
digests are excluded). Zoo networks that were in the calibration set can only
be judged by refitting without them (leave-one-out); those rows say so.
"""

from __future__ import annotations

import io
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import numpy as np

from latbench.calibration.calibrate import NetResult, fit_predictors, training_set
from latbench.predictors import LatencyModel, LayerTable


def wilson(k: int, n: int, z: float = 1.96) -> tuple[float, float]:
    """95 % Wilson score interval of a share k/n, in percent."""
    if n == 0:
        return float("nan"), float("nan")
    p = k / n
    d = 1 + z * z / n
    c = (p + z * z / (2 * n)) / d
    h = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / d
    return 100 * max(0.0, c - h), 100 * min(1.0, c + h)


@dataclass(frozen=True)
class Metrics:
    n: int
    mape: float
    rmse_ms: float
    max_abs_pct: float
    within5: float
    within5_ci: tuple[float, float]
    within10: float
    within10_ci: tuple[float, float]
    kendall_tau: float
    spearman_rho: float


def metrics(pred: np.ndarray, meas: np.ndarray) -> Metrics:
    from scipy.stats import kendalltau, spearmanr

    pred, meas = np.asarray(pred, float), np.asarray(meas, float)
    rel = np.abs(pred - meas) / meas
    many = len(meas) > 2
    k5, k10 = int((rel <= 0.05).sum()), int((rel <= 0.10).sum())
    return Metrics(
        n=len(meas),
        mape=float(rel.mean() * 100),
        rmse_ms=float(np.sqrt(np.mean((pred - meas) ** 2))),
        max_abs_pct=float(rel.max() * 100),
        within5=100 * k5 / len(meas),
        within5_ci=wilson(k5, len(meas)),
        within10=100 * k10 / len(meas),
        within10_ci=wilson(k10, len(meas)),
        kendall_tau=float(kendalltau(pred, meas).statistic) if many else float("nan"),
        spearman_rho=float(spearmanr(pred, meas).statistic) if many else float("nan"),
    )


def predict_all(
    model: LatencyModel, results: Sequence[NetResult]
) -> tuple[dict[str, np.ndarray], np.ndarray, list[NetResult]]:
    """Every predictor of the model's file on the measured networks: (name -> ms, measured, rows)."""
    X, y, rows = training_set(model.table, results)
    return {k: p.predict(X) for k, p in model.fitted.items()}, y, rows


def _row(name: str, measured: float, preds: dict[str, float], how: str) -> dict:
    row = {"name": name, "measured_ms": measured, "how": how}
    for k, v in preds.items():
        row[f"{k}_ms"] = v
        row[f"{k}_err_pct"] = (v - measured) / measured * 100
    return row


def zoo_from_file(model: LatencyModel, zoo: Sequence[NetResult]) -> list[dict]:
    """Zoo networks the file was not calibrated on, predicted by the file itself."""
    if not [z for z in zoo if z.median_ms is not None]:
        return []
    preds, y, rows = predict_all(model, zoo)
    return [
        _row(r.network.arch.name, float(y[i]), {k: float(v[i]) for k, v in preds.items()}, "file")
        for i, r in enumerate(rows)
    ]


def zoo_leave_one_out(
    table: LayerTable, train: Sequence[NetResult], zoo: Sequence[NetResult]
) -> list[dict]:
    """Zoo networks that were calibrated on: each by predictors refitted without it."""
    out = []
    for z in zoo:
        if z.median_ms is None:
            continue
        rest = [r for r in train if r.network.arch.digest() != z.network.arch.digest()]
        X, y, _ = training_set(table, rest)
        xz = table.features([z.network.arch])
        preds = {k: float(p.predict(xz)[0]) for k, p in fit_predictors(X, y).items()}
        out.append(_row(z.network.arch.name, z.median_ms, preds, "refit without it"))
    return out


def keras_rows(model: LatencyModel, refs: dict[str, dict]) -> list[dict]:
    """Keras applications measured end to end vs the file's prediction for the zoo twin."""
    from latbench.nets import zoo

    out = []
    for name, r in refs.items():
        if r["status"] != "ok":
            continue
        X = model.table.features([zoo.get(r["zoo"])])
        preds = {k: float(p.predict(X)[0]) for k, p in model.fitted.items()}
        out.append(
            {
                **_row(name, float(r["median_ms"]), preds, "file"),
                "zoo": r["zoo"],
                "zoo_twin_measured_ms": float(r["zoo_median_ms"]),
            }
        )
    return out


def axis_range(
    preds: dict[str, np.ndarray], meas: np.ndarray, zoo: Sequence[dict] = ()
) -> tuple[float, float]:
    """One range for both axes of every panel, holding every plotted point (held-out and
    zoo, measured and predicted by every predictor), with a 10 % margin."""
    vals = [
        np.asarray(meas, float).ravel(),
        *(np.asarray(p, float).ravel() for p in preds.values()),
    ]
    for z in zoo:
        vals.append(np.array([z["measured_ms"], *(z[f"{k}_ms"] for k in preds)], float))
    allv = np.concatenate(vals)
    allv = allv[np.isfinite(allv)]
    return float(allv.min()) * 0.9, float(allv.max()) * 1.1


def scatter_png(
    path: Path,
    preds: dict[str, np.ndarray],
    meas: np.ndarray,
    title: str,
    zoo: Sequence[dict] = (),
    keras: Sequence[dict] = (),
) -> None:
    """Predicted vs measured, one panel per predictor, with the +-10 % band; the axes hold
    every plotted point (held-out, zoo and Keras references)."""
    from latbench.plotting import pyplot

    plt = pyplot()

    kinds = list(preds)
    fig, axes = plt.subplots(1, len(kinds), figsize=(4.2 * len(kinds), 4.2), squeeze=False)
    lo, hi = axis_range(preds, meas, [*zoo, *keras])
    for ax, k in zip(axes[0], kinds):
        m = metrics(preds[k], meas)
        ax.fill_between(
            [lo, hi], [lo * 0.9, hi * 0.9], [lo * 1.1, hi * 1.1], color="0.9", label="±10 %"
        )
        ax.plot([lo, hi], [lo, hi], "k--", lw=0.8)
        ax.scatter(meas, preds[k], s=14, label="held-out")
        if zoo:
            ax.scatter(
                [z["measured_ms"] for z in zoo],
                [z[f"{k}_ms"] for z in zoo],
                s=22,
                marker="^",
                color="C3",
                label="zoo",
            )
        if keras:
            ax.scatter(
                [z["measured_ms"] for z in keras],
                [z[f"{k}_ms"] for z in keras],
                s=30,
                marker="s",
                color="C2",
                label="Keras applications",
            )
        ax.set(
            xlim=(lo, hi),
            ylim=(lo, hi),
            xlabel="measured (ms)",
            ylabel="predicted (ms)",
            title=f"{k}: MAPE {m.mape:.1f} %, τ {m.kendall_tau:.2f}",
        )
        ax.legend(loc="upper left", fontsize=8)
    fig.suptitle(title)
    fig.tight_layout()
    from latbench.fileio import write_atomic

    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=110)
    write_atomic(path, buf.getvalue())
    plt.close(fig)
