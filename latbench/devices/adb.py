"""Android phones over ADB: push, run the stock `benchmark_model` under taskset, parse.

The same AdbDevice serves a real phone and the emulated one (kind "emulated"):
only the transport's address differs.

Profile [options] (all optional unless said):
  transport      "auto" (default) | "tcp" | "usb" | "server". auto: tcp when `host`
                 is set, else USB through adb-shell, falling back to the adb
                 server when the USB interface is busy.
  serial         phone serial (USB / server); default: the only phone attached
  host, port     for TCP (`adb tcpip 5555` on the phone first); port 5555
  adbkey         private key, default ~/.android/adbkey (created 0600 if missing)
  benchmark_model  local path to the Android `benchmark_model` binary (required
                 for kind adb; see docs/phones.md for where to get it)
  remote_dir     default /data/local/tmp/latbench
  max_temp_c     battery temperature above which we wait to cool (default 40)
  cool_wait_s    longest wait for cooling before measuring anyway (default 300)
  cool_poll_s    seconds between temperature checks while cooling (default 10)
  temp_check_s   check temperature at most this often between models (default 30)
  connect_timeout_s (10), command_timeout_s (30), run_timeout_s (300), retries (2)
  extra_args     list of extra benchmark_model flags, e.g. ["--use_caching=true"]
  model, product ro.product.model / ro.product.device this profile is meant for
                 (used by `latbench devices` to match a phone to a profile)
Kind "emulated" only:
  connect        "127.0.0.1:PORT" of an already running emulated phone; else one
                 is started in-process on a free port
  sandbox        its filesystem directory (default: a temporary directory)
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

from ..errors import InputError
from ..measure import Measurement
from .adb_transport import (AdbServerTransport, AdbShellTransport, AuthRefused, CommandTimeout,
                            PushRefused, Transport, TransportError, UsbBusy, sh_join)
from .base import Device, DeviceLost, DeviceProfile, ModelRunError
from .benchmark_output import BenchmarkOutputError, parse_benchmark_output

log = logging.getLogger(__name__)

FINGERPRINT_PROPS = {
    "model": "ro.product.model", "device": "ro.product.device", "manufacturer": "ro.product.manufacturer",
    "soc": "ro.soc.model", "platform": "ro.board.platform", "hardware": "ro.hardware",
    "android": "ro.build.version.release", "sdk": "ro.build.version.sdk", "build": "ro.build.fingerprint",
}
_DELEGATE_FLAGS = {"cpu": ["--use_xnnpack=true"], "xnnpack": ["--use_xnnpack=true"],
                   "gpu": ["--use_gpu=true"], "nnapi": ["--use_nnapi=true"]}


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


class AdbDevice(Device):
    """One phone. Link errors are retried with a reconnect; then DeviceLost."""

    def __init__(self, profile: DeviceProfile, transport: Transport, benchmark_model: Path,
                 on_close: Any = None):
        super().__init__(profile)
        o = profile.options
        self.t = transport
        self.binary = Path(benchmark_model)
        self.remote_dir = str(o.get("remote_dir", "/data/local/tmp/latbench")).rstrip("/")
        self.remote_bin = f"{self.remote_dir}/benchmark_model"
        self.command_timeout_s = float(o.get("command_timeout_s", 30))
        self.run_timeout_s = float(o.get("run_timeout_s", 300))
        self.retries = int(o.get("retries", 2))
        self.max_temp_c = float(o.get("max_temp_c", 40))
        self.cool_wait_s = float(o.get("cool_wait_s", 300))
        self.cool_poll_s = float(o.get("cool_poll_s", 10))
        self.temp_check_s = float(o.get("temp_check_s", 30))
        self.extra_args = [str(a) for a in o.get("extra_args", [])]
        self._on_close = on_close
        self._pushed: set[str] = set()
        self._last_temp_check = -math.inf
        self._props: dict[str, str] | None = None
        self._bin_sha = _sha256(self.binary)
        self._call(self.t.connect)
        self._ensure_binary()

    # ---- link handling
    def _call(self, fn, *args, **kw):
        """Run a transport call; on a link error reconnect and retry, then give up: DeviceLost."""
        last: Exception | None = None
        for attempt in range(self.retries + 1):
            try:
                return fn(*args, **kw)
            except (AuthRefused, UsbBusy) as exc:
                raise DeviceLost(str(exc)) from None
            except CommandTimeout:
                raise
            except TransportError as exc:
                last = exc
                log.warning("%s: %s (attempt %d/%d), reconnecting", self.profile.name, exc, attempt + 1,
                            self.retries + 1)
                time.sleep(min(0.2 * 2 ** attempt, 2.0))
                try:
                    self.t.connect()
                except (AuthRefused, UsbBusy) as exc2:
                    raise DeviceLost(str(exc2)) from None
                except TransportError as exc2:
                    last = exc2
        raise DeviceLost(f"{self.profile.name}: phone unreachable after {self.retries + 1} attempts: {last}")

    def _sh(self, argv: list[str] | str, timeout_s: float | None = None, suffix: str = "",
            hang_is_model_error: bool = False) -> tuple[str, int | None]:
        line = (argv if isinstance(argv, str) else sh_join(argv)) + suffix
        try:
            r = self._call(self.t.shell, line, timeout_s or self.command_timeout_s)
        except CommandTimeout as exc:
            self._reconnect_after_timeout()  # DeviceLost if the phone is gone for good
            if hang_is_model_error:
                raise ModelRunError(f"{exc}; killed it, the phone answers again") from None
            raise DeviceLost(f"{self.profile.name}: {exc}") from None
        return r.output, r.rc

    def _reconnect_after_timeout(self) -> None:
        try:
            self.t.connect()
            self.t.shell(sh_join(["pkill", "-f", self.remote_bin]) + " 2>/dev/null", self.command_timeout_s)
        except TransportError as exc:
            raise DeviceLost(f"{self.profile.name}: phone stopped answering: {exc}") from None

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

    def _ensure_binary(self) -> None:
        """Push benchmark_model once, under a name carrying its hash (a new binary gets a new name)."""
        out, rc = self._sh(["mkdir", "-p", f"{self.remote_dir}/models"])
        if rc not in (0, None):
            raise DeviceLost(f"{self.profile.name}: cannot create {self.remote_dir}: {out.strip()}")
        self.remote_bin = f"{self.remote_dir}/benchmark_model.{self._bin_sha[:12]}"
        self._push(self.binary, self.remote_bin, 0o755)

    # ---- the Device interface
    def props(self) -> dict[str, str]:
        if self._props is None:
            out, _ = self._sh(["getprop"])
            self._props = dict(re.findall(r"^\[([^\]]+)\]: \[(.*)\]\s*$", out, flags=re.M))
        return self._props

    def fingerprint(self) -> dict[str, str]:
        p = self.props()
        fp = {"device": self.profile.name, "kind": self.profile.kind}
        for k, prop in FINGERPRINT_PROPS.items():
            fp[k] = p.get(prop, "")
        fp.update({"runtime": "benchmark_model", "runtime_sha256": self._bin_sha[:16],
                   "threads": str(self.profile.threads), "cpus": ",".join(map(str, self.profile.cpus)) or "all",
                   "cpu_mask": self.profile.cpu_mask or "all", "delegate": self.profile.delegate})
        return fp

    def health(self) -> dict[str, Any]:
        """Temperatures, governors and frequencies now; recorded in the LUT, never compared."""
        h: dict[str, Any] = {"serial": self.props().get("ro.serialno", ""), "time": time.time()}
        bt = self.battery_temp_c()
        if bt is not None:
            h["battery_temp_c"] = bt
        out, _ = self._sh("grep -H . /sys/class/thermal/thermal_zone*/type /sys/class/thermal/thermal_zone*/temp",
                          suffix=" 2>/dev/null")
        zones: dict[str, dict[str, str]] = {}
        for path, _, val in (ln.partition(":") for ln in out.splitlines() if ":" in ln):
            parts = path.rsplit("/", 2)
            if len(parts) == 3:
                zones.setdefault(parts[1], {})[parts[2]] = val.strip()
        h["thermal_c"] = {z.get("type", name): _milli(z.get("temp")) for name, z in sorted(zones.items())
                          if _milli(z.get("temp")) is not None}
        out, _ = self._sh("grep -H . /sys/devices/system/cpu/cpu*/cpufreq/scaling_governor "
                          "/sys/devices/system/cpu/cpu*/cpufreq/scaling_cur_freq", suffix=" 2>/dev/null")
        cpus: dict[str, dict[str, str]] = {}
        for path, _, val in (ln.partition(":") for ln in out.splitlines() if ":" in ln):
            m = re.search(r"/(cpu\d+)/cpufreq/(\w+)$", path)
            if m:
                cpus.setdefault(m[1], {})[m[2]] = val.strip()
        h["cpufreq"] = cpus
        return h

    def battery_temp_c(self) -> float | None:
        out, _ = self._sh(["dumpsys", "battery"])
        m = re.search(r"^\s*temperature:\s*(-?\d+)", out, flags=re.M)
        return int(m[1]) / 10 if m else None

    def wait_cool(self) -> float:
        """Block until the battery is below max_temp_c (or cool_wait_s passed); seconds waited."""
        start = time.monotonic()
        first = True
        while True:
            t = self.battery_temp_c()
            if t is None or t <= self.max_temp_c:
                return 0.0 if first else time.monotonic() - start
            first = False
            waited = time.monotonic() - start
            if waited >= self.cool_wait_s:
                log.warning("%s: still %.1f C after %.0f s of cooling; measuring anyway", self.profile.name,
                            t, waited)
                return waited
            log.info("%s: battery %.1f C > %.1f C, waiting to cool", self.profile.name, t, self.max_temp_c)
            time.sleep(self.cool_poll_s)

    def _run_args(self, remote_model: str, num_runs: int) -> list[str]:
        pr = self.profile.protocol
        argv = ([ "taskset", self.profile.cpu_mask] if self.profile.cpu_mask else []) + [
            self.remote_bin, f"--graph={remote_model}", f"--num_threads={self.profile.threads}",
            *_DELEGATE_FLAGS[self.profile.delegate],
            f"--warmup_runs={pr.warmup_runs}", "--warmup_min_secs=0",
            f"--num_runs={num_runs}", "--min_secs=0", f"--max_secs={pr.max_seconds:g}",
            *self.extra_args]
        return argv

    def _benchmark(self, remote_model: str, num_runs: int, name: str) -> Measurement:
        out, rc = self._sh(self._run_args(remote_model, num_runs), timeout_s=self.run_timeout_s,
                           suffix=" 2>&1", hang_is_model_error=True)
        try:
            m = parse_benchmark_output(out).to_measurement()
        except BenchmarkOutputError as exc:
            raise ModelRunError(f"benchmark_model failed on {name} (exit {rc}): {exc}") from None
        if rc not in (0, None):
            raise ModelRunError(f"benchmark_model exited {rc} on {name}: {out.strip()[-300:]}")
        return m

    def measure(self, model: Path) -> Measurement:
        model = Path(model)
        cooled = 0.0
        if time.monotonic() - self._last_temp_check >= self.temp_check_s:
            cooled = self.wait_cool()
            self._last_temp_check = time.monotonic()
        remote = f"{self.remote_dir}/models/{_sha256(model)[:24]}.tflite"
        self._push(model, remote)
        pr = self.profile.protocol
        n = max(pr.min_runs, 1)
        m = self._benchmark(remote, n, model.name)
        # benchmark_model cannot stop on a CI target itself: rerun once with enough runs to meet it
        if m.ci_rel > pr.target_ci and m.runs < pr.max_runs:
            need = min(pr.max_runs, max(2 * m.runs, math.ceil(m.runs * (m.ci_rel / pr.target_ci) ** 2)))
            if need > m.runs:
                m = self._benchmark(remote, need, model.name)
        extra = dict(m.extra, cooled_s=round(cooled, 2), model_sha256=remote.rsplit("/", 1)[1][:24])
        return Measurement(m.median_ms, m.p10_ms, m.p90_ms, m.std_ms, m.mean_ms, m.runs, m.ci_rel, extra)

    def close(self) -> None:
        try:
            self.t.close()
        finally:
            if self._on_close is not None:
                self._on_close()
                self._on_close = None


def _milli(v: str | None) -> float | None:
    """Thermal zone temps are millidegrees on most phones, degrees on some."""
    try:
        x = float(v)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return None
    return x / 1000 if abs(x) > 200 else x


# ---- opening

def make_transport(profile: DeviceProfile) -> Transport:
    o = profile.options
    kind = str(o.get("transport", "auto"))
    if kind not in ("auto", "tcp", "usb", "server"):
        raise InputError(f"transport must be auto|tcp|usb|server, got {kind!r}", f"{profile.name}: options.transport")
    timeouts = {"connect_timeout_s": float(o.get("connect_timeout_s", 10)),
                "auth_timeout_s": float(o.get("auth_timeout_s", 30))}
    if kind == "tcp" or (kind == "auto" and o.get("host")):
        if not o.get("host"):
            raise InputError("transport tcp needs options.host", profile.name)
        return AdbShellTransport(host=str(o["host"]), port=int(o.get("port", 5555)), key_path=o.get("adbkey"),
                                 **timeouts)
    if kind == "server":
        return AdbServerTransport(serial=o.get("serial"))
    return AdbShellTransport(serial=o.get("serial"), key_path=o.get("adbkey"), **timeouts)


class _UsbThenServer(Transport):
    """transport = auto over USB: adb-shell first; if the adb server holds the phone, go through it."""

    def __init__(self, usb: AdbShellTransport, serial: str | None):
        self.inner: Transport = usb
        self.serial = serial
        self.name = usb.name

    def connect(self) -> None:
        try:
            self.inner.connect()
        except UsbBusy as exc:
            if not isinstance(self.inner, AdbShellTransport):
                raise
            log.warning("%s; falling back to the adb server", exc)
            self.inner = AdbServerTransport(serial=self.serial)
            self.name = self.inner.name
            self.inner.connect()

    def shell(self, command, timeout_s):
        return self.inner.shell(command, timeout_s)

    def push(self, local, remote, mode, timeout_s):
        return self.inner.push(local, remote, mode, timeout_s)

    def remote_size(self, remote, timeout_s):
        return self.inner.remote_size(remote, timeout_s)

    def close(self) -> None:
        self.inner.close()


def open_adb_device(profile: DeviceProfile) -> AdbDevice:
    """An AdbDevice for a kind adb or kind emulated profile (the latter starts the loopback phone)."""
    o = profile.options
    if profile.kind == "emulated":
        return _open_emulated(profile)
    if not o.get("benchmark_model"):
        raise InputError("options.benchmark_model must point at the Android benchmark_model binary "
                         "(see docs/phones.md)", f"{profile.name}")
    binary = Path(str(o["benchmark_model"])).expanduser()
    if not binary.is_file():
        raise InputError(f"{binary} does not exist", f"{profile.name}: options.benchmark_model")
    t = make_transport(profile)
    if str(o.get("transport", "auto")) == "auto" and isinstance(t, AdbShellTransport) and not o.get("host"):
        t = _UsbThenServer(t, o.get("serial"))
    return AdbDevice(profile, t, binary)


def _open_emulated(profile: DeviceProfile) -> AdbDevice:
    from .emulated_phone import EmulatedPhone, standin_script

    o = profile.options
    stop = None
    if o.get("connect"):
        host, _, port = str(o["connect"]).rpartition(":")
        host, port_i = host or "127.0.0.1", int(port)
        sandbox = Path(o.get("sandbox") or tempfile.mkdtemp(prefix="latbench-stub-"))
    else:
        tmp = None if o.get("sandbox") else tempfile.TemporaryDirectory(prefix="latbench-phone-")
        sandbox = Path(o.get("sandbox") or tmp.name)
        phone = EmulatedPhone(sandbox / "phone", port=int(o.get("port", 0))).start()
        host, port_i = phone.host, phone.port

        def stop() -> None:
            phone.stop()
            if tmp is not None:
                tmp.cleanup()

    stub = sandbox / "benchmark_model.standin"
    stub.parent.mkdir(parents=True, exist_ok=True)
    stub.write_bytes(standin_script())
    t = AdbShellTransport(host=host, port=port_i, key_path=o.get("adbkey"),
                          connect_timeout_s=float(o.get("connect_timeout_s", 10)),
                          auth_timeout_s=float(o.get("auth_timeout_s", 10)))
    try:
        return AdbDevice(profile, t, stub, on_close=stop)
    except BaseException:
        if stop:
            stop()
        raise
