"""`latbench profile`: enumerate layers, convert what is new, time what is missing.

Two phases, so conversion never disturbs a timing: conversion runs in worker
processes (TensorFlow is imported there only, and a batch of layers shares one
converter call), then each device times the converted files and appends one
LUT row per layer as it goes. Already-measured keys are skipped: re-running
the same command resumes an interrupted profile.

The loop is generic in what a row is (`Table`): layers of latbench's networks (`LAYERS`,
converted by `build/convert.py`) or operators of any .tflite (`profiling/oplut.py`, cut
out by `build/tflite_ops.py`) go through the same locking, resume, conversion workers,
sentinel and crash-safe appends.
"""

from __future__ import annotations

import contextlib
import multiprocessing as mp
import os
import re
import threading
import time
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Callable, Sequence

from tqdm import tqdm

from latbench._version import __version__
from latbench.build.cache import converter_version, spec_path
from latbench.devices import Device, DeviceLost, ModelRunError
from latbench.devices.fleet import WorkQueue, split_fingerprint
from latbench.devices.hostload import siblings
from latbench.devices.kinds import device_kind
from latbench.fileio import hold_lock
from latbench.nets.arch import LayerSpec
from latbench.procs import pool_initializer
from latbench.profiling.lut import LUT, Row, lut_path
from latbench.profiling.sentinel import NETWORK as SENTINEL_NETWORK
from latbench.profiling.sentinel import Sentinel, sentinel_layer, sentinel_path

# A run whose first rows all fail the same way (wrong binary, a CPU the phone lacks, a delegate
# it cannot create) stops after this many instead of recording every row as failed.
SAME_FAILURE_STOP = 5


def failure_kind(error: str, names: Sequence[str] = ()) -> str:
    """An error message with what differs between rows (model names, numbers) taken out."""
    for n in names:
        if n:
            error = error.replace(n, "<model>")
    return re.sub(r"\d+(?:\.\d+)?", "#", error)[:300]


@dataclass
class Summary:
    device: str
    lut: Path
    total: int = 0
    skipped: int = 0
    reused: int = 0  # rows copied from other LUT files of the device (same settings)
    measured: int = 0
    failed: int = 0
    wall_s: float = 0.0
    stopped: str = ""  # why the run stopped early, if it did
    flagged: dict[str, int] = field(
        default_factory=dict
    )  # row flag (throttled, partial_delegate) -> rows
    errors: list[str] = field(default_factory=list)
    sentinel: dict = field(default_factory=dict)  # Sentinel.summary() of the run
    sentinel_line: str = ""
    health_before: dict = field(default_factory=dict)
    health_after: dict = field(default_factory=dict)

    @property
    def per_minute(self) -> float:
        done = self.measured + self.failed
        return 60.0 * done / self.wall_s if self.wall_s > 0 else 0.0

    def line(self) -> str:
        reused = f"{self.reused} reused from other LUT files, " if self.reused else ""
        s = (
            f"{self.device}: {self.measured} measured, {self.failed} failed, {reused}"
            f"{self.skipped} already in {self.lut}, {self.wall_s:.0f} s wall, "
            f"{self.per_minute:.0f} entries/min"
        )
        if self.flagged:
            s += " -- flagged rows: " + ", ".join(
                f"{n} {k}" for k, n in sorted(self.flagged.items())
            )
        s += f" -- stopped: {self.stopped}" if self.stopped else ""
        return s + (f"\n  {self.sentinel_line}" if self.sentinel_line else "")


def lut_meta(device: Device, precision: str, space: str, table: str = "") -> dict:
    """Header of a new LUT: what must match (identity) and what is informative.
    `table` names a LUT that is not a layer LUT ("ops": profiling/oplut.py)."""
    p = device.profile
    return {
        **({"table": table} if table else {}),
        "fingerprint": device.fingerprint(),
        "converter": converter_version(),
        "precision": precision,
        "space": space,
        "protocol": asdict(p.protocol),
        "latbench": __version__,
        "health_at_start": device.health(),
        "sentinel": {  # re-timed during every job that measures (profiling/sentinel.py)
            "file": sentinel_path(Path("."), p.name, precision).name,
            "layer": sentinel_layer(precision).key,
            "network": SENTINEL_NETWORK,
        },
        "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
    }


def other_luts(lut: LUT, lut_dir: Path, device: str, precision: str) -> list[LUT]:
    """The device's other LUT files in lut_dir measured under the same settings as `lut`.

    Files under other settings (another runtime, converter, clock...) and files that
    do not parse are left out: they are never mixed in.
    """
    from latbench.errors import InputError
    from latbench.profiling.lut import find_luts

    out = []
    for p in find_luts(lut_dir, device, precision):
        if lut.path is not None and Path(p).resolve() == Path(lut.path).resolve():
            continue
        try:
            other = LUT.load(p)
            other.check_compatible(lut.meta)
        except InputError:
            continue
        out.append(other)
    return out


