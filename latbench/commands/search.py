"""`latbench search`: the click command; wiring only (see run.py for the loop)."""

from __future__ import annotations

import json
import sys
from dataclasses import asdict, replace
from pathlib import Path

import click

from latbench.errors import InputError
from latbench.nets.spaces import SPACES
from latbench.proxy.accuracy import ProxyRecipe

_RECIPE = ProxyRecipe()  # CLI defaults come from the recipe, never from a copy


def _latency_source(cfg, lut_dir: Path, measure):
    """The predictor (lut mode) and the device's measure function, plus their identity."""
    from latbench.search.run import LatencySource

    predict, identity = None, {"latency": cfg.latency, "device": cfg.device}
    if cfg.latency == "flops":  # the network's MACs in millions: no LUT, no device
        import numpy as np

        return LatencySource(predict=lambda archs: np.array([a.macs() / 1e6 for a in archs]),
                             measure=None), identity
    if cfg.latency == "lut":
        from latbench.predictors import load_predictor

        model = load_predictor(cfg.device, cfg.precision, lut_dir, cfg.space)
        predict = model.predict
        identity.update(model.identity())  # predictor, its file's hash, the LUT's settings+rows
    return LatencySource(predict=predict, measure=measure), identity


def _check_latency_model(out_dir: Path, identity: dict, log) -> None:
    """Record which latency model a run uses; warn when a resume gets another one."""
    path = out_dir / "latency_model.json"
    if not path.exists():
        path.write_text(json.dumps(identity, indent=2) + "\n")
        return
    old = json.loads(path.read_text())
    if old != identity:
        msg = (f"WARNING the latency model changed since this run started ({old} -> {identity}): "
               f"samples before and after are not on the same latency scale")
        log(msg)
        with open(out_dir / "events.log", "a") as f:
            f.write(msg + "\n")


def make_evaluator(cfg, cache_dir: Path | None = None, dataset=None):
    """The proxy evaluator of a search config (`dataset`: the config's dataset, loaded already).

    A folder dataset's train/test split has its own fixed seed: it is part of the
    dataset's identity, not of the search."""
    from latbench.proxy.accuracy import ProxyEvaluator
    from latbench.proxy.data import load_dataset

    recipe = ProxyRecipe(**cfg.recipe)
    ds = dataset or load_dataset(cfg.dataset, cfg.data_dir, recipe.resolution, seed=0)
    return ProxyEvaluator(ds, recipe, cache_dir)


def evaluate_baselines(names, evaluator, latency, target_ms: float, log) -> list[dict]:
    """Zoo networks through the same proxy recipe and latency source as the search."""
    from latbench.nets import zoo

    out = []
    for name in names:
        arch = zoo.get(name)
        res = evaluator.evaluate(arch)
        pred = float(latency.predict([arch])[0]) if latency.predict else None
        meas = float(latency.measure(arch)) if latency.measure else None
        lat = meas if meas is not None else pred  # a measurement beats a prediction
        out.append({"name": name, "accuracy": res.accuracy, "pred_ms": pred, "meas_ms": meas,
                    "lat_ms": lat, "train_s": res.train_s})
        log(f"baseline {name}: proxy accuracy {res.accuracy:.4f}, latency {lat:.3g} ms"
            + (f" (predicted {pred:.3g} ms)" if meas is not None and pred is not None else ""))
    return out


@click.command("search")
@click.option("--device", default="host", show_default=True, help="Device profile name.")
@click.option("--latency", type=click.Choice(["lut", "device", "flops"]), default="lut",
              show_default=True,
              help="lut: the predictor (spot-checked on the device); device: measure every network; "
                   "flops: multiply-accumulates instead of latency (EfficientNet-B0's reward; "
                   "give the target with --target-mmacs).")
@click.option("--target-ms", type=float, help="Target latency T in ms (required for a new run).")
@click.option("--target-mmacs", type=float,
              help="With --latency flops: the target T in millions of multiply-accumulates.")
@click.option("--samples", type=click.IntRange(1), default=400, show_default=True,
              help="Networks to sample in total (on --resume: a new, larger total extends the run).")
@click.option("--batch", type=click.IntRange(1), default=8, show_default=True,
              help="Networks per controller update.")
@click.option("--out", "out_dir", type=click.Path(file_okay=False, path_type=Path),
              help="Directory of a new run (samples.csv, pareto.csv, PNGs, checkpoints).")
@click.option("--resume", "resume_dir", type=click.Path(file_okay=False, path_type=Path),
              help="Continue an interrupted run from its directory (its config.json applies).")
@click.option("--controller", type=click.Choice(["ppo", "random"]), default="ppo", show_default=True,
              help="ppo: the LSTM controller trained with PPO; random: same-budget baseline.")
@click.option("--constraint", type=click.Choice(["soft", "hard", "mobilenetv3-small"]), default=None,
              help="soft: alpha=beta=-0.07; hard: alpha=0, beta=-1 (MnasNet); mobilenetv3-small: "
                   "alpha=beta=-0.15 (MobileNetV3's small models) [default soft].")
