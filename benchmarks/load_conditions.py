"""Issue 18 section 3: the same LUT + calibration + validation under three conditions.

    python benchmarks/load_conditions.py [OUT_DIR] [--archs 40] [--heldout 20]

Each scenario starts from an empty --lut-dir (the conversion cache is shared, so only
timing differs) and runs, through the real command line:

    latbench profile   --device host --space mnasnet
    latbench calibrate --device host --archs A --seed 0 --no-zoo --heldout H --heldout-seed 7
    latbench validate  --device host --archs H --seed 7 --json

quiet:   nothing else runs.
hog:     benchmarks/hog.py (matrix products and 64 MiB copies, one thread) runs on every CPU
         but the lowest from the start to the end.
halfway: the same hog, started when calibrate starts: the LUT is timed quiet and the
         networks under load (the failure of issue 18: a predictor fitted across two levels
         of load).

Prints one table (held-out MAPE of the default and of the LUT sum, the default's method,
sentinel speeds, corrected / flagged networks, contended LUT rows, wall time) and writes it
to OUT_DIR/load_conditions.json. Run it on an otherwise idle machine: it takes ~25 min.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from hog import hog, other_cpu  # noqa: E402

LATBENCH = [sys.executable, "-m", "latbench.commands.main"]


def run(*args: str) -> subprocess.CompletedProcess:
    r = subprocess.run([*LATBENCH, *args], capture_output=True, text=True)
    if r.returncode != 0:
        sys.exit(f"latbench {' '.join(args)} failed ({r.returncode}):\n{r.stderr[-2000:]}")
    return r


def scenario(name: str, root: Path, archs: int, heldout: int) -> dict:
    lut = root / name / "lut"
    if lut.exists():
        sys.exit(f"{lut} exists: give a new OUT_DIR")
    lut.mkdir(parents=True)
    hog_from = {"quiet": None, "hog": "profile", "halfway": "calibrate"}[name]
    t0 = time.monotonic()
    with contextlib.ExitStack() as stack:
        if hog_from == "profile":
            stack.enter_context(hog(other_cpu()))
        prof = run("profile", "--device", "host", "--space", "mnasnet", "--lut-dir", str(lut),
                   "--no-progress", "--json")  # fmt: skip
        if hog_from == "calibrate":
            stack.enter_context(hog(other_cpu()))
        cal = run("calibrate", "--device", "host", "--archs", str(archs), "--seed", "0",
                  "--no-zoo", "--heldout", str(heldout), "--heldout-seed", "7",
                  "--lut-dir", str(lut), "--no-progress")  # fmt: skip
        val = run("validate", "--device", "host", "--archs", str(heldout), "--seed", "7",
                  "--lut-dir", str(lut), "--out", str(root / name / "validate"),
                  "--no-progress", "--json")  # fmt: skip
    wall = time.monotonic() - t0
    p = json.loads(prof.stdout)[0]
    v = json.loads(val.stdout)
    doc = json.loads((lut / "host_mnasnet_fp32.predictor.json").read_text())
    cond = doc["calibration"].get("conditions") or {}
    default = v["default"]
    return {
        "scenario": name,
        "lut_rows": p["measured"],
        "lut_flagged": p.get("flagged", {}),
        "lut_sentinel_spread": p.get("sentinel", {}).get("layer", {}).get("spread"),
        "default": default,
        "why": (doc.get("verdict") or doc.get("selection") or {}).get("reason", ""),
        "mape_default": v["metrics"][default]["mape"],
        "mape_lut": v["metrics"]["lut"]["mape"],
        "mape": {k: m["mape"] for k, m in v["metrics"].items()},
        "calib_speed": [cond.get("sentinel", {}).get(k) for k in ("speed_min", "speed_max")],
        "calib_corrected": cond.get("corrected"),
        "calib_disturbed": cond.get("disturbed"),
        "calib_flagged": cond.get("flagged"),
        "validate_conditions": v.get("conditions"),
        "validate_warning": v.get("warning"),
        "calibrate_log": cal.stderr.strip().splitlines()[-12:],
        "wall_s": round(wall),
    }


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("out", nargs="?", default="runs/load-conditions")
    ap.add_argument("--archs", type=int, default=40)
    ap.add_argument("--heldout", type=int, default=20)
    ap.add_argument("--only", nargs="*", default=["quiet", "hog", "halfway"])
    a = ap.parse_args()
    root = Path(a.out)
    out = []
    for name in a.only:
        print(f"--- {name}", flush=True)
        out.append(scenario(name, root, a.archs, a.heldout))
        print(json.dumps(out[-1], indent=1), flush=True)
    (root / "load_conditions.json").write_text(json.dumps(out, indent=2) + "\n")
    print(f"\n{'scenario':9} {'default':10} {'MAPE':>6} {'LUT sum':>7} {'speed (calib)':>15} "
          f"{'corr':>4} {'left':>4} {'flagged nets':>12} {'wall':>6}")  # fmt: skip
    for r in out:
        lo, hi = r["calib_speed"]
        sp = f"{lo:.2f}-{hi:.2f}" if lo else "-"
        print(
            f"{r['scenario']:9} {r['default']:10} {r['mape_default']:6.2f} {r['mape_lut']:7.2f} "
            f"{sp:>15} {r['calib_corrected'] or 0:4d} {r['calib_disturbed'] or 0:4d} "
            f"{sum((r['calib_flagged'] or {}).values()):12d} {r['wall_s']:5d}s"
        )


if __name__ == "__main__":
    main()