def reuse_rows(lut: LUT, specs: Sequence[LayerSpec], sources: Sequence[LUT]) -> int:
    """Copy the measured rows of `specs` that `sources` hold into `lut`; how many were copied.

    A copied row keeps its measurement and its measured_at date: it is the same
    measurement, now also found under this file's name.
    """
    n = 0
    for s in specs:
        if s.key in lut.rows and lut.rows[s.key].status == "ok":
            continue
        for src in sources:
            row = src.rows.get(s.key)
            if row is not None and row.status == "ok":
                lut.append(Row(s, "ok", row.measurement, measured_at=row.measured_at))
                n += 1
                break
    return n


def count_missing(
    specs: Sequence[LayerSpec],
    lut_dir: Path,
    device: str,
    precision: str,
    target: Path,
    reuse: bool,
    retry_failed: bool = False,
    lut_cls: type[LUT] = LUT,
) -> tuple[int, int]:
    """(already measured, to measure) for a dry run: keys in `target` (and, with reuse,
    the device's other LUT files) count as done. Settings are not compared here (that
    needs the device); the real run refuses or skips files measured under others."""
    from latbench.errors import InputError
    from latbench.profiling.lut import find_luts

    paths = find_luts(lut_dir, device, precision) if reuse else []
    if Path(target).exists() and Path(target) not in paths:
        paths.append(Path(target))
    done: set[str] = set()
    for p in paths:
        try:
            rows = lut_cls.load(p).rows
        except InputError:
            continue
        mine = Path(p) == Path(target)
        done |= {k for k, r in rows.items() if r.status == "ok" or (mine and not retry_failed)}
    have = sum(1 for s in specs if s.key in done)
    return have, len(specs) - have


def _batches(specs: Sequence[Any], size: int) -> list[list[Any]]:
    return [list(specs[i : i + size]) for i in range(0, len(specs), size)]


def converter_cpus(devices: Sequence[Device]) -> set[int] | None:
    """CPUs a converter may use while devices are timing, or None if it must wait.

    Phones time on their own CPUs. A host device (or the emulated phone, whose
    stand-in runs here) times on its pinned CPU set, so converters may run on
    the other CPUs; an unpinned one needs them all.
    """
    free = set(os.sched_getaffinity(0))
    for d in devices:
        if device_kind(d.profile.kind).times_on_this_cpu:
            if not d.pinned_cpus:
                return None
            for c in d.pinned_cpus:  # and off their hyperthread siblings (the same core)
                free -= {c} | siblings(c)
    return free or None


def _pin(cpus: set[int] | None) -> None:
    if cpus:
        os.sched_setaffinity(0, cpus)


def _convert_worker(specs: list[LayerSpec], batch_size: int):
    from latbench.quiet import quiet_tensorflow

    quiet_tensorflow()
    from latbench.build.convert import convert_to_cache

    return convert_to_cache(specs, batch_size)


@dataclass(frozen=True)
class Table:
    """What a profile run fills, and how: the LUT class (its row type), where its file is,
    where an item's .tflite is cached, and the worker function that makes the missing ones
    (`worker(items, batch_size) -> [(key, path | None, error | None)]`, run in a process
    that may die: its batch is then recorded as failed)."""

    lut_cls: type[LUT]
    lut_file: Callable[[Path, str, str, str], Path]  # (lut_dir, device, label, precision)
    tflite: Callable[[Any], Path]
    worker: Callable[[list, int], list]
    name: str = ""  # the header's `table` ("" for layer LUTs)
    # whether an item's cached .tflite is all it needs (else the worker makes it again)
    complete: Callable[[Path], bool] = Path.exists


LAYERS = Table(LUT, lut_path, spec_path, _convert_worker)


