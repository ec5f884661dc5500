"""Measure a few-shot target: a pool and a held-out set of a space's networks, on a shared machine.

usage: python benchmarks/fewshot_measure.py DEVICE PRECISION SPACE OUTDIR
           [--pool 100] [--heldout 50] [--hold-min 18] [--convert-only]

The networks are calibrate's: the pool is `sample_networks(space, POOL, seed 0)`, the held-out
set `sample_networks(space, HELDOUT, seed 7)` less the pool, written as calibrate writes them
(OUTDIR/DEVICE_SPACE_PRECISION.pool.csv / .heldout.csv, calibrate's NET_COLUMNS, through
calibration.calibrate.measure_sets: append-only, resumable, sentinel re-timed), so that
benchmarks/fewshot_transfer.py reads them. Pass 1 times pool and held-out networks in one
shuffled order; pass 2 re-times the held-out networks (the noise ceiling), minutes later.

The machine is shared (the timing lock of the project's rules): every network is converted
first, a chunk at a time, waiting while someone else holds /tmp/latbench-quiet; then the lock
is taken (mkdir) for at most --hold-min minutes of timing, released (always, on any exit), 60 s
left to others, and taken again until everything is timed. The load average at each hold's
start and end goes to OUTDIR/conditions.log.
"""

from __future__ import annotations

import argparse
import os
import signal
import time
from datetime import datetime, timezone
from pathlib import Path

LOCK = Path("/tmp/latbench-quiet")
CHUNK = 10  # networks per unit of work (between lock checks)


def _log(outdir: Path, text: str) -> None:
    line = f"{datetime.now(timezone.utc).isoformat(timespec='seconds')} {text}"
    print(line, flush=True)
    with open(outdir / "conditions.log", "a") as f:
        f.write(line + "\n")


def _wait_free() -> None:
    while LOCK.exists():
        time.sleep(30)


def _acquire() -> None:
    while True:
        try:
            LOCK.mkdir()
            return
        except FileExistsError:
            time.sleep(30)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("device")
    ap.add_argument("precision")
    ap.add_argument("space")
    ap.add_argument("outdir", type=Path)
    ap.add_argument("--pool", type=int, default=100)
    ap.add_argument("--heldout", type=int, default=50)
    ap.add_argument("--hold-min", type=float, default=18.0)
    ap.add_argument("--convert-only", action="store_true")
    a = ap.parse_args()

    from latbench.calibration.calibrate import load_results, measure_sets, sample_networks
    from latbench.devices import load_profile, open_device
    from latbench.nets.spaces import get_space
    from latbench.profiling.networks import convert_archs

    space = get_space(a.space)
    a.outdir.mkdir(parents=True, exist_ok=True)
    pool = sample_networks(space, a.pool, 0)
    seen = {n.arch.digest() for n in pool}
    held = [n for n in sample_networks(space, a.heldout, 7) if n.arch.digest() not in seen]
    stem = f"{a.device}_{a.space}_{a.precision}"
    paths = (a.outdir / f"{stem}.pool.csv", a.outdir / f"{stem}.heldout.csv")

    nets = pool + held
    for i in range(0, len(nets), CHUNK):  # conversion: CPU-heavy, never beside a timing
        _wait_free()
        convert_archs([n.arch for n in nets[i : i + CHUNK]], a.precision, workers=2)
    if a.convert_only:
        return

    held_lock = False

    def release(*_):
        nonlocal held_lock
        if held_lock:
            LOCK.rmdir()
            held_lock = False

    def on_signal(signum, _frame):
        release()
        raise SystemExit(128 + signum)

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)

    def todo(passes: int) -> tuple[list, list]:
        done = [load_results(p) if p.exists() else {} for p in paths]
        left = []
        for k, (group, want) in enumerate(((pool, 1), (held, passes))):
            left.append(
                [
                    n
                    for n in group
                    if (r := done[k].get(n.arch.digest())) is None
                    or (not r.error and r.passes < want)
                ]
            )
        return left[0], left[1]

    device = open_device(load_profile(a.device))
    try:
        for passes in (1, 2):
            while True:
                left_pool, left_held = todo(passes)
                if not left_pool and not left_held:
                    break
                _acquire()
                held_lock = True
                t0 = time.monotonic()
                _log(a.outdir, f"{stem} pass {passes}: lock taken, load {os.getloadavg()}")
                while time.monotonic() - t0 < 60 * a.hold_min:
                    left_pool, left_held = todo(passes)
                    if not left_pool and not left_held:
                        break
                    # a chunk from each set in proportion, timed in one shuffled order
                    n_pool = min(
                        len(left_pool),
                        CHUNK * len(left_pool) // max(1, len(left_pool) + len(left_held)) or 1,
                    )
                    chunk_pool = left_pool[:n_pool]
                    chunk_held = left_held[: max(0, CHUNK - len(chunk_pool))]
                    measure_sets(
                        device,
                        [(paths[0], chunk_pool), (paths[1], chunk_held)],
                        a.precision,
                        workers=1,
                        progress=False,
                        shuffle_seed=int(t0),
                        passes=passes,
                        context="fewshot",
                    )
                _log(a.outdir, f"{stem} pass {passes}: lock released, load {os.getloadavg()}")
                release()
                time.sleep(60)
    finally:
        release()
        device.close()


if __name__ == "__main__":
    main()
