"""The device interface: every kind of device answers the same four questions.

A device is opened from a DeviceProfile, tells who it is (fingerprint, which
must match for two LUTs to be merged), and times a .tflite file under the
measurement protocol, returning a Measurement.
"""

from __future__ import annotations

import abc
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from latbench.devices.measure import Measurement, Protocol
from latbench.errors import LatbenchError


class ModelRunError(LatbenchError):
    """This one model failed to load or run; the device is fine, go on."""

    hint = "the device is fine; check the model (latbench export it and run it by hand)"


class DeviceLost(LatbenchError):
    """The device went away (crash loop, unplugged phone, dropped link): stop, resume later."""

    hint = (
        "what was measured is kept; reconnect the device (latbench devices) and run the "
        "same command again to resume (a search: latbench search --resume DIR)"
    )


@dataclass(frozen=True)
class DeviceProfile:
    """One file in device_profiles/: how to reach a device and how to time on it."""

    name: str
    kind: str  # host | adb | emulated
    description: str = ""
    threads: int = 1
    cpus: tuple[int, ...] = ()  # CPU set to pin to; () = no pinning
    pick_cpu: bool = False  # cpus = "auto": time on the least busy CPU, chosen when opened
    delegate: str = "cpu"  # cpu (XNNPACK) | gpu | nnapi
    protocol: Protocol = field(default_factory=Protocol)
    options: dict[str, Any] = field(default_factory=dict)  # kind-specific (serial, paths, temps)
    source: str = ""  # where the profile file lives

    @property
    def cpu_mask(self) -> str:
        """Hex CPU mask for `taskset` (e.g. cpus (4,5,6,7) -> 'f0')."""
        return format(sum(1 << c for c in self.cpus), "x") if self.cpus else ""


class Device(abc.ABC):
    """A place where a .tflite file can be timed."""

    def __init__(self, profile: DeviceProfile):
        self.profile = profile

    @abc.abstractmethod
    def fingerprint(self) -> dict[str, str]:
        """Identity and settings that must match for measurements to be comparable."""

    @abc.abstractmethod
    def measure(self, model: Path, network: bool = False) -> Measurement:
        """Time one model under the profile's protocol.

        network=True: a whole network (measure, calibrate, validate), whose memory footprint
        is recorded too where the device reports one (`extra["memory"]`, phones only).
        Raises ModelRunError when the model fails, DeviceLost when the device does.
        """

    def op_profile(self, model: Path):
        """One run of `model` with the device's operator profiler: a BenchmarkResult holding
        the "Operator-wise Profiling Info" tables (devices/benchmark_output.operator_profile).
        Phones (the classic benchmark_model) have one; other kinds say so."""
        from latbench.errors import InputError

        raise InputError(
            f"{self.profile.name} ({self.profile.kind}) has no in-network operator profiler: "
            f"it comes from a phone's classic benchmark_model (--enable_op_profiling); the "
            f"host's LiteRT Python interpreter has none",
            "--in-network",
        )

    @property
    def pinned_cpus(self) -> tuple[int, ...]:
        """The CPUs this device times on, as resolved when it was opened (() = not pinned)."""
        return self.profile.cpus

    def health(self) -> dict[str, Any]:
        """Temperatures, governors, frequencies: recorded, not compared."""
        return {}

    def close(self) -> None:
        pass

    def __enter__(self) -> "Device":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
