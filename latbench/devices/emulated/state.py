"""The phone's state: faults, clocks and heat, properties, and its sandboxed filesystem.

PhoneState is what the phone holds whoever is connected: the sandbox directory
that plays its filesystem (device paths map below it), accepted keys, settings,
the benchmark processes it runs, and virtual sysfs files (thermal zones, cpufreq).

It behaves like a phone where that changes latbench's numbers or errors: an idle
big core (`Clocks`) runs slow and ramps up over a few hundred ms of load, falls
back when idle, and throttles (scaling_max_freq drops, `dumpsys thermalservice`
reports MODERATE) after sustained load, cooling when idle; the battery reads hot
while `Faults.hot_until` says so. `Faults` switches on error paths for tests; the
server and the shell read them.
"""

from __future__ import annotations

import os
import posixpath
import struct
import subprocess
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from latbench.devices.emulated.protocol import decode_adb_public_key

# -- faults --------------------------------------------------------------------


@dataclass
class Faults:
    """Switches for error-path tests.

    Counters say how many times a fault still fires (-1: always).
    """

    refuse_auth: bool = False  # never accept a key: the "Allow USB debugging?" prompt is declined
    drop_push_after_bytes: int = 4096  # where a push is cut
    drop_push: int = 0  # how many pushes to cut mid-way
    hang_benchmark: int = 0  # how many benchmark_model runs never finish
    garbage_benchmark: int = 0  # how many benchmark_model runs print garbage
    hang_after_runs: int = -1  # the timing run after this many started ones hangs (once)
    hang_graph: str = ""  # the first run of the model file of this name hangs (once)
    hot_until: float = 0.0  # time.monotonic() until which the battery reads hot
    hot_temp_c: float = 48.0
    blackhole_until: float = 0.0  # time.monotonic() until which a new link gets no answer at all
    tls_only: bool = False  # Android 11+ wireless debugging: answers CNXN with STLS
    no_thermalservice: bool = False  # Android 9 and older: `dumpsys thermalservice` does not exist
    # file names (e.g. "scaling_cur_freq") the shell user may not read
    unreadable_sysfs: tuple[str, ...] = ()
    gpu_unavailable: bool = False  # the GPU / NNAPI delegate cannot be created at all
    # op types gpu/nnapi leave on the CPU
    delegate_refuses: tuple[str, ...] = ("MEAN", "HARD_SWISH", "MUL")
    gpu_api: str = "OpenCL"  # what the GPU delegate initialises; "OpenGL" where OpenCL is missing
    # a screen-off episode: the screen goes off as this many timing runs have started (the
    # user pressed power, or the phone was unplugged so `svc power stayon` stopped holding);
    # `svc power stayon` does not bring it back, `input keyevent KEYCODE_WAKEUP` does
    screen_off_after_runs: int = -1
    screen_off_clock: float = 0.7  # clock fraction a benchmark started while the screen is off gets
    no_settaskprofile: bool = False  # the shell has no `settaskprofile`

    def take(self, name: str) -> bool:
        left = getattr(self, name)
        if left == 0:
            return False
        if left > 0:
            setattr(self, name, left - 1)
        return True


@dataclass
class Clocks:
    """How the timed core's clock behaves (relative to its maximum, 1.0).

    Busy time ramps it from `idle` to 1 over `ramp_s`; idle time brings it back
    over `decay_s`. Heat is busy seconds minus `cool_rate` x idle seconds; past
    `throttle_after_s` the maximum drops to `throttled` until it cools below.
    Defaults are of the order seen on phone big cores (schedutil ramps in
    ~0.1-0.5 s; sustained single-core load throttles in minutes).
    """

    idle: float = 0.35
    ramp_s: float = 0.4
    decay_s: float = 0.2
    throttle_after_s: float = 120.0
    throttled: float = 0.6
    cool_rate: float = 2.0
    max_khz: int = 2850000


