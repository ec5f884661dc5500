"""The search loop: sample -> evaluate -> update, with every step on disk.

State lives in the run directory and nowhere else:
  config.json        the search's settings (a resume reads them back)
  samples.csv        one row per completed sample, appended and fsynced (samples.py):
                     what the controller saw (lat_ms = measured if measured, else
                     the prediction times the calibration scale at that time)
  updates.csv        one row per controller update (loss, entropy, clip fraction, ...)
  rungs.csv          --fidelity halving: every rung's training of every child (halving.py)
  front_measured.csv the Pareto networks measured on the device when a call ends (lut mode):
                     the outputs then show their measured latency
  controller/        controller checkpoint after each completed batch (npz + json)
  baselines.json     zoo networks evaluated the same way (for the plot)
  pareto.csv, pareto/, best/arch.json, summary.json, *.png   rewritten each batch,
                     from the current view: with --recalibrate every unmeasured
                     latency (earlier rows and baselines too) is rescaled by the
                     current scale and its reward recomputed
A resume loads the last checkpoint, re-samples the interrupted batch (same
RNG state, so the same tokens) and reuses its rows already in samples.csv,
so an interruption loses at most the samples that were in flight. The batch's
children are trained by an executor (executor.py: serial, or Ray tasks) and
consumed in sample order, so results do not depend on how they were trained.
"""

from __future__ import annotations

import json
import math
import time
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any, Callable

import numpy as np

from latbench import records
from latbench.errors import InputError, LatbenchError
from latbench.fileio import append_line, load_json, parse_json, write_atomic
from latbench.nets.arch import Arch, save_arch
from latbench.nets.spaces import SearchSpace, get_space
from latbench.predictors import FailedLayers
from latbench.proxy.accuracy import AccuracySource
from latbench.search import halving
from latbench.search import samples as samples_file
from latbench.search.controllers import make_controller
from latbench.search.executor import ChildResult, Executor, SerialExecutor
from latbench.search.pareto import hypervolume, pareto_front
from latbench.search.reward import RewardSpec

COLUMNS = samples_file.COLUMNS
read_samples = samples_file.read
UPDATE_COLUMNS = [
    "batch",
    "samples",
    "reward_mean",
    "reward_max",
    "loss",
    "pg",
    "entropy",
    "clip_frac",
    "ratio_max",
    "baseline",
    "advantage_mean",
]


FRONT_COLUMNS = ("sample", "digest", "pred_ms", "meas_ms")  # front_measured.csv

# Where a sample's LAT comes from: the device's predictor (lut), the device itself (device),
# or the network's multiply-accumulates in millions (flops: EfficientNet-B0's reward
# ACC * (FLOPS/T)^w, T then in millions of MACs). lut and flops are predicted, not measured.
LATENCY_SOURCES = ("lut", "device", "flops")
PREDICTED = ("lut", "flops")


