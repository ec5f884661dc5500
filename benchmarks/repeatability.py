"""Profile the same N LUT entries twice on a device; median absolute relative difference.

usage: python benchmarks/repeatability.py [N] [DEVICE]
"""

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
specs = get_space("mnasnet").enumerate_specs()
random.Random(1).shuffle(specs)
specs = specs[:n]
runs = []
for _ in range(2):
    d = Path(tempfile.mkdtemp())
    with open_device(load_profile(device)) as dev:
        profile([dev], specs, "rep", "fp32", d, progress=False)
    runs.append(LUT.load(d / f"{device}_rep_fp32.csv"))
a = np.array([runs[0].median(s.key) for s in specs])
b = np.array([runs[1].median(s.key) for s in specs])
rel = np.abs(a - b) / np.minimum(a, b)
print(
    f"{n} entries on {device}: median |diff| {np.median(rel) * 100:.2f} %, "
    f"p90 {np.percentile(rel, 90) * 100:.2f} %, max {rel.max() * 100:.2f} %"
)
