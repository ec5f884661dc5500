"""`latbench compare RUN...`: searches side by side at equal budget; wiring only (compare.py)."""

from __future__ import annotations

from pathlib import Path

import click

from latbench.commands.options import echo_json, json_option


@click.command("compare")
@click.argument(
    "runs", nargs=-1, required=True, type=click.Path(file_okay=False, exists=True, path_type=Path)
)
@click.option(
    "--out",
    "out_dir",
    type=click.Path(file_okay=False, path_type=Path),
    default=Path("runs/compare"),
    show_default=True,
    help="Where curves.png, table.csv, curves.csv (and retrain.csv) are written.",
)
@click.option(
    "--samples",
    "n_samples",
    type=click.IntRange(1),
    help="Budget to compare at [the smallest sample count among the runs].",
)
@click.option(
    "--budget",
    "by",
    type=click.Choice(["samples", "cpu"]),
    default="samples",
    show_default=True,
    help="What equal budget means: samples, or training CPU seconds (the smallest total "
    "among the runs; a controller that samples networks quicker to train gets more of them).",
)
@click.option(
    "--retrain-seeds",
    type=click.IntRange(0),
    default=0,
    show_default=True,
    help="Also train each run's Pareto front (and --reference) with this many recipe "
    "seeds at the reference fidelity (--reference-factor x the runs' training images; a "
    "user's evaluator at its full fidelity), and draw front.png (0: skip).",
)
@click.option(
    "--reference-factor",
    type=click.IntRange(1),
    default=5,
    show_default=True,
    help="The reference fidelity of --retrain-seeds: this many times the runs' training images.",
)
@click.option(
    "--reference",
    default="mobilenet_v2_x1",
    show_default=True,
    help="Zoo network retrained beside the runs' best ones.",
)
@json_option
def compare_command(
    runs, out_dir, n_samples, by, retrain_seeds, reference_factor, reference, as_json
) -> None:
    """Best reward and Pareto hypervolume against samples (or training CPU seconds) for
    several search runs, grouped by controller (mean and min-max over seeds), at the budget
    every run has reached."""
    import pandas as pd

    from latbench.commands.console import note
    from latbench.errors import InputError
    from latbench.fileio import write_atomic
    from latbench.search import compare

    loaded = [compare.load_run(r) for r in runs]
    compare.check_comparable(loaded)
    n = compare.budget(loaded)
    if n_samples is not None:
        if by != "samples":
            raise click.UsageError("--samples goes with --budget samples")
        if n_samples > n:
            raise InputError(
                f"only {n} samples are in every run; compare at most that many", "--samples"
            )
        n = n_samples
    if by == "cpu":
        total = compare.cpu_budget(loaded)
        marks = compare.cpu_checkpoints(loaded, total)
    else:
        total, marks = n, compare.checkpoints(n)
    # each run's samples within the budget: the rows of curves.csv, the front retrained
    within = {r.path: n if by == "samples" else compare.samples_within(r, total) for r in loaded}
    out_dir.mkdir(parents=True, exist_ok=True)
    tab = compare.table(loaded, marks, by)
    write_atomic(out_dir / "table.csv", pd.DataFrame(tab).to_csv(index=False).encode())
    per_run = pd.DataFrame(
        [
            {
                "run": str(r.path),
                "controller": r.controller,
                "seed": r.seed,
                "samples": k + 1,
                "best_reward": r.best_reward[k],
                "hypervolume": r.hypervolume[k],
                "recent_reward": r.recent_reward[k],
                "cpu_s": r.cpu_s[k],
            }
            for r in loaded
            for k in range(within[r.path])
        ]
    )
    write_atomic(out_dir / "curves.csv", per_run.to_csv(index=False).encode())
    compare.curves_png(loaded, total, out_dir / "curves.png", by)
    retrained = []
    if retrain_seeds:
        retrained = compare.retrain(
            loaded, within, list(range(retrain_seeds)), reference, note, reference_factor
        )
        write_atomic(out_dir / "retrain.csv", pd.DataFrame(retrained).to_csv(index=False).encode())
        compare.front_png(retrained, reference_factor, out_dir / "front.png")
    key = "samples" if by == "samples" else "cpu_s"
    final = [t for t in tab if t[key] == total]
    if as_json:
        echo_json(
            {
                "budget": total,
                "budget_kind": by,
                "runs": [str(r.path) for r in loaded],
                "at_budget": final,
                "table": tab,
                "retrain": retrained,
                "out": str(out_dir),
            }
        )
        return
    if by == "samples":
        click.echo(f"{len(loaded)} runs compared at {n} samples each (mean [min, max] over seeds):")
    else:
        counts = "; ".join(
            f"{c} {min(v)}-{max(v)}"
            for c in sorted({r.controller for r in loaded})
            for v in [[within[r.path] for r in loaded if r.controller == c]]
        )
        click.echo(
            f"{len(loaded)} runs compared at {total:.0f} training CPU seconds each (samples "
            f"within it: {counts}; mean [min, max] over seeds):"
        )
    for t in final:
        click.echo(
            f"  {t['controller']:7} {t['metric']:12} {t['mean']:.4f} "
            f"[{t['min']:.4f}, {t['max']:.4f}]  ({t['runs']} runs)"
        )
    for r in retrained:
        accs = " ".join(f"{v:.4f}" for k, v in r.items() if k.startswith("acc_seed"))
        click.echo(
            f"  retrained {r['run']:16} {r['network'][:28]:28} {accs}  mean "
            f"{r['acc_mean']:.4f} ± {r['acc_std']:.4f}"
        )
    click.echo(
        f"-> {out_dir}/ (curves.png, table.csv, curves.csv"
        + (", retrain.csv, front.png" if retrained else "")
        + ")"
    )
