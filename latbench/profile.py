"""`latbench profile`: enumerate layers, convert what is new, time what is missing.

Two phases, so conversion never disturbs a timing: conversion runs in worker
processes (TensorFlow is imported there only, and a batch of layers shares one
converter call), then each device times the converted files and appends one
LUT row per layer as it goes. Already-measured keys are skipped: re-running
the same command resumes an interrupted profile.
"""

from __future__ import annotations

import multiprocessing as mp
import threading
import time
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Sequence

from tqdm import tqdm

from . import __version__
from .arch import LayerSpec
from .cache import converter_version, spec_path
from .devices import Device, DeviceLost, ModelRunError
from .devices.fleet import WorkQueue, split_fingerprint
from .lut import LUT, Row, lut_path


@dataclass
class Summary:
    device: str
    lut: Path
    total: int = 0
    skipped: int = 0
    measured: int = 0
    failed: int = 0
    wall_s: float = 0.0
    stopped: str = ""  # why the run stopped early, if it did
    errors: list[str] = field(default_factory=list)
    health_before: dict = field(default_factory=dict)
    health_after: dict = field(default_factory=dict)

    @property
    def per_minute(self) -> float:
        done = self.measured + self.failed
        return 60.0 * done / self.wall_s if self.wall_s > 0 else 0.0

    def line(self) -> str:
        s = (f"{self.device}: {self.measured} measured, {self.failed} failed, "
             f"{self.skipped} already in {self.lut}, {self.wall_s:.0f} s wall, "
             f"{self.per_minute:.0f} entries/min")
        return s + (f" -- stopped: {self.stopped}" if self.stopped else "")


def lut_meta(device: Device, precision: str, space: str) -> dict:
    """Header of a new LUT: what must match (identity) and what is informative."""
    p = device.profile
    return {
        "fingerprint": device.fingerprint(),
        "converter": converter_version(),
        "precision": precision,
        "space": space,
        "protocol": asdict(p.protocol),
        "latbench": __version__,
        "health_at_start": device.health(),
        "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
    }


def _batches(specs: Sequence[LayerSpec], size: int) -> list[list[LayerSpec]]:
    return [list(specs[i:i + size]) for i in range(0, len(specs), size)]


def convert_pending(specs: Sequence[LayerSpec], workers: int = 2, batch_size: int = 48,
                    progress: bool = True) -> dict[str, tuple[Path | None, str | None]]:
    """Convert every spec not in the cache; key -> (path, error)."""
    out: dict[str, tuple[Path | None, str | None]] = {}
    todo = []
    for s in specs:
        p = spec_path(s)
        if p.exists():
            out[s.key] = (p, None)
        else:
            todo.append(s)
    if not todo:
        return out
    bar = tqdm(total=len(todo), desc="convert", unit="layer", disable=not progress,
               dynamic_ncols=True)
    # Interleave the work so both workers get a similar mix of big and small layers.
    jobs = _batches(todo, batch_size)
    with ProcessPoolExecutor(max_workers=max(1, workers),
                             mp_context=mp.get_context("spawn")) as pool:
        futures = {pool.submit(_convert_worker, b, batch_size): b for b in jobs}
        try:
            for fut in as_completed(futures):
                batch = futures[fut]
                try:
                    results = fut.result()
                except Exception as exc:  # a worker died: record the batch as failed
                    results = [(s.key, None, f"conversion worker died: {exc}") for s in batch]
                for key, path, err in results:
                    out[key] = (Path(path) if path else None, err)
                bar.update(len(batch))
        except BaseException:
            for f in futures:
                f.cancel()
            raise
        finally:
            bar.close()
    return out


def _convert_worker(specs: list[LayerSpec], batch_size: int):
    from .convert import convert_to_cache

    return convert_to_cache(specs, batch_size)


def measure_pending(device: Device, lut: LUT, queue: WorkQueue[LayerSpec],
                    converted: dict[str, tuple[Path | None, str | None]],
                    summary: Summary, progress: bool = True, position: int = 0) -> None:
    """Time specs from the queue, appending each row at once.

    If the device is lost, the spec in flight goes back to the queue (another
    phone of a --split run may take it) and this device stops cleanly.
    """
    bar = tqdm(total=len(queue), desc=f"time {device.profile.name}", unit="layer",
               disable=not progress, position=position, dynamic_ncols=True)
    summary.health_before = device.health()
    try:
        for s in queue:
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
                except DeviceLost:
                    queue.put_back(s)
                    raise
                else:
                    lut.append(Row(s, "ok", m))
                    summary.measured += 1
            bar.update(1)
            bar.set_postfix(failed=summary.failed, refresh=False)
    except DeviceLost as exc:
        summary.stopped = f"device lost: {exc}"
    finally:
        bar.close()
    try:
        summary.health_after = device.health()
    except Exception:  # a lost device may not answer
        pass


def _run_threads(jobs: list[tuple], progress: bool) -> None:
    threads = [threading.Thread(target=measure_pending, args=(*job, progress, i), daemon=True)
               for i, job in enumerate(jobs)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()


def profile(devices: Sequence[Device], specs: Sequence[LayerSpec], space: str, precision: str,
            lut_dir: Path, workers: int = 2, retry_failed: bool = False,
            progress: bool = True, split: bool = False) -> list[Summary]:
    """Profile `specs` on every device, each into its own LUT file.

    With split=True the devices must be identical (same fingerprint but for
    the name); they share one LUT, named after the first, and one work queue.
    """
    t0 = time.monotonic()
    if split and len(devices) > 1:
        split_fingerprint(devices)
        owners = [devices[0]]
    else:
        owners = list(devices)
    plans = []
    for d in owners:
        path = lut_path(lut_dir, d.profile.name, space, precision)
        lut = LUT.open(path, lut_meta(d, precision, space))
        done = lut.ok() if retry_failed else lut.rows
        pending = [s for s in specs if s.key not in done]
        plans.append((d, lut, pending))
    union: dict[str, LayerSpec] = {s.key: s for *_, pending in plans for s in pending}
    converted = convert_pending(list(union.values()), workers=workers, progress=progress)
    jobs, summaries = [], []
    if split and len(devices) > 1:
        _, lut, pending = plans[0]
        queue = WorkQueue(pending)
        for d in devices:
            summaries.append(Summary(d.profile.name, lut.path, total=len(specs),
                                     skipped=len(specs) - len(pending)))
            jobs.append((d, lut, queue, converted, summaries[-1]))
    else:
        for d, lut, pending in plans:
            summaries.append(Summary(d.profile.name, lut.path, total=len(specs),
                                     skipped=len(specs) - len(pending)))
            jobs.append((d, lut, WorkQueue(pending), converted, summaries[-1]))
    try:
        if len(jobs) == 1:
            measure_pending(*jobs[0], progress)
        else:
            _run_threads(jobs, progress)
    finally:
        for s in summaries:
            s.wall_s = time.monotonic() - t0
    return summaries
