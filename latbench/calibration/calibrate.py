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
from latbench.nets.spaces import SearchSpace, check_token_count
from latbench.nets.zoo import all_archs
from latbench.predictors import (
    BASE_FEATURES,
    DEFAULT,
    LayerTable,
    LinearPredictor,
    LutSumPredictor,
    Predictor,
    ScaledLutPredictor,
    StagewisePredictor,
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
    "speed",
    "device_state",
    "peak_mem_mb",
    "mem_delta_mb",
]
# Added later (older files read them as ""): pass (files from before --passes: one row per
# network); speed (the sentinel layer then over its LUT-time reference, profiling/sentinel.py:
# 1.08 = the machine timed 8 % slower than when the LUT was timed; "" = not known);
# device_state (JSON: the device's conditions around the row and its flags, as in a LUT);
# peak_mem_mb, mem_delta_mb (a phone's benchmark_model: the periodic peak with
# --report_peak_memory_footprint, and the max-RSS delta from the tool's start, both in MB and
# approximate, as the tool says; "" on the host, which does not measure memory).
NET_OPTIONAL = {"pass", "speed", "device_state", "peak_mem_mb", "mem_delta_mb"}


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
    corrected: int = 0  # of them, timed on a slower machine and scaled back (sentinel speed)
    disturbed: int = 0  # measurements left out: timed more than REFUSE_LIMIT slower
    flags: tuple[str, ...] = ()  # row flags seen (contended, throttled, ...)


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
    A row timed while the sentinel said the machine was slower than when the LUT was
    timed (its `speed`) is scaled back by that speed beyond DRIFT_LIMIT, and left out
    beyond REFUSE_LIMIT (the next pass or run times that network again).
    """
    from latbench.profiling.sentinel import corrected_ms, parse_speed

    _, rows = records.read(path, NET_COLUMNS, NET_OPTIONAL)
    by: dict[str, dict] = {}
    for n, r in enumerate(rows):
        try:
            arch = arch_from_dict(parse_json(r["arch"], "arch"))
            tokens = tuple(parse_json(r["tokens"], "tokens")) if r["tokens"] else ()
            med = checked_ms(r["median_ms"], "median_ms") if r["status"] == "ok" else None
            speed = parse_speed(r.get("speed") or "")
            state = parse_json(r["device_state"], "device_state") if r.get("device_state") else {}
        except (ValueError, TypeError, InputError) as exc:
            raise InputError(f"{path}: row {n + 1} is malformed: {exc}") from None
        e = by.setdefault(
            r["digest"],
            {"net": Network(arch, r["source"], tokens), "meds": [], "err": "", "cor": 0, "dis": 0,
             "flags": set()},
        )  # fmt: skip
        if isinstance(state, dict):
            e["flags"] |= {str(f) for f in state.get("flags", [])}
        if med is None:
            e["err"] = r["error"] or "failed"
        else:
            ms, how = corrected_ms(med, speed)
            e["dis"] += how == "disturbed"
            e["cor"] += how == "corrected"
            if ms is not None:
                e["meds"].append(ms)
    return {
        d: NetResult(
            e["net"],
            None if e["err"] or not e["meds"] else float(np.median(e["meds"])),
            e["err"],
            len(e["meds"]),
            e["cor"],
            e["dis"],
            tuple(sorted(e["flags"])),
        )
        for d, e in by.items()
    }


def measure_networks(
    device: Device,
    nets: Sequence[Network],
    path: Path,
    precision: str,
    workers: int = 2,
    progress: bool = True,
    passes: int = 1,
    context: str = "networks",
    sentinels: list | None = None,
) -> dict[str, NetResult]:
    """Measure the networks not yet in `path`, appending each row as it is measured."""
    return measure_sets(
        device,
        [(path, nets)],
        precision,
        workers,
        progress,
        passes=passes,
        context=context,
        sentinels=sentinels,
    )[0]


def conditions(results: Sequence[NetResult], sentinel=None) -> dict[str, Any]:
    """What the measurements behind `results` went through: networks with a measurement
    corrected for a slower machine, left out as too disturbed, or flagged (contended,
    throttled), and the sentinel's summary when this job timed it."""
    from latbench.profiling.sentinel import DRIFT_LIMIT, REFUSE_LIMIT

    flagged: dict[str, int] = {}
    for r in results:
        for f in r.flags:
            flagged[f] = flagged.get(f, 0) + 1
    out: dict[str, Any] = {
        "networks": len(results),
        "corrected": sum(1 for r in results if r.corrected),
        "disturbed": sum(1 for r in results if r.disturbed),
        "flagged": flagged,
        "drift_limit": DRIFT_LIMIT,
        "refuse_limit": REFUSE_LIMIT,
    }
    if sentinel is not None:
        out["sentinel"] = sentinel.summary()
    return out


