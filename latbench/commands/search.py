"""`latbench search`: the click command; wiring only (the job is `search/job.py`, the loop
`search/run.py`)."""

from __future__ import annotations

import json
from pathlib import Path

import click

from latbench.commands.options import (
    dataset_options,
    device_option,
    evaluator_options,
    json_errors_option,
    lut_dir_option,
    no_progress_option,
    precision_option,
    predictor_method_option,
    proxy_options,
    ray_options,
    recipe_from,
    space_option,
)
from latbench.proxy.recipe import ProxyRecipe
from latbench.search.controllers import CONTROLLERS
from latbench.search.halving import SCHEDULES

_RECIPE = ProxyRecipe()  # CLI defaults come from the recipe, never from a copy


@click.command("search")
@device_option(
    "device",
    help_extra="With --latency lut, a device with a few-shot predictor "
    "but no profile is predicted only.",
)
@click.option(
    "--latency",
    type=click.Choice(["lut", "device", "flops"]),
    default="lut",
    show_default=True,
    help="lut: the predictor (spot-checked on the device); device: measure every network; "
    "flops: multiply-accumulates instead of latency (EfficientNet-B0's reward; "
    "give the target with --target-mmacs).",
)
@click.option("--target-ms", type=float, help="Target latency T in ms (required for a new run).")
@click.option(
    "--target-mmacs",
    type=float,
    help="With --latency flops: the target T in millions of multiply-accumulates.",
)
@click.option(
    "--samples",
    type=click.IntRange(1),
    default=400,
    show_default=True,
    help="Networks to sample in total (on --resume: a new, larger total extends the run).",
)
@click.option(
    "--batch",
    type=click.IntRange(1),
    default=8,
    show_default=True,
    help="Networks per controller update.",
)
@click.option(
    "--out",
    "out_dir",
    type=click.Path(file_okay=False, path_type=Path),
    help="Directory of a new run (samples.csv, pareto.csv, PNGs, checkpoints).",
)
@click.option(
    "--resume",
    "resume_dir",
    type=click.Path(file_okay=False, path_type=Path),
    help="Continue an interrupted run from its directory (its config.json applies).",
)
@click.option(
    "--controller",
    type=click.Choice(list(CONTROLLERS)),
    default="ppo",
    show_default=True,
    help="ppo: the LSTM controller trained with PPO; random: same-budget baseline.",
)
@click.option(
    "--constraint",
    type=click.Choice(["soft", "hard", "mobilenetv3-small"]),
    default=None,
    help="soft: alpha=beta=-0.07; hard: alpha=0, beta=-1 (MnasNet); mobilenetv3-small: "
    "alpha=beta=-0.15 (MobileNetV3's small models) [default soft].",
)
@click.option("--alpha", type=float, help="Explicit exponent when LAT <= T (with --beta).")
@click.option("--beta", type=float, help="Explicit exponent when LAT > T (with --alpha).")
@click.option(
    "--seed",
    type=int,
    default=0,
    show_default=True,
    help="Seed of the controller and the sampling.",
)
@click.option(
    "--spot-every",
    type=click.IntRange(0),
    default=10,
    show_default=True,
    help="--latency lut: also measure every k-th sample on the device (0: never).",
)
@click.option(
    "--drift-threshold",
    type=float,
    default=0.10,
    show_default=True,
    help="Warn when the recent mean |predicted/measured - 1| exceeds this.",
)
@click.option(
    "--recalibrate",
    is_flag=True,
    help="Scale predictions by the median measured/predicted ratio of the spot checks.",
)
@click.option(
    "--measure-front/--no-measure-front",
    default=True,
    show_default=True,
    help="--latency lut: end by measuring every Pareto network on the device (the outputs "
    "then show measured latencies; front_measured.csv).",
)
@click.option(
    "--fidelity",
    type=click.Choice(list(SCHEDULES)),
    default="full",
    show_default=True,
    help="full: every child trained with the whole recipe; halving: successive halving "
    "inside each batch (every child at 1/4 of the recipe's steps, the better half at 1/2, "
    "the better half of those in full; the reward uses each child's last fidelity).",
)
@dataset_options
@click.option(
    "--baselines",
    default=None,
    help="Comma-separated zoo networks drawn in the Pareto plot ('' for none) "
    "[default: the space's reference networks; mnasnet: mobilenet_v2_x1].",
)
@space_option()
@precision_option
@lut_dir_option
@proxy_options(_RECIPE)
@predictor_method_option
@ray_options
@evaluator_options
@no_progress_option
@json_errors_option
def search_command(
    device,
    latency,
    target_ms,
    target_mmacs,
    samples,
    batch,
    out_dir,
    resume_dir,
    controller,
    constraint,
    alpha,
    beta,
    seed,
    space_name,
    precision,
    lut_dir,
    spot_every,
    drift_threshold,
    recalibrate,
    measure_front,
    fidelity,
    dataset,
    data_dir,
    baselines,
    ray_workers,
    ray_address,
    evaluator,
    cpus_per_child,
    gpus_per_child,
    predictor_method,
    no_progress,
    as_json,
    **proxy,
):
    """MnasNet search: RL controller, proxy-trained accuracy, measured or predicted latency."""
    # Only what checks the arguments is imported here: the PPO controller brings TensorFlow,
    # so a bad argument is rejected before it loads.
    from latbench.commands.console import note, progress_wanted
    from latbench.proxy.data import load_dataset
    from latbench.search import job

    ds = user_evaluator = None
    ctx = click.get_current_context()
    given = {
        p.name
        for p in ctx.command.params
        if ctx.get_parameter_source(p.name) == click.core.ParameterSource.COMMANDLINE
    }
    if resume_dir:
        cfg = job.resume_config(
            resume_dir,
            samples if "samples" in given else None,
            lut_dir if "lut_dir" in given else None,
        )
        ignored = sorted(
            given
            - {
                "resume_dir",
                "samples",
                "no_progress",
                "lut_dir",
                "ray_workers",
                "ray_address",
                "cpus_per_child",
                "gpus_per_child",
            }
        )
        if ignored:
            note(
                f"note: --resume continues with {resume_dir / 'config.json'}; ignoring "
                f"{', '.join('--' + n.replace('_', '-') for n in ignored)}"
            )
        out_dir = resume_dir
    else:
        recipe = recipe_from(_RECIPE, proxy)
        cfg = job.new_config(
            target_ms=target_ms,
            target_mmacs=target_mmacs,
            latency=latency,
            device=device,
            lut_dir=lut_dir,
            out_dir=out_dir,
            constraint=constraint,
            alpha=alpha,
            beta=beta,
            space=space_name,
            recipe=recipe,
            baselines=baselines,
            samples=samples,
            batch=batch,
            seed=seed,
            controller=controller,
            precision=precision,
            spot_every=spot_every,
            drift_threshold=drift_threshold,
            recalibrate=recalibrate,
            dataset=dataset,
            data_dir=data_dir,
            predictor_method=predictor_method,
            evaluator=evaluator,
            fidelity=fidelity,
            measure_front=measure_front,
        )
        if evaluator is None:
            ds = load_dataset(dataset, data_dir, recipe.resolution, seed=0)  # a missing dir too
    if cfg.evaluator:  # import and check it now: a bad spec is exit 2 before anything runs
        from latbench.proxy.evaluator import load_evaluator

        user_evaluator = load_evaluator(cfg.evaluator)
    try:
        summary = job.run_job(
            out_dir,
            cfg,
            ray_workers=ray_workers,
            ray_address=ray_address,
            log=note,
            progress=progress_wanted(no_progress),
            dataset=ds,
            evaluator=user_evaluator,
            cpus_per_child=cpus_per_child,
            gpus_per_child=gpus_per_child,
        )
    except KeyboardInterrupt:
        from latbench.errors import InputError, Interrupted
        from latbench.search.samples import read as read_samples

        try:
            n = str(len(read_samples(out_dir / "samples.csv")))
        except InputError:
            n = "the"
        raise Interrupted(
            f"interrupted after {n} completed samples; continue with: "
            f"latbench search --resume {out_dir}"
        ) from None
    click.echo(
        json.dumps(
            {
                k: summary[k]
                for k in (
                    "samples",
                    "best_reward",
                    "best",
                    "best_under_target",
                    "pareto_size",
                    "hypervolume",
                    "mean_wall_s_per_sample",
                )
            },
            indent=2,
        )
    )
    click.echo(
        f"outputs in {out_dir}/ (samples.csv, pareto.csv, pareto.png, reward.png, best/arch.json)",
        err=True,
    )
