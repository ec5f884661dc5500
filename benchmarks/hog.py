"""A bounded CPU + memory hog for the load benchmarks: one process pinned to given CPUs.

It multiplies 512x512 float64 matrices and copies a 64 MiB array in a loop (compute and
memory traffic, as a training job makes), one BLAS thread, and stops when told to or after
`limit_s` seconds, whichever is first, so a crashed benchmark never leaves it behind.

    with hog(cpus={1}, limit_s=1800):
        ...  # timed under load
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
from typing import Iterator

_LOOP = """
import os, sys, time
os.sched_setaffinity(0, {cpus})
import numpy as np
a = np.random.default_rng(0).random((512, 512)); big = np.ones(8 << 20); end = time.time() + {limit}
while time.time() < end:
    a = (a @ a) / 512.0
    big = big[::-1].copy()
"""


@contextlib.contextmanager
def hog(cpus: set[int], limit_s: float = 1800) -> Iterator[int]:
    """The hog's pid. It is started through a shell that exits at once, so it is nobody's
    child: latbench counts its own process tree's work as its own, and a benchmark that
    times in-process (repeatability.py) must not own the hog."""
    env = dict(os.environ, OPENBLAS_NUM_THREADS="1", OMP_NUM_THREADS="1", MKL_NUM_THREADS="1")
    script = _LOOP.format(cpus=sorted(cpus), limit=limit_s)
    out = subprocess.run(
        ["sh", "-c", '"$0" -c "$1" >/dev/null 2>&1 & echo $!', sys.executable, script],
        env=env,
        capture_output=True,
        text=True,
        check=True,
    )
    pid = int(out.stdout)
    try:
        yield pid
    finally:
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass


def other_cpu() -> set[int]:
    """The CPUs the hog takes: all but the lowest-numbered one (at least one CPU is left)."""
    cpus = sorted(os.sched_getaffinity(0))
    return set(cpus[1:]) or set(cpus)
