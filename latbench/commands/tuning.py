"""`latbench netadapt` and `latbench scale`: the click commands; wiring only.

The algorithms live in `netadapt.py` and `scaling.py`; both get latency from
`OnDemandLatency` (the device's predictor, profiling unseen layers) and
accuracy from the search's proxy task.
"""

from __future__ import annotations

import json
from dataclasses import asdict, replace
from pathlib import Path

import click

from latbench.commands.console import note, progress_wanted
from latbench.commands.options import (
    dataset_options,
    device_option,
    echo_json,
    evaluator_option,
    json_errors_option,
    lut_dir_option,
    no_progress_option,
    precision_option,
    proxy_options,
    recipe_from,
)
from latbench.errors import InputError, Interrupted, LatbenchError
from latbench.fileio import hold_lock
from latbench.proxy.recipe import ProxyRecipe
from latbench.tuning.netadapt import PROXY as NETADAPT_PROXY

_RECIPE = ProxyRecipe()  # the search's proxy: scale's defaults come from it, never from a copy


def _common(f):
    """Options both commands share."""
    for opt in reversed(
        [
            device_option("device"),
            precision_option,
            lut_dir_option(
                help_extra="New layers are appended to DEVICE_ondemand_PRECISION.csv there."
            ),
            click.option(
                "--out",
                "out_dir",
                type=click.Path(file_okay=False, path_type=Path),
                required=True,
                help="Run directory (re-run with the same options to resume).",
            ),
            dataset_options,
            click.option(
                "--seed", type=int, default=0, show_default=True, help="Training and split seed."
            ),
            no_progress_option,
            json_errors_option,
        ]
    ):
        f = opt(f)
    return f


_log = note


@click.command("netadapt")
@click.argument("arch_file", type=click.Path(path_type=Path))
@_common
@click.option("--target-ms", type=float, help="Latency target in ms.")
@click.option(
    "--target-ratio",
    type=float,
    help="Or: the target as a share of the seed's predicted latency (e.g. 0.85).",
)
@click.option(
    "--delta",
    type=float,
    default=0.01,
    show_default=True,
    help="Each proposal cuts predicted latency by at least this share (MobileNetV3: 1 %).",
)
@click.option(
    "--metric",
    type=click.Choice(["ratio", "accuracy"]),
    default="ratio",
    show_default=True,
    help="ratio: accuracy change per latency change (MobileNetV3); accuracy: NetAdapt's.",
)
@proxy_options(
    NETADAPT_PROXY,
    ("resolution", "train"),
    {"resolution": "Proxy input size (the network keeps its own channels: width 1.0)."},
)
@click.option(
    "--pretrain-epochs",
    type=float,
    default=3.0,
    show_default=True,
    help="Epochs for the seed before the first step.",
)
@click.option(
    "--finetune-epochs",
    type=float,
    default=0.5,
    show_default=True,
    help="Epochs of fine-tuning per proposal (from inherited weights).",
)
@click.option(
    "--long-epochs",
    type=float,
    default=6.0,
    show_default=True,
    help="Epochs for the result at the end.",
)
@click.option(
    "--max-steps",
    type=click.IntRange(1),
    default=100,
    show_default=True,
    help="Stop after this many steps even if the target is not met.",
)
@click.option("--no-measure", is_flag=True, help="Do not time the chosen networks end to end.")
@evaluator_option
def netadapt_command(
    arch_file,
    device,
    precision,
    lut_dir,
    out_dir,
    dataset,
    data_dir,
    seed,
    no_progress,
    as_json,
    target_ms,
    target_ratio,
    delta,
    metric,
    pretrain_epochs,
    finetune_epochs,
    long_epochs,
    max_steps,
    no_measure,
    evaluator,
    **proxy,
):
    """NetAdapt: shrink channels of ARCH_FILE step by step until it meets a latency target."""
    from latbench.nets.load import load_arch
    from latbench.predictors.ondemand import OnDemandLatency
    from latbench.proxy.data import load_dataset
    from latbench.tuning.netadapt import NetAdaptConfig, NetAdaptRun, bake_width

    recipe = recipe_from(NETADAPT_PROXY, proxy)
    if (target_ms is None) == (target_ratio is None):
        raise InputError("give exactly one of --target-ms and --target-ratio", "--target-ms")
    if target_ratio is not None and not 0 < target_ratio < 1:
        raise InputError(f"must be in (0, 1), got {target_ratio}", "--target-ratio")
    seed_arch = load_arch(arch_file)
    if evaluator:  # a bad spec: exit 2 before any profiling
        from latbench.proxy.evaluator import load_evaluator

        load_evaluator(evaluator)
    with OnDemandLatency(
        device, precision, lut_dir, progress=progress_wanted(no_progress), log=_log
    ) as lat:
        if target_ms is None:
            target_ms = float(lat.predict([bake_width(seed_arch)])[0]) * target_ratio
        cfg = NetAdaptConfig(
            target_ms=round(target_ms, 4),
            delta=delta,
            metric=metric,
            proxy_resolution=recipe.resolution,
            train_images=recipe.train_images,
            pretrain_epochs=pretrain_epochs,
            finetune_epochs=finetune_epochs,
            long_epochs=long_epochs,
            max_steps=max_steps,
            seed=seed,
            measure=not no_measure,
            evaluator=evaluator,
        )
        ds = None if evaluator else load_dataset(dataset, data_dir, recipe.resolution, seed)
        runner = NetAdaptRun(
            out_dir, cfg, seed_arch, lat, ds, log=_log, progress=progress_wanted(no_progress)
        )
        try:
            state = runner.run()
        except KeyboardInterrupt:
            raise Interrupted(
                f"interrupted: every finished step is kept in {out_dir}/; "
                f"run the same command again to resume"
            ) from None
    fin = state["final"]
    summary = {
        "status": state["status"],
        "steps": state["step"],
        "target_ms": cfg.target_ms,
        "seed": state["seed"],
        "result": fin,
        "arch": str(out_dir / "final.json"),
        "layers_profiled_on_demand": lat.profiled,
        "wall_s": round(state["wall_s"], 1),
    }
    echo_json(summary)
    _log(f"outputs in {out_dir}/ (final.json, steps.csv, netadapt.png, state.json)")
    if state["status"] != "target met":
        raise LatbenchError(
            f"target {cfg.target_ms:.3f} ms not met ({state['status']}): the closest "
            f"network, predicted {state['predicted_ms']:.3f} ms, is in {out_dir}/final.json"
        )


