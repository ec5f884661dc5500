"""Whole-network measurements and fitting the predictors on them.

Two sources of measured networks, one fit:
- `latbench calibrate --device D`: networks sampled from the search space (plus
  the zoo unless --no-zoo) are measured end to end on D, one row appended per
  network as it goes (resumable CSV, `D_SPACE_PRECISION.calib.csv`);
- `latbench calibrate --device D --measurements FILE.csv [--prior P]`: networks
  timed elsewhere (by hand with benchmark_model, another tool), listed as an
  arch.json path or the space's tokens with their latency; the features come
  from P's LUT (few-shot: a device with no LUT of its own).
Either way the predictors are fitted on (features, measured ms) and written
with their provenance to `D_SPACE_PRECISION.predictor.json` (predictors/files.py).
"""

from __future__ import annotations

import csv
import json
import math
import random
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from latbench import records
from latbench.devices import Device
from latbench.errors import InputError
from latbench.fileio import MAX_TABLE_BYTES, parse_json, read_text
from latbench.nets.arch import Arch
from latbench.nets.load import arch_from_dict, load_arch
from latbench.nets.spaces import SearchSpace
from latbench.nets.zoo import all_archs
from latbench.predictors import (
    DEFAULT,
    FEATURES,
    LayerTable,
    LinearPredictor,
    LutSumPredictor,
    Predictor,
    ScaledLutPredictor,
    predictor_path,
    save_predictors,
)
from latbench.predictors.files import file_sha256
from latbench.profiling.layers import lut_meta
from latbench.profiling.lut import MAX_MS, MIN_MS, checked_ms
from latbench.profiling.networks import measure_archs
from latbench.records import parse_csv

NET_COLUMNS = [
    "digest",
    "name",
    "source",
    "tokens",
    "arch",
    "status",
    "median_ms",
    "p10_ms",
    "p90_ms",
    "std_ms",
    "runs",
    "ci_rel",
    "error",
    "measured_at",
    "pass",
]
NET_OPTIONAL = {"pass"}  # files from before --passes: one row per network


def nets_path(lut_dir: Path, device: str, space: str, precision: str, kind: str) -> Path:
    """Where a device's measured networks live: kind is calib or validate."""
    return Path(lut_dir) / f"{device}_{space}_{precision}.{kind}.csv"


@dataclass(frozen=True)
class Network:
    arch: Arch
    source: str  # "space:seed", "zoo" or "file:ROW"
    tokens: tuple[int, ...] = ()


@dataclass(frozen=True)
class NetResult:
    network: Network
    median_ms: float | None  # with several passes: the median of the passes' medians
    error: str = ""
    passes: int = 1  # measurements behind median_ms


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
    """digest -> result, for the rows of a network-measurement file.

    A network measured in several passes has one row per pass; its result is the
    median of the passes' medians. A network that failed in any pass is failed.
    """
    _, rows = records.read(path, NET_COLUMNS, NET_OPTIONAL)
    by: dict[str, tuple[Network, list[float], str]] = {}
    for n, r in enumerate(rows):
        try:
            arch = arch_from_dict(parse_json(r["arch"], "arch"))
            tokens = tuple(parse_json(r["tokens"], "tokens")) if r["tokens"] else ()
            med = checked_ms(r["median_ms"], "median_ms") if r["status"] == "ok" else None
        except (ValueError, TypeError, InputError) as exc:
            raise InputError(f"{path}: row {n + 1} is malformed: {exc}") from None
        net, meds, err = by.get(r["digest"], (Network(arch, r["source"], tokens), [], ""))
        if med is None:
            err = r["error"] or "failed"
        else:
            meds.append(med)
        by[r["digest"]] = (net, meds, err)
    return {
        d: NetResult(net, None if err or not meds else float(np.median(meds)), err, len(meds))
        for d, (net, meds, err) in by.items()
    }


