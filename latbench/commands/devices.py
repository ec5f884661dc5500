"""`latbench devices`: which phones are reachable, what they are, which profile fits.

Sources: the `adb` server when one is already running (asking `adb devices`
would start one, and a server holds every USB phone, so latbench never starts
it); otherwise the first USB phone through adb-shell; phones reachable over TCP
named with --connect or in a profile (options.host / options.connect); and,
with --with-emulated, an in-process emulated phone. Exit 0 when at least one phone
is ready, 1 when none is, 2 on bad input.
"""

from __future__ import annotations

import json
import re
import sys
from dataclasses import asdict, dataclass

import click

from latbench.devices.adb_transport import (
    AdbServerTransport,
    AdbShellTransport,
    PairingNeeded,
    Transport,
    TransportError,
    adb_binary,
    adb_server_running,
    list_server_devices,
    sh_join,
    transport_for_serial,
)
from latbench.devices.base import DeviceProfile
from latbench.devices.kinds import device_kind
from latbench.devices.probe import parse_getprop
from latbench.devices.profiles import known_profiles, load_profile


@dataclass
class PhoneInfo:
    serial: str
    state: str  # device | unauthorized | offline | error
    via: str
    model: str = ""
    device: str = ""
    soc: str = ""
    android: str = ""
    battery_c: float | None = None
    profile: str = ""
    note: str = ""


def _query(t: Transport, info: PhoneInfo) -> PhoneInfo:
    try:
        t.connect()
        out = t.shell(sh_join(["getprop"]), 15).output
        props = parse_getprop(out)
        bat = t.shell(sh_join(["dumpsys", "battery"]), 15).output
    except PairingNeeded as exc:
        info.state, info.note = "pairing", str(exc)
        return info
    except TransportError as exc:
        info.state, info.note = "error", str(exc)
        return info
    finally:
        t.close()
    m = re.search(r"^\s*temperature:\s*(-?\d+)", bat, flags=re.M)
    info.model = props.get("ro.product.model", "")
    info.device = props.get("ro.product.device", "")
    info.soc = (
        props.get("ro.soc.model") or props.get("ro.board.platform") or props.get("ro.hardware", "")
    )
    info.android = props.get("ro.build.version.release", "")
    if info.serial in ("(usb)", "usb"):
        info.serial = props.get("ro.serialno", "usb")
    info.battery_c = int(m[1]) / 10 if m else None
    return info


def _profiles() -> list[DeviceProfile]:
    out = []
    for name in known_profiles():
        try:
            p = load_profile(name)
        except Exception:  # noqa: BLE001 - a broken profile must not hide the phones
            continue
        if device_kind(p.kind).needs_transport:
            out.append(p)
    return out


def match_profile(info: PhoneInfo, profiles: list[DeviceProfile]) -> str:
    """Best profile: same serial, else same codename, else same model name; '' if none."""

    def values(p: DeviceProfile, key: str) -> list[str]:
        v = p.options.get(key, "")
        return [str(x) for x in v] if isinstance(v, list) else [str(v)]

    for key in ("serial", "product", "model"):
        want = {"serial": info.serial, "product": info.device, "model": info.model}[key]
        if not want:
            continue
        hits = [p.name for p in profiles if want in values(p, key)]
        if hits:
            return ",".join(sorted(hits))
    standins = [p.name for p in profiles if device_kind(p.kind).reports_product == info.device]
    if info.device and standins:
        return ",".join(sorted(standins))
    return ""


