"""Comparing searches at equal budget: PPO vs random, over several seeds.

Each run directory (written by `latbench search`) gives two curves over its
samples in order: the best reward found so far, and the hypervolume of the
accuracy/latency Pareto front of the samples so far (reference point: twice the
run's target, accuracy 0; pareto.py). Runs are grouped by controller; a group's
curve is the mean over its runs with the min-max spread, cut at the smallest
sample count among all runs so that every controller is judged at the same
budget. `retrain` then trains each run's best network with several recipe seeds
next to a reference network (MobileNetV2 x1.0 by default), through the same
proxy recipe and cache as the search, so that "PPO found a better network" is
judged against one training's noise.

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
from latbench.search.pareto import hypervolume

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


def retrain(
    runs: Sequence[RunCurves],
    n: int,
    seeds: Sequence[int],
    reference: str = "mobilenet_v2_x1",
    log=lambda msg: None,
) -> list[dict]:
    """Each run's best network (within the budget) and the reference, trained with each
    recipe seed through the run's own proxy recipe (cached like the search's samples)."""
    from latbench.nets import zoo
    from latbench.nets.spaces import get_space
    from latbench.search.job import make_evaluator
    from latbench.search.run import SearchConfig

    out = []
    evaluators: dict[tuple, object] = {}
    jobs = []
    for run in runs:
        cfg = SearchConfig.load(run.path / "config.json")
        best = best_network(run, n)
        arch = get_space(cfg.space).decode(best["tokens"], name=f"best_{best['digest']}")
        jobs.append((cfg, f"{run.controller} seed {run.seed}", str(run.path), arch, best))
    ref_cfg = jobs[0][0]
    jobs.append((ref_cfg, "reference", "", zoo.get(reference), None))
    for cfg, who, path, arch, best in jobs:
        accs = []
        for s in seeds:
            key = (json.dumps(cfg.recipe, sort_keys=True), cfg.dataset, cfg.data_dir, s)
            if key not in evaluators:
                evaluators[key] = make_evaluator(replace(cfg, recipe={**cfg.recipe, "seed": s}))
            res = evaluators[key].evaluate(arch)
            accs.append(res.accuracy)
            log(
                f"{who}: {arch.name} recipe seed {s}: {res.accuracy:.4f}"
                + (" (cached)" if res.cached else f" ({res.train_s:.0f} s)")
            )
        out.append(
            {
                "run": who,
                "path": path,
                "network": arch.name,
                "search_accuracy": best["accuracy"] if best else None,
                "lat_ms": best["lat_ms"] if best else None,
                "reward": best["reward"] if best else None,
                **{f"acc_seed{s}": a for s, a in zip(seeds, accs)},
                "acc_mean": float(np.mean(accs)),
                "acc_std": float(np.std(accs)),
            }
        )
    return out