def conditions_warning(c: dict[str, Any], what: str = "networks") -> str | None:
    """One line when the networks' conditions were disturbed (None: they were not)."""
    seen = []
    if c.get("corrected"):
        seen.append(
            f"{c['corrected']} timed on a machine more than {100 * c['drift_limit']:.0f} % slower "
            f"than when the LUT was timed (sentinel) and scaled back"
        )
    if c.get("disturbed"):
        seen.append(
            f"{c['disturbed']} left out, timed more than {100 * c['refuse_limit']:.0f} % slower "
            f"(run the same command again to time them again)"
        )
    for flag, n in sorted((c.get("flagged") or {}).items()):
        seen.append(f"{n} flagged {flag}")
    if not seen:
        return None
    return f"warning: of {c['networks']} {what}, " + "; ".join(seen)


def measure_sets(
    device: Device,
    sets: Sequence[tuple[Path, Sequence[Network]]],
    precision: str,
    workers: int = 2,
    progress: bool = True,
    shuffle_seed: int | None = None,
    passes: int = 1,
    context: str = "networks",
    sentinels: list | None = None,
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
    The sentinel (profiling/sentinel.py: a fixed layer and network) is re-timed at
    intervals while networks are timed; each row records the sentinel's speed then (and its
    device state), which `load_results` corrects for. A machine already slower than
    REFUSE_LIMIT when the job starts stops it before anything is timed. The Sentinel used
    is appended to `sentinels` when given (its summary goes into the predictor file).
    Returns digest -> result per set.
    """
    meta = lut_meta(device, precision, space="networks")
    for path, _ in sets:
        records.open_for_append(path, meta, NET_COLUMNS, NET_OPTIONAL)
    sentinel = None
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
        if order and sentinel is None:
            sentinel = start_sentinel(device, Path(sets[0][0]).parent, precision, context)
            if sentinels is not None:
                sentinels.append(sentinel)
        for i, m, err in measure_archs(
            device, [n.arch for _, n in order], precision, workers, progress
        ):
            k, net = order[i]
            speed = sentinel.speed() if sentinel is not None else None
            state = (m.extra.get("state") or {}) if m is not None else {}
            flags = list(m.extra.get("flags") or ()) if m is not None else []
            mem = (m.extra.get("memory") or {}) if m is not None else {}
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
                    "" if speed is None else f"{speed:.4f}",
                    json.dumps({**state, "flags": flags}, sort_keys=True, separators=(",", ":"))
                    if state or flags
                    else "",
                    *(f"{mem[k]:.6g}" if k in mem else "" for k in ("peak_mb", "delta_mb")),
                ],
            )
            if sentinel is not None:
                sentinel.check()
    if sentinel is not None:
        sentinel.check(force=True)
    return [load_results(path) for path, _ in sets]


def start_sentinel(
    device: Device, lut_dir: Path, precision: str, context: str, reference: str = "profile"
):
    """The job's sentinel, first reading taken; refuses to start on a machine that already
    times the sentinel more than REFUSE_LIMIT slower than when the LUT was timed (once more
    after a pause first: a burst of load passes). `reference`: whose readings say how fast
    the machine was then (Sentinel)."""
    import time

    from latbench.errors import LatbenchError
    from latbench.profiling.sentinel import REFUSE_LIMIT, SPEED_READINGS, Sentinel

    sentinel = Sentinel(
        device, lut_dir, precision, context, network=True, reference=reference
    ).start(readings=SPEED_READINGS)
    for attempt in range(2):
        speed = sentinel.speed()
        if speed is None or speed <= 1 + REFUSE_LIMIT:
            return sentinel
        if attempt == 0:
            time.sleep(float(device.profile.options.get("retime_wait_s", 3.0)) * 5)
            for _ in range(SPEED_READINGS):  # the speed after the pause, not before it
                sentinel.check(force=True)
    exc = LatbenchError(
        f"{device.profile.name} times the sentinel layer {100 * (speed - 1):.0f} % slower than "
        f"when its LUT was timed ({speed * sentinel.reference:.3f} ms now, "
        f"{sentinel.reference:.3f} ms then; limit {100 * REFUSE_LIMIT:.0f} %): networks timed "
        f"now would not match the LUT; nothing was measured"
    )
    exc.hint = (
        "run it again when the machine is quieter (latbench devices shows its load), or "
        "profile the LUT again under today's conditions"
    )
    raise exc


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
        check_token_count(space, tokens)
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
        "regression": LinearPredictor(BASE_FEATURES),
        "stagewise": StagewisePredictor(),
    }


def fit_predictors(X: np.ndarray, y: np.ndarray) -> dict[str, Predictor]:
    return {k: p.fit(X, y) for k, p in make_predictors().items()}


LOO_MAX = 20  # up to this many networks: leave-one-out; more: FOLDS-fold cross-validation
FOLDS = 10
MIN_JUDGED = 4  # fewer networks cannot judge a method: the default stays DEFAULT, and says so
# by the number of fitted numbers: stagewise after scaled (it holds scaled's global fit and
# adds shrunk per-stage terms), so it becomes the default only when it is better than scaled
# by more than one standard error out of sample; flops (a scale and an intercept) ties with
# scaled's global fit and goes after it: on few networks a chance tie must not trade the
# LUT's ranking for the FLOPs' (measured: host int8, 5 networks, 47.5 % MAPE against 21.9 %)
SIMPLEST_FIRST = ("lut", DEFAULT, "flops", "stagewise", "regression")


def too_many_parameters(free: int, n: int) -> bool:
    """Fewer than two networks per free parameter: its fit says little, and it is not
    eligible as the default (judge_predictors); calibrate warns about it."""
    return 2 * free > n


def judge_predictors(
    X: np.ndarray,
    y: np.ndarray,
    make=make_predictors,
    simplest_first: Sequence[str] = SIMPLEST_FIRST,
    default: str = DEFAULT,
) -> dict[str, Any]:
    """Every method's out-of-sample error on the calibration networks; the best is the default.

    `make` gives the candidates, unfitted (the layer predictors by default; the operator
    predictors pass theirs, `simplest_first` their order and `default` theirs).

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
            "default": default,
            "reason": f"{n} network(s) cannot judge the methods: {default} by default",
        }
    k = n if n <= LOO_MAX else FOLDS
    how = "leave-one-out" if k == n else f"{k}-fold cross-validation"
    fold = np.arange(n) % k
    pred = {name: np.empty(n) for name in make()}
    free = dict.fromkeys(pred, 0)
    train = np.stack([fold != f for f in range(k)])
    for name, p in make().items():
        for m, fitted in zip(train, p.fit_many(X, y, train)):  # all folds at once
            pred[name][~m] = fitted.predict(X[~m])
            free[name] = max(free[name], fitted.free_parameters())
    err = {name: np.abs(v - y) / y * 100 for name, v in pred.items()}
    mape = {name: round(float(e.mean()), 4) for name, e in err.items()}
    # a method with fewer than two networks per free parameter may look best by chance
    shrunk = {name for name, p in make().items() if p.shrunk}
    crowded = [m for m in mape if m not in shrunk and too_many_parameters(free[m], n)]
    eligible = {m: v for m, v in mape.items() if m not in crowded}
    lowest = min(eligible, key=eligible.get)
    se = float(err[lowest].std(ddof=1) / np.sqrt(n))
    order = [m for m in simplest_first if m in eligible]
    order += [m for m in eligible if m not in simplest_first]
    best = next(m for m in order if mape[m] <= mape[lowest] + se)
    why = f"{how} on {n} networks: {best} MAPE {mape[best]:.2f} %"
    if best != lowest:
        why += (
            f", within one standard error ({se:.2f}) of {lowest}'s {mape[lowest]:.2f} % and simpler"
        )
    if best != "lut":
        why += f"; LUT sum {mape['lut']:.2f} %"
    if crowded:
        why += (
            f"; not eligible (more than one free parameter per two networks): {', '.join(crowded)}"
        )
    return {
        "method": how,
        "networks": n,
        "mape": mape,
        "standard_error": round(se, 4),
        "not_eligible": crowded,
        "default": best,
        "reason": why,
    }


