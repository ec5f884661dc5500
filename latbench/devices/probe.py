"""A phone's core layout and identity, read off the phone, and the device profile they imply.

`latbench devices --probe SERIAL` uses this for any phone without a hand-written profile:
clusters come from sysfs (`cpuinfo_max_freq` of every CPU, grouped by `related_cpus`, the
CPUs sharing one cpufreq policy, where the kernel shows it, else by equal maximum), the
model and SoC from getprop (`ro.soc.model` exists from Android 12; older phones name their SoC
only in `ro.board.platform` / `ro.hardware`). The profile pins one thread to the
highest-numbered CPU of the fastest cluster, as the shipped Pixel profiles do, and is
written in their format (device_profiles/*.toml).
"""

from __future__ import annotations

import re
import time
from dataclasses import dataclass, field

from latbench.devices.adb_transport import Transport, sh_join

SYSFS = "/sys/devices/system/cpu"
# the globs are fixed text (they must stay unquoted to expand on the phone)
CPUFREQ_LINE = (
    f"grep -H . {SYSFS}/cpu*/cpufreq/cpuinfo_max_freq {SYSFS}/cpu*/cpufreq/related_cpus 2>&1"
)
# [protocol] of a probed phone: the shipped Pixel profiles' values
PHONE_PROTOCOL = {
    "warmup_runs": 10,
    "min_runs": 50,
    "max_runs": 500,
    "max_seconds": 10.0,
    "target_ci": 0.01,
}


def parse_cpufreq(out: str) -> tuple[dict[int, int], dict[int, tuple[int, ...]]]:
    """(cpu -> cpuinfo_max_freq kHz, cpu -> related_cpus) from `grep -H .` output; lines of
    files the phone lacks or hides are skipped."""
    freqs: dict[int, int] = {}
    related: dict[int, tuple[int, ...]] = {}
    for cpu, name, val in re.findall(
        r"/cpu(\d+)/cpufreq/(cpuinfo_max_freq|related_cpus):(.*)$", out, flags=re.M
    ):
        if name == "cpuinfo_max_freq" and val.strip().isdigit() and int(val) > 0:
            freqs[int(cpu)] = int(val)
        elif name == "related_cpus":
            words = val.split()
            if words and all(w.isdigit() for w in words):
                related[int(cpu)] = tuple(sorted(int(w) for w in words))
    return freqs, related


def parse_getprop(out: str) -> dict[str, str]:
    return dict(re.findall(r"^\[([^\]]+)\]: \[(.*)\]\s*$", out, flags=re.M))


@dataclass(frozen=True)
class Cluster:
    cpus: tuple[int, ...]
    max_khz: int


@dataclass(frozen=True)
class PhoneLayout:
    """What --probe read: every CPU's maximum, its policy's CPUs where shown, and getprop."""

    max_khz: dict[int, int]
    related: dict[int, tuple[int, ...]] = field(default_factory=dict)
    props: dict[str, str] = field(default_factory=dict)

    def clusters(self) -> list[Cluster]:
        """Clusters, slowest first: by related_cpus where every CPU shows it, else by maximum."""
        groups: dict[tuple[int, ...], int] = {}
        if self.max_khz and all(c in self.related for c in self.max_khz):
            for c, f in self.max_khz.items():
                key = tuple(x for x in self.related[c] if x in self.max_khz)
                groups[key] = max(groups.get(key, 0), f)
        else:
            for f in sorted(set(self.max_khz.values())):
                groups[tuple(sorted(c for c, g in self.max_khz.items() if g == f))] = f
        return sorted((Cluster(k, f) for k, f in groups.items()), key=lambda x: (x.max_khz, x.cpus))

    @property
    def big_core(self) -> int:
        return self.clusters()[-1].cpus[-1]

    @property
    def model(self) -> str:
        return self.props.get("ro.product.model", "")

    @property
    def device(self) -> str:
        return self.props.get("ro.product.device", "")

    @property
    def soc(self) -> str:
        """ro.soc.model, else ro.board.platform, else ro.hardware ('' if none)."""
        for k in ("ro.soc.model", "ro.board.platform", "ro.hardware"):
            if self.props.get(k, "").strip():
                return self.props[k].strip()
        return ""

    def summary(self) -> str:
        return ", ".join(f"cpu{_ranges(c.cpus)} {c.max_khz / 1e6:.2f} GHz" for c in self.clusters())


def read_layout(t: Transport, timeout_s: float = 15.0) -> PhoneLayout:
    """Read the layout and getprop over a connected transport."""
    freqs, related = parse_cpufreq(t.shell(CPUFREQ_LINE, timeout_s).output)
    props = parse_getprop(t.shell(sh_join(["getprop"]), timeout_s).output)
    return PhoneLayout(freqs, related, props)


def default_name(layout: PhoneLayout) -> str:
    """A profile name from the codename (ro.product.device), else the model: safe as a file name."""
    raw = (layout.device or layout.model or "phone").lower()
    return re.sub(r"[^a-z0-9_-]+", "-", raw).strip("-") or "phone"


def _ranges(cpus: tuple[int, ...]) -> str:
    if len(cpus) > 1 and list(cpus) == list(range(cpus[0], cpus[-1] + 1)):
        return f"{cpus[0]}-{cpus[-1]}"
    return ",".join(map(str, cpus))


def _q(s: str) -> str:
    """A TOML basic string."""
    return '"' + s.replace("\\", "\\\\").replace('"', '\\"') + '"'


def profile_toml(layout: PhoneLayout, name: str, serial: str) -> str:
    """The device profile for this phone, in device_profiles/*.toml's format."""
    big = layout.big_core
    mask = format(1 << big, "x")
    model = layout.model or "unknown phone"
    soc = layout.soc or "unknown SoC"
    lines = [
        f"# {model} ({layout.device or '?'}), written by `latbench devices --probe {serial}` "
        f"on {time.strftime('%Y-%m-%d')}",
        "# Read off the phone: clusters from /sys/devices/system/cpu/cpu*/cpufreq/"
        "cpuinfo_max_freq (grouped by related_cpus where shown):",
        f"#   {layout.summary()}",
        f"# SoC: {soc} (ro.soc.model, else ro.board.platform / ro.hardware).",
        f"# Pinned: one thread on cpu{big}, the last CPU of the fastest cluster "
        f"(taskset mask {mask}).",
        "# Guesses, as in the shipped profiles: the single-thread choice, the temperature limit",
        "# and the protocol numbers.",
        f"name = {_q(name)}",
        'kind = "adb"',
        f"description = {_q(f'{model}, {soc}, 1 thread on big core(s) [{big}], XNNPACK')}",
        "threads = 1",
        f"cpus = [{big}]",
        'delegate = "cpu"',
        "",
        "[protocol]",
        *(f"{k} = {v!r}" for k, v in PHONE_PROTOCOL.items()),
        "",
        "[options]",
        f"model = [{_q(layout.model)}]   # ro.product.model, for `latbench devices`"
        if layout.model
        else "# model = []",
        f"product = [{_q(layout.device)}]   # ro.product.device (codename)"
        if layout.device
        else "# product = []",
        'transport = "auto"    # auto | usb | tcp | server',
        'benchmark_model = "~/.cache/latbench/android_aarch64_benchmark_model"   # see docs/phones.md',
        'cluster = "big"       # the pre-flight checks cpus against cpuinfo_max_freq',
        f"# serial = {_q(serial)}   # set when several phones are attached",
        "max_temp_c = 38.0",
        "cool_wait_s = 300",
        "cool_poll_s = 10",
        "",
    ]
    return "\n".join(lines)
