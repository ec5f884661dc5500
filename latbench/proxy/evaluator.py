"""The accuracy interface: what an evaluator is, how its results are cached, how a user's is loaded.

An *evaluator* turns one sampled network into an accuracy. latbench's own proxy trainer
(`accuracy.ProxyTrainer`) and a user's (`latbench search --evaluator my_pkg.my_module:evaluate`)
are used the same way, through `CachedEvaluator`:

  - the evaluator is a callable `evaluate(net: Network) -> float | {"accuracy": float, ...}`;
    `net.arch` is the sampled network's arch.json (a dict), `net.model` a fresh Keras model
    (logits out) built by latbench's builder from `net.trained` (the network as the
    evaluator trains it: the evaluator's optional `network(arch) -> Arch` transform, e.g.
    the proxy's smaller input and width; the sampled network itself otherwise),
    `net.seed` the recipe seed and `net.fidelity` the share of its full training to spend
    (successive halving asks for less; an evaluator may ignore it); `net.pretrained` says the
    model already holds weights inherited from a larger network (NetAdapt's fine-tuning:
    `latbench netadapt --evaluator`, where the evaluator trains `net.model` in place and
    NetAdapt carries its weights on);
  - an accuracy is a finite number in [0, 1]; a dict's other entries are extra metrics
    (finite numbers), logged per sample. Anything else is the evaluator's bug: an
    `InputError` naming `--evaluator` (exit 2), never a silent NaN. An exception raised by
    the evaluator is that network's failure, recorded with its sample like a training
    failure;
  - results are cached in `cache_dir` (JSON, one file per key), keyed by the trained
    network's digest, the evaluator's name and version, the seed, the TensorFlow thread
    count and the fidelity. A function's version is its `version` attribute, else its
    module's `__version__`, else the hash of its module's source file (an edit misses the
    cache).

The TensorFlow thread count (`threads`, part of the proxy recipe) is applied to the process
before its first model is built (`use_threads`): the thread count changes the low bits of a
training, so a run that promises the same accuracies serially and on Ray workers must train
with the same count everywhere.
"""

from __future__ import annotations

import hashlib
import importlib
import importlib.util
import json
import math
import os
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Mapping, Protocol, runtime_checkable

from latbench.errors import InputError, LatbenchError
from latbench.fileio import load_json, write_atomic
from latbench.nets.arch import Arch

OPTION = "--evaluator"


@dataclass(frozen=True)
class AccuracyResult:
    accuracy: float
    train_s: float
    params: int
    cached: bool = False
    metrics: dict = field(default_factory=dict)  # an evaluator's extra numbers
    fidelity: float = 1.0  # share of the evaluator's full training this result had
    # CPU seconds of the process that trained it (TensorFlow's threads included): the budget
    # `latbench compare --budget cpu` spends; NaN for results cached before it was recorded
    cpu_s: float = math.nan


class AccuracySource(Protocol):
    """What the search needs from an accuracy evaluator (see `evaluate`)."""

    def key(self, arch: Arch) -> str: ...  # equal keys: the same result
    def lookup(self, arch: Arch) -> AccuracyResult | None: ...  # the cache (driver side)
    def train(self, arch: Arch) -> AccuracyResult: ...  # the work (anywhere; no side effects)
    def record(self, arch: Arch, result: AccuracyResult) -> None: ...  # the cache (driver side)


def evaluate(source: AccuracySource, arch: Arch) -> AccuracyResult:
    """Cached result, or train and record."""
    hit = source.lookup(arch)
    if hit is not None:
        return hit
    res = source.train(arch)
    source.record(arch, res)
    return res


@dataclass
class Network:
    """What an evaluator receives: one sampled network, ready to train."""

    arch: dict  # the sampled network's arch.json
    trained: dict  # the network as the evaluator trains it (arch.json of `model`)
    model: Any  # a fresh Keras model of `trained` (logits out), latbench's builder
    seed: int = 0
    fidelity: float = 1.0  # share of the full training to spend (successive halving)
    threads: int = 0  # TensorFlow intra-op threads of this process (0: TensorFlow's default)
    pretrained: bool = False  # `model` holds inherited weights (NetAdapt): fine-tune it