@click.option("--alpha", type=float, help="Explicit exponent when LAT <= T (with --beta).")
@click.option("--beta", type=float, help="Explicit exponent when LAT > T (with --alpha).")
@click.option("--seed", type=int, default=0, show_default=True,
              help="Seed of the controller and the sampling.")
@click.option("--space", "space_name", type=click.Choice(list(SPACES)), default="mnasnet",
              show_default=True, help="Search space (tiny for a quick trial).")
@click.option("--precision", type=click.Choice(["fp32", "int8"]), default="fp32", show_default=True,
              help="Precision of the latency model / measured models.")
@click.option("--lut-dir", type=click.Path(file_okay=False, path_type=Path), default=Path("lut"),
              show_default=True, help="Folder of the LUT and predictor files.")
@click.option("--spot-every", type=click.IntRange(0), default=10, show_default=True,
              help="--latency lut: also measure every k-th sample on the device (0: never).")
@click.option("--drift-threshold", type=float, default=0.10, show_default=True,
              help="Warn when the recent mean |predicted/measured - 1| exceeds this.")
@click.option("--recalibrate", is_flag=True,
              help="Scale predictions by the median measured/predicted ratio of the spot checks.")
@click.option("--dataset", default="fashion_mnist", show_default=True,
              help="fashion_mnist, folder (with --data-dir), or a tensorflow-datasets name.")
@click.option("--data-dir", help="IDX folder for fashion_mnist, image folder, or tfds data_dir.")
@click.option("--proxy-resolution", type=click.IntRange(8), default=_RECIPE.resolution,
              show_default=True, help="Input size of the proxy training (images are resized to it).")
@click.option("--proxy-width", type=float, default=_RECIPE.width, show_default=True,
              help="Width multiplier of the proxy networks.")
@click.option("--proxy-min-map", type=click.IntRange(1), default=_RECIPE.min_map, show_default=True,
              help="Proxy strides: a stride-2 stage that would shrink the map below this runs "
                   "at stride 1.")
@click.option("--proxy-train", type=click.IntRange(10), default=_RECIPE.train_images,
              show_default=True, help="Training images per proxy run.")
@click.option("--proxy-epochs", type=click.IntRange(1), default=_RECIPE.epochs, show_default=True,
              help="Epochs of proxy training per network.")
@click.option("--baselines", default=None,
              help="Comma-separated zoo networks drawn in the Pareto plot ('' for none) "
                   "[default: the space's reference networks; mnasnet: mobilenet_v2_x1].")
@click.option("--workers", type=click.IntRange(1), default=None,
              help="Train each batch's children in parallel on a local Ray with N workers "
                   "(started on demand; default: serial, no Ray).")
@click.option("--ray-address", default=None,
              help="Join an existing Ray cluster (e.g. auto, or HEAD:6379) instead of a local Ray.")
@click.option("--no-progress", is_flag=True,
              help="No progress bars (they are shown only on a terminal anyway).")
