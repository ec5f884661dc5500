"""Whole models measured end to end, and the operator-level predictor fitted on them.

Two sources of measured models, one fit (the operator twin of calibrate.py):
- `latbench calibrate --ops --model M... --device D`: each model (any .tflite, Keras file,
  SavedModel or arch.json) is timed end to end on D in `passes` shuffled passes, one row per
  model and pass appended as it goes to `LUTDIR/D_ops_PRECISION.calib.csv` (resumable; a
  model's result is the median of its passes); the operators missing from D's operator LUT
  are profiled first;
- `latbench calibrate --ops --measurements FILE.csv --prior P --device D`: models timed
  elsewhere (`model,latency_ms`, the model a path relative to the CSV), their features from
  P's operator LUT (few-shot: a device with no operator LUT of its own).
Either way the operator predictors (predictors/opmodel.py) are fitted and judged by
`calibrate.judge_predictors` and written to `D_ops_PRECISION.predictor.json`.
"""

from __future__ import annotations

import csv
import hashlib
import json
import math
import random
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from types import SimpleNamespace
from typing import Any, Sequence

import numpy as np

from latbench import records
from latbench.calibration.calibrate import Fit, judge_predictors, nets_path
from latbench.errors import InputError
from latbench.fileio import MAX_TABLE_BYTES, parse_json, read_bytes, read_text
from latbench.predictors.opmodel import (
    OP_DEFAULT,
    OP_SIMPLEST_FIRST,
    OP_SPACE,
    make_op_predictors,
    op_features,
)
from latbench.predictors.opsum import op_sum
from latbench.profiling.lut import MAX_MS, MIN_MS, checked_ms
from latbench.profiling.oplut import ModelOps, OpLUT
from latbench.records import parse_csv

MODEL_COLUMNS = [
    "digest", "name", "source", "status", "median_ms", "p10_ms", "p90_ms", "std_ms", "runs",
    "ci_rel", "error", "measured_at", "pass", "speed", "device_state",
]  # fmt: skip
# Added later (older files read it as ""): speed, the sentinel layer when the row was timed
# over its reading while the device's operator LUT was profiled (1.08 = the machine timed
# 8 % slower than when the operator rows were timed; "" = not known), as calibrate.py's.
MODEL_OPTIONAL = {"speed"}


def models_path(lut_dir: Path, device: str, precision: str) -> Path:
    """LUTDIR/DEVICE_ops_PRECISION.calib.csv: the device's models measured end to end."""
    return nets_path(lut_dir, device, OP_SPACE, precision, "calib")


def model_digest(m: ModelOps) -> str:
    """The model's identity: the hash of the .tflite timed (a rebuilt model is another)."""
    return hashlib.sha256(read_bytes(m.tflite, "MODEL", 1 << 30)).hexdigest()[:16]


@dataclass(frozen=True)
class ModelResult:
    name: str
    source: str
    median_ms: float | None  # the median of its passes' medians; None: it failed
    passes: int  # measurements behind median_ms
    error: str = ""
    flags: tuple[str, ...] = ()
    corrected: int = 0  # of them, timed on a slower machine and scaled back (sentinel speed)
    disturbed: int = 0  # measurements left out: timed more than REFUSE_LIMIT slower


def load_model_results(path: Path) -> dict[str, ModelResult]:
    """digest -> result for the rows of a measured-models file (every number checked). A row
    timed while the sentinel said the machine was slower than when the operator LUT was
    timed is scaled back or left out (sentinel.corrected_ms), as a network's is."""
    from latbench.profiling.sentinel import corrected_ms, parse_speed

    _, rows = records.read(path, MODEL_COLUMNS, MODEL_OPTIONAL)
    by: dict[str, dict[str, Any]] = {}
    for n, r in enumerate(rows):
        try:
            med = checked_ms(r["median_ms"], "median_ms") if r["status"] == "ok" else None
            speed = parse_speed(r.get("speed") or "")
            state = parse_json(r["device_state"], "device_state") if r["device_state"] else {}
        except (ValueError, TypeError, InputError) as exc:
            raise InputError(f"{path}: row {n + 1} is malformed: {exc}") from None
        e = by.setdefault(r["digest"], {"name": r["name"], "source": r["source"], "meds": [],
                                        "err": "", "flags": set(), "cor": 0, "dis": 0})  # fmt: skip
        if isinstance(state, dict):
            e["flags"] |= {str(f) for f in state.get("flags", [])}
        if med is None:
            e["err"] = r["error"] or "failed"
        else:
            ms, how = corrected_ms(med, speed)
            e["cor"] += how == "corrected"
            e["dis"] += how == "disturbed"
            if ms is not None:
                e["meds"].append(ms)
    return {
        d: ModelResult(
            e["name"],
            e["source"],
            None if e["err"] or not e["meds"] else float(np.median(e["meds"])),
            len(e["meds"]),
            e["err"],
            tuple(sorted(e["flags"])),
            e["cor"],
            e["dis"],
        )  # fmt: skip
        for d, e in by.items()
    }