@dataclass(frozen=True)
class SearchConfig:
    target_ms: float
    alpha: float = -0.07
    beta: float = -0.07
    samples: int = 400
    batch: int = 8
    seed: int = 0
    controller: str = "ppo"
    latency: str = "lut"  # lut | device
    device: str = "host"
    precision: str = "fp32"
    space: str = "mnasnet"
    spot_every: int = 10  # lut mode: measure every k-th sample on the device (0: never)
    drift_threshold: float = 0.10  # warn when recent |pred/meas - 1| exceeds this
    recalibrate: bool = False  # lut mode: rescale predictions by median(meas/pred)
    dataset: str = "fashion_mnist"
    data_dir: str | None = None
    recipe: dict = field(default_factory=dict)  # ProxyRecipe fields
    baselines: tuple[str, ...] = ("mobilenet_v2_x1",)
    lut_dir: str = "lut"
    predictor_method: str | None = None  # lut mode: a method of the predictor file by name
    evaluator: str | None = None  # a user's evaluator (MODULE:FUNCTION); None: the proxy trainer
    fidelity: str = "full"  # full | halving: successive halving inside each batch (halving.py)
    measure_front: bool = True  # lut mode: measure the Pareto networks on the device at the end

    def __post_init__(self) -> None:
        if self.latency not in LATENCY_SOURCES:
            raise InputError(f"must be one of {LATENCY_SOURCES}, got {self.latency!r}", "--latency")
        if self.samples < 1 or self.batch < 1:
            raise InputError("--samples and --batch must be >= 1")
        if self.fidelity not in halving.SCHEDULES:
            raise InputError(
                f"must be one of {sorted(halving.SCHEDULES)}, got {self.fidelity!r}", "--fidelity"
            )

    def to_json(self) -> str:
        d = asdict(self)
        d["baselines"] = list(self.baselines)
        return json.dumps(d, indent=2) + "\n"

    @classmethod
    def from_json(cls, text: str, source: object = "config.json") -> "SearchConfig":
        return cls.from_dict(parse_json(text, source), source)

    @classmethod
    def load(cls, path: Path) -> "SearchConfig":
        """A run's config.json, every field checked for type and range (InputError naming
        the file and field)."""
        return cls.from_dict(load_json(path), path)

    @classmethod
    def from_dict(cls, d: Any, source: object = "config.json") -> "SearchConfig":
        if not isinstance(d, dict):
            raise InputError(f"{source}: expected a JSON object, got {type(d).__name__}")
        known = {f.name for f in fields(cls)}
        if set(d) - known:
            raise InputError(f"{source} has unknown fields {sorted(set(d) - known)}")
        if "target_ms" not in d:
            raise InputError(f"{source}: missing field 'target_ms'")
        for f in fields(cls):
            if f.name in d and not _CONFIG_CHECKS[str(f.type)](d[f.name]):
                raise InputError(
                    f"{source}: field {f.name!r} must be {_CONFIG_DOC[str(f.type)]}, "
                    f"got {str(d[f.name])[:60]!r}"
                )
        if not 0 < d["target_ms"] < 1e6:
            raise InputError(
                f"{source}: field 'target_ms' must be in (0, 1e6), got {d['target_ms']}"
            )
        d = {**d, "baselines": tuple(d.get("baselines", ()))}
        return cls(**d)


def _num(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)


# config.json field checks, by the field's annotation
_CONFIG_CHECKS: dict[str, Callable[[Any], bool]] = {
    "float": lambda v: _num(v) and abs(v) <= 1e6,
    "int": lambda v: isinstance(v, int) and not isinstance(v, bool) and 0 <= v <= 10**9,
    "str": lambda v: isinstance(v, str),
    "str | None": lambda v: v is None or isinstance(v, str),
    "bool": lambda v: isinstance(v, bool),
    "dict": lambda v: isinstance(v, dict),
    "tuple[str, ...]": lambda v: isinstance(v, list) and all(isinstance(x, str) for x in v),
}
_CONFIG_DOC = {
    "float": "a finite number within +-1e6",
    "int": "an integer in [0, 1e9]",
    "str": "a string",
    "str | None": "a string or null",
    "bool": "true or false",
    "dict": "an object",
    "tuple[str, ...]": "a list of strings",
}


def merge_front_measurements(run_dir: Path, rows: list[dict]) -> set[int]:
    """Put the run's front_measured.csv latencies into `rows` (in place, where a row has no
    measurement yet); the samples it names (measured, or tried and failed)."""
    path = Path(run_dir) / "front_measured.csv"
    if not path.exists():
        return set()
    _, recs = records.read(path, FRONT_COLUMNS)
    tried = set()
    for n, r in enumerate(recs, start=1):
        try:
            i, meas = int(r["sample"]), float(r["meas_ms"] or "nan")
            if not (0 <= i < 10**9 and (math.isnan(meas) or 0 < meas < 1e9)):
                raise ValueError("out of range")
        except ValueError as exc:
            raise InputError(f"{path}: row {n} is malformed ({exc})") from None
        if i < len(rows) and rows[i]["digest"] == r["digest"]:
            tried.add(i)
            if math.isfinite(meas) and not math.isfinite(rows[i]["meas_ms"]):
                rows[i] = {**rows[i], "meas_ms": meas, "lat_ms": meas}
    return tried


@dataclass
class LatencySource:
    """Where latency comes from: a predictor (lut mode) and/or the device."""

    predict: Callable[[list[Arch]], np.ndarray] | None = None
    measure: Callable[[Arch], float] | None = None


