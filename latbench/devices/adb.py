"""Android phones over ADB: push, run the stock `benchmark_model` under taskset, parse.

The same AdbDevice serves a real phone and the emulated one (kind "emulated"):
only the transport's address differs.

How a row is timed (the phone protocol; docs/phones.md says why):
  One shell round trip per row: the device state (timed cores' scaling_cur_freq,
  scaling_max_freq, cpuinfo_max_freq; `dumpsys thermalservice` status; battery
  level, temperature, charging; battery saver), then `repeats` back-to-back
  `benchmark_model` invocations on the profile's cores, then the state again.
  The first invocation warms the core for `warmup_s` seconds of wall time
  (benchmark_model's --warmup_min_secs), so an idle big core has ramped its
  clock before anything is timed; the later ones, started while the core is
  still busy, warm for `warmup_s / 5`. Each invocation's centre is the tool's own
  median (from its --result_file_path proto, else the stats line's `median=`), or its
  mean for old binaries that print no median; the row's median_ms is the median of
  those centres (`stat` = "median_of_medians" / "median_of_means" in the LUT), p10/p90
  are percentiles of them, min_ms is the fastest single run seen, and ci_rel is the
  distribution-free CI of that median. A row timed while the phone throttled
  (thermal status >= MODERATE, or a timed core's scaling_max_freq below its
  cpuinfo_max_freq) is timed again after a cool-down, and flagged "throttled"
  if it still is. A GPU/NNAPI row whose delegate took only part of the graph is
  flagged "partial_delegate" with the fraction. A value the phone does not show
  is recorded as "unavailable", never dropped.

Profile [options] (all optional unless said):
  transport      "auto" (default) | "tcp" | "usb" | "server". auto: tcp when `host`
                 is set; else the adb server when one is running (it owns USB
                 phones), else USB through adb-shell. latbench never starts a server.
  serial         phone serial (USB / server); default: the only phone attached
  host, port     for TCP (`adb tcpip 5555` on the phone first); port 5555
  adbkey         private key, default ~/.android/adbkey (created 0600 if missing)
  benchmark_model  local path to the Android `benchmark_model` binary (required
                 for kind adb; see docs/phones.md for where to get it)
  benchmark_model_sha256  its expected sha256: a different local file is refused;
                 the phone's copy is always checked against the local one after a push
  remote_dir     default /data/local/tmp/latbench
  keep_models    leave pushed models on the phone after the run (default false)
  repeats        benchmark_model invocations per row (default 5)
  warmup_s       seconds of warm-up before the first invocation of a row (default 1.0)
  stay_awake     `svc power stayon true` while profiling; the phone's own
                 stay_on_while_plugged_in setting is put back after (default true)
  max_temp_c     battery temperature above which we wait to cool (default 40)
  throttle_status  thermalservice status counted as throttled (default 2 = MODERATE)
  cool_wait_s    longest wait for cooling before measuring anyway (default 300)
  cool_poll_s    seconds between checks while cooling (default 10)
  temp_check_s   check temperature at most this often between rows (default 30)
  connect_timeout_s (10), auth_timeout_s (30), command_timeout_s (30),
  run_timeout_s (300, one row), retries (4), reconnect_wait_s (2: first back-off;
                 doubling, so about 30 s in all, enough for a Wi-Fi roam or a
                 USB re-enumeration)
  extra_args     list of extra benchmark_model flags, e.g. ["--use_caching=true"]
  model, product ro.product.model / ro.product.device this profile is meant for,
                 a string or a list (used by `latbench devices` to match a phone)
  cluster        which core cluster `cpus` must be in, checked against cpuinfo_max_freq
                 before anything is measured: "big" (default) | "mid" | "little" | "any"
  preflight      run the pre-flight (cores, one run on a tiny model) before the first
                 row (default true)
  wake_screen    wake the screen (`input keyevent KEYCODE_WAKEUP`) when the session starts and
                 when a row finds it off, then time that row once more (default false: rows
                 timed with the screen off are flagged "screen_off")
  task_profile   `settaskprofile $$ PROFILE` before each row, so the shell and the
                 benchmark_model it starts get that task profile where Android offers the
                 command; whether it applied is recorded with the row (default
                 "MaxPerformance"; "" for none)
Kind "emulated" only:
  connect        "127.0.0.1:PORT" of an already running emulated phone; else one
                 is started in-process on a free port
  sandbox        its filesystem directory (default: a temporary directory)
  clocks         table of latbench.devices.emulated.Clocks fields for the in-process phone,
                 e.g. {ramp_s = 0.4, throttle_after_s = 120}
  layout         core layout of the in-process phone: "tensor_g3" | "tensor_g4" | "tensor_g5"
                 (default: this host's CPUs)
  standin        which benchmark_model the stand-in plays: "classic" (default) | "compiled_model"
  standin_result_file  whether it takes --result_file_path (default true)
"""

from __future__ import annotations

import hashlib
import logging
import math
import re
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

from latbench.devices.adb_transport import (
    AdbServerTransport,
    AdbShellTransport,
    AuthRefused,
    CommandTimeout,
    PairingNeeded,
    PushRefused,
    Transport,
    TransportError,
    UsbBusy,
    route_for,
    sh_join,
)
from latbench.devices.base import Device, DeviceLost, DeviceProfile, ModelRunError
from latbench.devices.benchmark_output import (
    BenchmarkOutputError,
    BenchmarkResult,
    parse_benchmark_output,
)
from latbench.devices.benchmark_tools import TOOLS, identify, kind_of_output
from latbench.devices.measure import Measurement, median_ci
from latbench.devices.probe import CPUFREQ_LINE, parse_cpufreq, parse_getprop
from latbench.devices.result_proto import ResultProtoError, parse_result_proto
from latbench.errors import InputError

log = logging.getLogger(__name__)

FINGERPRINT_PROPS = {
    "model": "ro.product.model",
    "device": "ro.product.device",
    "manufacturer": "ro.product.manufacturer",
    "soc": "ro.soc.model",
    "platform": "ro.board.platform",
    "hardware": "ro.hardware",
    "android": "ro.build.version.release",
    "sdk": "ro.build.version.sdk",
    "build": "ro.build.fingerprint",
}
# the names each delegate goes by in `Replacing ... with delegate (NAME)` lines
_DELEGATE_NAMES = {
    "gpu": ("gpu",),
    "nnapi": ("nnapi",),
    "cpu": ("xnnpack",),
    "xnnpack": ("xnnpack",),
}
# 1 KB: y = x * a + b on a float32 [1, 8] input (one MUL, one ADD), converted from a
# tf.function; tracked in git despite .gitignore's *.tflite (see the exception there)
PREFLIGHT_MODEL = Path(__file__).resolve().parent / "data" / "preflight.tflite"
NNAPI_DEPRECATED_SDK = 35  # Android 15 deprecates NNAPI
UNAVAILABLE = "unavailable"
_FATAL_LINK = (AuthRefused, UsbBusy, PairingNeeded)
_MARK = "@@latbench"
WAKE_LINE = ["input", "keyevent", "KEYCODE_WAKEUP"]


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


