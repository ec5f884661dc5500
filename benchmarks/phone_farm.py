"""The phone farm on Ray vs one phone, on stand-in phones; and the pre-flight's cost.

usage: python benchmarks/phone_farm.py [N]      (N: the first N MnasNet layers by key, 60)

1. converts the N layers once (the cache), so neither run below converts;
2. one phone: `latbench profile --device standin9` (no Ray) against one stand-in Pixel 9;
3. the farm: a real two-node Ray cluster on this machine (LocalRayFarm: `ray start --head`,
   `ray start --address`, each node advertising its own stand-in Pixel 9 on a host CPU of its
   own) and `latbench profile --device standin9 --ray-address ADDR`, cluster start excluded;
4. wall times, and the rows both LUTs hold: median |relative difference| of median_ms;
5. the pre-flight: 5 fresh sessions on a stand-in phone, each timing AdbDevice.preflight().
Prints one JSON object. Take the timing lock first (BENCHMARKS.md).
"""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

PROFILE = """
name = "standin9"
kind = "emulated"
description = "stand-in Pixel 9 (Tensor G4 layout), as device_profiles/emulated.toml times"
threads = 1
cpus = [7]
[protocol]
warmup_runs = 5
min_runs = 30
max_runs = 400
max_seconds = 2.0
target_ci = 0.02
[options]
model = ["Pixel 9"]
warmup_s = 0.6
repeats = 3
temp_check_s = 0
"""


def profile_cmd(lut_dir: Path, n: int, *extra: str) -> list[str]:
    return [
        sys.executable, "-m", "latbench.commands.main", "profile", "--device", "standin9",
        "--space", "mnasnet", "--limit", str(n), "--lut-dir", str(lut_dir), "--no-progress",
        "--json", *extra,
    ]  # fmt: skip


def main() -> None:
    from latbench.build.convert import convert_to_cache
    from latbench.devices.emulated import EmulatedPhone
    from latbench.devices.emulated.raycluster import LocalRayFarm
    from latbench.nets.spaces import get_space
    from latbench.profiling.lut import LUT

    n = int(sys.argv[1]) if len(sys.argv) > 1 else 60
    root = Path(tempfile.mkdtemp(prefix="farm-bench-"))
    (root / "profiles").mkdir()
    (root / "profiles" / "standin9.toml").write_text(PROFILE)
    specs = sorted(get_space("mnasnet").enumerate_specs(), key=lambda s: s.key)[:n]
    t = time.monotonic()
    convert_to_cache(specs)
    convert_s = time.monotonic() - t
    out: dict = {"layers": n, "convert_s": round(convert_s, 1), "load_before": os.getloadavg()}

    # one phone, no Ray
    cpus = sorted(os.sched_getaffinity(0))
    with EmulatedPhone(
        root / "phone", serial="solo-0", layout="tensor_g4", host_cpus=cpus[:1]
    ) as ph:
        prof = PROFILE + f'connect = "{ph.address}"\n'
        (root / "solo").mkdir()
        (root / "solo" / "standin9.toml").write_text(prof)
        env = {**os.environ, "LATBENCH_PROFILES": str(root / "solo")}
        # a first row into a throwaway folder converts the sentinel's network and layer,
        # so neither timed run converts anything
        subprocess.run(profile_cmd(root / "warm", 1), env=env, capture_output=True, check=True)
        t = time.monotonic()
        r = subprocess.run(profile_cmd(root / "lut1", n), env=env, capture_output=True, text=True)
        one_s = time.monotonic() - t
    assert r.returncode == 0, r.stderr[-2000:]

    # two phones on a two-node Ray cluster
    t = time.monotonic()
    with LocalRayFarm(2, layout="tensor_g4", serial="farm") as farm:
        up_s = time.monotonic() - t
        env = {**farm.env, "LATBENCH_PROFILES": str(root / "profiles")}
        t = time.monotonic()
        cmd = profile_cmd(root / "lut2", n, "--ray-address", farm.address)
        r = subprocess.run(cmd, env=env, capture_output=True, text=True)
        two_s = time.monotonic() - t
    assert r.returncode == 0, r.stderr[-2000:]
    docs = json.loads(r.stdout)

    a = LUT.load(root / "lut1" / "standin9_mnasnet_fp32.csv")
    b = LUT.load(root / "lut2" / "standin9_mnasnet_fp32.csv")
    both = [k for k in a.rows if k in b.rows and a.rows[k].status == b.rows[k].status == "ok"]
    rel = [abs(b.rows[k].measurement.median_ms / a.rows[k].measurement.median_ms - 1) for k in both]
    serials = [b.rows[k].measurement.extra["state"]["serial"] for k in b.rows]
    out.update(
        one_phone_s=round(one_s, 1),
        farm_s=round(two_s, 1),
        farm_cluster_start_s=round(up_s, 1),
        speedup=round(one_s / two_s, 2),
        rows_both=len(both),
        median_abs_rel_diff=round(float(np.median(rel)), 4),
        p90_abs_rel_diff=round(float(np.percentile(rel, 90)), 4),
        rows_per_phone={s: serials.count(s) for s in sorted(set(serials))},
        farm_nodes=len({d["health_before"].get("node") for d in docs}),
    )

    # the pre-flight's cost: fresh sessions, each running it once
    from latbench.devices import open_device
    from latbench.devices.profiles import parse_profile
    from latbench.fileio import load_toml

    with EmulatedPhone(root / "pf", layout="tensor_g4", host_cpus=cpus[:1]) as ph:
        data = load_toml(root / "profiles" / "standin9.toml")
        data["options"]["connect"] = ph.address
        costs = []
        for _ in range(5):
            with open_device(parse_profile(data)) as dev:
                costs.append(dev.preflight())
    out.update(
        preflight_s_median=round(statistics.median(costs), 2),
        preflight_s=[round(c, 2) for c in costs],
        load_after=os.getloadavg(),
    )
    print(json.dumps(out, indent=1))


if __name__ == "__main__":
    main()
