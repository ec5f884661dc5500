"""Few-shot accuracy against the number of measured networks, on held-out networks.

usage: python benchmarks/fewshot_curve.py PRIOR_DEVICE PRIOR_PRECISION POOL.csv HELDOUT.csv OUT_DIR
    POOL.csv, HELDOUT.csv: latbench network-measurement tables (calibrate's NET_COLUMNS) of
    the *target*; the prior is another device/precision's LUT in ./lut.

For n in 5, 10, 20, 50, 100: 30 random draws of n networks from the pool, each fitted
exactly as `latbench calibrate --measurements` fits (calibrate.fit_predictors on the prior
LUT's features), then judged on every held-out network. Prints and writes curve.csv and
curve.png (median and 10-90 % band over draws).
"""

import json
import sys
from pathlib import Path

import numpy as np

from latbench.calibration.calibrate import fit_predictors, load_results, training_set
from latbench.calibration.validate import metrics
from latbench.predictors import load_table

NS = (5, 10, 20, 50, 100)
DRAWS = 30


def main() -> None:
    prior, prec, pool_path, held_path, out = sys.argv[1:6]
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    table = load_table(prior, prec, Path("lut"))

    def runnable(rs):
        return [r for r in rs if r.median_ms and not table.failed([r.network.arch])]

    pool = runnable(load_results(Path(pool_path)).values())
    held = runnable(load_results(Path(held_path)).values())
    pool_d = {r.network.arch.digest() for r in pool}
    held = [r for r in held if r.network.arch.digest() not in pool_d]
    Xp, yp, _ = training_set(table, pool)
    Xh, yh, _ = training_set(table, held)
    rng = np.random.default_rng(0)
    rows = []
    base = metrics(Xh[:, 0], yh)
    print(f"prior {prior} {prec} LUT, pool {len(yp)} networks, held-out {len(yh)}")
    print(
        f"no adaptation (prior LUT sum): MAPE {base.mape:.2f} %, within 10 % {base.within10:.0f} %,"
        f" tau {base.kendall_tau:.3f}"
    )
    print(
        f"{'n':>4} {'MAPE % (p10-p90)':>22} {'within10 % (p10-p90)':>24} {'tau (p10-p90)':>20}"
        f" {'Spearman':>9}"
    )
    for n in sorted({min(n, len(yp)) for n in NS}):  # 100 -> the whole pool when smaller
        ms = []
        for _ in range(DRAWS if n < len(yp) else 1):
            idx = rng.choice(len(yp), n, replace=False)
            p = fit_predictors(Xp[idx], yp[idx])["scaled"]
            ms.append(metrics(p.predict(Xh), yh))
        agg = {
            k: np.array([getattr(m, k) for m in ms])
            for k in ("mape", "within10", "kendall_tau", "spearman_rho")
        }
        row = {"n": n, "draws": len(ms)}
        for k, v in agg.items():
            row.update(
                {
                    k: float(np.median(v)),
                    f"{k}_p10": float(np.percentile(v, 10)),
                    f"{k}_p90": float(np.percentile(v, 90)),
                }
            )
        rows.append(row)
        print(
            f"{n:4d} {row['mape']:7.2f} ({row['mape_p10']:5.2f}-{row['mape_p90']:5.2f})"
            f"      {row['within10']:6.1f} ({row['within10_p10']:5.1f}-{row['within10_p90']:5.1f})"
            f"    {row['kendall_tau']:6.3f} ({row['kendall_tau_p10']:.3f}-"
            f"{row['kendall_tau_p90']:.3f}) {row['spearman_rho']:9.3f}"
        )
    import pandas as pd

    pd.DataFrame(rows).to_csv(out / "curve.csv", index=False)
    (out / "baseline.json").write_text(json.dumps(base.__dict__, indent=2) + "\n")
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 3, figsize=(13, 3.8))
    ns = [r["n"] for r in rows]
    for ax, k, label, ref in (
        (axes[0], "mape", "MAPE (%)", base.mape),
        (axes[1], "within10", "within ±10 % (%)", base.within10),
        (axes[2], "kendall_tau", "Kendall τ", base.kendall_tau),
    ):
        ax.plot(ns, [r[k] for r in rows], "o-", label="few-shot (median of draws)")
        ax.fill_between(
            ns,
            [r[f"{k}_p10"] for r in rows],
            [r[f"{k}_p90"] for r in rows],
            alpha=0.25,
            label="10-90 % of draws",
        )
        ax.axhline(ref, color="C3", ls="--", label="prior LUT sum, no adaptation")
        ax.set(
            xscale="log",
            xticks=ns,
            xticklabels=[str(n) for n in ns],
            xlabel="measured networks",
            ylabel=label,
        )
        ax.legend(fontsize=7)
    fig.suptitle(
        f"few-shot, SIMULATED new device: prior {prior} {prec} LUT -> target "
        f"{Path(pool_path).name}; {len(yh)} held-out networks"
    )
    fig.tight_layout()
    fig.savefig(out / "curve.png", dpi=110)
    print(f"-> {out}/curve.csv, curve.png")


if __name__ == "__main__":
    main()
