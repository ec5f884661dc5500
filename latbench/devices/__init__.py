"""Devices behind one interface: host (LiteRT here), adb (phones), emulated (loopback ADB)."""

from __future__ import annotations

from latbench.devices.base import Device, DeviceLost, DeviceProfile, ModelRunError
from latbench.devices.kinds import KINDS, DeviceKind, device_kind
from latbench.devices.profiles import known_profiles, load_profile


def open_device(profile: DeviceProfile) -> Device:
    """The Device for a profile, by its kind (the KINDS table)."""
    return device_kind(profile.kind, f"{profile.name}: kind").open(profile)


__all__ = [
    "KINDS",
    "Device",
    "DeviceKind",
    "DeviceLost",
    "DeviceProfile",
    "ModelRunError",
    "device_kind",
    "known_profiles",
    "load_profile",
    "open_device",
]