class _ClockState:
    """Warmth (0..1) and heat of the phone's timed cores, shared by every benchmark process.

    Only a process's time after it is ready to run counts as load: this machine
    needs far longer to start the Python stand-in than a phone needs to start
    benchmark_model, and that start-up must not warm the modelled core.
    """

    def __init__(self, c: Clocks):
        self.c = c
        self.warm, self.heat, self.t = 0.0, 0.0, time.monotonic()
        self.busy = 0
        self.lock = threading.Lock()

    def _idle_to(self, now: float) -> None:
        if not self.busy:
            dt = max(0.0, now - self.t)
            self.warm = max(0.0, self.warm - dt / self.c.decay_s) if self.c.decay_s > 0 else 0.0
            self.heat = max(0.0, self.heat - dt * self.c.cool_rate)
        self.t = now

    def start(self) -> str:
        """Mark one more process busy; the env value its stand-in computes its clock from."""
        with self.lock:
            self._idle_to(time.monotonic())
            self.busy += 1
            c = self.c
            return ",".join(
                map(repr, (self.warm, self.heat, c.ramp_s, c.idle, c.throttle_after_s, c.throttled))
            )

    def stop(self, busy_s: float) -> None:
        """A process ended after busy_s seconds of load."""
        with self.lock:
            self.warm = min(1.0, self.warm + busy_s / self.c.ramp_s) if self.c.ramp_s > 0 else 1.0
            self.heat += busy_s
            self.busy = max(0, self.busy - 1)
            self.t = time.monotonic()

    def now(self) -> tuple[float, float, bool]:
        """(clock fraction now, cap fraction now, throttled?)."""
        with self.lock:
            self._idle_to(time.monotonic())
            throttled = self.heat >= self.c.throttle_after_s
            cap = self.c.throttled if throttled else 1.0
            clock = self.c.idle + (1 - self.c.idle) * self.warm if self.busy else self.c.idle
            return min(clock, cap), cap, throttled

    def status(self) -> int:
        """Android thermal status: 0 none, 1 light, 2 moderate, 3 severe."""
        with self.lock:
            self._idle_to(time.monotonic())
            h, lim = self.heat, self.c.throttle_after_s
        if h >= 1.5 * lim:
            return 3
        if h >= lim:
            return 2
        return 1 if h >= 0.5 * lim else 0


def clock_at(env: str, since_ready_s: float) -> float:
    """The stand-in's clock fraction since_ready_s after it became ready.

    env is the string _ClockState.start() gave.
    """
    warm, heat, ramp_s, idle, after, throttled = map(float, env.split(","))
    w = min(1.0, warm + since_ready_s / ramp_s) if ramp_s > 0 else 1.0
    cap = throttled if heat + since_ready_s >= after else 1.0
    return min(cap, idle + (1 - idle) * w)


# -- the phone -----------------------------------------------------------------

PROPS = {
    "ro.product.manufacturer": "latbench",
    "ro.product.brand": "latbench",
    "ro.product.model": "latbench emulated phone",
    "ro.product.device": "emulated",
    "ro.product.name": "latbench_emulated",
    "ro.product.cpu.abi": "x86_64",
    "ro.hardware": "emulated",
    "ro.board.platform": "loopback",
    "ro.soc.manufacturer": "latbench",
    "ro.build.version.release": "14",
    "ro.build.version.sdk": "34",
    "ro.build.id": "LATBENCH.EMU",
    "ro.build.fingerprint": "latbench/latbench_emulated/emulated:14/LATBENCH.EMU/1:userdebug/test-keys",
    "ro.serialno": "emulated-0001",
}

WRITABLE_ROOT = "/data/local/tmp"

# Core layouts: cpuinfo_max_freq (kHz) of cpu0, cpu1, ... as on the phone (little cores first,
# as Android numbers them); CPUs of equal maximum share one cpufreq policy (`related_cpus`).
# From public spec sheets of the SoCs (the profiles' comments name them), not read off a phone:
# Snapdragon 821 (Pixel): 2x 1.59 GHz, 2x 2.15 GHz;  835 (Pixel 2): 4x 1.9, 4x 2.35;
# 845 (Pixel 3): 4x 1.6, 4x 2.5;  855 (Pixel 4): 4x 1.78, 3x 2.42, 1x 2.84;
# 765G (Pixel 5): 6x 1.8, 1x 2.2, 1x 2.4;  Tensor (Pixel 6): 4x 1.8, 2x 2.25, 2x 2.8;
# Tensor G2 (Pixel 7): 4x 1.8, 2x 2.35, 2x 2.85;
# Tensor G3 (Pixel 8): 4x A510 1.70 GHz, 4x A715 2.37 GHz, 1x X3 2.91 GHz (9 cores, big = cpu8);
# Tensor G4 (Pixel 9): 4x A520 1.95 GHz, 3x A720 2.60 GHz, 1x X4 3.10 GHz (8 cores, big = cpu7);
# Tensor G5 (Pixel 10): 2x A520 2.25 GHz, 5x A725 3.05 GHz, 1x X4 3.78 GHz (8 cores, big = cpu7).
LAYOUTS: dict[str, tuple[int, ...]] = {
    "msm8996": (1593600,) * 2 + (2150400,) * 2,
    "msm8998": (1900800,) * 4 + (2352000,) * 4,
    "sdm845": (1766400,) * 4 + (2500000,) * 4,
    "sm8150": (1785600,) * 4 + (2419200,) * 3 + (2841600,),
    "sm7250": (1804800,) * 6 + (2208000,) + (2400000,),
    "tensor": (1803000,) * 4 + (2253000,) * 2 + (2802000,) * 2,
    "tensor_g2": (1803000,) * 4 + (2348000,) * 2 + (2850000,) * 2,
    "tensor_g3": (1704000,) * 4 + (2367000,) * 4 + (2910000,),
    "tensor_g4": (1950000,) * 4 + (2600000,) * 3 + (3105000,),
    "tensor_g5": (2253000,) * 2 + (3050000,) * 5 + (3780000,),
}


