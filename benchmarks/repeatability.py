"""Profile the same N LUT entries twice on a device; median absolute relative difference.

usage: python benchmarks/repeatability.py [N] [DEVICE] [hog]

With `hog`, both profiles run while benchmarks/hog.py loads every CPU but the lowest
(the timing CPU is chosen among the least busy, so the hog sits beside it).
"""

import contextlib
import random
import sys
import tempfile
from pathlib import Path

import numpy as np

from latbench.devices import load_profile, open_device
from latbench.nets.spaces import get_space
from latbench.profiling.layers import profile
from latbench.profiling.lut import LUT

n = int(sys.argv[1]) if len(sys.argv) > 1 else 50
device = sys.argv[2] if len(sys.argv) > 2 else "host"
loaded = len(sys.argv) > 3 and sys.argv[3] == "hog"
sys.path.insert(0, str(Path(__file__).resolve().parent))
from hog import hog, other_cpu  # noqa: E402

specs = get_space("mnasnet").enumerate_specs()
random.Random(1).shuffle(specs)
specs = specs[:n]
runs = []
flagged = 0
load = hog(other_cpu()) if loaded else contextlib.nullcontext()
with load:
    for _ in range(2):
        d = Path(tempfile.mkdtemp())
        with open_device(load_profile(device)) as dev:
            [summary] = profile([dev], specs, "rep", "fp32", d, progress=False)
        flagged += sum(summary.flagged.values())
        runs.append(LUT.load(d / f"{device}_rep_fp32.csv"))
a = np.array([runs[0].median(s.key) for s in specs])
b = np.array([runs[1].median(s.key) for s in specs])
rel = np.abs(a - b) / np.minimum(a, b)
print(
    f"{n} entries on {device}{' under the hog' if loaded else ''}: "
    f"median |diff| {np.median(rel) * 100:.2f} %, "
    f"p90 {np.percentile(rel, 90) * 100:.2f} %, max {rel.max() * 100:.2f} %; "
    f"{flagged} row flags (contended or loaded) in the two runs"
)