class AdbDevice(Device):
    """One phone. Link errors are retried with a reconnect and back-off; then DeviceLost."""

    def __init__(
        self,
        profile: DeviceProfile,
        transport: Transport,
        benchmark_model: Path,
        on_close: Any = None,
    ):
        super().__init__(profile)
        o = profile.options
        self.t = transport
        self.binary = Path(benchmark_model)
        self.remote_dir = str(o.get("remote_dir", "/data/local/tmp/latbench")).rstrip("/")
        self.remote_bin = f"{self.remote_dir}/benchmark_model"
        self.command_timeout_s = float(o.get("command_timeout_s", 30))
        self.run_timeout_s = float(o.get("run_timeout_s", 300))
        self.retries = int(o.get("retries", 4))
        self.reconnect_wait_s = float(o.get("reconnect_wait_s", 2.0))
        self.max_temp_c = float(o.get("max_temp_c", 40))
        self.throttle_status = int(o.get("throttle_status", 2))
        self.cool_wait_s = float(o.get("cool_wait_s", 300))
        self.cool_poll_s = float(o.get("cool_poll_s", 10))
        self.temp_check_s = float(o.get("temp_check_s", 30))
        self.repeats = int(o.get("repeats", 5))
        self.warmup_s = float(o.get("warmup_s", 1.0))
        self.keep_models = bool(o.get("keep_models", False))
        self.stay_awake = bool(o.get("stay_awake", True))
        self.wake_screen = bool(o.get("wake_screen", False))
        self.task_profile = str(o.get("task_profile", "MaxPerformance"))
        if self.task_profile and not re.fullmatch(r"[A-Za-z0-9_]+", self.task_profile):
            raise InputError(
                f"task_profile must be a task profile name (letters, digits, _), got "
                f"{self.task_profile!r}",
                f"{profile.name}: options.task_profile",
            )
        self._screen_warned = False
        self._network = False
        self._stay_on_before: str | None = None  # the phone's setting before we kept it awake
        if self.repeats < 1 or self.warmup_s < 0:
            raise InputError("repeats must be >= 1 and warmup_s >= 0", f"{profile.name}: options")
        self.extra_args = [str(a) for a in o.get("extra_args", [])]
        self._on_close = on_close
        self._pushed: set[str] = set()
        self._models: set[str] = set()
        self._last_temp_check = -math.inf
        self._props: dict[str, str] | None = None
        self._bin_sha = _sha256(self.binary)
        want = str(o.get("benchmark_model_sha256", "")).lower()
        if want and want != self._bin_sha:
            raise InputError(
                f"{self.binary} has sha256 {self._bin_sha}, the profile expects {want}: "
                "a different benchmark_model (see docs/phones.md)",
                f"{profile.name}: options.benchmark_model_sha256",
            )
        self.cluster = str(o.get("cluster", "big"))
        if self.cluster not in ("big", "mid", "little", "any"):
            raise InputError(
                f'cluster must be "big", "mid", "little" or "any", got {self.cluster!r}',
                f"{profile.name}: options.cluster",
            )
        self._preflight_done = not bool(o.get("preflight", True))
        self.preflight_s: float | None = None
        self._call(self.t.connect)
        self.stale_killed = self._kill_stale()
        self._ensure_binary()
        self.tool_kind, self.result_file, self.tool_version = self._identify_tool()
        if self.stay_awake:
            # the user's own setting, restored on close (svc power stayon false would not)
            out, rc = self._sh(["settings", "get", "global", "stay_on_while_plugged_in"])
            self._stay_on_before = out.strip() if rc == 0 and out.strip().isdigit() else None
            self._sh(["svc", "power", "stayon", "true"])
        if self.wake_screen:  # stayon keeps a screen on, it does not turn one on
            self._sh(WAKE_LINE)

    # ---- link handling
    def _call(self, fn, *args, **kw):
        """Run a transport call; on a link error reconnect and retry with back-off, then DeviceLost."""
        last: Exception | None = None
        for attempt in range(self.retries + 1):
            try:
                return fn(*args, **kw)
            except _FATAL_LINK as exc:
                raise DeviceLost(str(exc)) from None
            except CommandTimeout:
                raise
            except TransportError as exc:
                last = exc
                if attempt == self.retries:
                    break
                wait = min(self.reconnect_wait_s * 2**attempt, 30.0)
                log.warning(
                    "%s: %s (attempt %d/%d), reconnecting in %.0f s",
                    self.profile.name,
                    exc,
                    attempt + 1,
                    self.retries + 1,
                    wait,
                )
                time.sleep(wait)
                try:
                    self.t.connect()
                except _FATAL_LINK as exc2:
                    raise DeviceLost(str(exc2)) from None
                except TransportError as exc2:
                    last = exc2
        raise DeviceLost(
            f"{self.profile.name}: phone unreachable after {self.retries + 1} attempts: {last}"
        )

    def _sh(
        self,
        argv: list[str] | str,
        timeout_s: float | None = None,
        suffix: str = "",
        hang_is_model_error: bool = False,
    ) -> tuple[str, int | None]:
        line = (argv if isinstance(argv, str) else sh_join(argv)) + suffix
        try:
            r = self._call(self.t.shell, line, timeout_s or self.command_timeout_s)
        except CommandTimeout as exc:
            self._reconnect_after_timeout()  # DeviceLost if the phone is gone for good
            if hang_is_model_error:
                raise ModelRunError(f"{exc}; killed it, the phone answers again") from None
            raise DeviceLost(f"{self.profile.name}: {exc}") from None
        return r.output, r.rc

    def _pkill_line(self) -> str:
        """`pkill -f` for our benchmark_model processes whose pattern cannot match itself.

        The line runs as `sh -c LINE`, so a plain pattern matches that shell's own command
        line and pkill kills it before the exit code prints. `[b]enchmark_model` matches
        the binary's path but not the text `[b]enchmark_model` in the shell's line.
        """
        return sh_join(["pkill", "-f", re.escape(f"{self.remote_dir}/") + "[b]enchmark_model"])

    def _reconnect_after_timeout(self) -> None:
        """A command hung: reconnect (the link may be wedged) and kill what hangs, so it does not
        keep the timed core busy for every later row."""
        try:
            self._call(self.t.connect)
            self.t.shell(self._pkill_line(), self.command_timeout_s)
        except (TransportError, DeviceLost) as exc:
            raise DeviceLost(
                f"{self.profile.name}: phone stopped answering after a timeout: {exc}"
            ) from None

    def _kill_stale(self) -> bool:
        """Kill benchmark processes an earlier session left running (a hung run outlives its host)."""
        _, rc = self._sh(self._pkill_line())
        if rc == 0:
            log.warning(
                "%s: killed a benchmark_model left running by an earlier session", self.profile.name
            )
        return rc == 0

    def _push(self, local: Path, remote: str, mode: int = 0o644) -> None:
        """Push unless a file of the same size is already there (names carry the content hash)."""
        if remote in self._pushed:
            return
        size = local.stat().st_size
        if self._call(self.t.remote_size, remote, self.command_timeout_s) != size:
            timeout = max(self.command_timeout_s, size / 1e6)  # >= 1 MB/s
            try:
                self._call(self.t.push, local, remote, mode, timeout)
            except CommandTimeout as exc:
                raise DeviceLost(f"{self.profile.name}: push timed out: {exc}") from None
            except PushRefused as exc:
                raise DeviceLost(str(exc)) from None
            if self._call(self.t.remote_size, remote, self.command_timeout_s) != size:
                raise DeviceLost(f"{self.profile.name}: {remote} has the wrong size after the push")
        self._pushed.add(remote)

    def _remote_sha(self, remote: str) -> str:
        out, rc = self._sh(["sha256sum", remote])
        word = out.split()[0] if out.split() else ""
        return word.lower() if rc == 0 and re.fullmatch(r"[0-9a-fA-F]{64}", word) else ""

    def _ensure_binary(self) -> None:
        """Push benchmark_model once, under a name carrying its hash, and check the phone's copy."""
        out, rc = self._sh(["mkdir", "-p", f"{self.remote_dir}/models"])
        if rc not in (0, None):
            raise DeviceLost(f"{self.profile.name}: cannot create {self.remote_dir}: {out.strip()}")
        self.remote_bin = f"{self.remote_dir}/benchmark_model.{self._bin_sha[:12]}"
        self._push(self.binary, self.remote_bin, 0o755)
        got = self._remote_sha(self.remote_bin)
        if got and got != self._bin_sha:  # a torn or corrupted copy of the same size: push it again
            log.warning(
                "%s: the phone's benchmark_model has sha256 %s, not %s; pushing again",
                self.profile.name,
                got[:12],
                self._bin_sha[:12],
            )
            self._sh(["rm", "-f", self.remote_bin])
            self._pushed.discard(self.remote_bin)
            self._push(self.binary, self.remote_bin, 0o755)
            got = self._remote_sha(self.remote_bin)
            if got and got != self._bin_sha:
                raise DeviceLost(
                    f"{self.profile.name}: {self.remote_bin} on the phone does not match "
                    f"{self.binary} (sha256 {got[:12]} vs {self._bin_sha[:12]})"
                )
        if not got:
            log.warning(
                "%s: the phone has no sha256sum; the pushed binary was checked by size only",
                self.profile.name,
            )

    # ---- which benchmark_model, and a pre-flight check
    def _identify_tool(self) -> tuple[str | None, bool, str]:
        """Ask the pushed binary for its `--help`: which of the two tools, result proto or not."""
        out, _ = self._sh(sh_join([self.remote_bin, "--help"]) + " 2>&1")
        info = identify(out)
        if info.kind is None:
            log.info(
                "%s: benchmark_model --help did not say which tool it is; the first run will",
                self.profile.name,
            )
        return info.kind, info.result_file, info.version

    def _tool_flags(self) -> list[str]:
        kind = self.tool_kind or "classic"
        try:
            return TOOLS[kind].flags_for(self.profile.delegate)
        except KeyError:
            raise InputError(
                f"delegate {self.profile.delegate!r} is not offered by the {kind} benchmark_model "
                f"({TOOLS[kind].description}); use the other tool (docs/phones.md)",
                f"{self.profile.name}: delegate",
            ) from None

    def clusters(self) -> dict[int, int]:
        """cpu number -> cpuinfo_max_freq (kHz), from sysfs ({} where unreadable)."""
        out, _ = self._sh(CPUFREQ_LINE)
        return parse_cpufreq(out)[0]

    def check_cores(self) -> None:
        """The profile's cores exist and belong to the cluster it claims; else one-line InputError."""
        cpus = self.profile.cpus
        if not cpus:
            return
        freqs = self.clusters()
        where = f"{self.profile.name}: cpus"
        if not freqs:
            log.warning("%s: cannot read cpuinfo_max_freq; core check skipped", self.profile.name)
            return
        missing = [c for c in cpus if c not in freqs]
        if missing:
            raise InputError(
                f"the phone has CPUs {_ranges(sorted(freqs))}, no cpu{','.join(map(str, missing))}: "
                f"this profile is for another core layout (run `latbench devices --probe SERIAL` "
                f"or copy a profile for this phone); nothing was measured",
                where,
            )
        levels = sorted(set(freqs.values()))
        want = {
            "big": [levels[-1]],
            "little": [levels[0]],
            "mid": levels[1:-1] or levels,
            "any": levels,
        }[self.cluster]
        wrong = [c for c in cpus if freqs[c] not in want]
        if wrong:
            best = [c for c, f in sorted(freqs.items()) if f in want]
            raise InputError(
                f"cpu{','.join(map(str, wrong))} runs at most "
                f"{max(freqs[c] for c in wrong) / 1e6:.2f} GHz, not in the {self.cluster} cluster "
                f"(cpu {_ranges(best)}, {max(want) / 1e6:.2f} GHz): set cpus = {best[-1:]} "
                f"or options.cluster; nothing was measured",
                where,
            )

    def preflight(self) -> float:
        """Before the first measurement: the cores, then one short run on a tiny model.

        Stops with one line (InputError) when the cores are wrong, the binary cannot run, or
        its output is not one latbench reads. Returns the seconds it took.
        """
        if self._preflight_done:
            return 0.0
        t0 = time.monotonic()
        self.check_cores()
        self._tool_flags()  # a delegate this tool does not offer
        sdk = self.props().get("ro.build.version.sdk", "")
        if self.profile.delegate == "nnapi" and sdk.isdigit() and int(sdk) >= NNAPI_DEPRECATED_SDK:
            log.warning(
                "%s: NNAPI is deprecated from Android 15 (SDK %s on this phone): its drivers may "
                "be missing or slow; GPU or CPU rows are the ones to trust",
                self.profile.name,
                sdk,
            )
        remote = f"{self.remote_dir}/models/preflight.tflite"
        self._push(PREFLIGHT_MODEL, remote)
        self._models.add(remote)
        line = self._run_line(remote, 0, 3, 0.0, 1.0)
        out, _ = self._sh(line, timeout_s=self.run_timeout_s, suffix=" 2>&1")
        sec = _sections(out)
        text, rc = sec.get("run 0", ""), _rc(out, 0)
        where = f"{self.profile.name}: options.benchmark_model"
        try:
            r = parse_benchmark_output(text)
        except BenchmarkOutputError:
            last = next((x.strip() for x in reversed(text.splitlines()) if x.strip()), "")
            raise InputError(
                f"pre-flight: benchmark_model on a tiny model exited {rc} and printed nothing "
                f"latbench can read ({last[:160]!r}): wrong binary for this phone? nothing was measured",
                where,
            ) from None
        if rc not in (0, None):
            raise InputError(f"pre-flight: benchmark_model exited {rc} on a tiny model", where)
        seen = kind_of_output(r.form)
        if self.tool_kind is None:
            self.tool_kind = seen
        elif seen != self.tool_kind:
            raise InputError(
                f"pre-flight: --help says {self.tool_kind}, the output is {seen}'s", where
            )
        self._preflight_done = True
        self.preflight_s = time.monotonic() - t0
        log.info(
            "%s: pre-flight passed in %.1f s (%s benchmark_model)",
            self.profile.name,
            self.preflight_s,
            self.tool_kind,
        )
        return self.preflight_s

    # ---- the Device interface
    def props(self) -> dict[str, str]:
        if self._props is None:
            out, _ = self._sh(["getprop"])
            self._props = parse_getprop(out)
        return self._props

    def fingerprint(self) -> dict[str, str]:
        p = self.props()
        fp = {"device": self.profile.name, "kind": self.profile.kind}
        for k, prop in FINGERPRINT_PROPS.items():
            fp[k] = p.get(prop, "")
        fp.update(
            {
                "runtime": "benchmark_model",
                "runtime_sha256": self._bin_sha[:16],
                "benchmark_tool": self.tool_kind or "unknown",
                "benchmark_tool_version": self.tool_version,
                "result_source": "result_proto" if self.result_file else "text",
                "threads": str(self.profile.threads),
                "cpus": ",".join(map(str, self.profile.cpus)) or "all",
                "cpu_mask": self.profile.cpu_mask or "all",
                "delegate": self.profile.delegate,
            }
        )
        return fp

    def health(self) -> dict[str, Any]:
        """Temperatures, governors, frequencies and thermal status now; recorded, never compared."""
        h: dict[str, Any] = {"serial": self.props().get("ro.serialno", ""), "time": time.time()}
        h.update(self.state())
        out, _ = self._sh(
            "grep -H . /sys/class/thermal/thermal_zone*/type /sys/class/thermal/thermal_zone*/temp"
        )
        zones: dict[str, dict[str, str]] = {}
        for path, _, val in (ln.partition(":") for ln in out.splitlines() if ":" in ln):
            parts = path.rsplit("/", 2)
            if len(parts) == 3 and parts[1].startswith("thermal_zone"):
                zones.setdefault(parts[1], {})[parts[2]] = val.strip()
        h["thermal_c"] = {
            z.get("type", name): _milli(z.get("temp"))
            for name, z in sorted(zones.items())
            if _milli(z.get("temp")) is not None
        } or UNAVAILABLE
        out, _ = self._sh(
            "grep -H . /sys/devices/system/cpu/cpu*/cpufreq/scaling_governor "
            "/sys/devices/system/cpu/cpu*/cpufreq/scaling_cur_freq"
        )
        cpus: dict[str, dict[str, str]] = {}
        for path, _, val in (ln.partition(":") for ln in out.splitlines() if ":" in ln):
            m = re.search(r"/(cpu\d+)/cpufreq/(\w+)$", path)
            if m:
                cpus.setdefault(m[1], {})[m[2]] = val.strip()
        h["cpufreq"] = cpus or UNAVAILABLE
        return h

    # ---- device state
    def _freq_files(self) -> list[str]:
        cpus = self.profile.cpus
        names = ("scaling_cur_freq", "scaling_max_freq", "cpuinfo_max_freq")
        if not cpus:
            return [f"/sys/devices/system/cpu/cpu[0-9]*/cpufreq/{n}" for n in names]
        return [f"/sys/devices/system/cpu/cpu{c}/cpufreq/{n}" for c in cpus for n in names]

    def _state_line(self, tag: str) -> str:
        """Shell commands printing the device state, between markers; stderr kept (errors are data)."""

        def mark(part: str) -> str:
            return sh_join(["echo", f"{_MARK} state:{tag}:{part}"])

        return "; ".join(
            [
                mark("freq"),
                # globs (no profile cpus) are fixed text and must stay unquoted to expand
                # (each command's stderr joins its stdout: shell v2 routes keep them apart otherwise)
                (
                    sh_join(["grep", "-H", ".", *self._freq_files()])
                    if self.profile.cpus
                    else "grep -H . " + " ".join(self._freq_files())
                )
                + " 2>&1",
                mark("thermal"),
                sh_join(["dumpsys", "thermalservice"]) + " 2>&1",
                mark("battery"),
                sh_join(["dumpsys", "battery"]) + " 2>&1",
                mark("saver"),
                sh_join(["settings", "get", "global", "low_power"]) + " 2>&1",
                mark("power"),
                sh_join(["dumpsys", "power"]) + " 2>&1",
                mark("end"),
            ]
        )

    def state(self) -> dict[str, Any]:
        """The device state now (one round trip)."""
        out, _ = self._sh(self._state_line("now"), suffix=" 2>&1")
        return parse_state(_sections(out), "now")

    def throttled(self, st: dict[str, Any], cooling: bool = False) -> list[str]:
        """Why this state counts as throttled or too hot ([] = fine); unavailable values never do.

        While cooling down, the thermal status must fall one level below the throttling one, so
        the row timed next does not tip the phone straight back over.
        """
        why = []
        ts = st.get("thermal_status")
        if isinstance(ts, int) and ts >= (
            max(1, self.throttle_status - 1) if cooling else self.throttle_status
        ):
            why.append(f"thermal status {ts}")
        capped = st.get("capped_cpus")
        if isinstance(capped, list) and capped:
            why.append(
                f"scaling_max_freq below cpuinfo_max_freq on cpu {','.join(map(str, capped))}"
            )
        bt = st.get("battery_temp_c")
        if isinstance(bt, (int, float)) and bt > self.max_temp_c:
            why.append(f"battery {bt:.1f} C > {self.max_temp_c:g} C")
        return why

    @staticmethod
    def screen_off(st: dict[str, Any]) -> bool:
        """The state says the screen was off (unavailable never counts)."""
        return st.get("screen_on") is False

    def battery_temp_c(self) -> float | None:
        t = self.state().get("battery_temp_c")
        return t if isinstance(t, (int, float)) else None

    def wait_cool(self) -> float:
        """Block until nothing says hot or throttled (or cool_wait_s passed); seconds waited."""
        start = time.monotonic()
        first = True
        while True:
            why = self.throttled(self.state(), cooling=True)
            if not why:
                return 0.0 if first else time.monotonic() - start
            first = False
            waited = time.monotonic() - start
            if waited >= self.cool_wait_s:
                log.warning(
                    "%s: still %s after %.0f s of cooling; measuring anyway",
                    self.profile.name,
                    "; ".join(why),
                    waited,
                )
                return waited
            log.info("%s: %s, waiting to cool", self.profile.name, "; ".join(why))
            time.sleep(self.cool_poll_s)

    # ---- timing
    @property
    def _result_path(self) -> str:
        return f"{self.remote_dir}/result.pb"

    def _run_args(
        self,
        remote_model: str,
        num_runs: int,
        warmup_s: float,
        max_s: float,
        warmup_runs: int,
        op_profiling: bool = False,
    ) -> list[str]:
        tool = TOOLS[self.tool_kind or "classic"]
        extra = ["--enable_op_profiling=true"] if op_profiling else []
        if self.result_file:
            extra.append(f"--result_file_path={self._result_path}")
        if self._network:
            extra.append("--report_peak_memory_footprint=true")
        if self.profile.delegate == "gpu" and tool.gpu_cache_flags:
            # compiled GPU kernels are cached on the phone, not rebuilt at every invocation
            token = remote_model.rsplit("/", 1)[-1].split(".")[0]
            extra += [
                f"--delegate_serialize_dir={self.remote_dir}/gpu_cache",
                f"--delegate_serialize_token={token}",
            ]
        return (["taskset", self.profile.cpu_mask] if self.profile.cpu_mask else []) + [
            self.remote_bin,
            f"--graph={remote_model}",
            f"--num_threads={self.profile.threads}",
            *self._tool_flags(),
            f"--warmup_runs={warmup_runs}",
            f"--warmup_min_secs={warmup_s:g}",
            f"--num_runs={num_runs}",
            "--min_secs=0",
            f"--max_secs={max_s:g}",
            *extra,
            *self.extra_args,
        ]

    def _run_line(
        self,
        remote_model: str,
        i: int,
        n: int,
        warm: float,
        max_s: float,
        warmup_runs: int = 1,
        op_profiling: bool = False,
    ) -> str:
        """One invocation between markers: its log (stdout and stderr), its exit code, and the
        result proto (base64) where the tool writes one; a stale proto is removed first."""
        res = self._result_path
        parts = [sh_join(["echo", f"{_MARK} run {i}"])]
        if self.result_file:
            parts.append(sh_join(["rm", "-f", res]))
        parts += [
            sh_join(self._run_args(remote_model, n, warm, max_s, warmup_runs, op_profiling))
            + " 2>&1",
            f"echo {_MARK} rc {i} $?",
        ]
        if self.result_file:
            parts += [
                sh_join(["echo", f"{_MARK} proto {i}"]),
                sh_join(["base64", res]) + " 2>/dev/null",
            ]
        return "; ".join(parts)

    def _row_line(self, remote_model: str, repeats: int, first_warmup_s: float) -> str:
        pr = self.profile.protocol
        n = max(3, math.ceil(max(pr.min_runs, 1) / self.repeats))
        max_s = max(pr.max_seconds / self.repeats, 0.05)
        parts = []
        if self.task_profile:
            # `$$` (this shell) must reach the phone unquoted; the name was checked in __init__
            parts += [
                f"settaskprofile $$ {self.task_profile} 2>&1",
                f"echo {_MARK} taskprofile $?",
            ]
        parts.append(self._state_line("before"))
        for i in range(repeats):
            warm = first_warmup_s if i == 0 else self.warmup_s / 5
            parts.append(self._run_line(remote_model, i, n, warm, max_s, pr.warmup_runs))
        parts.append(self._state_line("after"))
        return "; ".join(parts)

    def _time_row(self, remote: str, name: str) -> tuple[list[BenchmarkResult], dict, dict]:
        """Time one row: (per-invocation results, state before, state after); the state
        before carries whether the task profile applied (`task_profile`)."""
        results: list[BenchmarkResult] = []
        before = after = {}
        first_warm = self.warmup_s
        for round_ in range(3):  # rerun (more invocations) while the median is not pinned down
            out, _ = self._sh(
                self._row_line(remote, self.repeats, first_warm),
                timeout_s=self.run_timeout_s,
                suffix=" 2>&1",
                hang_is_model_error=True,
            )
            sec = _sections(out)
            if round_ == 0:
                before = parse_state(sec, "before")
                if self.task_profile:
                    m = re.search(rf"^{_MARK} taskprofile (\d+)\s*$", out, flags=re.M)
                    before["task_profile"] = {
                        "name": self.task_profile,
                        "applied": bool(m) and m[1] == "0",
                        "rc": int(m[1]) if m else UNAVAILABLE,  # 127: no such command
                    }
            after = parse_state(sec, "after")
            for i in range(self.repeats):
                r = _parsed_run(
                    sec.get(f"run {i}", ""), _rc(out, i), name, self, sec.get(f"proto {i}")
                )
                results.append(r)
            means = _centres(results)
            lo, hi = median_ci(means)
            med = float(np.median(means))
            ci = max(med - lo, hi - med) / med if med > 0 else math.inf
            runs = sum(r.inference.count for r in results if r.inference)
            if ci <= self.profile.protocol.target_ci or runs >= self.profile.protocol.max_runs:
                break
            first_warm = self.warmup_s  # a new shell line: the core may have idled meanwhile
        return results, before, after

    def _with_proto(self, r: BenchmarkResult, b64: str | None) -> BenchmarkResult:
        """The run's statistics from its result proto where there is one; else the text's."""
        if not self.result_file or not b64 or not b64.strip():
            return r
        import base64
        import binascii

        try:
            proto = parse_result_proto(base64.b64decode("".join(b64.split()), validate=True))
        except (binascii.Error, ResultProtoError) as exc:
            log.warning("%s: unreadable result proto (%s); using the text", self.profile.name, exc)
            return r
        return r.with_proto(proto)

    def measure(self, model: Path, network: bool = False) -> Measurement:
        model = Path(model)
        self.preflight()
        self._network = network  # whole networks also report their memory footprint
        cooled = 0.0
        if time.monotonic() - self._last_temp_check >= self.temp_check_s:
            cooled = self.wait_cool()
            self._last_temp_check = time.monotonic()
        remote = f"{self.remote_dir}/models/{_sha256(model)[:24]}.tflite"
        self._push(model, remote)
        self._models.add(remote)
        results, before, after = self._time_row(remote, model.name)
        flags: list[str] = []
        why = self.throttled(before) + self.throttled(after)
        if why:
            log.warning(
                "%s: %s was timed while %s; cooling down and timing it again",
                self.profile.name,
                model.name,
                "; ".join(why),
            )
            cooled += self.wait_cool()
            results, before, after = self._time_row(remote, model.name)
            why = self.throttled(before) + self.throttled(after)
            if why:
                flags.append("throttled")
                log.warning(
                    "%s: %s still throttled (%s): row flagged",
                    self.profile.name,
                    model.name,
                    "; ".join(why),
                )
        if self.screen_off(before) or self.screen_off(after):
            if self.wake_screen:
                log.warning(
                    "%s: the screen went off while %s was timed; waking it and timing it again",
                    self.profile.name,
                    model.name,
                )
                self._sh(WAKE_LINE)
                results, before, after = self._time_row(remote, model.name)
            if self.screen_off(before) or self.screen_off(after):
                flags.append("screen_off")
                if not self._screen_warned:
                    self._screen_warned = True
                    log.warning(
                        "%s: %s was timed with the screen off (a phone schedules shell "
                        "processes differently then): row flagged%s",
                        self.profile.name,
                        model.name,
                        "" if self.wake_screen else "; set options.wake_screen = true to wake it",
                    )
        m = _combine(results, self.warmup_s)
        deleg = _delegation(results, self.profile.delegate)
        if self.profile.delegate in ("gpu", "nnapi"):
            frac = deleg.get("fraction")
            if deleg.get("none") or (isinstance(frac, float) and frac < 1.0):
                flags.append("partial_delegate")
                log.warning(
                    "%s: the %s delegate took %s of %s's nodes: the rest ran on the CPU",
                    self.profile.name,
                    self.profile.delegate,
                    f"{frac:.0%}" if isinstance(frac, float) else "none",
                    model.name,
                )
        state = {
            "serial": self.props().get("ro.serialno", ""),  # which phone (a farm merges several)
            "before": before,
            "after": after,
            "flags": flags,
            "cooled_s": round(cooled, 2),
            **deleg,
        }
        memory = _memory(results) if network else {}
        extra = dict(
            m.extra,
            **({"memory": memory} if memory else {}),
            model_sha256=remote.rsplit("/", 1)[1][:24],
            cooled_s=round(cooled, 2),
            state=state,
            flags=flags,
        )
        return Measurement(
            m.median_ms, m.p10_ms, m.p90_ms, m.std_ms, m.mean_ms, m.runs, m.ci_rel, extra
        )

    def op_profile(self, model: Path) -> BenchmarkResult:
        """One run with `--enable_op_profiling=true` (the classic tool only): its result, the
        operator tables included; the profiler's own cost is in those times, so they rank
        operators and compare with the LUT's, they do not replace `measure`."""
        model = Path(model)
        self.preflight()
        if (self.tool_kind or "classic") != "classic":
            raise InputError(
                f"{self.profile.name}: the CompiledModel benchmark_model prints no per-operator "
                f"table; push the classic one (options.benchmark_model) for --in-network",
                "--in-network",
            )
        remote = f"{self.remote_dir}/models/{_sha256(model)[:24]}.tflite"
        self._push(model, remote)
        self._models.add(remote)
        pr = self.profile.protocol
        line = self._run_line(
            remote, 0, max(pr.min_runs, 10), self.warmup_s, max(pr.max_seconds, 0.5),
            pr.warmup_runs, op_profiling=True,
        )  # fmt: skip
        out, _ = self._sh(line, timeout_s=self.run_timeout_s, suffix=" 2>&1",
                          hang_is_model_error=True)  # fmt: skip
        return _parsed_run(_sections(out).get("run 0", ""), _rc(out, 0), model.name)

    def close(self) -> None:
        try:
            if self.t is not None:
                try:
                    if not self.keep_models and self._models:
                        self.t.shell(
                            sh_join(["rm", "-f", *sorted(self._models)]), self.command_timeout_s
                        )
                    if self.stay_awake:
                        before = self._stay_on_before
                        self.t.shell(
                            sh_join(
                                ["settings", "put", "global", "stay_on_while_plugged_in", before]
                                if before is not None
                                else ["svc", "power", "stayon", "false"]
                            ),
                            self.command_timeout_s,
                        )
                except TransportError as exc:
                    log.warning("%s: could not tidy up the phone: %s", self.profile.name, exc)
                self.t.close()
        finally:
            if self._on_close is not None:
                self._on_close()
                self._on_close = None


