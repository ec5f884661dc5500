"""The sentinel: one fixed layer and one fixed network, re-timed while a job measures.

A LUT is timed over hours and a calibration over minutes, possibly days apart and under
other load. Each job that measures re-times the same reference models at intervals
(`every_s`) and appends each reading to the device's sentinel file,
`LUTDIR/DEVICE_PRECISION.sentinel.csv` (the records format, one row per reading, with the
job that took it, the device's state and its flags). Its readings answer two questions:

- did this job's conditions move while it ran (`Sentinel.summary`: spread of the readings);
- is the machine as fast now as when the LUT was timed (`speed`: a reading now over the
  median of the readings taken by `profile`)? `calibrate` corrects each network timed while
  the machine was slower by more than DRIFT_LIMIT, and leaves out (refuses, before it starts)
  what was timed more than REFUSE_LIMIT slower.

The sentinel layer is an MBConv (e6, k3, 28x28, 40 channels, residual): mid-sized on every
device, made only of the ops every space uses. The sentinel network is MobileNetV2 x0.35.
"""

from __future__ import annotations

import json
import logging
import math
import time
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from statistics import median
from typing import Any

from latbench import records
from latbench.devices import Device, ModelRunError
from latbench.devices.measure import Measurement
from latbench.nets.arch import LayerSpec

log = logging.getLogger(__name__)

EVERY_S = 90.0  # re-time the sentinel at most this often while a job measures
DRIFT_LIMIT = 0.05  # slower than the LUT's conditions by more: networks are corrected
REFUSE_LIMIT = 0.25  # slower by more: not used (and calibrate does not start)
SPEED_READINGS = 3  # the machine's speed now: the median of the last readings (calibrate
# takes this many when it starts)
NETWORK = "mobilenet_v2_x0.35"
COLUMNS = ["measured_at", "t", "context", "what", "key", "median_ms", "ci_rel", "runs", "state"]


def sentinel_layer(precision: str) -> LayerSpec:
    return LayerSpec(
        "mbconv", 28, 40, 28, 40, kernel=3, stride=1, expand=6.0, skip=True, precision=precision
    )


def sentinel_path(lut_dir: Path, device: str, precision: str) -> Path:
    from latbench.fileio import safe_name

    return Path(lut_dir) / (
        f"{safe_name(device, 'device')}_{safe_name(precision, 'precision')}.sentinel.csv"
    )


@dataclass(frozen=True)
class Reading:
    t: float  # unix time
    context: str  # the job: "profile host_mnasnet_fp32.csv", "calibrate", "validate", "measure"
    what: str  # layer | network
    median_ms: float
    flags: tuple[str, ...] = ()


def read(path: Path) -> list[Reading]:
    """The readings of a sentinel file ([] when there is none); a damaged row is an
    InputError naming the file and row."""
    from latbench.errors import InputError

    if not Path(path).exists():
        return []
    _, rows = records.read(path, COLUMNS)
    out = []
    for n, r in enumerate(rows, 1):
        try:
            t, ms = float(r["t"]), float(r["median_ms"])
            state = json.loads(r["state"]) if r["state"] else {}
        except ValueError as exc:
            raise InputError(f"{path}: row {n} is malformed: {exc}") from None
        if not (math.isfinite(t) and math.isfinite(ms) and 0 < ms < 1e6):
            raise InputError(f"{path}: row {n}: median_ms {r['median_ms']!r} is not a latency")
        if r["what"] not in ("layer", "network"):
            raise InputError(f"{path}: row {n}: what {r['what']!r} is not layer|network")
        flags = state.get("flags", []) if isinstance(state, dict) else []
        out.append(Reading(t, r["context"], r["what"], ms, tuple(map(str, flags))))
    return out


def reference_ms(
    lut_dir: Path, device: str, precision: str, what: str = "layer", context: str = "profile"
) -> float | None:
    """The sentinel layer's (or network's) median over the readings `profile` took (those
    whose context starts with `context`: one LUT file's, with "profile FILE"): the conditions
    the LUT was timed under (None: no LUT of this device was profiled with one)."""
    got = [
        r.median_ms
        for r in read(sentinel_path(lut_dir, device, precision))
        if r.what == what
        and r.context.startswith(context)
        # the layer LUTs' reference ("profile") is not the operator LUT's readings
        and (context != "profile" or not r.context.endswith(".ops.csv"))
    ]
    return float(median(got)) if got else None


def parse_speed(text: str) -> float | None:
    """A row's sentinel speed as a file holds it ("": not known); a ValueError naming the
    field when it is not a positive number."""
    if not text:
        return None
    try:
        v = float(text)
    except ValueError:
        v = math.nan
    if not (math.isfinite(v) and 0 < v < 1e6):
        raise ValueError(f"speed {text!r} is not a positive number")
    return v


