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
make a row contended, since latbench's own converters run there while rows are timed. Work
of *other* processes there (the other CPUs' busy time minus latbench's own process tree's CPU
time, `foreign_busy`) flags the row "loaded": it shares the memory system with the row.
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
# Other processes than latbench's own kept this many CPUs' worth busy over a row: the row is
# flagged "loaded" (not re-timed: a long job beside us outlasts any pause). A whole network
# shares the memory system with them: measured here, a CPU + memory hog on the other vCPU slowed
# networks by a median 13 % while isolated layers moved 2.5 % (BENCHMARKS.md, issue 18).
FOREIGN_BUSY = 0.50


def _own_tree_ticks(exclude: frozenset[int] = frozenset()) -> dict[int, int]:
    """CPU time (clock ticks, user + system) of this process and each descendant, but those
    in `exclude` (the timing worker) and theirs: latbench's own work elsewhere (converters)."""
    parent: dict[int, int] = {}
    ticks: dict[int, int] = {}
    for d in Path("/proc").iterdir():
        if not d.name.isdigit():
            continue
        try:
            text = (d / "stat").read_text()
        except OSError:
            continue
        fields = text[text.rfind(")") + 2 :].split()  # after "pid (comm) "
        try:
            parent[int(d.name)] = int(fields[1])
            ticks[int(d.name)] = int(fields[11]) + int(fields[12])
        except (IndexError, ValueError):
            continue
    mine, todo = set(), [os.getpid()]
    while todo:
        p = todo.pop()
        if p in mine or p in exclude:
            continue
        mine.add(p)
        todo.extend(c for c, pp in parent.items() if pp == p)
    return {p: ticks[p] for p in mine if p in ticks}


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


class LoadWindow:
    """Other processes' work on the other CPUs over the last `min_s` seconds or more.

    One row can be shorter than a few clock ticks, where the busy time of a CPU and the CPU
    time of latbench's processes are both counted in whole ticks: judged row by row, a
    converter's work would now and then look like someone else's. So the judgement spans a
    sliding window of at least `min_s` (snapshots taken at row ends; None until the window
    is that long)."""

    def __init__(self, cpus: tuple[int, ...], exclude: frozenset[int] = frozenset(),
                 min_s: float = 2.0, read=cpu_times, own=_own_tree_ticks,
                 clock=time.monotonic):  # fmt: skip
        self.cpus, self.exclude, self.min_s = tuple(cpus), frozenset(exclude), min_s
        self._read, self._own, self._clock = read, own, clock  # tests pass snapshots
        self._snaps: list[tuple[float, dict[int, CpuTimes], dict[int, int]]] = []
        self.update()

    def update(self) -> float | None:
        """Take a snapshot now; CPUs' worth of foreign work since the newest snapshot at least
        `min_s` old (None: the window is not that long yet, or nothing to attribute)."""
        now = (self._clock(), self._read(), self._own(self.exclude))
        old = [x for x in self._snaps if x[0] <= now[0] - self.min_s]
        self._snaps = [x for x in self._snaps if x[0] > now[0] - self.min_s] + [now]
        if old:
            self._snaps.insert(0, old[-1])  # keep the newest old-enough one for the next row
        if not old or not self.cpus:
            return None
        _, a, own_a = old[-1]
        _, b, own_b = now
        others = [c for c in b if c not in self.cpus and c in a]
        spans = [b[c].total - a[c].total for c in others]
        per_cpu = sum(spans) / len(spans) if spans else 0
        if per_cpu <= 0:
            return None
        if set(own_a) - set(own_b):
            return None  # one of latbench's processes ended: its last ticks are not known
        own = sum(t - own_a.get(p, 0) for p, t in own_b.items())
        busy = sum(b[c].busy - a[c].busy for c in others)
        return round(max(0.0, (busy - own) / per_cpu), 3)


class CpuWatch:
    """Busy and steal shares over a span of time, around the timing CPUs (the worker's set:
    its own CPUs are neither "others" nor "siblings"; () = unpinned, nothing to attribute)."""

    def __init__(self, cpus: tuple[int, ...], window: LoadWindow | None = None):
        self.cpus = tuple(cpus)
        self.cpu = self.cpus[0] if self.cpus else -1
        self.siblings = set().union(*(siblings(c) for c in self.cpus)) - set(self.cpus)
        self.window = window
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
        # busy time on the other CPUs that was not latbench's own, over the recent window
        foreign = self.window.update() if self.window is not None and others else None
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
            "foreign_busy": foreign,  # CPUs' worth of other processes' work on the other CPUs
            "loadavg": round(os.getloadavg()[0], 2),
        }
        cond["contended"] = judge(cond)
        return cond


def loaded(cond: dict) -> bool:
    """Whether other processes kept the other CPUs busy while the row was timed."""
    v = cond.get("foreign_busy")
    return isinstance(v, (int, float)) and v > FOREIGN_BUSY


def elsewhere(cond: dict) -> str | None:
    """A note when another CPU was busy while this row was timed (None when quiet)."""
    if loaded(cond):
        return (
            f"other processes kept {cond['foreign_busy']:.1f} CPUs busy beside the timing CPU "
            f"(they share its memory and caches)"
        )
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