def _sections(out: str) -> dict[str, str]:
    """Output split at our `@@latbench NAME` marker lines: NAME -> the text after it."""
    sec: dict[str, str] = {}
    name = None
    buf: list[str] = []
    for line in out.splitlines():
        if line.startswith(_MARK + " "):
            if name is not None:
                sec[name] = "\n".join(buf)
            name, buf = line[len(_MARK) + 1 :].strip(), []
        elif name is not None:
            buf.append(line)
    if name is not None:
        sec[name] = "\n".join(buf)
    return sec


def parse_state(sec: dict[str, str], tag: str) -> dict[str, Any]:
    """Device state from the sections of a state block; what the phone did not show is UNAVAILABLE."""

    def part(name: str) -> str:
        return sec.get(f"state:{tag}:{name}", "")

    st: dict[str, Any] = {}
    cpus: dict[int, dict[str, int]] = {}
    errors = []
    for line in part("freq").splitlines():
        m = re.match(r"^/sys/devices/system/cpu/cpu(\d+)/cpufreq/(\w+):(\d+)\s*$", line)
        if m:
            cpus.setdefault(int(m[1]), {})[m[2]] = int(m[3])
        elif line.strip():
            errors.append(line.strip())
    cur = [c["scaling_cur_freq"] for c in cpus.values() if c.get("scaling_cur_freq")]
    st["cur_khz"] = min(cur) if cur else UNAVAILABLE
    mx = [c["scaling_max_freq"] for c in cpus.values() if c.get("scaling_max_freq")]
    st["max_khz"] = min(mx) if mx else UNAVAILABLE
    hw = [c["cpuinfo_max_freq"] for c in cpus.values() if c.get("cpuinfo_max_freq")]
    st["cpuinfo_max_khz"] = max(hw) if hw else UNAVAILABLE
    if mx and hw:
        st["capped_cpus"] = sorted(
            n
            for n, c in cpus.items()
            if c.get("scaling_max_freq")
            and c.get("cpuinfo_max_freq")
            and c["scaling_max_freq"] < c["cpuinfo_max_freq"]
        )
    else:
        st["capped_cpus"] = UNAVAILABLE
    if errors:
        st["freq_errors"] = errors[:4]
    m = re.search(r"^Thermal Status:\s*(\d+)", part("thermal"), flags=re.M)
    st["thermal_status"] = int(m[1]) if m else UNAVAILABLE
    bat = part("battery")
    for key, pat, conv in (
        ("battery_level", r"^\s*level:\s*(\d+)", int),
        ("battery_temp_c", r"^\s*temperature:\s*(-?\d+)", lambda v: int(v) / 10),
    ):
        m = re.search(pat, bat, flags=re.M)
        st[key] = conv(m[1]) if m else UNAVAILABLE
    powered = re.findall(r"^\s*(AC|USB|Wireless|Dock) powered:\s*(true|false)", bat, flags=re.M)
    st["charging"] = (
        (",".join(k.lower() for k, v in powered if v == "true") or "no") if powered else UNAVAILABLE
    )
    st["power_saver"] = {"0": False, "1": True}.get(part("saver").strip(), UNAVAILABLE)
    # PowerManagerService's dump: `mWakefulness=Awake|Asleep|Dreaming|Dozing` and
    # `Display Power: state=ON|OFF|DOZE|...` (Display.stateToString)
    power = part("power")
    m = re.search(r"^\s*mWakefulness=(\w+)", power, flags=re.M)
    st["wakefulness"] = m[1] if m else UNAVAILABLE
    m = re.search(r"^Display Power: state=(\w+)", power, flags=re.M)
    st["display"] = m[1] if m else UNAVAILABLE
    if m or st["wakefulness"] != UNAVAILABLE:
        st["screen_on"] = st["wakefulness"] in ("Awake", UNAVAILABLE) and st["display"] in (
            "ON",
            "VR",
            UNAVAILABLE,
        )
    else:
        st["screen_on"] = UNAVAILABLE
    return st