def measurements_from(source: Any, space: SearchSpace) -> tuple[list[NetResult], str, str]:
    """(results, name, sha256) of measurements given as a `network,latency_ms` CSV path, a
    DataFrame with those columns, or a list of (network, ms) pairs; a network is an Arch, an
    arch dict, an arch.json path or the space's tokens (a sequence or "0-1-...")."""
    import hashlib

    if isinstance(source, (str, Path)):
        return read_measurements(Path(source), space), Path(source).name, file_sha256(source)
    if hasattr(source, "columns") and hasattr(source, "itertuples"):  # a DataFrame
        missing = [c for c in MEASUREMENT_COLUMNS if c not in source.columns]
        if missing:
            raise InputError(
                f"the DataFrame needs columns {', '.join(MEASUREMENT_COLUMNS)} "
                f"(missing: {', '.join(missing)})",
                "measurements",
            )
        source = list(zip(source["network"], source["latency_ms"]))
    out: list[NetResult] = []
    seen: dict[str, int] = {}
    for n, item in enumerate(source):
        where = f"measurements[{n}]"
        try:
            net, ms = item
            ms = float(ms)
        except (TypeError, ValueError):
            raise InputError("must be a (network, latency_ms) pair", where) from None
        if not math.isfinite(ms) or ms <= 0:
            raise InputError(f"latency_ms must be a positive number, got {ms}", where)
        tokens: tuple[int, ...] = ()
        if isinstance(net, Arch):
            arch = net
        elif isinstance(net, dict):
            arch = arch_from_dict(net)
        elif isinstance(net, str) or isinstance(net, Path):
            arch, tokens = _network_from_text(str(net), space, Path("."))
        else:
            try:
                tokens = tuple(int(t) for t in net)
            except (TypeError, ValueError):
                raise InputError(f"unknown network {net!r}", where) from None
            check_token_count(space, tokens, where)
            space.check_tokens(list(tokens), where)
            arch = space.decode(list(tokens))
        d = arch.digest()
        if d in seen:
            raise InputError(f"the same network as measurements[{seen[d]}]; give it once", where)
        seen[d] = n
        out.append(NetResult(Network(arch, f"list:{n}", tokens), ms))
    if not out:
        raise InputError("no measurements", "measurements")
    digest = hashlib.sha256(
        json.dumps([[r.network.arch.digest(), r.median_ms] for r in out]).encode()
    ).hexdigest()
    return out, "(in memory)", digest


