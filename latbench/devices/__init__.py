"""Devices behind one interface: host (LiteRT here), adb (phones), emulated (loopback ADB)."""

from __future__ import annotations

from latbench.devices.base import Device, DeviceLost, DeviceProfile, ModelRunError
from latbench.devices.profiles import known_profiles, load_profile


def open_device(profile: DeviceProfile) -> Device:
    """The Device for a profile, by its kind."""
    if profile.kind == "host":
        from latbench.devices.host import HostDevice

        return HostDevice(profile)
    if profile.kind in ("adb", "emulated"):
        from latbench.devices.adb import open_adb_device  # noqa: PLC0415

        return open_adb_device(profile)
    raise ValueError(f"unknown device kind {profile.kind!r}")


__all__ = ["Device", "DeviceLost", "DeviceProfile", "ModelRunError", "known_profiles",
           "load_profile", "open_device"]
