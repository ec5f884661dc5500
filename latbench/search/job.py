"""One search job: its config checked, its latency source, evaluator and baselines, the run.

`latbench search` parses options and calls `new_config` or `resume_config`, then `run_job`;
`latbench compare` uses `make_evaluator` to retrain a run's best networks with the run's own
proxy recipe. Nothing here parses a command line or prints: messages go through `log`.
"""

from __future__ import annotations

import json
import math
from dataclasses import asdict, replace
from pathlib import Path
from typing import Callable

from latbench.errors import InputError
from latbench.fileio import append_line, load_json, write_atomic
from latbench.proxy.recipe import ProxyRecipe

Log = Callable[[str], None]


def new_config(
    *,
    target_ms: float | None,
    target_mmacs: float | None,
    latency: str,
    device: str,
    lut_dir: Path,
    out_dir: Path | None,
    constraint: str | None,
    alpha: float | None,
    beta: float | None,
    space: str,
    recipe: ProxyRecipe,
    baselines: str | None,
    **settings,
):
    """A new run's SearchConfig, every argument checked before anything heavy is loaded.

    `settings` are the SearchConfig fields taken as they are (samples, batch, seed, ...).
    Errors name the command-line option that fixes them."""
    from latbench.devices import known_profiles, load_profile
    from latbench.nets.spaces import get_space
    from latbench.search.reward import resolve
    from latbench.search.run import SearchConfig

    if out_dir is None:
        raise InputError("give --out DIR for a new run, or --resume DIR", "--out")
    if (latency == "flops") != (target_mmacs is not None) or (latency == "flops" and target_ms):
        raise InputError(
            "--latency flops takes its target as --target-mmacs (millions of "
            "MACs, e.g. 400 for EfficientNet-B0's 0.39 B); the other sources "
            "take --target-ms",
            "--target-mmacs",
        )
    if latency == "flops":
        target_ms = target_mmacs  # the reward's T, in the source's unit
    if target_ms is None:
        raise InputError(
            "a new search needs --target-ms (e.g. the latency of mobilenet_v2_x1: "
            "latbench measure examples/zoo/mobilenet_v2_x1.json, or latbench "
            "predict examples/zoo/mobilenet_v2_x1.json)",
            "--target-ms",
        )
    if not math.isfinite(target_ms) or target_ms <= 0:
        raise InputError(
            f"must be a finite number > 0, got {target_ms:g}",
            "--target-mmacs" if latency == "flops" else "--target-ms",
        )
    if (out_dir / "config.json").exists():
        raise InputError(
            f"{out_dir} already holds a run; continue it with --resume {out_dir} "
            f"or choose another --out",
            "--out",
        )
    a, b = resolve(constraint, alpha, beta)
    if not 0 < recipe.width <= 4:
        raise InputError(f"must be in (0, 4], got {recipe.width:g}", "--proxy-width")
    # an unknown device: exit 2 now, not after loading TensorFlow (unless a few-shot
    # predictor exists for it: such a device may have no profile)
    if (
        latency != "flops"
        and device not in known_profiles()
        and not (latency == "lut" and any(lut_dir.glob(f"{device}_*")))
    ):
        load_profile(device)
    sp = get_space(space)
    return SearchConfig(
        target_ms=target_ms,
        alpha=a,
        beta=b,
        latency=latency,
        device=device,
        space=space,
        recipe=asdict(recipe),
        lut_dir=str(lut_dir),
        baselines=(
            sp.baselines if baselines is None else tuple(x for x in baselines.split(",") if x)
        ),
        **settings,
    )


def resume_config(resume_dir: Path, samples: int | None, lut_dir: Path | None):
    """The config of the run in `resume_dir`; a new `samples` total extends (or ends) the run."""
    from latbench.search.run import SearchConfig

    cfg_path = resume_dir / "config.json"
    if not cfg_path.exists():
        raise InputError(
            f"{resume_dir} is not a search run (no config.json); start one with --out", "--resume"
        )
    cfg = SearchConfig.load(cfg_path)
    if samples is not None and samples != cfg.samples:
        cfg = replace(cfg, samples=samples)
        write_atomic(cfg_path, cfg.to_json().encode())
    if lut_dir is not None:
        cfg = replace(cfg, lut_dir=str(lut_dir))
    return cfg


def latency_source(cfg, lut_dir: Path, measure):
    """The predictor (lut mode) and the device's measure function, plus their identity."""
    from latbench.search.run import LatencySource

    predict, identity = None, {"latency": cfg.latency, "device": cfg.device}
    if cfg.latency == "flops":  # the network's MACs in millions: no LUT, no device
        import numpy as np

        return LatencySource(
            predict=lambda archs: np.array([a.macs() / 1e6 for a in archs]), measure=None
        ), identity
    if cfg.latency == "lut":
        from latbench.predictors import load_predictor

        model = load_predictor(
            cfg.device, cfg.precision, lut_dir, cfg.space, method=cfg.predictor_method
        )
        predict = model.predict
        identity.update(model.identity())  # predictor, its file's hash, the LUT's settings+rows
    return LatencySource(predict=predict, measure=measure), identity