def _rc(out: str, i: int) -> int | None:
    """Invocation i's exit code from its `@@latbench rc I CODE` line (None: it never printed)."""
    m = re.search(rf"^{_MARK} rc {i} (-?\d+)\s*$", out, flags=re.M)
    return int(m[1]) if m else None


def _ranges(cpus: list[int]) -> str:
    return ",".join(map(str, cpus)) if len(cpus) < 3 else f"{cpus[0]}-{cpus[-1]}"


def _centres(results: list[BenchmarkResult]) -> list[float]:
    """Each invocation's centre in us: the tool's own median where every invocation printed
    (or wrote) one, else their means."""
    meds = [r.median_us for r in results]
    if all(m is not None for m in meds):
        return [float(m) for m in meds]  # type: ignore[arg-type]
    return [r.inference_avg_us for r in results]


def _combine(results: list[BenchmarkResult], warmup_s: float) -> Measurement:
    """One row from several invocations: the median of their medians where the tool gives
    them, else of their means (see the module docstring)."""
    by_median = all(r.median_us is not None for r in results)
    means = np.array(_centres(results), dtype=float) / 1e3
    stats = [r.inference for r in results if r.inference is not None]
    counts = np.array([s.count for s in stats], dtype=float)
    med = float(np.median(means))
    lo, hi = median_ci(means)
    total = float(counts.sum())
    mean = float((means * counts).sum() / total) if total else float(means.mean())
    # pooled std of single runs: within-invocation variance plus the spread of the means
    var = (
        sum(((s.std / 1e3) ** 2 + (m - mean) ** 2) * s.count for s, m in zip(stats, means)) / total
        if total
        else 0.0
    )
    extra = {
        "source": "benchmark_model",
        "output_form": results[0].form,
        "result_source": results[0].source,
        "stat": "median_of_medians" if by_median else "median_of_means",
        "invocations": len(results),
        "runs_per_invocation": int(counts.max()) if len(counts) else 0,
        "warmup_s": warmup_s,
        "min_ms": min(s.min for s in stats) / 1e3 if stats else med,
        ("medians_ms" if by_median else "means_ms"): [round(float(x), 5) for x in means],
    }
    return Measurement(
        median_ms=med,
        p10_ms=float(np.percentile(means, 10)),
        p90_ms=float(np.percentile(means, 90)),
        std_ms=math.sqrt(var),
        mean_ms=mean,
        runs=int(total),
        ci_rel=max(med - lo, hi - med) / med if med > 0 else math.inf,
        extra=extra,
    )


