"""Comparing searches at equal budget: PPO vs random, over several seeds.

Each run directory (written by `latbench search`) gives two curves over its
samples in order: the best reward found so far, and the hypervolume of the
accuracy/latency Pareto front of the samples so far (reference point: twice the
run's target, accuracy 0; pareto.py). Runs are grouped by controller; a group's
curve is the mean over its runs with the min-max spread, cut at the smallest
sample count among all runs so that every controller is judged at the same
budget. `retrain` then trains each run's Pareto front (its best network among
them) with several recipe seeds at the reference fidelity (5x the run's training
images, as the proxy-validity study's reference), next to a reference network
(MobileNetV2 x1.0 by default), through the run's own evaluator and the cache, so
that "PPO found a better front" is judged against one training's noise and the
proxy's ranking; `front_png` draws both curves side by side.

Read by `latbench compare`; pure functions over the runs' files, plus the
retraining.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Sequence

import numpy as np

from latbench.errors import InputError
from latbench.search import samples as samples_file
from latbench.search.pareto import hypervolume, pareto_front

WINDOW = 40  # samples in the recent-reward mean (5 PPO batches of 8)
METRICS = {
    "best_reward": "best reward so far",
    "hypervolume": "Pareto hypervolume (ref: 2T, acc 0)",
    "recent_reward": f"mean reward of the last {WINDOW} samples",
}


@dataclass(frozen=True)
class RunCurves:
    path: Path
    controller: str
    seed: int
    target_ms: float
    best_reward: np.ndarray  # after k+1 samples
    hypervolume: np.ndarray  # after k+1 samples
    recent_reward: np.ndarray  # mean reward of the last WINDOW samples up to k+1: what the
    rows: list[dict]  # controller samples now (a learning policy's rises)


def load_run(path: Path) -> RunCurves:
    """The curves of one search run (its config.json and samples.csv)."""
    path = Path(path)
    cfg_path = path / "config.json"
    if not cfg_path.exists():
        raise InputError(f"{path} is not a search run (no config.json)", "RUNS")
    from latbench.search.run import SearchConfig

    cfg = SearchConfig.load(cfg_path)
    rows = samples_file.read(path / "samples.csv") if (path / "samples.csv").exists() else []
    if not rows:
        raise InputError(f"{path} has no completed samples yet", "RUNS")
    ref = 2 * cfg.target_ms
    reward = np.array([r["reward"] if math.isfinite(r["reward"]) else -np.inf for r in rows])
    best = np.maximum.accumulate(reward)
    lat = [r["lat_ms"] for r in rows]
    acc = [r["accuracy"] for r in rows]
    hv = np.array([hypervolume(lat[: k + 1], acc[: k + 1], ref, 0.0) for k in range(len(rows))])
    finite = np.where(np.isfinite(reward), reward, 0.0)  # a failed sample counts as reward 0
    cum = np.concatenate([[0.0], np.cumsum(finite)])
    k = np.arange(1, len(rows) + 1)
    lo = np.maximum(0, k - WINDOW)
    recent = (cum[k] - cum[lo]) / (k - lo)
    return RunCurves(path, cfg.controller, cfg.seed, cfg.target_ms, best, hv, recent, rows)


@dataclass(frozen=True)
class GroupCurve:
    controller: str
    runs: int
    mean: np.ndarray
    lo: np.ndarray
    hi: np.ndarray


def budget(runs: Sequence[RunCurves]) -> int:
    """The equal budget: the smallest sample count among the runs."""
    return min(len(r.rows) for r in runs)


def group(runs: Sequence[RunCurves], metric: str, n: int) -> list[GroupCurve]:
    """Per controller: mean, min and max of `metric` ('best_reward' or 'hypervolume') over
    its runs, for the first n samples."""
    out = []
    for ctrl in sorted({r.controller for r in runs}):
        m = np.stack([getattr(r, metric)[:n] for r in runs if r.controller == ctrl])
        out.append(GroupCurve(ctrl, len(m), m.mean(0), m.min(0), m.max(0)))
    return out


def check_comparable(runs: Sequence[RunCurves]) -> None:
    """Runs compared at equal budget must share the target (the reward's T)."""
    targets = {r.target_ms for r in runs}
    if len(targets) > 1:
        raise InputError(
            f"runs have different targets {sorted(targets)}: their rewards and "
            f"hypervolumes are not comparable",
            "RUNS",
        )


def table(runs: Sequence[RunCurves], checkpoints: Sequence[int]) -> list[dict]:
    """Rows of (samples, controller, metric mean/min/max) at the given sample counts."""
    rows = []
    for n in checkpoints:
        for metric in METRICS:
            for g in group(runs, metric, n):
                rows.append(
                    {
                        "samples": n,
                        "controller": g.controller,
                        "runs": g.runs,
                        "metric": metric,
                        "mean": float(g.mean[-1]),
                        "min": float(g.lo[-1]),
                        "max": float(g.hi[-1]),
                    }
                )
    return rows


def checkpoints(n: int, step: int = 25) -> list[int]:
    return sorted({*range(step, n + 1, step), n})


def curves_png(runs: Sequence[RunCurves], n: int, path: Path) -> None:
    """Best reward, hypervolume and recent mean reward against samples, mean and min-max band
    per controller."""
    from latbench.plotting import pyplot, save_figure

    plt = pyplot()
    fig, axes = plt.subplots(1, len(METRICS), figsize=(5 * len(METRICS), 3.8))
    x = np.arange(1, n + 1)
    colors = {"ppo": "tab:red", "random": "tab:blue"}
    for ax, (metric, label) in zip(axes, METRICS.items()):
        for g in group(runs, metric, n):
            c = colors.get(g.controller)
            ax.plot(x, g.mean, color=c, label=f"{g.controller} (mean of {g.runs})")
            ax.fill_between(x, g.lo, g.hi, color=c, alpha=0.2, lw=0)
        ax.set_xlabel("samples")
        ax.set_ylabel(label)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8, loc="lower right")
    fig.suptitle(
        f"{len(runs)} runs at equal budget ({n} samples each); band: min-max over seeds", fontsize=9
    )
    fig.tight_layout()
    save_figure(fig, path, dpi=110)