def search_command(device, latency, target_ms, target_mmacs, samples, batch, out_dir, resume_dir,
                   controller,
                   constraint, alpha, beta, seed, space_name, precision, lut_dir, spot_every,
                   drift_threshold, recalibrate, dataset, data_dir, proxy_resolution, proxy_width,
                   proxy_min_map, proxy_train, proxy_epochs, baselines, workers, ray_address,
                   no_progress):
    """MnasNet search: RL controller, proxy-trained accuracy, measured or predicted latency."""
    # Only what checks the arguments is imported here: run.py brings TensorFlow (the
    # controller), so a bad argument is rejected before it loads.
    from latbench.devices import load_profile
    from latbench.fileio import write_atomic
    from latbench.nets.spaces import get_space
    from latbench.search.reward import resolve

    from latbench.proxy.data import load_dataset

    ds = None
    ctx = click.get_current_context()
    given = {p.name for p in ctx.command.params
             if ctx.get_parameter_source(p.name) == click.core.ParameterSource.COMMANDLINE}
    if resume_dir:
        cfg_path = resume_dir / "config.json"
        if not cfg_path.exists():
            raise InputError(f"{resume_dir} is not a search run (no config.json); start one with --out",
                             "--resume")
        from latbench.search.run import SearchConfig

        cfg = SearchConfig.from_json(cfg_path.read_text())
        if "samples" in given and samples != cfg.samples:  # a new total extends (or ends) the run
            cfg = replace(cfg, samples=samples)
            cfg_path.write_text(cfg.to_json())
        if "lut_dir" in given:
            cfg = replace(cfg, lut_dir=str(lut_dir))
        ignored = sorted(given - {"resume_dir", "samples", "no_progress", "lut_dir", "workers",
                                  "ray_address"})
        if ignored:
            click.echo(f"note: --resume continues with {cfg_path}; ignoring "
                       f"{', '.join('--' + n.replace('_', '-') for n in ignored)}", err=True)
        out_dir = resume_dir
    else:
        if out_dir is None:
            raise InputError("give --out DIR for a new run, or --resume DIR", "--out")
        if (latency == "flops") != (target_mmacs is not None) or (latency == "flops" and target_ms):
            raise InputError("--latency flops takes its target as --target-mmacs (millions of "
                             "MACs, e.g. 400 for EfficientNet-B0's 0.39 B); the other sources "
                             "take --target-ms", "--target-mmacs")
        if latency == "flops":
            target_ms = target_mmacs  # the reward's T, in the source's unit
        if target_ms is None:
            raise InputError("a new search needs --target-ms (e.g. the latency of mobilenet_v2_x1: "
                             "latbench measure examples/zoo/mobilenet_v2_x1.json, or latbench "
                             "predict examples/zoo/mobilenet_v2_x1.json)", "--target-ms")
        if target_ms <= 0:
            raise InputError(f"must be > 0 ms, got {target_ms:g}", "--target-ms")
        if (out_dir / "config.json").exists():
            raise InputError(f"{out_dir} already holds a run; continue it with --resume {out_dir} "
                             f"or choose another --out", "--out")
        a, b = resolve(constraint, alpha, beta)
        if not 0 < proxy_width <= 4:
            raise InputError(f"must be in (0, 4], got {proxy_width:g}", "--proxy-width")
        from latbench.devices import known_profiles

        # an unknown device: exit 2 now, not after loading TensorFlow (unless a few-shot
        # predictor exists for it: such a device may have no profile)
        if (latency != "flops" and device not in known_profiles()
                and not (latency == "lut" and any(lut_dir.glob(f"{device}_*")))):
            load_profile(device)
        get_space(space_name)
        ds = load_dataset(dataset, data_dir, proxy_resolution, seed=0)  # a missing data dir too
        from latbench.search.run import SearchConfig

        recipe = ProxyRecipe(resolution=proxy_resolution, width=proxy_width,
                             min_map=proxy_min_map, train_images=proxy_train, epochs=proxy_epochs)
        cfg = SearchConfig(target_ms=target_ms, alpha=a, beta=b, samples=samples, batch=batch,
                           seed=seed, controller=controller, latency=latency, device=device,
                           precision=precision, space=space_name, spot_every=spot_every,
                           drift_threshold=drift_threshold, recalibrate=recalibrate,
                           dataset=dataset, data_dir=data_dir, recipe=asdict(recipe),
                           baselines=(get_space(space_name).baselines if baselines is None else
                                      tuple(x for x in baselines.split(",") if x)),
                           lut_dir=str(lut_dir))
    from latbench.commands.console import note, progress_wanted
    from latbench.search.executor import make_executor
    from latbench.search.run import Search

    space = get_space(cfg.space)
    log = note
    evaluator = make_evaluator(cfg, dataset=ds)
    executor = make_executor(workers, ray_address)
    close_device = lambda: None  # noqa: E731
    from latbench.devices import known_profiles

    no_device = cfg.latency == "flops" or (cfg.latency == "lut"
                                           and cfg.device not in known_profiles())
    if no_device:  # e.g. a few-shot predictor for a device latbench cannot reach
        log(f"note: no device profile {cfg.device!r}: predicted latency only, no spot checks")
    try:
        measure = None
        if not no_device:
            measure, close_device = executor.device_measure(cfg.device, cfg.precision)
        lat, identity = _latency_source(cfg, Path(cfg.lut_dir), measure)
        runner = Search(out_dir, cfg, evaluator, lat, space, log=log,
                        progress=progress_wanted(no_progress), executor=executor)
        out_dir.mkdir(parents=True, exist_ok=True)
        _check_latency_model(out_dir, identity, log)
        bpath = out_dir / "baselines.json"
        if not (out_dir / "samples.csv").exists():
            runner.check_feasible()  # before any training: fail fast on an unreachable target
        if bpath.exists():
            base = json.loads(bpath.read_text())
        else:
            base = evaluate_baselines(cfg.baselines, evaluator, lat, cfg.target_ms, log)
            write_atomic(bpath, (json.dumps(base, indent=2) + "\n").encode())
        try:
            summary = runner.run(base)
        except KeyboardInterrupt:
            from latbench.search.run import read_samples

            n = len(read_samples(out_dir / "samples.csv"))
            click.echo(f"\ninterrupted after {n} completed samples; continue with: "
                       f"latbench search --resume {out_dir}", err=True)
            sys.exit(130)
    finally:
        close_device()
        executor.close()
    click.echo(json.dumps({k: summary[k] for k in ("samples", "best_reward", "best", "best_under_target",
                                                   "pareto_size", "hypervolume",
                                                   "mean_wall_s_per_sample")}, indent=2))
    click.echo(f"outputs in {out_dir}/ (samples.csv, pareto.csv, pareto.png, reward.png, best/arch.json)",
               err=True)