@dataclass
class Converter:
    """Converts specs in worker processes, reporting each finished batch.

    Runs in a thread so devices can time what is ready while the rest converts.
    """

    workers: int = 2
    batch_size: int = 48
    cpus: set[int] | None = None
    progress: bool = True
    worker: Callable[[list, int], list] = _convert_worker
    unit: str = "layer"

    def __post_init__(self) -> None:
        self._stop = threading.Event()

    def run(
        self,
        todo: Sequence[Any],
        on_done: Callable[[Any, Path | None, str | None], None],
    ) -> None:
        if not todo:
            return
        bar = tqdm(
            total=len(todo),
            desc="convert",
            unit=self.unit,
            disable=not self.progress,
            dynamic_ncols=True,
            position=0,
        )
        pool = ProcessPoolExecutor(
            max_workers=max(1, self.workers),
            mp_context=mp.get_context("spawn"),
            initializer=pool_initializer,  # workers die with this process, then pin
            initargs=(os.getpid(), _pin, self.cpus),
        )
        try:
            futures = {
                pool.submit(self.worker, b, self.batch_size): b
                for b in _batches(todo, self.batch_size)
            }
            for fut in as_completed(futures):
                if self._stop.is_set():
                    break
                batch = futures[fut]
                try:
                    results = {k: (p, e) for k, p, e in fut.result()}
                except Exception as exc:  # noqa: BLE001 - a worker died: the batch is recorded as failed
                    results = {s.key: (None, f"conversion worker died: {exc}") for s in batch}
                for s in batch:
                    path, err = results.get(s.key, (None, "lost in conversion"))
                    on_done(s, Path(path) if path else None, err)
                bar.update(len(batch))
        finally:
            bar.close()
            if self._stop.is_set():
                for proc in list(getattr(pool, "_processes", {}).values()):
                    proc.kill()  # Ctrl-C: do not wait for a batch in flight
            pool.shutdown(wait=not self._stop.is_set(), cancel_futures=True)

    def stop(self) -> None:
        self._stop.set()


def measure_pending(
    device: Device,
    lut: LUT,
    queue: WorkQueue[Any],
    converted: dict[str, tuple[Path | None, str | None]],
    summary: Summary,
    progress: bool = True,
    position: int = 0,
) -> None:
    """Time specs from the queue (the LUT's item type), appending each row at once.

    If the device is lost, the spec in flight goes back to the queue (another
    phone of a --split run may take it) and this device stops cleanly.
    """
    bar = tqdm(
        total=queue.total,
        desc=f"time {device.profile.name}",
        unit=lut.unit,
        disable=not progress,
        position=position,
        dynamic_ncols=True,
    )
    summary.health_before = device.health()
    sentinel: Sentinel | None = None
    first_failures: list[str] = []  # failure kinds of the rows timed so far, while none succeeded
    try:
        for s in queue:
            if sentinel is None:  # the first row to time: the sentinel's first reading
                sentinel = Sentinel(
                    device,
                    Path(lut.path).parent,
                    str(lut.meta.get("precision", s.precision)),
                    f"profile {Path(lut.path).name}",
                    network=True,  # the whole-network reference calibrate compares against
                ).start()
            else:
                sentinel.check()
            path, err = converted.get(s.key, (None, "not converted"))
            if path is None:
                lut.append(Row(s, "failed", error=f"convert: {err}"))
                summary.failed += 1
                summary.errors.append(f"{s.key}: convert: {err}")
            else:
                try:
                    m = device.measure(path)
                except ModelRunError as exc:
                    lut.append(Row(s, "failed", error=f"run: {exc}"))
                    summary.failed += 1
                    summary.errors.append(f"{s.key}: run: {exc}")
                    if summary.measured == 0:
                        first_failures.append(failure_kind(str(exc), (s.key, Path(path).name)))
                        if (
                            len(first_failures) >= SAME_FAILURE_STOP
                            and len(set(first_failures)) == 1
                        ):
                            summary.stopped = (
                                f"the first {len(first_failures)} rows all failed the same way "
                                f"({str(exc)[:200]}); fix that, then run again with --retry-failed"
                            )
                            bar.update(1)
                            break
                except DeviceLost:
                    queue.put_back(s)
                    raise
                else:
                    row = Row(s, "ok", m)
                    lut.append(row)
                    summary.measured += 1
                    for flag in row.flags:  # a phone row timed throttled / partly delegated: say so
                        summary.flagged[flag] = summary.flagged.get(flag, 0) + 1
            bar.total = queue.total
            bar.update(1)
            bar.set_postfix(failed=summary.failed, refresh=False)
        if sentinel is not None:
            sentinel.check(force=True)
    except DeviceLost as exc:
        summary.stopped = f"device lost: {exc}"
    finally:
        bar.close()
        if sentinel is not None:
            summary.sentinel, summary.sentinel_line = sentinel.summary(), sentinel.line()
    try:
        summary.health_after = device.health()
    except Exception:  # noqa: BLE001 - a lost device may not answer
        pass