@runtime_checkable
class Evaluator(Protocol):
    """An accuracy evaluator (the interface `--evaluator` points at, once wrapped)."""

    name: str  # part of the cache key
    version: str  # part of the cache key: change it when the evaluation changes
    seed: int

    def network(self, arch: Arch) -> Arch: ...  # the network as trained (identity by default)
    def __call__(self, net: Network) -> float | Mapping[str, float]: ...


def use_threads(n: int) -> None:
    """TensorFlow intra- and inter-op threads of this process, before its first op (n > 0).

    Raises LatbenchError when TensorFlow already runs with another count: a result
    trained that way would not be the one its cache key names."""
    if n <= 0:
        return
    before = os.environ.get("TF_NUM_INTRAOP_THREADS")
    os.environ["TF_NUM_INTRAOP_THREADS"] = os.environ["TF_NUM_INTEROP_THREADS"] = str(n)
    import tensorflow as tf

    cur = tf.config.threading.get_intra_op_parallelism_threads()
    if cur == n or (cur == 0 and before == str(n)):
        return  # set already (by this function, or by the environment before TensorFlow started)
    try:
        tf.config.threading.set_intra_op_parallelism_threads(n)
        tf.config.threading.set_inter_op_parallelism_threads(n)
    except RuntimeError:
        raise LatbenchError(
            f"TensorFlow in this process already runs with {cur or 'its default'} intra-op "
            f"threads, and the recipe asks for {n}: start a new process (or give "
            f"--proxy-threads {cur or 0})"
        ) from None


def _cpu_seconds(v: Any) -> float:
    """A cache file's cpu_s: absent (written before it was recorded) or NaN reads as NaN."""
    if v is None or (isinstance(v, float) and math.isnan(v)):
        return math.nan
    return _check_number(v, "cpu_s", 0.0)


def _check_number(v: Any, what: str, lo: float = -math.inf, hi: float = math.inf) -> float:
    ok = isinstance(v, (int, float)) and not isinstance(v, bool)
    try:
        import numpy as np

        ok = ok or isinstance(v, np.number)
    except ImportError:
        pass
    if not ok or not math.isfinite(float(v)) or not lo <= float(v) <= hi:
        rng = f" in [{lo:g}, {hi:g}]" if math.isfinite(lo) else ""
        raise InputError(f"{what} must be a finite number{rng}, got {str(v)[:60]!r}", OPTION)
    return float(v)


def check_result(out: Any, who: str) -> tuple[float, dict]:
    """(accuracy, extra metrics) of what an evaluator returned; InputError otherwise."""
    if isinstance(out, Mapping):
        if "accuracy" not in out:
            raise InputError(f"{who} returned a dict without 'accuracy': {sorted(out)}", OPTION)
        acc = _check_number(out["accuracy"], f"{who}: accuracy", 0.0, 1.0)
        metrics = {}
        for k, v in out.items():
            if k == "accuracy":
                continue
            if not isinstance(k, str):
                raise InputError(f"{who} returned a metric named {k!r} (not a string)", OPTION)
            metrics[k] = _check_number(v, f"{who}: metric {k!r}")
        return acc, metrics
    return _check_number(out, f"{who}: accuracy", 0.0, 1.0), {}


