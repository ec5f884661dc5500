"""Networks per second for the LUT-based predictors (vectorised over token matrices).

usage: python benchmarks/predict_throughput.py [LUT_DIR] [DEVICE] [SPACE]
Needs the space's LUT (latbench profile --device host --space mnasnet) and, for the
regression, latbench calibrate.
"""

import random
import sys
import time
from pathlib import Path

import numpy as np

from latbench.nets.spaces import get_space
from latbench.predictors import LutSumPredictor, load_predictor

lut_dir = Path(sys.argv[1]) if len(sys.argv) > 1 else Path("lut")
device = sys.argv[2] if len(sys.argv) > 2 else "host"
sp = get_space(sys.argv[3] if len(sys.argv) > 3 else "mnasnet")
model = load_predictor(device, "fp32", lut_dir)
t = time.perf_counter()
model.space_table(sp)
print(f"space table built in {time.perf_counter() - t:.2f} s (once per LUT)")
rng = random.Random(0)
tokens = np.array([sp.sample(rng) for _ in range(100_000)])
for name, pred in (("lut-sum", LutSumPredictor()), (model.name, model.predictor)):
    model.predictor, keep = pred, model.predictor
    model.predict_tokens(sp, tokens[:1000])
    t = time.perf_counter()
    out = model.predict_tokens(sp, tokens)
    dt = time.perf_counter() - t
    model.predictor = keep
    print(f"{name:10} {len(tokens) / dt:,.0f} networks/s (tokens, vectorised)")
archs = [sp.decode(list(map(int, t))) for t in tokens[:500]]
t = time.perf_counter()
model.predict(archs)
dt = time.perf_counter() - t
print(f"{model.name:10} {len(archs) / dt:,.0f} networks/s (Arch objects, per-layer lookups)")