def best_network(run: RunCurves, n: int) -> dict:
    """The run's highest-reward sample among its first n."""
    k = int(
        np.argmax([r["reward"] if math.isfinite(r["reward"]) else -np.inf for r in run.rows[:n]])
    )
    return run.rows[k]


def front_networks(run: RunCurves, n: int) -> list[dict]:
    """The run's Pareto front among its first n samples, by increasing latency: measured
    latency where the run measured the network (spot checks, front_measured.csv), else
    predicted. Each row also says whether it is the run's best-reward network."""
    from latbench.search.run import merge_front_measurements

    rows = [dict(r) for r in run.rows[:n]]
    merge_front_measurements(run.path, rows)
    front = pareto_front([r["lat_ms"] for r in rows], [r["accuracy"] for r in rows])
    best = best_network(run, n)["sample"]
    return [{**rows[i], "best": rows[i]["sample"] == best} for i in front]


def reference_evaluator(cfg, seed: int, factor: int):
    """The evaluator a run's networks are retrained with: the run's recipe with `factor` x
    the training images (the reference fidelity of the proxy-validity study) and recipe seed
    `seed`; a user's evaluator at its full fidelity with that seed."""
    from latbench.search.job import make_evaluator

    recipe = {**cfg.recipe, "seed": seed}
    if not cfg.evaluator:
        recipe["train_images"] = recipe.get("train_images", 3000) * factor
    return make_evaluator(replace(cfg, recipe=recipe))


