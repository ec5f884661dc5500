"""Warm-up bias on the stand-in phone: per-layer rows and their sum vs the whole network.

Three loopback phones (latbench/devices/emulated/) in one run, each timing
every layer of MobileNetV2 (224x224, fp32) and the whole network:
  steady   a core whose clock never ramps (the reference: what a warmed-up core gives)
  fixed    a ramping core (idle at 35 % clock, 0.4 s of load to reach 100 %), timed with
           latbench's phone protocol (warm-up of `warmup_s`, several invocations per row)
  old      the same ramping core, timed as latbench did before the fix: no time-based
           warm-up (--warmup_min_secs=0), one invocation per row
Prints, per phone, the median and range of row / steady-row (bias), small vs large layers,
and sum of layer rows / whole network. Stand-in numbers: the host CPU, scaled by the
modelled clock; they test the protocol, not a phone. The stand-in's throttling is switched
off here (it is tested elsewhere): this figure is about the ramp only.

Also writes the per-layer bias as a PNG (default docs/figures/warmup_bias.png).

usage: PYTHONPATH=. python benchmarks/warmup_bias.py [WARMUP_S] [REPEATS] [PNG]
"""

import os
import sys
import tempfile
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import numpy as np

from latbench.build.cache import arch_path, spec_path
from latbench.devices import open_device
from latbench.devices.adb_transport import ensure_adb_key
from latbench.devices.emulated import Clocks, EmulatedPhone
from latbench.devices.profiles import parse_profile
from latbench.nets import zoo

warmup_s = float(sys.argv[1]) if len(sys.argv) > 1 else 0.6
repeats = int(sys.argv[2]) if len(sys.argv) > 2 else 3
png = Path(sys.argv[3] if len(sys.argv) > 3 else "docs/figures/warmup_bias.png")
arch = zoo.mobilenet_v2()
layers = arch.layers()
specs = list({s.key: s for s in layers}.values())
if not all(spec_path(s).exists() for s in specs) or not arch_path(arch, "fp32").exists():
    # convert in a child process: TensorFlow's memory is not held through the timing below
    import subprocess

    subprocess.run(
        [
            sys.executable,
            "-c",
            "from latbench.nets import zoo; from latbench.build.convert import convert_arch, "
            "convert_to_cache; a = zoo.mobilenet_v2(); convert_to_cache(list({s.key: s for s in "
            "a.layers()}.values())); convert_arch(a)",
        ],
        check=True,
    )
net = arch_path(arch, "fp32")
tmp = Path(tempfile.mkdtemp(prefix="warmup-bias-"))
key = ensure_adb_key(tmp / "adbkey")
protocol = {
    "warmup_runs": 5,
    "min_runs": 30,
    "max_runs": 400,
    "max_seconds": 2.0,
    "target_ci": 0.02,
}
off = 1e9  # throttle_after_s: never
configs = {
    "steady": (Clocks(idle=1.0, throttle_after_s=off), warmup_s, repeats),
    "fixed": (Clocks(throttle_after_s=off), warmup_s, repeats),
    "old": (Clocks(throttle_after_s=off), 0.0, 1),
}
rows: dict[str, dict[str, float]] = {}
whole: dict[str, float] = {}
for name, (clocks, ws, rep) in configs.items():
    with EmulatedPhone(tmp / name, clocks=clocks) as ph:
        prof = parse_profile(
            {
                "name": name,
                "kind": "emulated",
                "cpus": [0],
                "protocol": protocol,
                "options": {
                    "connect": ph.address,
                    "adbkey": str(key),
                    "sandbox": str(tmp / f"h-{name}"),
                    "warmup_s": ws,
                    "repeats": rep,
                    "temp_check_s": 1e9,
                },
            }
        )
        with open_device(prof) as dev:
            rows[name] = {s.key: dev.measure(spec_path(s)).median_ms for s in specs}
            whole[name] = dev.measure(net).median_ms
    print(f"{name}: done", file=sys.stderr, flush=True)

ref = np.array([rows["steady"][s.key] for s in specs])
order = np.argsort(ref)
small, large = order[: len(order) // 3], order[-(len(order) // 3) :]
print(
    f"MobileNetV2 224 fp32, {len(specs)} distinct layers ({len(layers)} in the network), "
    f"stand-in phone, warmup_s={warmup_s}, repeats={repeats}"
)
print(
    f"{'phone':8s} {'bias median':>12s} {'bias min..max':>16s} {'small third':>12s} {'large third':>12s} "
    f"{'sum/whole':>10s} {'whole/steady':>13s}"
)
for name in configs:
    r = np.array([rows[name][s.key] for s in specs]) / ref
    total = sum(rows[name][s.key] for s in layers)
    print(
        f"{name:8s} {np.median(r):12.3f} {r.min():7.3f}..{r.max():<7.3f} {np.median(r[small]):12.3f} "
        f"{np.median(r[large]):12.3f} {total / whole[name]:10.3f} {whole[name] / whole['steady']:13.3f}"
    )

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt

from latbench.fileio import write_atomic

fig, ax = plt.subplots(figsize=(7, 4.2))
for name, marker in (("old", "x"), ("fixed", "o")):
    r = np.array([rows[name][s.key] for s in specs]) / ref
    total = sum(rows[name][s.key] for s in layers)
    ax.scatter(
        ref,
        r,
        marker=marker,
        label=f"{name}: median bias {np.median(r):.2f}, sum/whole {total / whole[name]:.2f}",
    )
ax.axhline(1.0, color="grey", lw=0.8)
ax.set_xscale("log")
ax.set_xlabel("row on a steady core (ms, stand-in)")
ax.set_ylabel("row / steady-core row")
ax.set_title(
    f"MobileNetV2 layers on the ramping stand-in phone (steady sum/whole "
    f"{sum(rows['steady'][s.key] for s in layers) / whole['steady']:.2f})",
    fontsize=9,
)
ax.legend(fontsize=8)
fig.tight_layout()
import io

buf = io.BytesIO()
fig.savefig(buf, format="png", dpi=110)
png.parent.mkdir(parents=True, exist_ok=True)
write_atomic(png, buf.getvalue())
print(f"wrote {png}")
