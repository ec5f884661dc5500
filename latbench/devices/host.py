"""The host device: this machine's CPU through LiteRT, in an isolated worker.

Every row records the conditions it was timed under (hostload.py: the timing CPU, its
siblings' and the other CPUs' busy share, steal time, the worker's wall / CPU-time ratio). A
row timed under contention is timed again after a pause; if it is still contended it is kept
and flagged "contended", as a phone row timed while throttled is flagged "throttled".
"""

from __future__ import annotations

import json
import logging
import os
import platform
import select
import subprocess
import sys
import time
from dataclasses import asdict
from pathlib import Path
from typing import Any

from latbench.devices.base import Device, DeviceLost, DeviceProfile, ModelRunError
from latbench.devices.host_worker import resolve_clock
from latbench.devices.hostload import CpuWatch, LoadWindow, least_busy_cpus, loaded
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


log = logging.getLogger(__name__)


def _fastest(cpus: set[int]) -> set[int]:
    """The CPUs of the highest maximum clock (all of them where sysfs does not say)."""
    top = {c: _read(f"/sys/devices/system/cpu/cpu{c}/cpufreq/cpuinfo_max_freq") for c in cpus}
    known = {c: int(v) for c, v in top.items() if v and v.isdigit()}
    if len(known) < len(cpus):
        return cpus
    best = max(known.values())
    return {c for c, v in known.items() if v == best}


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
        # cpus = "auto": as many of the least busy CPUs as the profile has threads
        self._cpus: tuple[int, ...] = profile.cpus
        if profile.pick_cpu:
            fast = _fastest(set(usable))  # a hybrid CPU: never an efficiency core
            self._cpus = least_busy_cpus(fast, profile.threads)
        self.retime_wait_s = float(profile.options.get("retime_wait_s", 3.0))
        from latbench.devices.litert import OP_RESOLVERS

        self.op_resolver = profile.options.get("op_resolver", "auto")
        if self.op_resolver not in OP_RESOLVERS:
            from latbench.errors import InputError

            raise InputError(
                f"must be one of {', '.join(OP_RESOLVERS)}, got {self.op_resolver!r}",
                f"{profile.source or profile.name}: options.op_resolver",
            )
        self._window: LoadWindow | None = None  # other processes' load, over recent seconds

    @property
    def pinned_cpus(self) -> tuple[int, ...]:
        return self._cpus

    def fingerprint(self) -> dict[str, str]:
        _, runtime, version = interpreter_class()
        fp = {
            "device": self.profile.name,
            "kind": "host",
            "cpu": _cpu_model(),
            "machine": platform.machine(),
            "runtime": runtime,
            "runtime_version": version,
            "threads": str(self.profile.threads),
            "cpus": "auto"
            if self.profile.pick_cpu
            else ",".join(map(str, self.profile.cpus)) or "all",
            "delegate": self.profile.delegate,
            "clock": resolve_clock(self.profile.protocol.clock, self.profile.threads),
        }

        if self.op_resolver != "auto":  # absent by default: existing LUTs keep their identity
            fp["op_resolver"] = self.op_resolver
        return fp

    def health(self) -> dict[str, Any]:
        c = self._cpus[0] if self._cpus else 0
        base = f"/sys/devices/system/cpu/cpu{c}/cpufreq"
        h = {
            "governor": _read(f"{base}/scaling_governor"),
            "cur_freq_khz": _read(f"{base}/scaling_cur_freq"),
            "loadavg": _read("/proc/loadavg"),
        }
        return {k: v for k, v in h.items() if v is not None}

    def _worker(self) -> subprocess.Popen:
        if self._proc is None or self._proc.poll() is not None:
            env = dict(os.environ, LATBENCH_CPUS=",".join(map(str, self._cpus)))
            from latbench.procs import popen_tied  # the worker dies with this process

            self._proc = popen_tied(
                [sys.executable, "-m", "latbench.devices.host_worker"],
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                stderr=subprocess.DEVNULL,
                text=True,
                env=env,
                bufsize=1,
            )
        return self._proc

    def measure(self, model: Path, network: bool = False) -> Measurement:
        """Time one model; again after a pause if it was contended, then flag it if still so.

        No memory footprint here (network is ignored): the worker process is reused across
        models, so its peak RSS is a high-water mark of everything it ran, not this model's."""
        m, cond = self._watched(model)
        retimed, flags = False, []
        if cond["contended"]:
            log.warning(
                "%s: %s was timed under contention (%s); timing it again in %.0f s",
                self.profile.name,
                Path(model).name,
                "; ".join(cond["contended"]),
                self.retime_wait_s,
            )
            time.sleep(self.retime_wait_s)
            m, cond = self._watched(model)
            retimed = True
            if cond["contended"]:
                flags.append("contended")
                log.warning(
                    "%s: %s still contended (%s): row flagged",
                    self.profile.name,
                    Path(model).name,
                    "; ".join(cond["contended"]),
                )
        if loaded(cond):  # not re-timed: a job beside us outlasts any pause; said, not hidden
            flags.append("loaded")
        state = {**cond, "retimed": retimed, "flags": flags}
        if "inputs" in m.extra:  # what it was timed on (network activations or random)
            state["inputs"] = m.extra["inputs"]
        extra = dict(m.extra, state=state, flags=flags)
        return Measurement(
            m.median_ms, m.p10_ms, m.p90_ms, m.std_ms, m.mean_ms, m.runs, m.ci_rel, extra
        )

    def _watched(self, model: Path) -> tuple[Measurement, dict]:
        """One timing and the conditions around it (on the timing CPU, or CPU 0's view)."""
        worker = self._worker()
        if self._window is None or self._window.exclude != {worker.pid}:  # a new worker
            self._window = LoadWindow(self._cpus, frozenset({worker.pid}))
        watch = CpuWatch(self._cpus, self._window)
        m = self._time(model)
        one = self.profile.threads == 1
        return m, watch.stop(
            m.extra.get("wall_cpu") if one else None, m.extra.get("lost_ms") if one else None
        )

    def _time(self, model: Path) -> Measurement:
        proc = self._worker()
        req = {
            "model": str(Path(model).resolve()),
            "threads": self.profile.threads,
            "protocol": asdict(self.profile.protocol),
            "op_resolver": self.op_resolver,
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