def measure_networks(
    device: Device,
    nets: Sequence[Network],
    path: Path,
    precision: str,
    workers: int = 2,
    progress: bool = True,
    passes: int = 1,
) -> dict[str, NetResult]:
    """Measure the networks not yet in `path`, appending each row as it is measured."""
    return measure_sets(device, [(path, nets)], precision, workers, progress, passes=passes)[0]


def measure_sets(
    device: Device,
    sets: Sequence[tuple[Path, Sequence[Network]]],
    precision: str,
    workers: int = 2,
    progress: bool = True,
    shuffle_seed: int | None = None,
    passes: int = 1,
) -> list[dict[str, NetResult]]:
    """Measure several sets of networks, each row appended to its set's file.

    With `shuffle_seed`, the networks of all sets are timed in one seeded random
    order, so that a drift of the device's speed (load, temperature) over the pass
    hits every set alike instead of masquerading as a bias between, say, the
    calibration and the held-out networks. With `passes` > 1 every network is
    timed once per pass, each pass in its own shuffled order, so that its
    measurements lie minutes apart: one row per pass, the result is their median
    (a shared or throttling machine's speed moves on a scale of seconds, more
    than one measurement's confidence interval). A network that fails is not
    timed again. Rows already in the files count: an interrupted run resumes.
    Returns digest -> result per set.
    """
    meta = lut_meta(device, precision, space="networks")
    for path, _ in sets:
        records.open_for_append(path, meta, NET_COLUMNS, NET_OPTIONAL)
    for p in range(passes):
        done = [load_results(path) for path, _ in sets]
        todo: dict[tuple[int, str], Network] = {}
        for k, (_, nets) in enumerate(sets):
            for n in nets:
                r = done[k].get(n.arch.digest())
                if r is None or (not r.error and r.passes <= p):
                    todo[(k, n.arch.digest())] = n
        order = [(k, n) for (k, _), n in todo.items()]
        if shuffle_seed is not None or passes > 1:
            random.Random((shuffle_seed or 0) + 1000 * p).shuffle(order)
        for i, m, err in measure_archs(
            device, [n.arch for _, n in order], precision, workers, progress
        ):
            k, net = order[i]
            stats = (
                ["", "", "", "", "", ""]
                if m is None
                else [
                    f"{m.median_ms:.6g}",
                    f"{m.p10_ms:.6g}",
                    f"{m.p90_ms:.6g}",
                    f"{m.std_ms:.6g}",
                    str(m.runs),
                    f"{m.ci_rel:.4g}",
                ]
            )
            records.append(
                sets[k][0],
                [
                    net.arch.digest(),
                    net.arch.name,
                    net.source,
                    json.dumps(list(net.tokens)),
                    json.dumps(net.arch.to_dict(), separators=(",", ":")),
                    "ok" if m else "failed",
                    *stats,
                    err or "",
                    datetime.now(timezone.utc).isoformat(timespec="seconds"),
                    str(p + 1),
                ],
            )
    return [load_results(path) for path, _ in sets]


def heldout_networks(
    space: SearchSpace, n: int, seed: int, calibrated: set[str], zoo: bool
) -> tuple[list[Network], list[Network]]:
    """The networks `validate --archs n --seed seed [--zoo]` judges a predictor on:
    (sampled, zoo), leaving out those it was calibrated on (digests)."""
    sampled = [x for x in sample_networks(space, n, seed) if x.arch.digest() not in calibrated]
    zoo_held = [z for z in zoo_networks() if z.arch.digest() not in calibrated] if zoo else []
    return sampled, zoo_held


# ---- a measurements file written by a person or another tool ----------------

MEASUREMENT_COLUMNS = ("network", "latency_ms")