class CachedEvaluator:
    """An evaluator behind the cache: the `AccuracySource` the search and compare use."""

    def __init__(
        self,
        evaluator: Evaluator,
        cache_dir: Path | None = None,
        threads: int = 0,
        fidelity: float = 1.0,
    ):
        if not 0 < fidelity <= 1:
            raise InputError(f"fidelity must be in (0, 1], got {fidelity}", "recipe")
        self.evaluator = evaluator
        self.cache_dir = Path(cache_dir) if cache_dir else default_cache_dir()
        self.threads = threads
        self.fidelity = fidelity
        self.trained = 0  # networks actually trained by this evaluator (not cached)
        use_threads(threads)

    def at(self, fidelity: float) -> "CachedEvaluator":
        """The same evaluator at another fidelity (its own cache entries; one object per
        fidelity, so a Ray executor ships its data once)."""
        if fidelity == self.fidelity:
            return self
        if not 0 < fidelity <= 1:
            raise InputError(f"fidelity must be in (0, 1], got {fidelity}", "recipe")
        known = self.__dict__.setdefault("_at", {})
        if fidelity not in known:
            out = object.__new__(type(self))
            out.__dict__.update(self.__dict__, fidelity=fidelity, trained=0, _at={})
            known[fidelity] = out
        return known[fidelity]

    def key(self, arch: Arch) -> str:
        ev = self.evaluator
        text = (
            f"{ev.network(arch).digest()}|{ev.version}|{ev.name}|seed-{ev.seed}"
            f"|threads-{self.threads}"
        )
        if self.fidelity != 1.0:
            text += f"|fidelity-{self.fidelity!r}"
        return hashlib.sha256(text.encode()).hexdigest()[:20]

    cache_key = key

    def lookup(self, arch: Arch) -> AccuracyResult | None:
        path = self.cache_dir / f"{self.key(arch)}.json"
        if not path.exists():
            return None
        try:
            d = load_json(path, "cache file", allow_nan=True)
            metrics = d.get("metrics", {})
            if not isinstance(metrics, dict):
                return None
            return AccuracyResult(
                _check_number(d["accuracy"], "accuracy", 0.0, 1.0),
                _check_number(d["train_s"], "train_s", 0.0),
                int(d["params"]),
                True,
                {str(k): _check_number(v, k) for k, v in metrics.items()},
                self.fidelity,
                _cpu_seconds(d.get("cpu_s")),
            )
        except (InputError, ValueError, KeyError, TypeError):
            return None  # a torn or damaged cache file: train again

    cached = lookup

    def train(self, arch: Arch) -> AccuracyResult:
        """Build the network, call the evaluator, check what it returned (no cache access)."""
        import keras

        from latbench.proxy import train as train_mod

        use_threads(self.threads)
        ev = self.evaluator
        t0, c0 = time.monotonic(), time.process_time()
        trained = ev.network(arch)
        keras.backend.clear_session()
        keras.utils.set_random_seed(ev.seed)
        model = train_mod.build(trained)
        net = Network(
            arch.to_dict(),
            trained.to_dict(),
            model,
            seed=ev.seed,
            fidelity=self.fidelity,
            threads=self.threads,
        )
        acc, metrics = check_result(ev(net), f"evaluator {ev.name}")
        params = model.count_params()
        keras.backend.clear_session()
        wall, cpu = time.monotonic() - t0, time.process_time() - c0
        return AccuracyResult(acc, wall, params, False, metrics, self.fidelity, cpu)

    def record(self, arch: Arch, res: AccuracyResult) -> None:
        ev = self.evaluator
        write_atomic(
            self.cache_dir / f"{self.key(arch)}.json",
            json.dumps(
                {
                    **asdict(res),
                    "cached": False,
                    "arch": arch.name,
                    "evaluator": ev.name,
                    "version": ev.version,
                    "seed": ev.seed,
                    "threads": self.threads,
                }
            ).encode(),
        )
        self.trained += 1

    def evaluate(self, arch: Arch) -> AccuracyResult:
        """The network's accuracy (cached)."""
        return evaluate(self, arch)


def default_cache_dir() -> Path:
    root = os.environ.get("LATBENCH_CACHE") or Path.home() / ".cache" / "latbench"
    return Path(root) / "accuracy"


