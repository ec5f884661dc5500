"""What else runs where the host times: per-CPU busy and steal time, siblings, the timing CPU.

A host row is only as good as the CPU it was timed on was free. Linux says how busy each CPU
was in `/proc/stat` (cumulative jiffies per CPU: busy, idle, iowait, steal) and which CPUs
share a core in `/sys/devices/system/cpu/cpuN/topology/thread_siblings_list`. `CpuWatch`
takes the difference over one row: the share of time each other CPU was busy, the timing
CPU's steal (a hypervisor giving the vCPU to someone else), and the share of the timing
CPU's own time that went to other processes (which the worker's thread-CPU clock does not see,
but its wall clock does). `judge` turns that into reasons a row counts as contended, as a
phone row counts as throttled. On a VM two vCPUs may be hyperthreads of one core without the
topology saying so: a busy "other" CPU is recorded and reported (`elsewhere`), but it does not
make a row contended, since latbench's own converters run there while rows are timed.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass
from pathlib import Path

# A row is contended when any of these is exceeded (and its timing is repeated, then flagged)
LIMITS = {
    "wall_cpu": 1.10,  # worker's wall time / its thread CPU time (preempted on its own CPU)
    "steal": 0.02,  # share of the timing CPU's time stolen by the hypervisor
    "siblings_busy": 0.25,  # hyperthread siblings of the timing CPU: share of time busy
}
LOST_MS = 2.0  # the wall / CPU ratio counts only when the wall clock lost this much in all
OTHERS_BUSY = 0.50  # the busiest other CPU above this is reported (a VM may share cores unseen)


@dataclass(frozen=True)
class CpuTimes:
    busy: int  # jiffies doing anything but idle / iowait / steal
    total: int
    steal: int


def cpu_times(path: str = "/proc/stat") -> dict[int, CpuTimes]:
    """Cumulative times per CPU ({} where /proc/stat cannot be read)."""
    out: dict[int, CpuTimes] = {}
    try:
        lines = Path(path).read_text().splitlines()
    except OSError:
        return out
    for line in lines:
        name, *vals = line.split()
        if not name.startswith("cpu") or name == "cpu" or not name[3:].isdigit():
            continue
        v = [int(x) for x in vals[:8]] + [0] * (8 - len(vals[:8]))
        user, nice, system, idle, iowait, irq, softirq, steal = v
        total = sum(v)
        out[int(name[3:])] = CpuTimes(total - idle - iowait - steal, total, steal)
    return out


def siblings(cpu: int, root: str = "/sys/devices/system/cpu") -> set[int]:
    """CPUs sharing a core with `cpu` (hyperthreads), itself excluded."""
    try:
        text = Path(f"{root}/cpu{cpu}/topology/thread_siblings_list").read_text().strip()
    except OSError:
        return set()
    found: set[int] = set()
    for part in text.split(","):
        lo, _, hi = part.partition("-")
        if lo.isdigit():
            found.update(range(int(lo), int(hi or lo) + 1))
    return found - {cpu}


def least_busy_cpus(candidates: set[int], n: int = 1, sample_s: float = 0.3, read=cpu_times):
    """The n candidate CPUs least busy (with their siblings) over one short sample, sorted;
    ties go to the lower number. `read` gives the per-CPU times (tests pass snapshots)."""
    a = read()
    time.sleep(sample_s)
    b = read()

    def load(c: int) -> float:
        cpus = {c} | (siblings(c) & set(b))
        return sum(_busy(a.get(x), b.get(x)) for x in cpus)

    return tuple(sorted(sorted(sorted(candidates), key=load)[:n]))


def _busy(a: CpuTimes | None, b: CpuTimes | None) -> float:
    if a is None or b is None or b.total <= a.total:
        return 0.0
    return (b.busy - a.busy) / (b.total - a.total)


class CpuWatch:
    """Busy and steal shares over a span of time, around the timing CPUs (the worker's set:
    its own CPUs are neither "others" nor "siblings"; () = unpinned, nothing to attribute)."""

    def __init__(self, cpus: tuple[int, ...]):
        self.cpus = tuple(cpus)
        self.cpu = self.cpus[0] if self.cpus else -1
        self.siblings = set().union(*(siblings(c) for c in self.cpus)) - set(self.cpus)
        self._start = cpu_times()
        self._t0 = time.monotonic()

    def stop(self, wall_cpu: float | None = None, lost_ms: float | None = None) -> dict:
        """The conditions seen since the watch started; `wall_cpu` and `lost_ms` (wall minus
        CPU time over the timed runs) from the timing worker."""
        end = cpu_times()
        steal = 0.0
        for c in self.cpus:  # the most stolen of the timing CPUs
            a, b = self._start.get(c), end.get(c)
            if a and b and b.total > a.total:
                steal = max(steal, (b.steal - a.steal) / (b.total - a.total))
        others = {
            c: round(_busy(self._start.get(c), end.get(c)), 3)
            for c in end
            if self.cpus and c not in self.cpus
        }
        sib = [others[c] for c in self.siblings if c in others]
        cond = {
            "cpu": self.cpu,
            "cpus": list(self.cpus),
            "span_s": round(time.monotonic() - self._t0, 2),
            "wall_cpu": None if wall_cpu is None else round(wall_cpu, 3),
            "lost_ms": None if lost_ms is None else round(lost_ms, 3),
            "steal": round(steal, 4),
            "siblings": sorted(self.siblings),
            "siblings_busy": max(sib) if sib else None,
            "others_busy": max(others.values()) if others else None,
            "loadavg": round(os.getloadavg()[0], 2),
        }
        cond["contended"] = judge(cond)
        return cond


def elsewhere(cond: dict) -> str | None:
    """A note when another CPU was busy while this row was timed (None when quiet)."""
    v = cond.get("others_busy")
    if isinstance(v, (int, float)) and v > OTHERS_BUSY:
        return f"another CPU was {v:.0%} busy (on a VM it may share the timing CPU's core)"
    return None


def judge(cond: dict) -> list[str]:
    """Why these conditions count as contended ([] = a quiet row)."""
    why = []
    for key, limit in LIMITS.items():
        v = cond.get(key)
        if key == "wall_cpu" and not (cond.get("lost_ms") or 0) > LOST_MS:
            continue  # a ratio over microseconds of clock overhead says nothing
        if isinstance(v, (int, float)) and v > limit:
            why.append(f"{key} {v:g} > {limit:g}")
    return why