def _network_from_text(text: str, space: SearchSpace, base: Path) -> tuple[Arch, tuple[int, ...]]:
    """An arch.json path (relative to the measurements file) or the space's tokens."""
    t = text.strip()
    if t and all(p.strip().lstrip("-").isdigit() for p in t.replace(",", "-").split("-") if p):
        parts = [p for p in t.replace(",", "-").replace(" ", "-").split("-") if p]
        tokens = tuple(int(p) for p in parts)
        return space.decode(list(tokens)), tokens
    path = Path(t)
    if not path.is_absolute():
        path = base / path
    if not t.endswith(".json") or not path.exists():
        raise InputError(
            f"{t!r} is neither an existing arch.json file nor {space.num_tokens} "
            f"{space.name} tokens (like {'-'.join(['0'] * space.num_tokens)})"
        )
    return load_arch(path), ()


def read_measurements(path: Path, space: SearchSpace) -> list[NetResult]:
    """Rows of `network,latency_ms` (a header line first; other columns ignored).

    Every problem is an InputError naming the file and row: an unknown network,
    a missing, non-numeric, non-positive or non-finite latency, a network listed twice.
    """
    path = Path(path)
    text = read_text(path, "--measurements", MAX_TABLE_BYTES)
    lines = [line for line in text.splitlines() if not line.startswith("#")]
    parse_csv(lines, path)  # line lengths and quoting: one line naming the file
    reader = csv.DictReader(lines)
    missing = [c for c in MEASUREMENT_COLUMNS if c not in (reader.fieldnames or [])]
    if missing:
        raise InputError(
            f"{path}: needs a header with columns {', '.join(MEASUREMENT_COLUMNS)} "
            f"(missing: {', '.join(missing)})",
            "--measurements",
        )
    out: list[NetResult] = []
    seen: dict[str, int] = {}
    for n, row in enumerate(reader, start=2):  # line 1 is the header
        where = f"{path}: row {n}"
        net = (row.get("network") or "").strip()
        if not net:
            raise InputError(f"{where}: empty network")
        try:
            arch, tokens = _network_from_text(net, space, path.parent)
        except InputError as exc:
            raise InputError(f"{where}: unknown network: {exc}") from None
        raw = (row.get("latency_ms") or "").strip()
        try:
            ms = float(raw)
        except ValueError:
            raise InputError(
                f"{where} ({net}): latency_ms {raw!r} is missing or not a number"
            ) from None
        if not (math.isfinite(ms) and MIN_MS <= ms < MAX_MS):
            raise InputError(
                f"{where} ({net}): latency_ms must be a time in [{MIN_MS:g}, {MAX_MS:g}) ms, "
                f"got {raw}"
            )
        d = arch.digest()
        if d in seen:
            raise InputError(
                f"{where} ({net}): duplicate of row {seen[d]} (same network); "
                f"give each network once (e.g. the median of repeated timings)"
            )
        seen[d] = n
        name = (row.get("name") or "").strip() or arch.name
        if name != arch.name:
            arch = arch_from_dict({**arch.to_dict(), "name": name})
        out.append(NetResult(Network(arch, f"file:{n}", tokens), ms))
    if not out:
        raise InputError(f"{path}: no measurements", "--measurements")
    return out


# ---- fitting -----------------------------------------------------------------


def training_set(
    table: LayerTable, results: Sequence[NetResult]
) -> tuple[np.ndarray, np.ndarray, list[NetResult]]:
    """Feature matrix and measured latencies of the successfully measured networks."""
    ok = [r for r in results if r.median_ms is not None]
    if not ok:
        raise InputError("no successfully measured networks to fit on")
    X = table.features([r.network.arch for r in ok])
    y = np.array([r.median_ms for r in ok])
    return X, y, ok


def make_predictors() -> dict[str, Predictor]:
    """What a predictor file holds, unfitted: the default and the baselines it is judged against."""
    return {
        DEFAULT: ScaledLutPredictor(),
        "lut": LutSumPredictor(),
        "flops": LinearPredictor(("macs_m",)),
        "regression": LinearPredictor(FEATURES),
    }


def fit_predictors(X: np.ndarray, y: np.ndarray) -> dict[str, Predictor]:
    return {k: p.fit(X, y) for k, p in make_predictors().items()}


