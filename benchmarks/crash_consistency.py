"""Crash consistency: `kill -9` at random moments, resume, and check that no row was lost,
torn or doubled.

    python benchmarks/crash_consistency.py [--kills N] [--seed S] [--keep DIR]

Four stages run in a temporary folder, each as a chain: start the command, `kill -9` it (its
whole process group) at a random moment, start it again (the same command resumes), and so
on, until its share of the N kill points is spent; then it runs to the end. After every kill
and at the end, every append-only table the stage writes is read: only the last line may be
torn (a kill mid-row), and no key may appear twice (a LUT row `key` with status ok, a network
`digest`, a search `sample`, a NetAdapt `(step, proposal)`). At the end no line may be torn
and the keys must be the expected ones:

- profile --space tiny: every distinct layer of the space, once;
- calibrate --space tiny --archs 6 --heldout 2 --no-zoo: every network measured once;
- search --space tiny --latency lut --samples 8: samples 0-7, once each;
- netadapt on a small network (--target-ratio 0.9, --max-steps 3): steps 1..k contiguous, each proposal once.

Small settings: the whole run takes about 10-15 minutes on 2 cores. Exit 0 when every check
held, 1 otherwise (each failure printed).
"""

from __future__ import annotations

import argparse
import csv
import io
import json
import os
import random
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

TINY = {
    "name": "seed",
    "resolution": 32,
    "stem": {"filters": 16},
    "blocks": ["r1_k3_s11_e1_i16_o16", "r2_k3_s22_e6_i16_o24", "r2_k5_s22_e6_i24_o40"],
    "head": {"filters": 128},
    "classes": 10,
}
# the sentinel's readings repeat its key by design: one reading is (time, model)
KEYS = (("t", "what"), ("key",), ("sample",), ("step", "proposal"), ("digest",))


def latbench(*args) -> list[str]:
    return [sys.executable, "-m", "latbench.commands.main", *map(str, args)]


def stages(root: Path) -> list[dict]:
    lut = root / "lut"
    seed = root / "seed.json"
    seed.write_text(json.dumps(TINY))
    quiet = ("--no-progress",)
    search = ("--space", "tiny", "--latency", "lut", "--target-ms", "1", "--batch", "2",
              "--proxy-train", "128", "--proxy-epochs", "1", "--baselines", "", *quiet,
              "--lut-dir", lut)  # fmt: skip
    return [
        {
            "name": "profile",
            "first": latbench("profile", "--space", "tiny", "--lut-dir", lut, *quiet),
            "again": None,  # the same command resumes
            "dir": lut,
            "span": (3, 15),
        },
        {
            "name": "calibrate",
            "first": latbench(
                "calibrate",
                "--space",
                "tiny",
                "--archs",
                "6",
                "--heldout",
                "2",
                "--no-zoo",
                "--lut-dir",
                lut,
                *quiet,
            ),  # fmt: skip
            "again": None,
            "dir": lut,
            "span": (4, 8),
        },
        {
            "name": "search",
            "first": latbench("search", *search, "--samples", "8", "--out", root / "run"),
            "again": latbench("search", *search, "--resume", root / "run"),
            "dir": root / "run",
            "span": (4, 18),
        },
        {
            "name": "netadapt",
            "first": latbench(
                "netadapt",
                seed,
                "--lut-dir",
                root / "lut-na",
                "--out",
                root / "na",
                "--target-ratio",
                "0.7",
                "--max-steps",
                "2",
                "--proxy-train",
                "256",
                "--pretrain-epochs",
                "0.5",
                "--finetune-epochs",
                "0.25",
                "--long-epochs",
                "0.25",
                *quiet,
            ),  # fmt: skip
            "again": None,
            "dir": root / "na",
            "span": (6, 60),
        },
    ]


def read_table(path: Path) -> tuple[list[str], list[list[str]], bool]:
    """(header, complete rows, whether the last line is torn) of an append-only table."""
    data = path.read_bytes()
    torn = bool(data) and not data.endswith(b"\n")
    lines = data.split(b"\n")
    complete = lines[:-1]  # the last piece: "" after a final newline, else the torn row
    body = [ln.decode() for ln in complete if not ln.startswith(b"# ")]
    rows = list(csv.reader(io.StringIO("\n".join(body))))
    return (rows[0] if rows else []), rows[1:], torn