def _memory(results: list[BenchmarkResult]) -> dict[str, Any]:
    """A whole network's memory from its invocations: the highest periodic peak
    (--report_peak_memory_footprint) and the median max-RSS delta of the tool's process, in MB.
    The tool says both are approximate: its own allocations count too."""
    peaks = [r.memory["peak_mem_mb"] for r in results if r.memory.get("peak_mem_mb")]
    deltas = [
        r.memory["overall_footprint_kb"] / 1024
        for r in results
        if r.memory.get("overall_footprint_kb") is not None
    ]
    out: dict[str, Any] = {}
    if peaks:
        out["peak_mb"] = round(max(peaks), 3)
    if deltas:
        out["delta_mb"] = round(float(np.median(deltas)), 3)
    if out:
        out["source"] = "benchmark_model"
    return out


def _delegation(results: list[BenchmarkResult], requested: str) -> dict[str, Any]:
    """What the requested delegate took, and apart from it what the XNNPACK fallback took
    (last invocation), with the GPU API the delegate initialised."""
    r = results[-1]
    out: dict[str, Any] = {}
    if r.gpu_backend:
        out["gpu_backend"] = r.gpu_backend
    if r.not_delegated:
        return {**out, "delegate_nodes": 0, "fraction": 0.0, "none": True}
    if not r.delegations:
        return out
    names = _DELEGATE_NAMES.get(requested, ())
    mine = [d for d in r.delegations if any(n in d.name.lower() for n in names)]
    others = [d for d in r.delegations if d not in mine]
    if requested in ("gpu", "nnapi") and not mine:
        # only the fallback's line: the requested delegate took nothing
        out.update({"delegate_nodes": 0, "fraction": 0.0, "none": True})
    elif mine:
        d = mine[0]
        out.update(
            {
                "delegate": d.name,
                "delegate_nodes": d.nodes,
                "graph_nodes": d.total if d.total is not None else UNAVAILABLE,
                "partitions": d.partitions,
            }
        )
        if d.fraction is not None:
            out["fraction"] = round(d.fraction, 4)
    if others:
        out["fallback"] = [
            {"delegate": d.name, "nodes": d.nodes, "of": d.total, "partitions": d.partitions}
            for d in others
        ]
    return out


