"""The host device: this machine's CPU through LiteRT, in an isolated worker."""

from __future__ import annotations

import json
import os
import platform
import select
import subprocess
import sys
from dataclasses import asdict
from pathlib import Path
from typing import Any

from latbench.devices.base import Device, DeviceLost, DeviceProfile, ModelRunError
from latbench.devices.host_worker import resolve_clock
from latbench.devices.litert import interpreter_class
from latbench.devices.measure import Measurement


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def _read(path: str) -> str | None:
    try:
        return Path(path).read_text().strip()
    except OSError:
        return None


class HostDevice(Device):
    """Times models in a child process pinned to the profile's CPUs.

    A model that crashes the runtime costs one worker restart and is reported
    as a ModelRunError; several crashes in a row mean the device is unusable.
    """

    timeout_s = 120.0
    max_consecutive_crashes = 3

    def __init__(self, profile: DeviceProfile):
        super().__init__(profile)
        self._proc: subprocess.Popen | None = None
        self._crashes = 0
        usable = os.sched_getaffinity(0)
        missing = [c for c in profile.cpus if c not in usable]
        if missing:
            from latbench.errors import InputError

            raise InputError(
                f"profile {profile.name} pins CPUs {missing}, but this machine "
                f"offers {sorted(usable)}",
                "cpus",
            )

    def fingerprint(self) -> dict[str, str]:
        _, runtime, version = interpreter_class()
        return {
            "device": self.profile.name,
            "kind": "host",
            "cpu": _cpu_model(),
            "machine": platform.machine(),
            "runtime": runtime,
            "runtime_version": version,
            "threads": str(self.profile.threads),
            "cpus": ",".join(map(str, self.profile.cpus)) or "all",
            "delegate": self.profile.delegate,
            "clock": resolve_clock(self.profile.protocol.clock, self.profile.threads),
        }

    def health(self) -> dict[str, Any]:
        c = self.profile.cpus[0] if self.profile.cpus else 0
        base = f"/sys/devices/system/cpu/cpu{c}/cpufreq"
        h = {
            "governor": _read(f"{base}/scaling_governor"),
            "cur_freq_khz": _read(f"{base}/scaling_cur_freq"),
            "loadavg": _read("/proc/loadavg"),
        }
        return {k: v for k, v in h.items() if v is not None}

    def _worker(self) -> subprocess.Popen:
        if self._proc is None or self._proc.poll() is not None:
            env = dict(os.environ, LATBENCH_CPUS=",".join(map(str, self.profile.cpus)))
            self._proc = subprocess.Popen(
                [sys.executable, "-m", "latbench.devices.host_worker"],
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                stderr=subprocess.DEVNULL,
                text=True,
                env=env,
                bufsize=1,
            )
        return self._proc

    def measure(self, model: Path) -> Measurement:
        proc = self._worker()
        req = {
            "model": str(Path(model).resolve()),
            "threads": self.profile.threads,
            "protocol": asdict(self.profile.protocol),
        }
        try:
            proc.stdin.write(json.dumps(req) + "\n")
            proc.stdin.flush()
            ready, _, _ = select.select([proc.stdout], [], [], self.timeout_s)
            line = proc.stdout.readline() if ready else ""
        except (BrokenPipeError, OSError):
            line = ""
        if not line:
            self._kill()
            self._crashes += 1
            why = "timed out" if proc.poll() is None else f"crashed (exit {proc.returncode})"
            if self._crashes >= self.max_consecutive_crashes:
                raise DeviceLost(f"host runtime {why} {self._crashes} times in a row")
            raise ModelRunError(f"runtime worker {why} on {Path(model).name}")
        self._crashes = 0
        res = json.loads(line)
        if not res["ok"]:
            raise ModelRunError(res["error"])
        return Measurement(**res["measurement"])

    def _kill(self) -> None:
        if self._proc is not None:
            self._proc.kill()
            self._proc.wait()
            self._proc = None

    def close(self) -> None:
        if self._proc is not None and self._proc.poll() is None:
            self._proc.stdin.close()
            try:
                self._proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self._kill()
        self._proc = None
