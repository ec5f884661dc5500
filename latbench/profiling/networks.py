"""Whole networks, end to end: convert (cached) and time on a device.

Used by calibrate, validate and the search's device spot checks. Conversion
runs in worker processes like the layer profiler, so the timing process never
competes with a converter.
"""

from __future__ import annotations

import multiprocessing as mp
import os
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Iterator, Sequence

from tqdm import tqdm

from latbench.build.cache import arch_path
from latbench.devices import Device
from latbench.devices.measure import Measurement
from latbench.nets.arch import Arch
from latbench.nets.load import arch_from_dict
from latbench.procs import pool_initializer


def _convert_arch_worker(arch_json: dict, precision: str) -> tuple[str | None, str | None]:
    from latbench.quiet import quiet_tensorflow

    quiet_tensorflow()
    from latbench.build.convert import convert_arch

    try:
        return str(convert_arch(arch_from_dict(arch_json), precision)), None
    except Exception as exc:  # noqa: BLE001 - recorded per network, the batch goes on
        return None, f"{type(exc).__name__}: {str(exc)[:300]}"


def convert_archs(
    archs: Sequence[Arch], precision: str = "fp32", workers: int = 2, progress: bool = True
) -> list[tuple[Path | None, str | None]]:
    """Convert networks not yet cached, in parallel; (path, error) per arch, in order."""
    out: list[tuple[Path | None, str | None]] = [(None, None)] * len(archs)
    todo = []
    for i, a in enumerate(archs):
        p = arch_path(a, precision)
        if p.exists():
            out[i] = (p, None)
        else:
            todo.append(i)
    if not todo:
        return out
    with ProcessPoolExecutor(
        max_workers=max(1, workers),
        mp_context=mp.get_context("spawn"),
        initializer=pool_initializer,  # workers die with this process
        initargs=(os.getpid(),),
    ) as pool:
        futs = {i: pool.submit(_convert_arch_worker, archs[i].to_dict(), precision) for i in todo}
        for i in tqdm(
            todo, desc="convert nets", unit="net", disable=not progress, dynamic_ncols=True
        ):
            path, err = futs[i].result()
            out[i] = (Path(path) if path else None, err)
    return out


def measure_arch(device: Device, arch: Arch, precision: str = "fp32") -> Measurement:
    """Build, convert (cached) and time one whole network on the device."""
    p = arch_path(arch, precision)
    if not p.exists():
        path, err = _convert_arch_worker(arch.to_dict(), precision)
        if path is None:
            from latbench.errors import LatbenchError

            raise LatbenchError(f"cannot convert {arch.name}: {err}")
        p = Path(path)
    return device.measure(p, network=True)


def measure_archs(
    device: Device,
    archs: Sequence[Arch],
    precision: str = "fp32",
    workers: int = 2,
    progress: bool = True,
) -> Iterator[tuple[int, Measurement | None, str | None]]:
    """Convert all (parallel), then time each: yields (index, measurement, error)."""
    from latbench.devices import ModelRunError

    converted = convert_archs(archs, precision, workers, progress)
    for i in tqdm(
        range(len(archs)),
        desc=f"time nets on {device.profile.name}",
        unit="net",
        disable=not progress,
        dynamic_ncols=True,
    ):
        path, err = converted[i]
        if path is None:
            yield i, None, f"convert: {err}"
            continue
        try:
            yield i, device.measure(path, network=True), None
        except ModelRunError as exc:
            yield i, None, f"run: {exc}"


def measure_network(
    device: Device,
    arch: Arch,
    precision: str = "fp32",
    progress: bool = True,
    bursts: int = 1,
    gap_s: float = 1.0,
) -> Measurement:
    """One network end to end, exactly as calibrate measures each of its networks
    (`measure_archs`: conversion in a worker process, then the device's protocol).

    With bursts > 1 the protocol runs that many times, `gap_s` apart, and the result is
    `combine_bursts`: its confidence interval holds over those seconds, not only within
    one burst.

    Raises LatbenchError when it cannot be converted, ModelRunError when it fails
    on the device, DeviceLost when the device goes away.
    """
    from latbench.errors import LatbenchError

    [(path, err)] = convert_archs([arch], precision, workers=1, progress=progress)
    if path is None:
        raise LatbenchError(f"cannot convert {arch.name} ({precision}): {err}")
    return measure_file(device, path, arch.name, progress, bursts, gap_s)


def measure_file(
    device: Device,
    path: Path,
    name: str,
    progress: bool = True,
    bursts: int = 1,
    gap_s: float = 1.0,
) -> Measurement:
    """One .tflite file on the device, in `bursts` bursts `gap_s` apart (`combine_bursts`)."""
    import time

    from latbench.devices import ModelRunError
    from latbench.devices.measure import combine_bursts

    taken: list[Measurement] = []
    t0 = time.monotonic()
    for b in tqdm(
        range(max(1, bursts)),
        desc=f"time {name} on {device.profile.name}",
        unit="burst",
        disable=not progress or bursts < 2,
        dynamic_ncols=True,
    ):
        if b:
            time.sleep(gap_s)
        try:
            taken.append(device.measure(path, network=True))
        except ModelRunError as exc:
            raise ModelRunError(f"{name} failed on {device.profile.name}: {exc}") from None
    if len(taken) == 1:
        return taken[0]
    return combine_bursts(taken, time.monotonic() - t0)
