"""The kinds of device: name -> how to open one and what it can do.

Code outside this table never compares `profile.kind` with a string; it asks the kind
(`device_kind(profile.kind).times_on_this_cpu`, ...). Adding a kind means one entry here, a
module with its opener, and `kind = "NAME"` in a profile; profiles, `latbench devices` and
the parametrized tests read the table.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from typing import TYPE_CHECKING

from latbench.errors import InputError

if TYPE_CHECKING:
    from latbench.devices.base import Device, DeviceProfile


@dataclass(frozen=True)
class DeviceKind:
    name: str
    description: str
    opener: tuple[str, str]  # (module, callable taking a DeviceProfile): imported on demand
    times_on_this_cpu: bool  # the timed code runs on this machine's CPUs (keep converters off)
    needs_transport: bool  # reached over ADB: listed and probed by `latbench devices`
    reports_product: str | None = None  # ro.product.device of a stand-in (matched to profiles)

    def open(self, profile: DeviceProfile) -> Device:
        module, name = self.opener
        return getattr(importlib.import_module(module), name)(profile)


KINDS: dict[str, DeviceKind] = {
    "host": DeviceKind(
        "host",
        "this machine's CPU through the LiteRT interpreter",
        ("latbench.devices.host", "HostDevice"),
        times_on_this_cpu=True,
        needs_transport=False,
    ),
    "adb": DeviceKind(
        "adb",
        "an Android phone over ADB, timed by the stock benchmark_model",
        ("latbench.devices.adb", "open_adb_device"),
        times_on_this_cpu=False,
        needs_transport=True,
    ),
    "emulated": DeviceKind(
        "emulated",
        "the stand-in phone: a loopback ADB server whose "
        "benchmark_model times on this machine's CPU",
        ("latbench.devices.adb", "open_emulated_device"),
        times_on_this_cpu=True,
        needs_transport=True,
        reports_product="emulated",
    ),
}


def device_kind(name: str, where: str = "kind") -> DeviceKind:
    if name not in KINDS:
        raise InputError(f"kind must be one of {tuple(KINDS)}, got {name!r}", where)
    return KINDS[name]