class Calibration:
    """Running predictor-vs-device error; optional rescaling of predictions."""

    window = 5

    def __init__(self, threshold: float, recalibrate: bool):
        self.threshold = threshold
        self.recalibrate = recalibrate
        self.pairs: list[tuple[float, float]] = []  # (raw prediction, measurement)

    @property
    def scale(self) -> float:
        if not (self.recalibrate and self.pairs):
            return 1.0
        return float(np.median([m / p for p, m in self.pairs]))

    def observe(self, pred_raw: float, meas: float) -> None:
        if math.isfinite(pred_raw) and math.isfinite(meas) and pred_raw > 0:
            self.pairs.append((pred_raw, meas))

    def recent_error(self) -> float:
        """Mean |pred/meas - 1| over the last few spot checks, with the current scale."""
        recent = self.pairs[-self.window :]
        if not recent:
            return float("nan")
        s = self.scale
        return float(np.mean([abs(p * s / m - 1) for p, m in recent]))

    def drifted(self) -> bool:
        return len(self.pairs) >= 2 and self.recent_error() > self.threshold


def fastest_candidates(space: SearchSpace) -> list[list[int]]:
    """Networks at the cheap corner of the space: the target must be reachable by one."""
    return space.cheapest_candidates()


class Search:
    """One search run in one directory (new or resumed)."""

    def __init__(
        self,
        out_dir: str | Path,
        config: SearchConfig,
        accuracy: AccuracySource,
        latency: LatencySource,
        space: SearchSpace | None = None,
        log: Callable[[str], None] = print,
        progress: bool = True,
        executor: Executor | None = None,
    ):
        self.dir = Path(out_dir)
        self.cfg = config
        self.space = space or get_space(config.space)
        self.accuracy = accuracy
        self.latency = latency
        self.executor = executor or SerialExecutor()
        self.log = log
        self.progress = progress
        self.reward = RewardSpec(config.target_ms, config.alpha, config.beta)
        self.calib = Calibration(config.drift_threshold, config.recalibrate)
        if config.latency in PREDICTED and latency.predict is None:
            raise LatbenchError("--latency lut needs a predictor")
        if config.latency == "device" and latency.measure is None:
            raise LatbenchError("--latency device needs a device")
        self.ctrl = make_controller(config.controller, self.space.vocab_sizes, config.seed)
        self.schedule = halving.SCHEDULES[config.fidelity]
        if self.schedule != (1.0,) and not hasattr(accuracy, "at"):
            raise LatbenchError(f"--fidelity {config.fidelity} needs an evaluator with fidelities")
        self._feasible_checked = False

    # -- files ----------------------------------------------------------------
    @property
    def samples_path(self) -> Path:
        return self.dir / "samples.csv"

    def _event(self, msg: str) -> None:
        append_line(self.dir / "events.log", f"{time.strftime('%Y-%m-%dT%H:%M:%S')} {msg}\n")
        self.log(msg)

    def _append(self, row: dict) -> None:
        samples_file.append(self.samples_path, row)

    def _checkpoint(self, batch: int, samples_done: int) -> None:
        d = self.dir / "controller"
        d.mkdir(exist_ok=True)
        self.ctrl.save(d / f"batch_{batch:05d}")
        write_atomic(
            d / "latest.json",
            json.dumps(
                {"batch": batch, "samples": samples_done, "kind": self.cfg.controller}
            ).encode(),
        )

    def _load_checkpoint(self) -> tuple[int, int]:
        """Restore the controller; (next batch index, samples consumed by completed batches)."""
        latest = self.dir / "controller" / "latest.json"
        if not latest.exists():
            return 0, 0
        state = load_json(latest)
        ok = isinstance(state, dict) and all(
            isinstance(state.get(k, 0), int) and 0 <= state.get(k, 0) <= 10**9
            for k in ("batch", "samples")
        )
        if not ok or "batch" not in state:
            raise InputError(
                f'{latest}: expected {{"batch": N, "samples": N}} with integers >= 0, '
                f"got {str(state)[:80]}"
            )
        b = state["batch"]
        ckpt = self.dir / "controller" / f"batch_{b:05d}"
        try:
            self.ctrl.restore(ckpt)
        except InputError:
            raise
        except (KeyError, ValueError, TypeError, IndexError) as exc:
            raise InputError(
                f"controller checkpoint {ckpt}.json (with its .npz) is damaged: {exc}"
            ) from None
        # checkpoints before the "samples" field: every batch was full
        return b + 1, int(state.get("samples", (b + 1) * self.cfg.batch))

    def _record_update(
        self, batch: int, samples_done: int, batch_rows: list[dict], stats: dict
    ) -> None:
        path = self.dir / "updates.csv"
        if not path.exists():
            records.create(path, {"controller": self.cfg.controller}, UPDATE_COLUMNS)
        rewards = [r["reward"] for r in batch_rows]
        values = {
            "batch": batch,
            "samples": samples_done,
            "reward_mean": float(np.mean(rewards)),
            "reward_max": float(np.max(rewards)),
            **stats,
        }
        records.append(
            path,
            [
                (
                    ""
                    if values.get(c) is None
                    else repr(values[c])
                    if isinstance(values[c], float)
                    else values[c]
                )
                for c in UPDATE_COLUMNS
            ],
        )

    # -- evaluation -----------------------------------------------------------
    def check_feasible(self) -> None:
        """Refuse a target that even the cheapest corner of the space misses."""
        archs = [self.space.decode(t) for t in fastest_candidates(self.space)]
        if self.latency.predict is not None:
            lat = []
            for a in archs:
                try:
                    lat.append(float(self.latency.predict([a])[0]) * self.calib.scale)
                except FailedLayers:  # a corner that cannot run on this device
                    continue
            best = float(np.min(lat)) if lat else math.inf
        else:
            best = float(self.latency.measure(min(archs, key=lambda a: a.macs())))
        self._feasible_checked = True
        if best > self.cfg.target_ms:
            raise InputError(
                f"no network in the {self.space.name} space can meet {self.cfg.target_ms:g} ms on "
                f"{self.cfg.device}: its fastest corner takes {best:.3g} ms. Raise --target-ms to "
                f"at least {best * 1.2:.3g} (or choose a faster device profile)",
                "--target-ms",
            )

    def _finish(
        self,
        tokens: list[int],
        index: int,
        batch: int,
        rows: list[dict],
        arch: Arch,
        child: ChildResult,
        fidelity: float | None = None,
    ) -> dict:
        """Latency, spot check and reward of one trained child (in sample order)."""
        t0 = time.monotonic()
        err = child.error
        res = child.result
        if res is not None:
            acc, train_s, cached, cpu_s = res.accuracy, res.train_s, res.cached, res.cpu_s
        else:
            acc, train_s, cached, cpu_s = float("nan"), 0.0, False, 0.0
        if fidelity is not None:  # successive halving: what every rung of this child cost
            cpu_s = self._rungs.cpu_s(index)
        pred_raw = meas = float("nan")
        if self.cfg.latency in PREDICTED:
            try:
                pred_raw = float(self.latency.predict([arch])[0])
            except FailedLayers as exc:  # cannot run on this device: scores 0, search goes on
                err = (err + "; " if err else "") + f"latency: {exc}"[:200]
            lat = pred_raw * self.calib.scale
            spot = False
            if self.cfg.spot_every and self.latency.measure is not None:  # 0: never measure
                spot = index % self.cfg.spot_every == 0
                if not spot and math.isfinite(acc) and math.isfinite(lat):
                    front = pareto_front(
                        [r["lat_ms"] for r in rows] + [lat], [r["accuracy"] for r in rows] + [acc]
                    )
                    spot = len(rows) in front  # a new Pareto member
            if spot:
                meas = self._measure(arch)
                if math.isfinite(meas):
                    self.calib.observe(pred_raw, meas)
                    self._report_drift(index, pred_raw * self.calib.scale, meas)
                    lat = meas  # a measurement beats a prediction, in the reward and the front
        else:
            meas = self._measure(arch)
            lat = meas
        return {
            "sample": index,
            "batch": batch,
            "digest": arch.digest(),
            "tokens": list(tokens),
            "arch": " ".join(arch.to_dict()["blocks"]),
            "accuracy": acc,
            "pred_ms": pred_raw,
            "meas_ms": meas,
            "lat_ms": lat,
            "reward": self.reward(acc, lat),
            "train_s": train_s,
            "cpu_s": cpu_s,
            "wall_s": child.elapsed_s + time.monotonic() - t0,
            "cached": cached,
            "error": err,
            "fidelity": getattr(self.accuracy, "fidelity", 1.0) if fidelity is None else fidelity,
            "metrics": res.metrics if res is not None else {},
        }

    def _measure(self, arch: Arch) -> float:
        from latbench.devices import DeviceLost, ModelRunError

        try:
            return float(self.latency.measure(arch))
        except (LatbenchError, ModelRunError) as exc:  # DeviceLost propagates: stop, resume later
            if isinstance(exc, (InputError, DeviceLost)):
                raise
            self._event(f"measurement failed for {arch.name}: {exc}")
            return float("nan")

    def _report_drift(self, index: int, pred: float, meas: float) -> None:
        e = self.calib.recent_error()
        self._event(
            f"spot check #{index}: predicted {pred:.3g} ms, measured {meas:.3g} ms "
            f"({pred / meas - 1:+.1%}); recent mean |error| {e:.1%}"
        )
        if self.calib.drifted():
            fix = (
                f"predictions now scaled by {self.calib.scale:.3f}"
                if self.cfg.recalibrate
                else f"pass --recalibrate, or run latbench calibrate --device {self.cfg.device}"
            )
            self._event(
                f"WARNING predictor drift: mean |error| {e:.1%} over the last "
                f"{min(len(self.calib.pairs), Calibration.window)} spot checks exceeds "
                f"{self.cfg.drift_threshold:.0%}; {fix}"
            )

    def _rung_score(self, arch: Arch, child: ChildResult) -> float:
        """How successive halving ranks a child after a rung: its reward with the predicted
        latency (accuracy alone where latency is only measured); a failure ranks last."""
        if child.result is None:
            return -math.inf
        acc = child.result.accuracy
        if self.cfg.latency not in PREDICTED:
            return acc
        try:
            lat = float(self.latency.predict([arch])[0]) * self.calib.scale
        except FailedLayers:
            return -math.inf
        r = self.reward(acc, lat)
        return r if math.isfinite(r) else -math.inf

    # -- the loop -------------------------------------------------------------
    def run(self, baselines: list[dict] | None = None) -> dict:
        """Run (or continue) until cfg.samples rows exist; returns the summary."""
        from tqdm import tqdm

        self.dir.mkdir(parents=True, exist_ok=True)
        cfg_path = self.dir / "config.json"
        if not cfg_path.exists():
            write_atomic(cfg_path, self.cfg.to_json().encode())
        rows = read_samples(self.samples_path, repair=True)  # the writer cuts a torn tail
        self._front_tried: set[int] = set()
        self._merge_front_measurements(rows)
        if self.schedule != (1.0,):
            self._rungs = halving.RungLog(self.dir / "rungs.csv")
        for r in rows:
            if math.isfinite(r["pred_ms"]) and math.isfinite(r["meas_ms"]):
                self.calib.observe(r["pred_ms"], r["meas_ms"])
        b, start = self._load_checkpoint()
        if not rows and start == 0 and not self._feasible_checked:
            self.check_feasible()
        self.baselines = baselines or []
        B = self.cfg.batch
        if len(rows) < start:
            raise LatbenchError(
                f"{self.samples_path} has {len(rows)} rows but the controller "
                f"checkpoint is after {start} samples; the run directory is damaged"
            )
        t_start = time.monotonic()
        bar = tqdm(
            total=self.cfg.samples,
            initial=min(len(rows), self.cfg.samples),
            unit="net",
            desc="search",
            disable=not self.progress,
            dynamic_ncols=True,
        )
        self._postfix(bar, rows)
        try:
            while start < self.cfg.samples:
                n = min(B, self.cfg.samples - start)
                tokens, logp = self.ctrl.sample(n)
                for j, tk in enumerate(tokens):
                    i = start + j
                    if i < len(rows) and rows[i]["tokens"] != list(tk):
                        raise LatbenchError(
                            f"resume mismatch at sample {i}: the controller checkpoint does "
                            f"not reproduce samples.csv (was the run directory edited?)"
                        )
                first_new = max(0, len(rows) - start)
                todo = [list(tk) for tk in tokens[first_new:]]
                archs = [self.space.decode(t) for t in todo]
                if self.schedule == (1.0,):
                    children = self.executor.accuracies(self.accuracy, archs)
                    fids = [None] * len(archs)
                else:  # successive halving: the whole batch's rungs first (halving.py)
                    everyone = [self.space.decode(list(t)) for t in tokens]
                    done = halving.run_batch(
                        self.schedule,
                        self.accuracy,
                        self.executor,
                        everyone,
                        start,
                        self._rungs,
                        self._rung_score,
                    )[first_new:]
                    children = (c for c, _ in done)
                    fids = [f for _, f in done]
                try:
                    for j, (tk, arch, child) in enumerate(zip(todo, archs, children)):
                        row = self._finish(tk, start + first_new + j, b, rows, arch, child, fids[j])
                        self._append(row)
                        rows.append(row)
                        bar.update(1)
                        self._postfix(bar, rows)
                finally:
                    children.close()  # cancels what is still in flight
                batch_rows = rows[start : start + n]
                stats = self.ctrl.update(tokens, logp, [r["reward"] for r in batch_rows])
                self._checkpoint(b, start + n)
                self._record_update(b, start + n, batch_rows, stats)
                self._write_outputs(rows, stats)
                b += 1
                start += n
        finally:
            bar.close()
        self._measure_front(rows)
        summary = self._write_outputs(rows, {}, final=True)
        summary["elapsed_s_this_call"] = time.monotonic() - t_start
        return summary

    # -- the front, measured ----------------------------------------------------
    @property
    def front_measured_path(self) -> Path:
        return self.dir / "front_measured.csv"

    def _merge_front_measurements(self, rows: list[dict]) -> None:
        """Measurements of Pareto networks taken at the end of an earlier call (a resume)."""
        self._front_tried |= merge_front_measurements(self.dir, rows)

    def _measure_front(self, rows: list[dict]) -> None:
        """Measure every Pareto network that has only a prediction on the device, until the
        front (redrawn with each measurement) holds measured networks only. Appended to
        front_measured.csv as each is measured; the outputs then show measured latencies."""
        if not self.cfg.measure_front or self.cfg.latency not in PREDICTED:
            return
        if self.latency.measure is None:
            return
        if not self.front_measured_path.exists():
            records.create(self.front_measured_path, {"kind": "front-measured"}, FRONT_COLUMNS)
        n_new = 0
        while True:
            view = self.view(rows)
            front = pareto_front([r["lat_ms"] for r in view], [r["accuracy"] for r in view])
            todo = [
                i
                for i in front
                if not math.isfinite(rows[i]["meas_ms"]) and i not in self._front_tried
            ]
            if not todo:
                break
            for i in todo:
                meas = self._measure(self.space.decode(rows[i]["tokens"]))
                self._front_tried.add(i)
                records.append(
                    self.front_measured_path,
                    [
                        i,
                        rows[i]["digest"],
                        repr(rows[i]["pred_ms"]),
                        repr(meas) if math.isfinite(meas) else "",
                    ],
                )
                if math.isfinite(meas):
                    self.calib.observe(rows[i]["pred_ms"], meas)
                    rows[i] = {**rows[i], "meas_ms": meas}
                    n_new += 1
        if n_new:
            pairs = [
                (r["pred_ms"] * self.calib.scale, r["meas_ms"]) for r in (rows[i] for i in front)
            ]
            err = float(np.median([abs(p / m - 1) for p, m in pairs if math.isfinite(p) and m > 0]))
            self._event(
                f"Pareto front re-measured on {self.cfg.device}: {n_new} network(s) measured, "
                f"{len(front)} on the front; median |predicted/measured - 1| {err:.1%}"
            )

    def view(self, rows: list[dict]) -> list[dict]:
        """Rows as the outputs show them: a measurement where there is one, else the
        prediction times the current calibration scale; rewards recomputed to match."""
        if self.cfg.latency not in PREDICTED:
            return rows
        s = self.calib.scale
        out = []
        for r in rows:
            lat = r["meas_ms"] if math.isfinite(r["meas_ms"]) else r["pred_ms"] * s
            out.append({**r, "lat_ms": lat, "reward": self.reward(r["accuracy"], lat)})
        return out

    def view_baselines(self, baselines: list[dict]) -> list[dict]:
        """Baselines on the same scale as `view`."""
        s = self.calib.scale
        out = []
        for base in baselines:
            meas, pred = base.get("meas_ms"), base.get("pred_ms")
            lat = (
                meas
                if meas is not None and math.isfinite(meas)
                else pred * s
                if pred is not None
                else base.get("lat_ms")
            )
            out.append({**base, "lat_ms": lat})
        return out

    def _postfix(self, bar, rows: list[dict]) -> None:
        if not rows:
            return
        best = max(r["reward"] for r in rows)
        front = pareto_front([r["lat_ms"] for r in rows], [r["accuracy"] for r in rows])
        bar.set_postfix(best_reward=f"{best:.4f}", pareto=len(front))

    def _write_outputs(self, rows: list[dict], stats: dict, final: bool = False) -> dict:
        from latbench.search import plots

        rows = self.view(rows)
        baselines = self.view_baselines(self.baselines)
        lat = [r["lat_ms"] for r in rows]
        acc = [r["accuracy"] for r in rows]
        front = pareto_front(lat, acc)
        text = ",".join(COLUMNS) + "\n" + "".join(samples_file.render(rows[i]) for i in front)
        write_atomic(self.dir / "pareto.csv", text.encode())
        pdir = self.dir / "pareto"
        pdir.mkdir(exist_ok=True)
        for old in pdir.glob("*.json"):
            old.unlink()
        for rank, i in enumerate(front):
            save_arch(
                self.space.decode(rows[i]["tokens"], name=f"pareto_{rank:02d}_{rows[i]['digest']}"),
                pdir / f"{rank:02d}_{rows[i]['digest']}.arch.json",
            )
        finite = [r for r in rows if math.isfinite(r["reward"])]
        best = max(finite, key=lambda r: r["reward"]) if finite else None
        if best is not None:
            (self.dir / "best").mkdir(exist_ok=True)
            save_arch(
                self.space.decode(best["tokens"], name=f"best_{best['digest']}"),
                self.dir / "best" / "arch.json",
            )
        feasible = [r for r in finite if r["lat_ms"] <= self.cfg.target_ms]
        best_feasible = max(feasible, key=lambda r: r["accuracy"]) if feasible else None
        if best_feasible is not None:
            save_arch(
                self.space.decode(
                    best_feasible["tokens"], name=f"best_under_target_{best_feasible['digest']}"
                ),
                self.dir / "best" / "under_target.arch.json",
            )
        ref_ms = 2 * self.cfg.target_ms
        wall = [r["wall_s"] for r in rows if math.isfinite(r["wall_s"])]
        summary = {
            "samples": len(rows),
            "target_ms": self.cfg.target_ms,
            "controller": self.cfg.controller,
            "seed": self.cfg.seed,
            "latency": self.cfg.latency,
            "best_reward": best["reward"] if best else None,
            "best": {
                k: best[k] for k in ("sample", "digest", "accuracy", "lat_ms", "meas_ms", "reward")
            }
            if best
            else None,
            "best_under_target": {
                k: best_feasible[k]
                for k in ("sample", "digest", "accuracy", "lat_ms", "meas_ms", "reward")
            }
            if best_feasible
            else None,
            "pareto_size": len(front),
            "hypervolume": hypervolume(lat, acc, ref_ms, 0.0),
            "hypervolume_ref": [ref_ms, 0.0],
            "mean_wall_s_per_sample": float(np.mean(wall)) if wall else None,
            "spot_checks": len(self.calib.pairs),
            "predictor_recent_error": self.calib.recent_error(),
            "calibration_scale": self.calib.scale,
            "last_update": stats,
            "baselines": baselines,
        }
        summary = json.loads(json.dumps(summary, default=float).replace("NaN", "null"))
        write_atomic(self.dir / "summary.json", (json.dumps(summary, indent=2) + "\n").encode())
        plots.pareto_png(
            rows,
            front,
            baselines,
            self.cfg.target_ms,
            self.dir / "pareto.png",
            latency=self.cfg.latency,
        )
        plots.reward_png(rows, self.dir / "reward.png")
        return summary