def _run_threads(jobs: list[tuple], progress: bool) -> None:
    threads = [
        threading.Thread(target=measure_pending, args=(*job, progress, i + 1), daemon=True)
        for i, job in enumerate(jobs)
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join()


def profile(
    devices: Sequence[Device],
    specs: Sequence[Any],
    space: str,
    precision: str,
    lut_dir: Path,
    workers: int = 2,
    retry_failed: bool = False,
    progress: bool = True,
    split: bool = False,
    reuse: bool = False,
    table: Table = LAYERS,
    groups: Sequence[Sequence[Device]] | None = None,
) -> list[Summary]:
    """Profile `specs` on every device, each into its own LUT file.

    Conversion and timing overlap when the converters can be kept off the
    timing CPUs (phones, or a host pinned to a CPU subset); otherwise all
    conversion finishes first. With split=True the devices must be identical
    (same fingerprint but the name): they share one LUT, named after the
    first, and one work queue. With reuse=True, rows already measured in the
    device's other LUT files under the same settings are copied, not measured again.
    Every LUT written is locked for the whole run (`fileio.hold_lock`): a second writer of
    the same LUT is refused with the holder's pid, command and start time. `table` says what
    a row is (default: layers; `profiling/oplut.OPS`: operators of any model).
    `groups` (a phone farm, devices/farm.py) generalises split: each group's phones share
    one LUT named after the group's first, and one queue; `devices` is then ignored.
    """
    if groups is None:
        split = split and len(devices) > 1
        groups = [list(devices)] if split else [[d] for d in devices]
    groups = [list(g) for g in groups if g]
    with contextlib.ExitStack() as locks:
        for g in groups:
            path = table.lut_file(lut_dir, g[0].profile.name, space, precision)
            locks.enter_context(hold_lock(path, f"LUT {path}"))
        return _profile(
            groups, specs, space, precision, lut_dir, workers, retry_failed, progress, reuse,
            table,
        )  # fmt: skip


def _profile(
    groups: list[list[Device]],
    specs: Sequence[Any],
    space: str,
    precision: str,
    lut_dir: Path,
    workers: int,
    retry_failed: bool,
    progress: bool,
    reuse: bool,
    table: Table,
) -> list[Summary]:
    t0 = time.monotonic()
    for g in groups:
        if len(g) > 1:
            split_fingerprint(g)
    devices = [d for g in groups for d in g]
    plans = []  # (device that owns the LUT, LUT, pending specs, feed of specs ready to time)
    reused: dict[Path, int] = {}
    for g in groups:
        d = g[0]
        path = table.lut_file(lut_dir, d.profile.name, space, precision)
        lut = table.lut_cls.open(path, lut_meta(d, precision, space, table.name))
        done = lut.ok() if retry_failed else lut.rows
        pending = [s for s in specs if s.key not in done]
        n_reused = 0
        if reuse and pending:
            n_reused = reuse_rows(lut, pending, other_luts(lut, lut_dir, d.profile.name, precision))
            pending = [
                s for s in pending if s.key not in lut.rows or lut.rows[s.key].status != "ok"
            ]
        reused[lut.path] = n_reused
        plans.append((d, lut, pending, WorkQueue(closed=False)))
    converted: dict[str, tuple[Path | None, str | None]] = {}
    waiting: dict[str, list[WorkQueue]] = {}
    for _, _, pending, feed in plans:
        for s in pending:
            p = table.tflite(s)
            if table.complete(p):
                converted[s.key] = (p, None)
                feed.add(s)
            else:
                waiting.setdefault(s.key, []).append(feed)
    todo = list(
        {s.key: s for _, _, pending, _ in plans for s in pending if s.key in waiting}.values()
    )

    def on_done(s: Any, path: Path | None, err: str | None) -> None:
        converted[s.key] = (path, err)
        for feed in waiting.pop(s.key, []):
            feed.add(s)

    jobs = [(d, lut, feed) for g, (_, lut, _, feed) in zip(groups, plans) for d in g]
    skipped = {
        lut.path: len(specs) - len(pending) - reused[lut.path] for _, lut, pending, _ in plans
    }
    summaries = [
        Summary(
            d.profile.name,
            lut.path,
            total=len(specs),
            skipped=skipped[lut.path],
            reused=reused[lut.path],
        )
        for d, lut, _ in jobs
    ]
    cpus = converter_cpus(devices)
    converter = Converter(
        workers if cpus is None else min(workers, len(cpus)),
        cpus=cpus,
        progress=progress,
        worker=table.worker,
        unit=table.lut_cls.unit,
    )

    def convert_then_close() -> None:
        try:
            converter.run(todo, on_done)
        finally:
            for *_, feed in plans:
                feed.close()

    try:
        conv_thread = None
        if cpus is None:
            convert_then_close()  # converting would disturb the timing: finish it first
        else:
            conv_thread = threading.Thread(target=convert_then_close, daemon=True)
            conv_thread.start()
        measure_jobs = [
            (d, lut, feed, converted, summ) for (d, lut, feed), summ in zip(jobs, summaries)
        ]
        if len(measure_jobs) == 1:
            measure_pending(*measure_jobs[0], progress, 1)
        else:
            _run_threads(measure_jobs, progress)
        if conv_thread is not None:
            conv_thread.join()
    finally:
        converter.stop()
        for s in summaries:
            s.wall_s = time.monotonic() - t0
    return summaries