def measure_models(
    device,
    models: Sequence[ModelOps],
    path: Path,
    precision: str,
    passes: int = 1,
    seed: int = 0,
    progress: bool = True,
    sentinels: list | None = None,
) -> dict[str, ModelResult]:
    """Time each model whole on the device, `passes` times in shuffled orders (minutes apart),
    one row appended per model and pass; rows already in `path` count (a run resumes).

    The sentinel is re-timed at intervals, as calibrate's networks are: each row records its
    speed against the readings taken while the device's operator LUT (in `path`'s folder)
    was profiled, and `load_model_results` scales back a model timed on a slower machine.
    A machine already more than REFUSE_LIMIT slower stops the job before anything is timed.
    The Sentinel used is appended to `sentinels` when given."""
    from tqdm import tqdm

    from latbench.calibration.calibrate import start_sentinel
    from latbench.devices import ModelRunError
    from latbench.profiling.layers import lut_meta
    from latbench.profiling.oplut import op_lut_path

    records.open_for_append(
        path, lut_meta(device, precision, space="models"), MODEL_COLUMNS, MODEL_OPTIONAL
    )
    digests = [model_digest(m) for m in models]
    lut_name = op_lut_path(Path(path).parent, device.profile.name, "", precision).name
    sentinel = None
    for p in range(passes):
        done = load_model_results(path)
        todo = [
            (d, m) for d, m in zip(digests, models)
            if d not in done or (not done[d].error and done[d].passes <= p)
        ]  # fmt: skip
        random.Random(seed + 1000 * p).shuffle(todo)
        if todo and sentinel is None:
            sentinel = start_sentinel(
                device, Path(path).parent, precision, "calibrate ops", f"profile {lut_name}"
            )
            if sentinels is not None:
                sentinels.append(sentinel)
        for d, m in tqdm(todo, desc=f"time models on {device.profile.name} (pass {p + 1})",
                         unit="model", disable=not progress or not todo, dynamic_ncols=True):  # fmt: skip
            try:
                meas, err = device.measure(m.tflite), ""
            except ModelRunError as exc:
                meas, err = None, f"run: {str(exc)[:300]}"
            speed = sentinel.speed()
            state = (meas.extra.get("state") or {}) if meas else {}
            flags = list(meas.extra.get("flags") or ()) if meas else []
            stats = (
                ["", "", "", "", "", ""] if meas is None
                else [f"{meas.median_ms:.6g}", f"{meas.p10_ms:.6g}", f"{meas.p90_ms:.6g}",
                      f"{meas.std_ms:.6g}", str(meas.runs), f"{meas.ci_rel:.4g}"]
            )  # fmt: skip
            records.append(path, [
                d, m.name, m.source, "ok" if meas else "failed", *stats, err,
                datetime.now(timezone.utc).isoformat(timespec="seconds"), str(p + 1),
                "" if speed is None else f"{speed:.4f}",
                json.dumps({**state, "flags": flags}, sort_keys=True, separators=(",", ":"))
                if state or flags else "",
            ])  # fmt: skip
            sentinel.check()
    if sentinel is not None:
        sentinel.check(force=True)
    return load_model_results(path)


def fit_models(
    lut: OpLUT,
    lut_device: str,
    models: Sequence[ModelOps],
    y: Sequence[float],
    *,
    device: str,
    precision: str,
    mode: str,
    source: str,
    source_sha: str,
    measured_under: dict[str, Any] | None = None,
) -> Fit:
    """Fit and judge the operator predictors on models with measured latencies `y` (ms),
    their features from `lut` (the device's own operator LUT, or a prior's: few-shot); the
    same `Fit` as the layer predictors' (space "ops"), so `save` writes the same file format."""
    preds = [op_sum(m, lut, lut_device) for m in models]
    X, y_ = op_features(preds), np.asarray(y, float)
    fitted = {k: p.fit(X, y_) for k, p in make_op_predictors().items()}
    selection = judge_predictors(X, y_, make_op_predictors, OP_SIMPLEST_FIRST, OP_DEFAULT)
    calibration = {
        "mode": mode,
        "measurements": source,
        "measurements_sha256": source_sha,
        "networks": len(models),
        "models": [m.name for m in models],
        "digests": sorted(model_digest(m) for m in models),
    }
    if measured_under is not None:  # calibrate.conditions, when this job measured them
        calibration["conditions"] = measured_under
    table = SimpleNamespace(lut=lut, device=lut_device)  # what Fit.save reads of a table
    return Fit(table, fitted, selection, calibration, X, y_, device, OP_SPACE, precision)


def read_model_measurements(path: Path) -> list[tuple[Path, float]]:
    """(model path, latency ms) per row of a `model,latency_ms` CSV (paths relative to it).

    Refused with one line naming the row: a missing column, an empty or repeated model, a
    latency that is not a time in [MIN_MS, MAX_MS)."""
    text = read_text(path, "--measurements", MAX_TABLE_BYTES)
    lines = [ln for ln in text.splitlines() if not ln.startswith("#")]
    parse_csv(lines, path)
    reader = csv.DictReader(lines)
    if not {"model", "latency_ms"} <= set(reader.fieldnames or []):
        raise InputError(f"{path}: needs a header with columns model,latency_ms", "--measurements")
    out: list[tuple[Path, float]] = []
    seen: dict[str, int] = {}
    for n, row in enumerate(reader, start=2):
        model = (row.get("model") or "").strip()
        raw = (row.get("latency_ms") or "").strip()
        try:
            ms = float(raw)
        except ValueError:
            ms = math.nan
        if not model or model in seen:
            why = "empty model" if not model else f"the same model as row {seen[model]}"
            raise InputError(f"{path}: row {n}: {why}", "--measurements")
        if not (math.isfinite(ms) and MIN_MS <= ms < MAX_MS):
            raise InputError(
                f"{path}: row {n} ({model}): latency_ms must be a time in [{MIN_MS:g}, "
                f"{MAX_MS:g}) ms, got {raw!r}",
                "--measurements",
            )
        seen[model] = n
        out.append((Path(path).parent / model, ms))
    if not out:
        raise InputError(f"{path}: no measurements", "--measurements")
    return out
