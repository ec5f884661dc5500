"""Whole-network measurements (resumable CSV) and fitting the predictors on them.

`latbench calibrate` samples networks from the search space (plus the zoo),
measures each end to end, appends one row per network as it goes, and fits
the regression that corrects the LUT sum. `validate` uses the same file format
for its held-out networks.
"""

from __future__ import annotations

import json
import random
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Sequence

import numpy as np

from . import records
from .arch import Arch, arch_from_dict
from .devices import Device
from .e2e import measure_archs
from .errors import InputError
from .predict import LayerTable, make_predictors, predictor_path, save_predictors
from .profile import lut_meta
from .spaces import SearchSpace
from .zoo import all_archs

NET_COLUMNS = ["digest", "name", "source", "tokens", "arch", "status", "median_ms", "p10_ms",
               "p90_ms", "std_ms", "runs", "ci_rel", "error", "measured_at"]


def nets_path(lut_dir: Path, device: str, precision: str, kind: str) -> Path:
    return Path(lut_dir) / f"{device}_{precision}.{kind}.csv"


@dataclass(frozen=True)
class Network:
    arch: Arch
    source: str  # "space:seed" or "zoo"
    tokens: tuple[int, ...] = ()


@dataclass(frozen=True)
class NetResult:
    network: Network
    median_ms: float | None
    error: str = ""


def sample_networks(space: SearchSpace, n: int, seed: int) -> list[Network]:
    """n distinct networks from the space, reproducible from the seed."""
    rng = random.Random(seed)
    seen: set[str] = set()
    out = []
    for _ in range(100 * n):
        if len(out) == n:
            break
        t = space.sample(rng)
        a = space.decode(t)
        if a.digest() not in seen:
            seen.add(a.digest())
            out.append(Network(a, f"space:{seed}", tuple(t)))
    return out


def zoo_networks() -> list[Network]:
    return [Network(a, "zoo") for a in all_archs()]


def load_results(path: Path) -> dict[str, NetResult]:
    """digest -> result, for the rows of a network-measurement file."""
    _, rows = records.read(path, NET_COLUMNS)
    out = {}
    for n, r in enumerate(rows):
        try:
            arch = arch_from_dict(json.loads(r["arch"]))
            tokens = tuple(json.loads(r["tokens"])) if r["tokens"] else ()
            med = float(r["median_ms"]) if r["status"] == "ok" else None
        except (ValueError, InputError) as exc:
            raise InputError(f"{path}: row {n + 1} is malformed: {exc}") from None
        out[r["digest"]] = NetResult(Network(arch, r["source"], tokens), med, r["error"])
    return out


def measure_networks(device: Device, nets: Sequence[Network], path: Path, precision: str,
                     workers: int = 2, progress: bool = True) -> dict[str, NetResult]:
    """Measure the networks not yet in `path`, appending each row as it is measured."""
    meta = lut_meta(device, precision, space="networks")
    records.open_for_append(path, meta, NET_COLUMNS)
    done = load_results(path)
    todo = [n for n in nets if n.arch.digest() not in done]
    for i, m, err in measure_archs(device, [n.arch for n in todo], precision, workers, progress):
        net = todo[i]
        stats = ["", "", "", "", "", ""] if m is None else [
            f"{m.median_ms:.6g}", f"{m.p10_ms:.6g}", f"{m.p90_ms:.6g}", f"{m.std_ms:.6g}",
            str(m.runs), f"{m.ci_rel:.4g}"]
        records.append(path, [
            net.arch.digest(), net.arch.name, net.source, json.dumps(list(net.tokens)),
            json.dumps(net.arch.to_dict(), separators=(",", ":")), "ok" if m else "failed",
            *stats, err or "", datetime.now(timezone.utc).isoformat(timespec="seconds")])
        done[net.arch.digest()] = NetResult(net, m.median_ms if m else None, err or "")
    return done


def training_set(table: LayerTable, results: Sequence[NetResult]) -> tuple[np.ndarray, np.ndarray,
                                                                           list[NetResult]]:
    """Feature matrix and measured latencies of the successfully measured networks."""
    ok = [r for r in results if r.median_ms is not None]
    if not ok:
        raise InputError("no successfully measured networks to fit on")
    X = table.features([r.network.arch for r in ok])
    y = np.array([r.median_ms for r in ok])
    return X, y, ok


def fit_and_save(table: LayerTable, results: Sequence[NetResult], lut_dir: Path
                 ) -> tuple[dict, np.ndarray, np.ndarray]:
    """Fit every predictor on the measured networks and save them; (fitted, X, y)."""
    X, y, ok = training_set(table, results)
    fitted = {k: p.fit(X, y) for k, p in make_predictors().items()}
    save_predictors(predictor_path(lut_dir, table.device, table.precision), table.lut, fitted,
                    len(ok))
    return fitted, X, y