def _phone(
    model: str, device: str, platform: str, sdk: int, soc: str | None = None
) -> dict[str, str | None]:
    """getprop of a phone with this layout. ro.soc.model exists from Android 12 (SDK 31) on;
    older phones name their SoC only through ro.board.platform / ro.hardware."""
    release = {29: "10", 30: "11", 31: "12", 33: "13", 34: "14", 35: "15", 36: "16"}[sdk]
    props = {
        "ro.product.model": model,
        "ro.product.device": device,
        "ro.product.manufacturer": "Google",
        "ro.board.platform": platform,
        "ro.hardware": device,  # Pixels report their codename here
        "ro.build.version.sdk": str(sdk),
        "ro.build.version.release": release,
    }
    props["ro.soc.model"] = soc  # None: the property does not exist on this phone
    return props


# Model names, codenames and last Android versions from public device lists; the ro.soc.model
# values are what such phones are reported to show, not read off one.
LAYOUT_PROPS: dict[str, dict[str, str | None]] = {
    "msm8996": _phone("Pixel", "sailfish", "msm8996", 29),
    "msm8998": _phone("Pixel 2", "walleye", "msm8998", 30),
    "sdm845": _phone("Pixel 3", "blueline", "sdm845", 31, "SDM845"),
    "sm8150": _phone("Pixel 4", "flame", "msmnile", 33, "SM8150"),
    "sm7250": _phone("Pixel 5", "redfin", "lito", 34, "SM7250"),
    "tensor": _phone("Pixel 6", "oriole", "gs101", 35, "GS101"),
    "tensor_g2": _phone("Pixel 7", "panther", "gs201", 35, "GS201"),
    "tensor_g3": _phone("Pixel 8", "shiba", "zuma", 35, "Tensor G3"),
    "tensor_g4": _phone("Pixel 9", "tokay", "zumapro", 35, "Tensor G4"),
    "tensor_g5": _phone("Pixel 10", "frankel", "laguna", 36, "Tensor G5"),
}


def related_cpus(layout: tuple[int, ...], cpu: int) -> list[int]:
    """The CPUs sharing `cpu`'s cpufreq policy: here, those with the same maximum."""
    return [c for c, f in enumerate(layout) if f == layout[cpu]]