def _floats(text: str, what: str) -> tuple[float, ...]:
    try:
        vals = tuple(float(x) for x in text.split(",") if x.strip())
    except ValueError:
        raise InputError(f"comma-separated numbers, got {text!r}", what) from None
    if not vals:
        raise InputError("give at least one value", what)
    return vals


@click.command("scale")
@click.argument("arch_file", type=click.Path(path_type=Path))
@_common
@click.option(
    "--constraint",
    type=click.Choice(["latency", "flops"]),
    default="latency",
    show_default=True,
    help="Keep predicted latency (or alpha*beta^2*gamma^2) at --target-ratio.",
)
@click.option(
    "--target-ratio",
    type=float,
    default=2.0,
    show_default=True,
    help="The phi = 1 network's latency (or FLOPs) over the base network's.",
)
@click.option(
    "--tolerance",
    type=float,
    default=0.1,
    show_default=True,
    help="Grid points within target * (1 +- tolerance) are candidates.",
)
@click.option("--alphas", default="1.0,1.2,1.4,1.6,1.8,2.0", show_default=True, help="Depth grid.")
@click.option("--betas", default="1.0,1.1,1.2,1.3", show_default=True, help="Width grid.")
@click.option("--gammas", default="1.0,1.1,1.2,1.3", show_default=True, help="Resolution grid.")
@click.option(
    "--max-candidates",
    type=click.IntRange(1),
    default=6,
    show_default=True,
    help="Candidates proxy-trained (those closest to the target ratio).",
)
@click.option("--budgets-ms", help="Comma-separated latency budgets: one scaled network each.")
@proxy_options(
    _RECIPE,
    ("resolution", "width", "train"),
    {"resolution": "Proxy input of the base network (scaled by gamma for each candidate)."},
)
@click.option("--no-measure", is_flag=True, help="Do not time the family end to end.")
def scale_command(
    arch_file,
    device,
    precision,
    lut_dir,
    out_dir,
    dataset,
    data_dir,
    seed,
    no_progress,
    as_json,
    constraint,
    target_ratio,
    tolerance,
    alphas,
    betas,
    gammas,
    max_candidates,
    budgets_ms,
    no_measure,
    **proxy,
):
    """Compound scaling of ARCH_FILE (EfficientNet) under a latency (or FLOPs) constraint."""
    from latbench.fileio import write_atomic
    from latbench.nets.arch import save_arch
    from latbench.nets.load import load_arch
    from latbench.predictors.ondemand import OnDemandLatency
    from latbench.proxy.accuracy import ProxyEvaluator
    from latbench.proxy.data import load_dataset
    from latbench.tuning.scaling import ScaleConfig, grid_search, phi_for_budget
    from latbench.tuning.scaling import proxy_resolution as proxy_res

    recipe = replace(recipe_from(_RECIPE, proxy), seed=seed)
    cfg = ScaleConfig(
        constraint=constraint,
        target_ratio=target_ratio,
        tolerance=tolerance,
        alphas=_floats(alphas, "--alphas"),
        betas=_floats(betas, "--betas"),
        gammas=_floats(gammas, "--gammas"),
        max_candidates=max_candidates,
    )
    budgets = _floats(budgets_ms, "--budgets-ms") if budgets_ms else ()
    base = load_arch(arch_file)
    out_dir.mkdir(parents=True, exist_ok=True)
    ds = load_dataset(dataset, data_dir, recipe.resolution, seed)
    evaluators: dict[int, ProxyEvaluator] = {}

    def accuracy(arch, coef) -> float:
        r = proxy_res(recipe.resolution, coef.gamma)
        if r not in evaluators:
            evaluators[r] = ProxyEvaluator(ds, replace(recipe, resolution=r))
        # the proxy keeps the candidate's own resolution factor: resolution is what it judges
        return evaluators[r].evaluate(arch).accuracy

    with (
        hold_lock(out_dir, f"scaling run {out_dir}"),
        OnDemandLatency(
            device, precision, lut_dir, progress=progress_wanted(no_progress), log=_log
        ) as lat,
    ):
        base_ms = float(lat.predict([base])[0])
        _log(
            f"{base.name}: predicted {base_ms:.3f} ms on {device}; grid search at phi = 1 "
            f"({constraint} ratio {target_ratio:g})"
        )
        ranked = grid_search(base, cfg, lat.predict, accuracy, log=_log)
        best = ranked[0]
        best_ms = (
            best.latency_ms if best.latency_ms is not None else float(lat.predict([best.arch])[0])
        )
        grid_rows = [
            {
                "alpha": c.coef.alpha,
                "beta": c.coef.beta,
                "gamma": c.coef.gamma,
                "flops_ratio": round(c.coef.flops_ratio, 4),
                "macs_ratio": round(c.arch.macs() / base.macs(), 4),
                "latency_ratio": round(c.latency_ms / base_ms, 4) if c.latency_ms else None,
                "accuracy": c.accuracy,
            }
            for c in ranked
        ]
        family = []
        for b in budgets:
            phi, arch, ms = phi_for_budget(
                base, best.coef, b, lat.predict, cfg.resolution_step, cfg.phi_tolerance
            )
            name = f"{base.name}_{int(round(b * 1000))}us"
            arch = replace(arch, name=name)
            save_arch(arch, out_dir / f"{name}.json")
            measured = None if no_measure else lat.measure(arch)
            row = {
                "budget_ms": b,
                "phi": round(phi, 4),
                "name": name,
                "resolution": arch.resolution,
                "width": arch.width,
                "repeats": [blk.repeats for blk in arch.blocks],
                "predicted_ms": round(ms, 4),
                "measured_ms": None if measured is None else round(measured, 4),
                "error_pct": None if measured is None else round(100 * (ms / measured - 1), 2),
            }
            family.append(row)
            _log(
                f"budget {b:g} ms: phi {phi:.3f}, {arch.resolution}px width {arch.width:g}, "
                f"predicted {ms:.3f} ms" + (f", measured {measured:.3f} ms" if measured else "")
            )
        summary = {
            "base": {"name": base.name, "predicted_ms": round(base_ms, 4)},
            "config": asdict(cfg),
            "predictor": lat.predictor_name(),
            "chosen": {
                "alpha": best.coef.alpha,
                "beta": best.coef.beta,
                "gamma": best.coef.gamma,
                "predicted_ms": round(best_ms, 4),
                "latency_ratio": round(best_ms / base_ms, 4),
                "flops_ratio": round(best.coef.flops_ratio, 4),
                "accuracy": best.accuracy,
            },
            "family": family,
            "grid": grid_rows,
            "layers_profiled_on_demand": lat.profiled,
        }
    write_atomic(out_dir / "scale.json", (json.dumps(summary, indent=2) + "\n").encode())
    echo_json({k: summary[k] for k in ("base", "chosen", "family")})
    _log(f"outputs in {out_dir}/ (scale.json and one arch.json per budget)")