def discover(
    connect: tuple[str, ...] = (),
    adbkey: str | None = None,
    use_server: bool = True,
    usb: bool = True,
) -> list[PhoneInfo]:
    phones: list[PhoneInfo] = []
    server = use_server and adb_binary() is not None and adb_server_running()
    if server:
        for serial, state in list_server_devices():
            info = PhoneInfo(serial, state, "adb-server")
            if state == "device":
                _query(AdbServerTransport(serial=serial), info)
            elif state == "unauthorized":
                info.note = "accept the 'Allow USB debugging?' prompt on the phone"
            phones.append(info)
    if not server and usb:
        info = _query(
            AdbShellTransport(key_path=adbkey, connect_timeout_s=3, auth_timeout_s=10),
            PhoneInfo("(usb)", "device", "usb adb-shell"),
        )
        if info.state == "device":
            info.serial = info.serial if info.serial != "(usb)" else "usb"
            phones.append(info)
        elif any(w in info.note for w in ("Allow USB debugging", "busy", "permission")):
            phones.append(info)  # a phone is there but cannot be used yet: say why
    seen = {p.serial for p in phones}
    targets = list(connect)
    asked = set(connect)  # named by the user: a refusal is reported, not hidden
    for p in _profiles():
        if p.options.get("host"):
            targets.append(f"{p.options['host']}:{p.options.get('port', 5555)}")
        elif p.options.get("connect"):  # a running stand-in phone's HOST:PORT
            targets.append(str(p.options["connect"]))
    for target in dict.fromkeys(targets):
        host, _, port = target.rpartition(":")
        if not host or not port.isdigit():
            raise click.BadParameter(f"{target!r} is not HOST:PORT", param_hint="--connect")
        if target in seen:
            continue
        t = AdbShellTransport(
            host=host, port=int(port), key_path=adbkey, connect_timeout_s=3, auth_timeout_s=10
        )
        info = _query(t, PhoneInfo(target, "device", f"tcp {target}"))
        if info.state == "error" and "Connection refused" in info.note:
            if target not in asked:
                continue  # a profile's phone that is simply not up
            info.state = "refused"
            info.note = (
                f"connection refused at {target}: nothing listens there (is `adb tcpip "
                f"5555` done on the phone, or the emulated phone started?)"
            )
        phones.append(info)
    return phones


@click.command("devices")
@click.option(
    "--connect",
    multiple=True,
    metavar="HOST:PORT",
    help="also query a phone over TCP (adb tcpip / the emulated phone)",
)
@click.option(
    "--with-emulated", is_flag=True, help="start an in-process emulated phone and list it too"
)
@click.option("--no-server", is_flag=True, help="do not ask a running adb server")
@click.option("--no-usb", is_flag=True, help="do not look for a USB phone through adb-shell")
@click.option(
    "--adbkey",
    type=click.Path(dir_okay=False),
    default=None,
    help="ADB private key (default ~/.android/adbkey)",
)
@click.option(
    "--probe",
    metavar="SERIAL",
    default=None,
    help="read this phone's core clusters and getprop and write a device profile for it "
    "(SERIAL as `adb devices` shows it, or HOST:PORT)",
)
@click.option(
    "--name",
    "probe_name",
    default=None,
    help="--probe: the profile's name (default: the phone's codename, ro.product.device)",
)
@click.option(
    "--out",
    "probe_out",
    type=click.Path(dir_okay=False),
    default=None,
    help="--probe: where to write it (default ./device_profiles/NAME.toml)",
)
@click.option("--force", is_flag=True, help="--probe: overwrite an existing profile file")
@click.option(
    "--json",
    "as_json",
    is_flag=True,
    help="print JSON instead of a table ([] and exit 0 when no phone is found, as "
    "`adb devices` does)",
)
def devices_command(
    connect: tuple[str, ...],
    with_emulated: bool,
    no_server: bool,
    no_usb: bool,
    adbkey: str | None,
    probe: str | None,
    probe_name: str | None,
    probe_out: str | None,
    force: bool,
    as_json: bool,
) -> None:
    """List connected phones: serial, model, SoC, Android, battery temperature, matching profile.

    With --probe SERIAL: write a device profile for that phone from what it reports."""
    if probe:
        _probe(probe, probe_name, probe_out, force, adbkey, not no_server, as_json)
        return
    phone = None
    if with_emulated:
        import tempfile

        from latbench.devices.emulated import EmulatedPhone

        phone = EmulatedPhone(tempfile.mkdtemp(prefix="latbench-devices-")).start()
        connect = connect + (phone.address,)
    try:
        phones = discover(connect, adbkey, use_server=not no_server, usb=not no_usb)
    finally:
        if phone is not None:
            phone.stop()
    profiles = _profiles()
    for p in phones:
        if p.state == "device":
            p.profile = match_profile(p, profiles)
    if as_json:
        click.echo(json.dumps([asdict(p) for p in phones], indent=2))
    elif phones:
        rows = [("SERIAL", "STATE", "MODEL", "SOC", "ANDROID", "BATTERY", "PROFILE", "VIA")]
        for p in phones:
            bat = f"{p.battery_c:.1f} C" if p.battery_c is not None else "-"
            rows.append(
                (
                    p.serial,
                    p.state,
                    p.model or "-",
                    p.soc or "-",
                    p.android or "-",
                    bat,
                    p.profile or "(none)",
                    p.via,
                )
            )
        widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
        for r in rows:
            click.echo("  ".join(c.ljust(w) for c, w in zip(r, widths)).rstrip())
        for p in phones:
            if p.note:
                click.echo(f"{p.serial}: {p.note}", err=True)
    ready = [p for p in phones if p.state == "device"]
    if as_json:
        return  # like `adb devices`: the list is the answer, exit 0
    if not ready and phones:
        click.echo(
            f"no phone ready: {len(phones)} found, none usable (see the notes above)", err=True
        )
        sys.exit(1)
    if not ready:
        why = (
            ""
            if adb_binary() or no_server
            else " (the `adb` client is not installed: apt install adb)"
        )
        click.echo(
            "no phone found"
            + why
            + ". Plug in a phone with USB debugging on and accept the prompt, "
            "or `adb connect HOST:5555` after `adb tcpip 5555`; for a demo without a phone use "
            "--with-emulated, or start one with `python -m latbench.devices.emulated "
            "--port 5555 --sandbox DIR` and pass --connect 127.0.0.1:5555.",
            err=True,
        )
        sys.exit(1)
    unmatched = [p.serial for p in ready if not p.profile]
    if unmatched and not as_json:
        click.echo(
            f"no profile in device_profiles/ matches {', '.join(unmatched)}: copy the closest "
            "pixelN.toml and set options.model / options.product",
            err=True,
        )