@dataclass
class Fit:
    """Fitted predictors, why the default is the default, and what they were fitted on:
    everything a predictor file holds, in memory (`save` writes it)."""

    table: LayerTable  # (or, for the operator predictors, anything with .lut and .device)
    fitted: dict[str, Predictor]
    selection: dict[str, Any]
    calibration: dict[str, Any]
    X: np.ndarray
    y: np.ndarray
    device: str
    space: str
    precision: str

    @property
    def default(self) -> str:
        return self.selection["default"]

    def save(self, path: Path) -> Path:
        save_predictors(
            path,
            device=self.device,
            space=self.space,
            precision=self.precision,
            lut=self.table.lut,
            lut_device=self.table.device,
            fitted=self.fitted,
            calibration=self.calibration,
            default=self.default,
            selection=self.selection,
        )
        return Path(path)


def fit_results(
    table: LayerTable,
    results: Sequence[NetResult],
    *,
    device: str,
    space: str,
    precision: str,
    mode: str,
    source: str,
    source_sha: str,
    measured_under: dict[str, Any] | None = None,
) -> Fit:
    """Fit and judge every predictor on the measured networks, touching no file.

    `table` is the LUT the features come from (the device's own, or the prior's for
    few-shot: `mode` "few-shot"); `device` and `precision` are what the predictor is for.
    The default is the method with the lowest out-of-sample error on these networks
    (`judge_predictors`), the plain LUT sum included."""
    X, y, ok = training_set(table, results)
    calibration: dict[str, Any] = {
        "mode": mode,
        "measurements": source,
        "measurements_sha256": source_sha,
        "networks": len(ok),
        "digests": sorted(r.network.arch.digest() for r in ok),
        "zoo": sorted(r.network.arch.name for r in ok if r.network.source == "zoo"),
    }
    if measured_under is not None:
        calibration["conditions"] = measured_under  # `conditions`, when this job measured
    return Fit(
        table, fit_predictors(X, y), judge_predictors(X, y), calibration, X, y, device, space,
        precision,
    )  # fmt: skip


