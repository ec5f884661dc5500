"""Few-shot transfer, methods side by side: the table of issue 21 section 1.

usage: python benchmarks/fewshot_transfer.py [--lut-dir DIR] [--out FILE.md]
           LABEL PRIOR_DEVICE PRIOR_PRECISION POOL.csv HELDOUT.csv [LABEL PRIOR ...]

    Each transfer is five words: a label (e.g. "host fp32 -> int8, mnasnet"), the prior
    device and precision whose LUT (in --lut-dir, default ./lut) gives the features, and two
    network-measurement tables of the *target* as calibrate and validate write them
    (DEVICE_SPACE_PRECISION.calib.csv / .validate.csv: calibrate's NET_COLUMNS). Nothing is
    timed here: it only fits and predicts, so it runs on measured files from anywhere.

For k in 5, 10, 20, 50, 100 (capped at the pool) and 5 seeds, k networks are drawn from the
pool and every method is fitted exactly as `latbench calibrate --measurements` and
`latbench.Predictor.fit` fit it (calibration.calibrate.fit_predictors), plus the file's
default as calibrate would choose it (judge_predictors) and a plain linear map of the LUT
sum; each is judged on every held-out network. Printed as Markdown: median [min-max] over
the seeds of MAPE, share within +-5 % and Spearman rho. With a table holding two or more
passes per network (calibrate --passes 2), the noise ceiling is printed too: the same
metrics between pass 1 and pass 2 of the same networks.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

from latbench.calibration.calibrate import (
    fit_predictors,
    judge_predictors,
    load_results,
    training_set,
)
from latbench.calibration.validate import metrics
from latbench.predictors import LinearPredictor, load_table

KS = (5, 10, 20, 50, 100)
SEEDS = 5
METHODS = ("scaled", "stagewise", "regression", "lut-linear", "default")


def _fits(X, y):
    fitted = fit_predictors(X, y)
    out = {m: fitted[m] for m in ("scaled", "stagewise", "regression")}
    out["lut-linear"] = LinearPredictor(("lut_ms",)).fit(X, y)
    out["default"] = fitted[judge_predictors(X, y)["default"]]
    return out


def _cell(values, fmt):
    v = np.asarray(values, float)
    return f"{fmt.format(np.median(v))} [{fmt.format(v.min())}-{fmt.format(v.max())}]"


def noise_ceiling(path: Path) -> str | None:
    """Pass 1 against pass 2 of the same networks, if the table has them."""
    from latbench import records
    from latbench.calibration.calibrate import NET_COLUMNS, NET_OPTIONAL

    _, rows = records.read(path, NET_COLUMNS, NET_OPTIONAL)
    by: dict[str, dict[str, float]] = {}
    for r in rows:
        if r["status"] == "ok" and r.get("pass"):
            by.setdefault(r["digest"], {})[r["pass"]] = float(r["median_ms"])
    pairs = [(d["1"], d["2"]) for d in by.values() if "1" in d and "2" in d]
    if len(pairs) < 5:
        return None
    a, b = np.array(pairs).T
    m = metrics(b, a)
    return (
        f"noise ceiling ({len(pairs)} networks, pass 2 vs pass 1): MAPE {m.mape:.2f} %, "
        f"within 5 % {m.within5:.0f} %, Spearman {m.spearman_rho:.3f}"
    )


def transfer(label, prior, precision, pool_path, held_path, lut_dir) -> list[str]:
    table = load_table(prior, precision, Path(lut_dir))

    def runnable(rs):
        return [r for r in rs if r.median_ms and not table.failed([r.network.arch])]

    pool = runnable(load_results(Path(pool_path)).values())
    held = runnable(load_results(Path(held_path)).values())
    pool_d = {r.network.arch.digest() for r in pool}
    held = [r for r in held if r.network.arch.digest() not in pool_d]
    Xp, yp, _ = training_set(table, pool)
    Xh, yh, _ = training_set(table, held)
    zero = metrics(Xh[:, 0], yh)

    def flagged(rs):
        return sum(1 for r in rs if r.flags)

    lines = [
        f"### {label}",
        "",
        f"prior {prior} {precision} LUT; pool {len(yp)} networks, held-out {len(yh)} "
        f"(timings flagged contended/loaded: {flagged(pool)} and {flagged(held)}); "
        f"LUT sum without adaptation: MAPE {zero.mape:.2f} %, Spearman {zero.spearman_rho:.3f}",
    ]
    for path in (pool_path, held_path):
        if line := noise_ceiling(Path(path)):
            lines.append(f"{Path(path).name} {line}")
    lines += [
        "",
        "| k | method | MAPE % | within ±5 % | Spearman ρ |",
        "|---|---|---|---|---|",
    ]
    for k in sorted({min(k, len(yp)) for k in KS}):
        res: dict[str, list] = {m: [] for m in METHODS}
        for seed in range(SEEDS if k < len(yp) else 1):
            idx = np.random.default_rng(seed).choice(len(yp), k, replace=False)
            for m, p in _fits(Xp[idx], yp[idx]).items():
                res[m].append(metrics(p.predict(Xh), yh))
        for m in METHODS:
            ms = res[m]
            lines.append(
                f"| {k} | {m} | {_cell([x.mape for x in ms], '{:.2f}')} | "
                f"{_cell([x.within5 for x in ms], '{:.0f}')} | "
                f"{_cell([x.spearman_rho for x in ms], '{:.3f}')} |"
            )
    return lines + [""]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--lut-dir", default="lut")
    ap.add_argument("--out", type=Path)
    ap.add_argument("transfers", nargs="+")
    a = ap.parse_args()
    if len(a.transfers) % 5:
        ap.error("each transfer is LABEL PRIOR_DEVICE PRIOR_PRECISION POOL.csv HELDOUT.csv")
    lines = [f"k networks drawn {SEEDS} times (seeds 0-{SEEDS - 1}); median [min-max]", ""]
    for i in range(0, len(a.transfers), 5):
        lines += transfer(*a.transfers[i : i + 5], a.lut_dir)
    text = "\n".join(lines)
    print(text)
    if a.out:
        a.out.write_text(text + "\n")


if __name__ == "__main__":
    main()
