"""Device profiles: TOML files in device_profiles/, one per device."""

from __future__ import annotations

import os
from pathlib import Path

from latbench.devices.base import DeviceProfile
from latbench.devices.kinds import device_kind
from latbench.devices.measure import Protocol
from latbench.errors import InputError

_FIELDS = {"name", "kind", "description", "threads", "cpus", "delegate", "protocol", "options"}
DELEGATES = ("cpu", "xnnpack", "gpu", "nnapi")


def profile_dirs() -> list[Path]:
    """Where profiles are looked up: $LATBENCH_PROFILES, ./device_profiles, the repo's."""
    dirs = []
    if os.environ.get("LATBENCH_PROFILES"):
        dirs.append(Path(os.environ["LATBENCH_PROFILES"]))
    dirs.append(Path.cwd() / "device_profiles")
    dirs.append(Path(__file__).resolve().parents[2] / "device_profiles")
    seen, out = set(), []
    for d in dirs:
        r = d.resolve()
        if r not in seen and r.is_dir():
            seen.add(r)
            out.append(r)
    return out


def known_profiles() -> dict[str, Path]:
    """Profile name -> file, the first directory winning."""
    found: dict[str, Path] = {}
    for d in profile_dirs():
        for p in sorted(d.glob("*.toml")):
            found.setdefault(p.stem, p)
    return found


def parse_profile(data: dict, source: str = "") -> DeviceProfile:
    where = source or "profile"
    unknown = set(data) - _FIELDS
    if unknown:
        raise InputError(f"unknown field(s) {sorted(unknown)}; known: {sorted(_FIELDS)}", where)
    for req in ("name", "kind"):
        if req not in data:
            raise InputError(f"missing field {req!r}", where)
    from latbench.fileio import safe_name

    safe_name(data["name"], f"{where}: name")  # it names LUT, predictor and report files
    device_kind(data["kind"], f"{where}: kind")  # one of the KINDS table
    threads = data.get("threads", 1)
    if not isinstance(threads, int) or not 1 <= threads <= 1024:
        raise InputError(
            f"threads must be an int in [1, 1024], got {threads!r}", f"{where}: threads"
        )
    cpus = data.get("cpus", [])
    pick_cpu = cpus == "auto"
    if pick_cpu:
        cpus = []
    elif not isinstance(cpus, list) or not all(isinstance(c, int) and 0 <= c < 4096 for c in cpus):
        raise InputError(
            f'cpus must be a list of CPU numbers or "auto", got {cpus!r}', f"{where}: cpus"
        )
    delegate = data.get("delegate", "cpu")
    if delegate not in DELEGATES:
        raise InputError(
            f"delegate must be one of {DELEGATES}, got {delegate!r}", f"{where}: delegate"
        )
    for k in ("protocol", "options"):
        if not isinstance(data.get(k, {}), dict):
            raise InputError(f"must be a table, got {data[k]!r}", f"{where}: {k}")
    if not isinstance(data.get("description", ""), str):
        raise InputError("must be a string", f"{where}: description")
    try:
        protocol = Protocol.from_dict(data.get("protocol", {}))
    except InputError as exc:  # "protocol.max_seconds: ...": say which file it is in
        raise InputError(str(exc), where) from None
    return DeviceProfile(
        name=data["name"],
        kind=data["kind"],
        description=data.get("description", ""),
        threads=threads,
        cpus=tuple(cpus),
        pick_cpu=pick_cpu,
        delegate=delegate,
        protocol=protocol,
        options=dict(data.get("options", {})),
        source=source,
    )


def load_profile(name_or_path: str) -> DeviceProfile:
    """A profile by name (device_profiles/NAME.toml) or by path to a .toml file."""
    p = Path(name_or_path)
    if p.suffix == ".toml" and p.is_file():
        path = p
    else:
        profiles = known_profiles()
        if name_or_path not in profiles:
            known = ", ".join(sorted(profiles)) or "(none found)"
            raise InputError(
                f"unknown device {name_or_path!r}; known profiles: {known}", "--device"
            )
        path = profiles[name_or_path]
    from latbench.fileio import load_toml

    return parse_profile(load_toml(path), str(path))
