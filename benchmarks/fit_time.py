"""Time of one in-process latbench.Predictor.fit of 10 networks once the LUT is loaded.

usage: python benchmarks/fit_time.py [--against REV]

A synthetic MnasNet-space LUT (layer times from MACs, +-30 % per layer) in a temporary folder,
and 10 sampled networks whose "measured" latency is their LUT sum times 1.2 with 3 % noise: the
fit's cost depends on the number of networks and methods, hardly on the values. Prints the
whole fit (21 repeats, the LUT loaded once; wall and this process's CPU time) and its parts:
fitting every method, judging them out of sample (leave-one-out, which picks the default),
and `scaled` and `stagewise` alone.

--against REV also runs this script on the latbench of git revision REV (exported to a
temporary folder, first on PYTHONPATH) right after, on the same LUT and networks, and prints
the ratio of the two medians: the speed-up measured in one run.
"""

import argparse
import json
import os
import random
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np


def measure() -> dict:
    import latbench
    import latbench.predictors as P
    import latbench.predictors.model as m
    from latbench.calibration.calibrate import fit_predictors, judge_predictors
    from latbench.devices.measure import summarize
    from latbench.nets.spaces import get_space
    from latbench.predictors import ScaledLutPredictor, StagewisePredictor, load_table
    from latbench.profiling.lut import LUT, Row

    sp = get_space("mnasnet")
    d = Path(tempfile.mkdtemp())
    meta = {
        "fingerprint": {"device": "host"},
        "converter": "c",
        "precision": "fp32",
        "space": "mnasnet",
        "protocol": {},
    }
    lut = LUT(meta=meta)
    rs = np.random.default_rng(1)
    for s in sp.enumerate_specs():
        ms = (0.004 + s.macs() / 3e8) * rs.uniform(0.7, 1.3)
        lut.rows[s.key] = Row(s, "ok", summarize([ms]))
    lut.save(d / "host_mnasnet_fp32.csv")
    t = load_table("host", "fp32", d)
    rng = random.Random(0)
    archs = [sp.sample(rng) for _ in range(10)]
    lut_ms = t.features([sp.decode(a) for a in archs])[:, 0]
    ms = 1.2 * lut_ms * np.exp(rs.normal(0, 0.03, len(archs)))
    pairs = [("-".join(map(str, a)), float(v)) for a, v in zip(archs, ms)]
    latbench.Predictor.fit(pairs, lut_dir=d)  # imports scipy and the rest once
    m.load_table = P.load_table = lambda *a, **k: t  # the LUT loaded once
    wall, cpu = [], []
    for _ in range(21):
        t0, c0 = time.perf_counter(), time.process_time()
        p = latbench.Predictor.fit(pairs, lut_dir=d)
        wall.append(time.perf_counter() - t0)
        cpu.append(time.process_time() - c0)
    X = p.model.table.features([p.to_arch(n) for n, _ in pairs])
    y = np.array([v for _, v in pairs])
    parts = {}
    for name, f in (
        ("fit_predictors", lambda: fit_predictors(X, y)),
        ("judge_predictors", lambda: judge_predictors(X, y)),
        ("scaled", lambda: ScaledLutPredictor().fit(X, y)),
        ("stagewise", lambda: StagewisePredictor().fit(X, y)),
    ):
        t0 = time.perf_counter()
        f()
        parts[name] = 1e3 * (time.perf_counter() - t0)
    return {
        "latbench": str(Path(latbench.__file__).parent),
        "median_ms": 1e3 * float(np.median(wall)),
        "min_ms": 1e3 * min(wall),
        "max_ms": 1e3 * max(wall),
        "cpu_median_ms": 1e3 * float(np.median(cpu)),
        "default": p.kind,
        "parts_ms": parts,
    }


def show(label: str, r: dict) -> None:
    print(
        f"{label}: fit of 10 networks: median {r['median_ms']:.1f} ms (min {r['min_ms']:.1f}, "
        f"max {r['max_ms']:.1f}; CPU {r['cpu_median_ms']:.1f} ms), default {r['default']}; "
        + ", ".join(f"{k} {v:.1f} ms" for k, v in r["parts_ms"].items())
        + f"  [{r['latbench']}]"
    )


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--against", metavar="REV")
    ap.add_argument("--json", action="store_true", help=argparse.SUPPRESS)
    a = ap.parse_args()
    r = measure()
    if a.json:
        print(json.dumps(r))
        return
    show("this tree", r)
    print(f"load average {os.getloadavg()}")
    if a.against:
        repo = Path(__file__).resolve().parents[1]
        with tempfile.TemporaryDirectory() as tmp:
            archive = subprocess.run(
                ["git", "-C", str(repo), "archive", a.against, "latbench"],
                check=True,
                capture_output=True,
            ).stdout
            subprocess.run(["tar", "-x", "-C", tmp], input=archive, check=True)
            env = dict(os.environ, PYTHONPATH=tmp)
            out = subprocess.run(
                [sys.executable, __file__, "--json"], env=env, check=True, capture_output=True
            ).stdout
        old = json.loads(out.decode().strip().splitlines()[-1])
        show(a.against, old)
        print(
            f"ratio {a.against} / this tree: {old['median_ms'] / r['median_ms']:.1f}x "
            f"(CPU {old['cpu_median_ms'] / r['cpu_median_ms']:.1f}x); "
            f"load average {os.getloadavg()}"
        )


if __name__ == "__main__":
    main()
