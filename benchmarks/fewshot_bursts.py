"""Which estimator of a network's latency repeats on a machine whose speed jumps: the median of
a measurement's bursts (today's), the first burst alone, or the fastest burst's median.

usage: python benchmarks/fewshot_bursts.py MEASUREMENTS.csv PRECISION OUT.json [N] [BURSTS] [LUT_DIR]
       python benchmarks/fewshot_bursts.py OUT.json      # the agreement of a finished run

The first N networks (default 16) of a network-measurement table (calibrate's NET_COLUMNS,
e.g. a held-out set of benchmarks/fewshot_measure.py) are timed on the host with
`latbench.measure(..., bursts=BURSTS)` (default 4, a second apart), twice (pass 1 for all,
then pass 2 for all); every burst's median goes to OUT.json (rewritten after each network,
so a stopped run keeps what it timed). Then each estimator's pass-2-vs-pass-1 agreement is
printed: MAPE and the share within 5 %. Run it alone: it times.
"""

from __future__ import annotations

import json
import sys
import time

import pandas as pd


def agreement(rows: list[dict], estimate) -> tuple[float, float, int]:
    """(MAPE %, % within 5 %, networks) of pass 2 against pass 1 under `estimate`."""
    by: dict[str, dict[int, dict]] = {}
    for r in rows:
        by.setdefault(r["digest"], {})[r["pass"]] = r
    err = [abs(estimate(v[2]) / estimate(v[1]) - 1) for v in by.values() if 1 in v and 2 in v]
    n = len(err)
    if not n:
        return float("nan"), float("nan"), 0
    return 100 * sum(err) / n, 100 * sum(e < 0.05 for e in err) / n, n


ESTIMATORS = {
    "median of the bursts (today)": lambda r: r["median_ms"],
    "first burst alone": lambda r: r["bursts"][0],
    "fastest burst": lambda r: min(r["bursts"]),
}


def main() -> None:
    import latbench

    src, precision, out = sys.argv[1], sys.argv[2], sys.argv[3]
    n = int(sys.argv[4]) if len(sys.argv) > 4 else 16
    bursts = int(sys.argv[5]) if len(sys.argv) > 5 else 4
    lut_dir = sys.argv[6] if len(sys.argv) > 6 else "lut"  # the sentinel's reference
    d = pd.read_csv(src, comment="#")
    d = d[d["pass"] == 1].head(n)
    rows = []
    for p in (1, 2):
        for _, r in d.iterrows():
            m = latbench.measure(json.loads(r.arch), device="host", precision=precision,
                                 bursts=bursts, lut_dir=lut_dir)  # fmt: skip
            rows.append({"digest": r.digest, "pass": p, "t": time.time(),
                         "median_ms": m.median_ms, "bursts": m.extra["burst_medians_ms"]})  # fmt: skip
            with open(out, "w") as f:
                json.dump(rows, f)
    for name, est in ESTIMATORS.items():
        mape, within, k = agreement(rows, est)
        print(
            f"{name}: pass 2 vs pass 1 of {k} networks: MAPE {mape:.2f} %, within 5 % {within:.0f} %"
        )


if __name__ == "__main__":
    if len(sys.argv) == 2 and sys.argv[1].endswith(".json"):  # only the agreement of a file
        rows = json.load(open(sys.argv[1]))
        for name, est in ESTIMATORS.items():
            print(name, "MAPE %.2f %%, within 5 %% %.0f %%, %d networks" % agreement(rows, est))
    else:
        main()