def _milli(v: str | None) -> float | None:
    """Thermal zone temps are millidegrees on most phones, degrees on some."""
    try:
        x = float(v)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return None
    return x / 1000 if abs(x) > 200 else x


# ---- opening


def make_transport(profile: DeviceProfile) -> Transport:
    """The transport for a profile under the route policy of adb_transport.route_for."""
    o = profile.options
    kind = str(o.get("transport", "auto"))
    if kind not in ("auto", "tcp", "usb", "server"):
        raise InputError(
            f"transport must be auto|tcp|usb|server, got {kind!r}",
            f"{profile.name}: options.transport",
        )
    timeouts = {
        "connect_timeout_s": float(o.get("connect_timeout_s", 10)),
        "auth_timeout_s": float(o.get("auth_timeout_s", 30)),
    }
    if kind == "tcp" and not o.get("host"):
        raise InputError("transport tcp needs options.host", f"{profile.name}: options.host")
    try:
        route = route_for(kind, bool(o.get("host")))
    except UsbBusy as exc:
        raise InputError(str(exc), f"{profile.name}: options.transport") from None
    if route == "tcp":
        return AdbShellTransport(
            host=str(o["host"]), port=int(o.get("port", 5555)), key_path=o.get("adbkey"), **timeouts
        )
    if route == "server":
        return AdbServerTransport(serial=o.get("serial"))
    return AdbShellTransport(serial=o.get("serial"), key_path=o.get("adbkey"), **timeouts)