def retrain(
    runs: Sequence[RunCurves],
    n: int,
    seeds: Sequence[int],
    reference: str = "mobilenet_v2_x1",
    log=lambda msg: None,
    factor: int = 5,
) -> list[dict]:
    """Each run's Pareto front (within the budget) and the reference network, trained with
    each recipe seed at the reference fidelity (`factor` x the run's training images;
    cached like the search's samples)."""
    from latbench.nets import zoo
    from latbench.nets.spaces import get_space
    from latbench.search.run import SearchConfig

    out = []
    evaluators: dict[tuple, object] = {}
    jobs = []
    for run in runs:
        cfg = SearchConfig.load(run.path / "config.json")
        for row in front_networks(run, n):
            arch = get_space(cfg.space).decode(row["tokens"], name=f"front_{row['digest']}")
            jobs.append((cfg, f"{run.controller} seed {run.seed}", str(run.path), arch, row))
    ref_cfg = jobs[0][0]
    jobs.append((ref_cfg, "reference", "", zoo.get(reference), None))
    for cfg, who, path, arch, row in jobs:
        accs = []
        for s in seeds:
            key = (
                json.dumps(cfg.recipe, sort_keys=True),
                cfg.evaluator,
                cfg.dataset,
                cfg.data_dir,
                s,
            )
            if key not in evaluators:
                evaluators[key] = reference_evaluator(cfg, s, factor)
            res = evaluators[key].evaluate(arch)
            accs.append(res.accuracy)
            log(
                f"{who}: {arch.name} reference seed {s}: {res.accuracy:.4f}"
                + (" (cached)" if res.cached else f" ({res.train_s:.0f} s)")
            )
        out.append(
            {
                "run": who,
                "path": path,
                "network": arch.name,
                "best": bool(row and row["best"]),
                "search_accuracy": row["accuracy"] if row else None,
                "pred_ms": row["pred_ms"] if row else None,
                "meas_ms": row["meas_ms"] if row else None,
                "lat_ms": row["lat_ms"] if row else None,
                "reward": row["reward"] if row else None,
                **{f"acc_seed{s}": a for s, a in zip(seeds, accs)},
                "acc_mean": float(np.mean(accs)),
                "acc_std": float(np.std(accs)),
            }
        )
    return out


def front_png(retrained: Sequence[dict], factor: int, path: Path) -> None:
    """The published curve both ways, side by side: predicted latency vs proxy accuracy (what
    the search saw) and measured latency vs reference accuracy (mean and std over seeds)."""
    from latbench.plotting import pyplot, save_figure

    plt = pyplot()
    fig, (left, right) = plt.subplots(1, 2, figsize=(11, 4.2), sharex=True)
    runs = sorted({r["run"] for r in retrained if r["run"] != "reference"})
    colors = dict(zip(runs, plt.rcParams["axes.prop_cycle"].by_key()["color"] * 4))
    for who in runs:
        pts = [r for r in retrained if r["run"] == who]
        c = colors[who]
        pred = [r["pred_ms"] if r["pred_ms"] is not None and math.isfinite(r["pred_ms"])
                else r["lat_ms"] for r in pts]  # fmt: skip
        left.step(pred, [r["search_accuracy"] for r in pts], where="post", color=c, lw=0.8)
        left.scatter(pred, [r["search_accuracy"] for r in pts], s=18, color=c, label=who)
        measured = [r for r in pts if r["meas_ms"] is not None and math.isfinite(r["meas_ms"])]
        right.errorbar(
            [r["meas_ms"] for r in measured],
            [r["acc_mean"] for r in measured],
            yerr=[r["acc_std"] for r in measured],
            fmt="o",
            ms=4,
            color=c,
            label=who,
        )
        unmeasured = [r for r in pts if r not in measured]
        if unmeasured:
            right.scatter(
                [r["lat_ms"] for r in unmeasured],
                [r["acc_mean"] for r in unmeasured],
                s=18,
                facecolors="none",
                edgecolors=c,
                label=f"{who} (latency predicted: not measured)",
            )
    for r in retrained:
        if r["run"] == "reference":
            right.axhline(r["acc_mean"], color="black", ls=":", lw=0.8, label=f"{r['network']}")
    left.set_xlabel("predicted latency (ms)")
    left.set_ylabel("proxy accuracy (the search's)")
    left.set_title("what the search saw", fontsize=9)
    right.set_xlabel("measured latency (ms)")
    right.set_ylabel(f"reference accuracy ({factor}x images), mean ± std")
    right.set_title("what a reader can check", fontsize=9)
    for ax in (left, right):
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7, loc="lower right")
    fig.tight_layout()
    save_figure(fig, path, dpi=110)