def check(stage: dict, final: bool) -> tuple[list[str], dict[str, int]]:
    """Problems found in the stage's tables, and how many keyed rows each has."""
    problems, counts = [], {}
    for path in sorted(Path(stage["dir"]).rglob("*.csv")):
        header, rows, torn = read_table(path)
        key = next((k for k in KEYS if all(c in header for c in k)), None)
        if key is None:
            continue  # a summary written atomically, not an append-only table
        if torn and final:
            problems.append(f"{path.name}: a torn last line after the run completed")
        idx = [header.index(c) for c in key]
        status = header.index("status") if "status" in header else None
        seen: dict[tuple, int] = {}
        for i, r in enumerate(rows):
            if len(r) != len(header):
                problems.append(f"{path.name}: row {i + 1} has {len(r)} fields, not {len(header)}")
                continue
            if status is not None and r[status] != "ok":
                continue  # a failure may be retried; only measured rows must be unique
            k = tuple(r[j] for j in idx)
            seen[k] = seen.get(k, 0) + 1
        doubled = {k: n for k, n in seen.items() if n > 1}
        if doubled:
            problems.append(f"{path.name}: {len(doubled)} key(s) twice, e.g. {next(iter(doubled))}")
        counts[path.name] = len(seen)
    return problems, counts


def expected(stage: dict, counts: dict[str, int], root: Path) -> list[str]:
    """What the completed stage must hold."""
    name = stage["name"]
    if name == "profile":
        from latbench.nets.spaces import SPACES

        want = {s.key for s in SPACES["tiny"].enumerate_specs("fp32")}
        (lut,) = [p for p in (root / "lut").glob("host_tiny_fp32.csv")]
        header, rows, _ = read_table(lut)
        got = {r[header.index("key")] for r in rows if r[header.index("status")] == "ok"}
        return (
            [] if got == want else [f"LUT keys: {len(want - got)} missing, {len(got - want)} extra"]
        )
    if name == "calibrate":
        nets = sum(n for f, n in counts.items() if f != "host_tiny_fp32.csv")
        return [] if nets >= 8 else [f"networks measured: {counts}"]
    if name == "search":
        header, rows, _ = read_table(root / "run" / "samples.csv")
        ids = sorted(int(r[header.index("sample")]) for r in rows)
        return [] if ids == list(range(8)) else [f"samples: {ids}"]
    header, rows, _ = read_table(root / "na" / "steps.csv")
    steps = sorted({int(r[header.index("step")]) for r in rows})
    return (
        []
        if steps and steps == list(range(steps[0], steps[0] + len(steps)))
        else [f"netadapt steps: {steps}"]
    )


def run_stage(stage: dict, kills: int, rng: random.Random, root: Path, log) -> list[str]:
    problems = []
    env = dict(os.environ, LATBENCH_CACHE=str(root / "cache"))
    cmd = stage["first"]
    done_kills = 0
    while True:
        start = time.monotonic()
        proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                                env=env, start_new_session=True)  # fmt: skip
        if done_kills < kills:
            at = rng.uniform(*stage["span"])
            try:
                proc.wait(timeout=at)
                err = proc.stderr.read().decode(errors="replace")
                log(
                    f"  {stage['name']}: ended (rc {proc.returncode}) before the kill at {at:.1f} s"
                )
                if proc.returncode != 0 and "not met" not in err:
                    problems.append(f"{stage['name']}: rc {proc.returncode}: {err.strip()[-300:]}")
                    return problems
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)  # the command and every worker it started
                proc.wait()
                done_kills += 1
                p, counts = check(stage, final=False)
                problems += [f"{stage['name']} after kill {done_kills}: {x}" for x in p]
                log(f"  {stage['name']}: kill {done_kills}/{kills} at {at:.1f} s; rows {counts}")
                cmd = stage["again"] or stage["first"]
                continue
        else:
            proc.wait()
            err = proc.stderr.read().decode(errors="replace")
            if proc.returncode != 0:
                problems.append(
                    f"{stage['name']}: final run rc {proc.returncode}: {err.strip()[-300:]}"
                )
                return problems
        p, counts = check(stage, final=True)
        problems += [f"{stage['name']} final: {x}" for x in p]
        problems += [f"{stage['name']} final: {x}" for x in expected(stage, counts, root)]
        log(
            f"  {stage['name']}: completed in {time.monotonic() - start:.0f} s (last run); {counts}"
        )
        return problems


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--kills", type=int, default=20, help="kill -9 points in all (default 20)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--keep", type=Path, help="work in this folder and keep it")
    a = ap.parse_args()
    root = a.keep or Path(tempfile.mkdtemp(prefix="latbench-crash-"))
    root.mkdir(parents=True, exist_ok=True)
    rng = random.Random(a.seed)
    t0 = time.monotonic()
    plan = stages(root)
    share = [a.kills // len(plan) + (i < a.kills % len(plan)) for i in range(len(plan))]
    problems = []
    for stage, k in zip(plan, share):
        print(f"{stage['name']}: {k} kill(s)", flush=True)
        problems += run_stage(stage, k, rng, root, lambda m: print(m, flush=True))
    wall = time.monotonic() - t0
    print(f"{a.kills} kills, {wall / 60:.1f} min, folder {root}")
    for p in problems:
        print("FAIL", p)
    print("OK: no row lost, torn or doubled" if not problems else f"{len(problems)} problem(s)")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