def _token_lengths(source: Any) -> set[int]:
    """How many tokens the networks given as tokens have (arch files and Archs: none)."""

    def length(net: Any) -> int | None:
        if isinstance(net, str):
            t = net.strip()
            parts = [p for p in t.replace(",", "-").replace(" ", "-").split("-") if p]
            return len(parts) if parts and all(p.isdigit() for p in parts) else None
        if isinstance(net, (Arch, dict, Path)):
            return None
        try:
            return len(net)
        except TypeError:
            return None

    if isinstance(source, (str, Path)):
        text = read_text(Path(source), "--measurements", MAX_TABLE_BYTES)  # one line if bad
        lines = [line for line in text.splitlines() if not line.startswith("#")]
        parse_csv(lines, Path(source))  # line lengths and quoting: one line naming the file
        rows = csv.DictReader(lines)
        nets = [r.get("network") or "" for r in rows]
    elif hasattr(source, "columns"):
        nets = list(source["network"]) if "network" in source.columns else []
    else:
        nets = [item[0] for item in source if isinstance(item, (tuple, list)) and item]
    return {n for n in map(length, nets) if n}


def fit_measurements(
    measurements: Any,
    *,
    prior: str = "host",
    space: str | None = None,
    precision: str = "fp32",
    prior_precision: str | None = None,
    device: str | None = None,
    lut_dir: Path = Path("lut"),
) -> Fit:
    """What `latbench calibrate --measurements` and `latbench.Predictor.fit` both run:
    features from `prior`'s LUT, the predictors fitted on the measured networks, in memory.

    `measurements`: see `measurements_from`. The space is `space`, else the one the prior's
    LUT names (predictors.resolve_space). `device` names whom the predictor is for (default:
    the prior's name when precisions match, else "PRIOR-PRECISION")."""
    from latbench.predictors import MissingKeys, load_table
    from latbench.predictors.model import resolve_space

    prior_precision = prior_precision or precision
    space = resolve_space(
        space,
        lut_dir=Path(lut_dir),
        device=prior,
        precision=prior_precision,
        token_lengths=sorted(_token_lengths(measurements)),
    )
    from latbench.nets.spaces import get_space

    table = load_table(prior, prior_precision, Path(lut_dir))
    results, name, sha = measurements_from(measurements, get_space(space))
    missing = table.missing([r.network.arch for r in results])
    if missing:
        raise MissingKeys(missing, table.device, table.precision)
    failed = [r for r in results if table.failed([r.network.arch])]
    if failed:
        raise InputError(
            f"{name}: {failed[0].network.source} ({failed[0].network.arch.name}) holds layers "
            f"that failed on {table.device} (status=failed in its LUT): the prior cannot "
            f"describe it; remove it"
        )
    if device is None:
        device = prior if prior_precision == precision else f"{prior}-{precision}"
    mode = (
        "few-shot"
        if table.device != device or table.precision != precision
        else "measurements file"
    )
    return fit_results(
        table, results, device=device, space=space, precision=precision, mode=mode, source=name,
        source_sha=sha,
    )  # fmt: skip


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
    measured_under: dict[str, Any] | None = None,
    out: Path | None = None,
) -> tuple[dict[str, Predictor], np.ndarray, np.ndarray, Path]:
    """`fit_results` on the networks of `measurements`, saved to `out` (default: the
    device's predictor file in lut_dir); (fitted, X, y, path)."""
    fit = fit_results(
        table,
        results,
        device=device,
        space=space,
        precision=precision,
        mode=mode,
        source=Path(measurements).name,
        source_sha=file_sha256(measurements),
        measured_under=measured_under,
    )
    path = fit.save(out or predictor_path(lut_dir, device, space, precision))
    return fit.fitted, fit.X, fit.y, path