def open_adb_device(profile: DeviceProfile) -> AdbDevice:
    """An AdbDevice for a phone (kind adb): its benchmark_model binary, over its transport."""
    o = profile.options
    if not o.get("benchmark_model"):
        raise InputError(
            "options.benchmark_model must point at the Android benchmark_model binary "
            "(see docs/phones.md)",
            f"{profile.name}",
        )
    binary = Path(str(o["benchmark_model"])).expanduser()
    if not binary.is_file():
        raise InputError(
            f"{binary} does not exist: put the Android benchmark_model binary there, or point "
            f"options.benchmark_model at it (docs/phones.md says where to get it); nothing "
            f"was measured",
            f"{profile.name}: options.benchmark_model",
        )
    return AdbDevice(profile, make_transport(profile), binary)


def open_emulated_device(profile: DeviceProfile) -> AdbDevice:
    """An AdbDevice on the stand-in phone (kind emulated), which this starts on loopback."""
    from latbench.devices.emulated import Clocks, EmulatedPhone, standin_script

    o = profile.options
    clocks = o.get("clocks", {})
    try:
        clocks = Clocks(**clocks)
    except TypeError as exc:
        raise InputError(f"bad clocks table: {exc}", f"{profile.name}: options.clocks") from None
    stop = None
    if o.get("connect"):
        host, _, port = str(o["connect"]).rpartition(":")
        host, port_i = host or "127.0.0.1", int(port)
        sandbox = Path(o.get("sandbox") or tempfile.mkdtemp(prefix="latbench-stub-"))
    else:
        tmp = None if o.get("sandbox") else tempfile.TemporaryDirectory(prefix="latbench-phone-")
        sandbox = Path(o.get("sandbox") or tmp.name)
        phone = EmulatedPhone(
            sandbox / "phone",
            port=int(o.get("port", 0)),
            clocks=clocks,
            layout=o.get("layout"),
        ).start()
        host, port_i = phone.host, phone.port

        def stop() -> None:
            phone.stop()
            if tmp is not None:
                tmp.cleanup()

    stub = sandbox / "benchmark_model.standin"
    stub.parent.mkdir(parents=True, exist_ok=True)
    try:
        script = standin_script(
            str(o.get("standin", "classic")), bool(o.get("standin_result_file", True))
        )
    except ValueError as exc:
        raise InputError(str(exc), f"{profile.name}: options.standin") from None
    stub.write_bytes(script)
    t = AdbShellTransport(
        host=host,
        port=port_i,
        key_path=o.get("adbkey"),
        connect_timeout_s=float(o.get("connect_timeout_s", 10)),
        auth_timeout_s=float(o.get("auth_timeout_s", 10)),
    )
    try:
        return AdbDevice(profile, t, stub, on_close=stop)
    except BaseException:
        if stop:
            stop()
        raise


def _parsed_run(text: str, rc, name: str, dev=None, proto: str | None = None) -> BenchmarkResult:
    """One invocation's result (with its result proto, when `dev` reads one), or a
    ModelRunError for output that is not a run or a non-zero exit."""
    try:
        r = parse_benchmark_output(text)
        if dev is not None:
            r = dev._with_proto(r, proto)
            r.to_measurement()
    except BenchmarkOutputError as exc:
        raise ModelRunError(f"benchmark_model failed on {name} (exit {rc}): {exc}") from None
    if rc not in (0, None):
        raise ModelRunError(f"benchmark_model exited {rc} on {name}: {text.strip()[-300:]}")
    return r
