"""Do phone rows and host rows hold the same statistic? Same layers, same CPU, both protocols.

Times N MnasNet-space layers with the host device (median of single timed runs, thread-CPU
clock) and with the stand-in phone on a steady (non-ramping) core (the phone protocol: median of
`repeats` benchmark_model invocations' means, thread-CPU clock scaled by 1.0), and prints the
ratio phone row / host row. Both run LiteRT on this machine's CPU 0, so a ratio near 1 means the
two protocols report the same statistic; its spread is their combined noise.

usage: PYTHONPATH=. python benchmarks/stat_agreement.py [N]
"""

import os
import random
import sys
import tempfile
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import numpy as np

from latbench.build.cache import spec_path
from latbench.devices import load_profile, open_device
from latbench.devices.adb_transport import ensure_adb_key
from latbench.devices.emulated import Clocks, EmulatedPhone
from latbench.devices.profiles import parse_profile
from latbench.nets.spaces import get_space

n = int(sys.argv[1]) if len(sys.argv) > 1 else 20
specs = get_space("mnasnet").enumerate_specs()
random.Random(2).shuffle(specs)
specs = specs[:n]
if not all(spec_path(s).exists() for s in specs):
    from latbench.profiling.layers import Converter  # converts in worker processes

    Converter(workers=1, progress=False).run(specs, lambda *a: None)
host_prof = load_profile("host")
with open_device(host_prof) as dev:
    host = np.array([dev.measure(spec_path(s)).median_ms for s in specs])
tmp = Path(tempfile.mkdtemp(prefix="stat-"))
with EmulatedPhone(tmp / "phone", clocks=Clocks(idle=1.0, throttle_after_s=1e9)) as ph:
    emu = load_profile("emulated")
    prof = parse_profile(
        {
            "name": "steady",
            "kind": "emulated",
            "cpus": list(host_prof.cpus) or [0],
            "protocol": {**emu.protocol.__dict__, "clock": "auto"},
            "options": {
                **emu.options,
                "connect": ph.address,
                "sandbox": str(tmp / "h"),
                "adbkey": str(ensure_adb_key(tmp / "adbkey")),
                "temp_check_s": 1e9,
            },
        }
    )
    with open_device(prof) as dev:
        phone = np.array([dev.measure(spec_path(s)).median_ms for s in specs])
r = phone / host
print(
    f"{n} MnasNet layers ({host.min():.3f}..{host.max():.3f} ms on the host): phone-protocol row / host row "
    f"median {np.median(r):.3f}, p10 {np.percentile(r, 10):.3f}, p90 {np.percentile(r, 90):.3f}"
)