def _probe(
    serial: str,
    name: str | None,
    out: str | None,
    force: bool,
    adbkey: str | None,
    use_server: bool,
    as_json: bool,
) -> None:
    """`devices --probe`: read the phone, write its profile (refusing to overwrite), check it loads."""
    from pathlib import Path

    from latbench.devices.probe import default_name, profile_toml, read_layout
    from latbench.devices.profiles import parse_profile
    from latbench.errors import InputError, LatbenchError
    from latbench.fileio import load_toml, safe_name, write_atomic

    if name is not None:
        safe_name(name, "--name")
    t = transport_for_serial(serial, adbkey, use_server)
    try:
        t.connect()
        layout = read_layout(t)
    except TransportError as exc:
        raise LatbenchError(f"--probe {serial}: cannot read the phone: {exc}") from None
    finally:
        t.close()
    if not layout.max_khz:
        raise LatbenchError(
            f"--probe {serial}: the phone shows no /sys/devices/system/cpu/cpu*/cpufreq/"
            "cpuinfo_max_freq; write the profile by hand (docs/phones.md)"
        )
    name = name or default_name(layout)
    path = Path(out) if out else Path.cwd() / "device_profiles" / f"{name}.toml"
    if path.exists() and not force:
        raise InputError(f"{path} exists; pass --force to overwrite it", "--probe")
    path.parent.mkdir(parents=True, exist_ok=True)
    write_atomic(path, profile_toml(layout, name, serial).encode())
    prof = parse_profile(load_toml(path), str(path))  # what was written loads as a profile
    doc = {
        "serial": serial,
        "profile": str(path),
        "name": prof.name,
        "model": layout.model,
        "device": layout.device,
        "soc": layout.soc,
        "clusters": [{"cpus": list(c.cpus), "max_khz": c.max_khz} for c in layout.clusters()],
        "big_core": layout.big_core,
        "cpu_mask": prof.cpu_mask,
        "threads": prof.threads,
    }
    if as_json:
        click.echo(json.dumps(doc, indent=2))
        return
    click.echo(
        f"{serial}: {layout.model or '?'} ({layout.device or '?'}), {layout.soc or 'SoC unknown'}; "
        f"clusters {layout.summary()}"
    )
    click.echo(
        f"wrote {path}: 1 thread on cpu{layout.big_core} (taskset {prof.cpu_mask}); "
        f"use it with --device {prof.name}" + ("" if out is None else f" (or --device {path})")
    )