def corrected_ms(median_ms: float, speed: float | None) -> tuple[float | None, str]:
    """A whole network or model timed while the sentinel read `speed` (over its LUT-time
    reference): (the time to use, "kept" | "corrected" | "disturbed"). Slower than the LUT's
    conditions by more than DRIFT_LIMIT: scaled back by the speed; by more than REFUSE_LIMIT:
    None, left out (timed again by the next pass or run)."""
    if speed is not None and speed > 1 + REFUSE_LIMIT:
        return None, "disturbed"
    if speed is not None and speed > 1 + DRIFT_LIMIT:
        return median_ms / speed, "corrected"
    return median_ms, "kept"


def _convert(precision: str, network: bool) -> dict[str, Path]:
    """The sentinel's .tflite files, converted (once, cached) in a worker process."""
    import multiprocessing as mp
    from concurrent.futures import ProcessPoolExecutor

    from latbench.build.cache import arch_path, spec_path
    from latbench.nets import zoo

    spec = sentinel_layer(precision)
    out = {"layer": spec_path(spec)}
    net = zoo.get(NETWORK)
    if network:
        out["network"] = arch_path(net, precision)
    if all(p.exists() for p in out.values()):
        return out
    import os

    from latbench.procs import pool_initializer
    from latbench.profiling.networks import _convert_arch_worker

    with ProcessPoolExecutor(
        1,
        mp_context=mp.get_context("spawn"),
        initializer=pool_initializer,  # the worker dies with this process
        initargs=(os.getpid(),),
    ) as pool:
        if not out["layer"].exists():
            [(_, path, err)] = pool.submit(_convert_layer_worker, spec).result()
            if path is None:
                raise ModelRunError(f"cannot convert the sentinel layer: {err}")
        if network and not out["network"].exists():
            path, err = pool.submit(_convert_arch_worker, net.to_dict(), precision).result()
            if path is None:
                raise ModelRunError(f"cannot convert the sentinel network: {err}")
    return out


def _convert_layer_worker(spec: LayerSpec):
    from latbench.quiet import quiet_tensorflow

    quiet_tensorflow()
    from latbench.build.convert import convert_to_cache

    return convert_to_cache([spec], 1)


def _meta(device: Device, precision: str) -> dict[str, Any]:
    from latbench.build.cache import converter_version

    return {
        "fingerprint": device.fingerprint(),
        "converter": converter_version(),
        "precision": precision,
        "space": "sentinel",
        "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
    }