def check_latency_model(out_dir: Path, identity: dict, log: Log) -> None:
    """Record which latency model a run uses; warn when a resume gets another one."""
    path = out_dir / "latency_model.json"
    if not path.exists():
        write_atomic(path, (json.dumps(identity, indent=2) + "\n").encode())
        return
    old = load_json(path, allow_nan=True)
    if old != identity:
        msg = (
            f"WARNING the latency model changed since this run started ({old} -> {identity}): "
            f"samples before and after are not on the same latency scale"
        )
        log(msg)
        append_line(out_dir / "events.log", msg + "\n")  # a symlinked log is refused


def make_evaluator(cfg, cache_dir: Path | None = None, dataset=None, evaluator=None):
    """The accuracy source of a search config: the user's evaluator (`cfg.evaluator`, or
    `evaluator` already loaded) behind the cache, else the proxy trainer (`dataset`: the
    config's dataset, loaded already). Both train with the recipe's seed and thread count.

    A folder dataset's train/test split has its own fixed seed: it is part of the
    dataset's identity, not of the search."""
    from latbench.proxy.accuracy import ProxyEvaluator
    from latbench.proxy.data import load_dataset
    from latbench.proxy.evaluator import CachedEvaluator, load_evaluator

    recipe = ProxyRecipe(**cfg.recipe)
    if evaluator is not None or cfg.evaluator:
        ev = evaluator or load_evaluator(cfg.evaluator)
        return CachedEvaluator(ev.with_seed(recipe.seed), cache_dir, threads=recipe.threads)
    ds = dataset or load_dataset(cfg.dataset, cfg.data_dir, recipe.resolution, seed=0)
    return ProxyEvaluator(ds, recipe, cache_dir)


def evaluate_baselines(names, evaluator, latency, log: Log) -> list[dict]:
    """Zoo networks through the same proxy recipe and latency source as the search."""
    from latbench.nets import zoo

    out = []
    for name in names:
        arch = zoo.get(name)
        res = evaluator.evaluate(arch)
        pred = float(latency.predict([arch])[0]) if latency.predict else None
        meas = float(latency.measure(arch)) if latency.measure else None
        lat = meas if meas is not None else pred  # a measurement beats a prediction
        out.append(
            {
                "name": name,
                "accuracy": res.accuracy,
                "pred_ms": pred,
                "meas_ms": meas,
                "lat_ms": lat,
                "train_s": res.train_s,
            }
        )
        log(
            f"baseline {name}: proxy accuracy {res.accuracy:.4f}, latency {lat:.3g} ms"
            + (f" (predicted {pred:.3g} ms)" if meas is not None and pred is not None else "")
        )
    return out


def run_job(
    out_dir: Path,
    cfg,
    *,
    ray_workers: int | None,
    ray_address: str | None,
    log: Log,
    progress: bool,
    dataset=None,
    evaluator=None,
    cpus_per_child: float = 1,
    gpus_per_child: float = 0,
) -> dict:
    """Run (or resume) the search of `cfg` in `out_dir`; the run's summary.

    The run folder is locked for the whole run (`fileio.hold_lock`): a second `search
    --resume` of it is refused naming the first. KeyboardInterrupt propagates after the
    device and the executor are closed; every sample finished before it is on disk."""
    from latbench.fileio import hold_lock

    out_dir.mkdir(parents=True, exist_ok=True)
    with hold_lock(out_dir, f"search run {out_dir}"):
        return _run_locked(
            out_dir,
            cfg,
            log,
            progress,
            dataset,
            evaluator,
            dict(
                workers=ray_workers,
                address=ray_address,
                cpus_per_child=cpus_per_child,
                gpus_per_child=gpus_per_child,
            ),
        )


def _run_locked(out_dir: Path, cfg, log: Log, progress: bool, dataset, evaluator, resources):
    from latbench.devices import known_profiles
    from latbench.nets.spaces import get_space
    from latbench.search.executor import make_executor
    from latbench.search.run import Search

    space = get_space(cfg.space)
    evaluator = make_evaluator(cfg, dataset=dataset, evaluator=evaluator)
    executor = make_executor(**resources)

    def close_device() -> None:  # replaced by the device's own once one is opened
        pass

    no_device = cfg.latency == "flops" or (
        cfg.latency == "lut" and cfg.device not in known_profiles()
    )
    if no_device:  # e.g. a few-shot predictor for a device latbench cannot reach
        log(f"note: no device profile {cfg.device!r}: predicted latency only, no spot checks")
    try:
        measure = None
        if not no_device:
            measure, close_device = executor.device_measure(cfg.device, cfg.precision)
        lat, identity = latency_source(cfg, Path(cfg.lut_dir), measure)
        runner = Search(
            out_dir, cfg, evaluator, lat, space, log=log, progress=progress, executor=executor
        )
        check_latency_model(out_dir, identity, log)
        bpath = out_dir / "baselines.json"
        if not (out_dir / "samples.csv").exists():
            runner.check_feasible()  # before any training: fail fast on an unreachable target
        if bpath.exists():
            base = load_json(bpath, allow_nan=True)  # a failed baseline's numbers are NaN
            if not isinstance(base, list) or not all(
                isinstance(b, dict) and isinstance(b.get("name"), str) for b in base
            ):
                raise InputError(f"{bpath}: expected a list of baselines, got {str(base)[:80]}")
        else:
            base = evaluate_baselines(cfg.baselines, evaluator, lat, log)
            write_atomic(bpath, (json.dumps(base, indent=2) + "\n").encode())
        return runner.run(base)
    finally:
        close_device()
        executor.close()