# ---------------------------------------------------------------------------
# a user's evaluator: `module:function` or `path/to/file.py:function`
# ---------------------------------------------------------------------------


def _source_hash(module) -> str:
    path = getattr(module, "__file__", None)
    if not path or not Path(path).is_file():
        return "unversioned"
    return "src-" + hashlib.sha256(Path(path).read_bytes()).hexdigest()[:16]


def _import(spec: str):
    """(module, attribute path) of SPEC; InputError naming --evaluator when it cannot be."""
    mod_name, sep, attr = spec.rpartition(":")
    if not sep or not mod_name or not attr:
        raise InputError(f"expected MODULE:FUNCTION or FILE.py:FUNCTION, got {spec!r}", OPTION)
    try:
        if mod_name.endswith(".py") or os.sep in mod_name:
            path = Path(mod_name).resolve()
            if not path.is_file():
                raise InputError(f"{path}: no such file", OPTION)
            name = "latbench_evaluator_" + hashlib.sha256(str(path).encode()).hexdigest()[:12]
            if name not in sys.modules:
                spec_ = importlib.util.spec_from_file_location(name, path)
                module = importlib.util.module_from_spec(spec_)
                sys.modules[name] = module
                try:
                    spec_.loader.exec_module(module)
                except BaseException:
                    del sys.modules[name]
                    raise
            module = sys.modules[name]
        else:
            if os.getcwd() not in sys.path:  # as `python -m` would find it
                sys.path.append(os.getcwd())
            module = importlib.import_module(mod_name)
    except InputError:
        raise
    except Exception as exc:  # noqa: BLE001 - a user's module may raise anything on import
        raise InputError(
            f"cannot import {mod_name!r} ({type(exc).__name__}: {exc})".splitlines()[0], OPTION
        ) from None
    obj = module
    for part in attr.split("."):
        if not hasattr(obj, part):
            raise InputError(f"{mod_name!r} has no attribute {attr!r}", OPTION)
        obj = getattr(obj, part)
    if not callable(obj):
        raise InputError(f"{spec} is a {type(obj).__name__}, not a callable", OPTION)
    return module, obj


class FunctionEvaluator:
    """A user's callable as an `Evaluator`, found again by its spec wherever it runs (a Ray
    worker imports it by name, or loads the file by its absolute path)."""

    def __init__(self, spec: str, seed: int = 0):
        mod_name, _, attr = spec.rpartition(":")
        if mod_name.endswith(".py") or os.sep in mod_name:
            spec = f"{Path(mod_name).resolve()}:{attr}"  # workers may start elsewhere
        self.spec = spec
        module, fn = _import(spec)
        self._fn = fn
        self.name = str(getattr(fn, "name", spec))
        self.version = str(
            getattr(fn, "version", None)
            or getattr(module, "__version__", None)
            or _source_hash(module)
        )
        self.seed = seed

    def with_seed(self, seed: int) -> "FunctionEvaluator":
        out = object.__new__(FunctionEvaluator)
        out.__dict__.update(self.__dict__, seed=seed)
        return out

    def network(self, arch: Arch) -> Arch:
        hook = getattr(self._get(), "network", None)
        return hook(arch) if callable(hook) else arch

    def _get(self):
        if self._fn is None:
            self._fn = _import(self.spec)[1]
        return self._fn

    def __call__(self, net: Network):
        return self._get()(net)

    def __getstate__(self):
        return {**self.__dict__, "_fn": None}  # the worker imports it by its spec


def load_evaluator(spec: str, seed: int = 0) -> FunctionEvaluator:
    """The evaluator SPEC names, checked now (import, attribute, callable): exit 2 before the
    search starts."""
    return FunctionEvaluator(spec, seed)


__all__ = [
    "AccuracyResult",
    "AccuracySource",
    "CachedEvaluator",
    "Evaluator",
    "FunctionEvaluator",
    "Network",
    "check_result",
    "evaluate",
    "load_evaluator",
    "use_threads",
]