LOO_MAX = 20  # up to this many networks: leave-one-out; more: FOLDS-fold cross-validation
FOLDS = 10
MIN_JUDGED = 4  # fewer networks cannot judge a method: the default stays DEFAULT, and says so
SIMPLEST_FIRST = ("lut", "flops", DEFAULT, "regression")  # by the number of fitted numbers


def judge_predictors(X: np.ndarray, y: np.ndarray) -> dict[str, Any]:
    """Every method's out-of-sample error on the calibration networks; the best is the default.

    Each network is predicted by the methods fitted without it (leave-one-out up to LOO_MAX
    networks, else FOLDS folds assigned round-robin in the networks' order, so the judgement
    is deterministic). The plain LUT sum is one of the candidates: a calibration that does
    not beat it out of sample does not replace it. Differences within one standard error of
    the best method's error decide nothing: the simplest method within it wins (the
    "one-standard-error rule" of cross-validation)."""
    n = len(y)
    if n < MIN_JUDGED:
        return {
            "method": "none",
            "networks": n,
            "mape": {},
            "default": DEFAULT,
            "reason": f"{n} network(s) cannot judge the methods: {DEFAULT} by default",
        }
    k = n if n <= LOO_MAX else FOLDS
    how = "leave-one-out" if k == n else f"{k}-fold cross-validation"
    fold = np.arange(n) % k
    pred = {name: np.empty(n) for name in make_predictors()}
    for f in range(k):
        test = fold == f
        for name, p in make_predictors().items():
            pred[name][test] = p.fit(X[~test], y[~test]).predict(X[test])
    err = {name: np.abs(v - y) / y * 100 for name, v in pred.items()}
    mape = {name: round(float(e.mean()), 4) for name, e in err.items()}
    lowest = min(mape, key=mape.get)
    se = float(err[lowest].std(ddof=1) / np.sqrt(n))
    order = [m for m in SIMPLEST_FIRST if m in mape] + [m for m in mape if m not in SIMPLEST_FIRST]
    best = next(m for m in order if mape[m] <= mape[lowest] + se)
    why = f"{how} on {n} networks: {best} MAPE {mape[best]:.2f} %"
    if best != lowest:
        why += (
            f", within one standard error ({se:.2f}) of {lowest}'s {mape[lowest]:.2f} % and simpler"
        )
    if best != "lut":
        why += f"; LUT sum {mape['lut']:.2f} %"
    return {
        "method": how,
        "networks": n,
        "mape": mape,
        "standard_error": round(se, 4),
        "default": best,
        "reason": why,
    }


def fit_and_save(
    table: LayerTable,
    results: Sequence[NetResult],
    lut_dir: Path,
    *,
    device: str,
    space: str,
    precision: str,
    measurements: Path,
    mode: str,
) -> tuple[dict[str, Predictor], np.ndarray, np.ndarray, Path]:
    """Fit every predictor on the measured networks and save them; (fitted, X, y, path).

    `table` is the LUT the features come from (the device's own, or the prior's
    for few-shot: `mode` "few-shot"); `device` and `precision` are what the
    predictor is for. The file's default is the method with the lowest out-of-sample
    error on these networks (`judge_predictors`), the plain LUT sum included.
    """
    X, y, ok = training_set(table, results)
    fitted = fit_predictors(X, y)
    selection = judge_predictors(X, y)
    calibration: dict[str, Any] = {
        "mode": mode,
        "measurements": Path(measurements).name,
        "measurements_sha256": file_sha256(measurements),
        "networks": len(ok),
        "digests": sorted(r.network.arch.digest() for r in ok),
        "zoo": sorted(r.network.arch.name for r in ok if r.network.source == "zoo"),
    }
    path = predictor_path(lut_dir, device, space, precision)
    save_predictors(
        path,
        device=device,
        space=space,
        precision=precision,
        lut=table.lut,
        lut_device=table.device,
        fitted=fitted,
        calibration=calibration,
        default=selection["default"],
        selection=selection,
    )
    return fitted, X, y, path