class PhoneState:
    """What the phone holds between connections: files, settings, processes, clocks."""

    def __init__(
        self,
        sandbox: str | Path,
        faults: Faults | None = None,
        auto_accept: bool = True,
        serial: str = "emulated-0001",
        clocks: Clocks | None = None,
        layout: str | None = None,
        host_cpus: list[int] | None = None,
    ):
        self.sandbox = Path(sandbox).resolve()
        if layout is not None and layout not in LAYOUTS:
            raise ValueError(f"layout must be one of {sorted(LAYOUTS)}, got {layout!r}")
        # per phone CPU: its cpuinfo_max_freq (None: this host's CPUs, all alike)
        self.layout = LAYOUTS.get(layout or "")
        # the host CPUs this phone's cores run on (default all; two stand-in phones of a farm
        # on one machine get one each, as two phones have their own silicon)
        self._host_cpus = sorted(host_cpus or os.sched_getaffinity(0))
        self.faults = faults or Faults()
        self.clocks = _ClockState(clocks or Clocks())
        self.runs_started = 0  # benchmark_model invocations that time a model (not --help)
        self.shells_started = 0  # shell lines run (each a `sh -c` with its own pid)
        self.stayon = "false"  # svc power stayon
        self.screen_on = True
        self.task_profiles: dict[int, str] = {}  # shell pid -> task profile set with settaskprofile
        self.stay_on_while_plugged_in = 0  # the global setting behind it (a bitmask)
        self.auto_accept = auto_accept
        self.props = dict(PROPS, **{"ro.serialno": serial, "ro.soc.model": _host_cpu_model()})
        for k, v in LAYOUT_PROPS.get(layout or "", {}).items():
            if v is None:
                self.props.pop(k, None)
            else:
                self.props[k] = v
        self.serial = serial
        self.keys_file = self.sandbox / "data" / "misc" / "adb" / "adb_keys"
        self.stopped = threading.Event()
        self.children: dict[subprocess.Popen, str] = {}  # process -> its device command line
        self.lock = threading.Lock()
        self.log: list[str] = []  # shell commands received, for tests and the curious
        self.pushes: list[str] = []  # device paths of completed pushes
        self.virtual_files: dict[str, Callable[[], str]] = {}
        self._make_sysfs()

    def phone_cpus(self) -> list[int]:
        """The phone's CPU numbers (what `taskset` and sysfs see)."""
        return list(range(len(self.layout))) if self.layout else list(self._host_cpus)

    def host_cpu(self, phone_cpu: int) -> int:
        """The host CPU a phone CPU runs on (a 9-core phone on a 2-core host shares them)."""
        if not self.layout:
            return phone_cpu
        return self._host_cpus[phone_cpu % len(self._host_cpus)]

    def stale_processes(self) -> list[str]:
        """Device command lines of benchmark processes still running.

        Hung ones survive hang-ups.
        """
        self.reap()
        with self.lock:
            return list(self.children.values())

    def reap(self) -> None:
        """Forget benchmark processes that have exited, accounting their load."""
        with self.lock:
            for p in [p for p in self.children if p.poll() is not None]:
                del self.children[p]
                self.ended(p)

    def ended(self, proc: subprocess.Popen) -> None:
        """Account a finished benchmark process's load (from the time it said it was ready)."""
        ready = self.sandbox / ".standin" / f"ready-{proc.pid}"
        try:
            busy = max(0.0, time.monotonic() - float(ready.read_text()))
            ready.unlink()
        except (OSError, ValueError):
            busy = 0.0
        self.clocks.stop(busy)

    # ---- device filesystem
    def _make_sysfs(self) -> None:
        tmp = self.sandbox / WRITABLE_ROOT.lstrip("/")
        tmp.mkdir(parents=True, exist_ok=True)
        self.keys_file.parent.mkdir(parents=True, exist_ok=True)
        self.keys_file.touch()
        zones = [
            ("battery", self.battery_milli_c),
            ("cpu-big", lambda: 36000 + (self._hot() * 20000) + 10000 * self.clocks.status()),
            ("skin", lambda: 33000),
        ]
        for i, (kind, fn) in enumerate(zones):
            base = f"/sys/class/thermal/thermal_zone{i}"
            d = self.sandbox / base.lstrip("/")
            d.mkdir(parents=True, exist_ok=True)
            (d / "type").write_text(kind + "\n")
            (d / "temp").write_text("0\n")
            self.virtual_files[f"{base}/temp"] = lambda f=fn: f"{int(f())}\n"
        ck = self.clocks
        for c in self.phone_cpus():
            base = f"/sys/devices/system/cpu/cpu{c}/cpufreq"
            d = self.sandbox / base.lstrip("/")
            d.mkdir(parents=True, exist_ok=True)
            mx = self.layout[c] if self.layout else None
            files = {
                "scaling_governor": lambda: "schedutil\n",
                "cpuinfo_max_freq": lambda mx=mx: f"{mx or ck.c.max_khz}\n",
                "scaling_max_freq": lambda mx=mx: f"{int((mx or ck.c.max_khz) * ck.now()[1])}\n",
                "scaling_cur_freq": lambda mx=mx: f"{int((mx or ck.c.max_khz) * ck.now()[0])}\n",
            }
            if self.layout:  # this host's CPUs (no layout) are not grouped into policies
                rel = " ".join(map(str, related_cpus(self.layout, c)))
                files["related_cpus"] = lambda rel=rel: rel + "\n"
            for name, fn in files.items():
                (d / name).write_text("0\n")
                self.virtual_files[f"{base}/{name}"] = fn

    def _hot(self) -> bool:
        return time.monotonic() < self.faults.hot_until

    def battery_milli_c(self) -> float:
        return (self.faults.hot_temp_c if self._hot() else 30.1) * 1000

    def host_path(self, device_path: str) -> Path:
        """Map an absolute device path into the sandbox; refuses escapes."""
        if not device_path.startswith("/"):
            device_path = posixpath.join(WRITABLE_ROOT, device_path)
        norm = posixpath.normpath(device_path)
        p = (self.sandbox / norm.lstrip("/")).resolve()
        if p != self.sandbox and self.sandbox not in p.parents:
            raise PermissionError(device_path)
        return p

    def writable(self, device_path: str) -> bool:
        norm = posixpath.normpath(device_path)
        return norm == WRITABLE_ROOT or norm.startswith(WRITABLE_ROOT + "/")

    def accepted_keys(self) -> list[tuple[int, int]]:
        keys = []
        for line in self.keys_file.read_bytes().splitlines():
            if line.strip():
                try:
                    keys.append(decode_adb_public_key(line))
                except (ValueError, struct.error):
                    continue
        return keys


def _host_cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return "host " + line.split(":", 1)[1].strip()
    except OSError:
        pass
    return "host cpu"
