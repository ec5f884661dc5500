"""Time of one in-process latbench.Predictor.fit of 10 networks once the LUT is loaded.

usage: python benchmarks/fit_time.py
A synthetic MnasNet-space LUT (layer times from MACs) in a temporary folder: the fit's cost
depends on the number of networks and methods, not on the LUT's values. Prints the whole fit
(7 repeats, the LUT loaded once) and its two parts: fitting every method, and judging them
out of sample (leave-one-out), which picks the default.
"""

import random
import tempfile
import time
from pathlib import Path

import numpy as np

import latbench
from latbench.devices.measure import summarize
from latbench.nets.spaces import get_space
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
for s in sp.enumerate_specs():
    lut.rows[s.key] = Row(s, "ok", summarize([0.004 + s.macs() / 3e8]))
lut.save(d / "host_mnasnet_fp32.csv")
rng = random.Random(0)
pairs = [("-".join(map(str, sp.sample(rng))), 10.0 + i) for i in range(10)]
latbench.Predictor.fit(pairs, lut_dir=d)  # loads the LUT, imports scipy/sklearn
import latbench.predictors.model as m
from latbench.predictors import load_table

t = load_table("host", "fp32", d)
orig = m.load_table
m.load_table = lambda *a, **k: t  # the LUT loaded once
import latbench.predictors as P

P.load_table = m.load_table
times = []
for _ in range(7):
    t0 = time.perf_counter()
    p = latbench.Predictor.fit(pairs, lut_dir=d)
    times.append(time.perf_counter() - t0)
print(
    "fit of 10 networks: median %.1f ms (min %.1f, max %.1f), default %s"
    % (1e3 * np.median(times), 1e3 * min(times), 1e3 * max(times), p.kind)
)
from latbench.calibration.calibrate import fit_predictors, judge_predictors

X, y = p.model.table.features([p.to_arch(n) for n, _ in pairs]), np.array([ms for _, ms in pairs])
for name, f in (("fit_predictors", fit_predictors), ("judge_predictors", judge_predictors)):
    t0 = time.perf_counter()
    f(X, y)
    print(name, "%.1f ms" % (1e3 * (time.perf_counter() - t0)))
from latbench.predictors import ScaledLutPredictor, StagewisePredictor

for cls in (ScaledLutPredictor, StagewisePredictor):
    t0 = time.perf_counter()
    cls().fit(X, y)
    print(cls.__name__, "%.1f ms" % (1e3 * (time.perf_counter() - t0)))