class Sentinel:
    """Re-times the sentinel on `device` at most every `every_s` seconds (`check`), each
    reading appended to the sentinel file at once.

    A device that cannot run the sentinel (a conversion or runtime failure) turns the
    sentinel off with one warning; the job goes on. DeviceLost goes up like any row's.
    """

    def __init__(
        self,
        device: Device,
        lut_dir: Path,
        precision: str,
        context: str,
        network: bool = False,
        every_s: float | None = None,
        reference: str = "profile",
    ):
        self.device = device
        self.path = sentinel_path(lut_dir, device.profile.name, precision)
        self.lut_dir = Path(lut_dir)
        self.precision = precision
        self.context = context
        self.network = network
        self.reference_context = reference  # whose readings are the LUT-time reference
        opt = device.profile.options.get("sentinel_every_s")
        self.every_s = float(
            every_s if every_s is not None else opt if opt is not None else EVERY_S
        )
        self.readings: list[Reading] = []
        self._models: dict[str, Path] = {}
        self._last = -math.inf
        self.off = ""  # why the sentinel is off ("" = on)
        self._reference: float | None = None
        self._net_reference: float | None = None

    def start(self, readings: int = 1) -> "Sentinel":
        """Convert (cached), open the file and take the first `readings` readings."""
        name, ctx = self.device.profile.name, self.reference_context
        self._reference = reference_ms(self.lut_dir, name, self.precision, "layer", ctx)
        self._net_reference = reference_ms(self.lut_dir, name, self.precision, "network", ctx)
        try:
            self._models = _convert(self.precision, self.network)
        except ModelRunError as exc:
            self._turn_off(str(exc))
            return self
        if self.path.parent.is_dir():
            records.open_for_append(self.path, _meta(self.device, self.precision), COLUMNS)
        for _ in range(readings):
            self.check(force=True)
        return self

    def _turn_off(self, why: str) -> None:
        self.off = why
        log.warning("%s: sentinel off (%s)", self.device.profile.name, why)

    def check(self, force: bool = False) -> list[Reading]:
        """Re-time the sentinel if it is due (or `force`); the readings taken."""
        if self.off or not self._models or (not force and time.time() - self._last < self.every_s):
            return []
        self._last = time.time()
        taken = []
        for what, path in self._models.items():
            try:
                m = self.device.measure(path)
            except ModelRunError as exc:
                self._turn_off(f"the sentinel {what} failed: {exc}")
                break
            taken.append(self._record(what, path, m))
        return taken

    def _record(self, what: str, path: Path, m: Measurement) -> Reading:
        state = m.extra.get("state") or {}
        flags = tuple(m.extra.get("flags") or ())
        r = Reading(time.time(), self.context, what, m.median_ms, flags)
        self.readings.append(r)
        if self.path.exists():
            key = sentinel_layer(self.precision).key if what == "layer" else NETWORK
            records.append(
                self.path,
                [
                    datetime.now(timezone.utc).isoformat(timespec="seconds"),
                    f"{r.t:.3f}",
                    self.context,
                    what,
                    key,
                    f"{m.median_ms:.6g}",
                    f"{m.ci_rel:.4g}",
                    str(m.runs),
                    json.dumps(
                        {**state, "flags": list(flags)}, sort_keys=True, separators=(",", ":")
                    ),
                ],
            )
        return r

    @property
    def reference(self) -> float | None:
        """The sentinel layer at LUT time (`reference_ms`), read when the job started."""
        return self._reference

    def speed(self) -> float | None:
        """The latest layer readings (the median of the last SPEED_READINGS) over the LUT-time
        reference: 1.10 = the machine times 10 % slower than when the LUT was timed (None: no
        reference or no reading). One reading alone can land on a burst of the machine's
        own jitter (seen: 17 % high, the next one on time), and it would scale every model
        timed until the next."""
        last = [r.median_ms for r in self.readings if r.what == "layer"][-SPEED_READINGS:]
        if not last or not self._reference:
            return None
        return median(last) / self._reference

    def summary(self) -> dict[str, Any]:
        """Per model: readings, first/last/min/max ms and the spread (max - min) / min, plus
        the LUT-time reference and the speed range relative to it."""
        out: dict[str, Any] = {"every_s": self.every_s}
        if self.off:
            out["off"] = self.off
        for what in ("layer", "network"):
            ms = [r.median_ms for r in self.readings if r.what == what]
            if ms:
                out[what] = {
                    "n": len(ms),
                    "first_ms": ms[0],
                    "last_ms": ms[-1],
                    "min_ms": min(ms),
                    "max_ms": max(ms),
                    "spread": (max(ms) - min(ms)) / min(ms),
                }
        lay = [r.median_ms for r in self.readings if r.what == "layer"]
        if self._reference and lay:
            out["reference_ms"] = self._reference
            out["speed_min"] = min(lay) / self._reference
            out["speed_max"] = max(lay) / self._reference
        net = [r.median_ms for r in self.readings if r.what == "network"]
        if self._net_reference and net:
            out["network_reference_ms"] = self._net_reference
            out["network_speed_max"] = max(net) / self._net_reference
        return out

    def line(self) -> str:
        """One line for the job's end: how the sentinel moved while it ran."""
        s = self.summary()
        if "layer" not in s:
            return f"sentinel: {s.get('off', 'no reading')}"
        lay = s["layer"]
        text = (
            f"sentinel layer {lay['first_ms']:.3f} -> {lay['last_ms']:.3f} ms over {lay['n']} "
            f"readings (spread {100 * lay['spread']:.1f} %)"
        )
        if "reference_ms" in s:
            text += (
                f"; vs the LUT's {s['reference_ms']:.3f} ms: "
                f"{100 * (s['speed_min'] - 1):+.1f}..{100 * (s['speed_max'] - 1):+.1f} %"
            )
        if "network_speed_max" in s:
            text += (
                f"; sentinel network up to {100 * (s['network_speed_max'] - 1):+.1f} % vs the "
                f"LUT's time ({s['network_reference_ms']:.3f} ms)"
            )
        return text


def measure_watched(
    device: Device,
    target,
    precision: str,
    lut_dir: Path,
    progress: bool = True,
    bursts: int = 3,
    context: str = "measure",
) -> Measurement:
    """One network (an Arch) or model (a build.models.ModelFile) end to end in `bursts`
    bursts (`networks.measure_network` / `measure_file`), with the sentinel layer timed
    before and after: extra["sentinel"] holds both readings, the LUT-time reference when
    there is one, and `speed` (after / reference) and `moved` (after / before), which
    `measure` and `predict --compare` warn about."""
    from latbench.profiling.networks import measure_file, measure_network

    sentinel = Sentinel(device, lut_dir, precision, context).start()
    if hasattr(target, "blocks"):
        m = measure_network(device, target, precision, progress, bursts=bursts)
    else:
        m = measure_file(device, target.path, target.name, progress, bursts=bursts)
    sentinel.check(force=True)
    lay = [r.median_ms for r in sentinel.readings if r.what == "layer"]
    info: dict[str, Any] = {"readings_ms": lay}
    if sentinel.off:
        info["off"] = sentinel.off
    if len(lay) >= 2:
        info["moved"] = max(lay) / min(lay)
    if sentinel.reference and lay:
        info["reference_ms"] = sentinel.reference
        info["speed"] = max(lay) / sentinel.reference
    extra = dict(m.extra, sentinel=info)
    return Measurement(
        m.median_ms, m.p10_ms, m.p90_ms, m.std_ms, m.mean_ms, m.runs, m.ci_rel, extra
    )
