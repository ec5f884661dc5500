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
    cpu_s: np.ndarray  # training CPU seconds spent after k+1 samples (NaN where not recorded)


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
    return RunCurves(
        path, cfg.controller, cfg.seed, cfg.target_ms, best, hv, recent, rows, spent(rows)
    )


def spent(rows: Sequence[dict]) -> np.ndarray:
    """Training CPU seconds after each sample. A sample's recorded cost is what its result(s)
    cost when trained (a halving child: all its rungs, cached ones included); the run pays
    only what it has not paid for that network already, so a network trained before in the
    run costs nothing again, a halving child drawn again pays only its new rungs, and one from
    an earlier run's accuracy cache costs what it cost (no head start from a warm cache). A
    failed training costs 0 (unknown); a sample trained before CPU seconds were recorded (no
    cpu_s) makes the rest NaN."""
    paid: dict[str, float] = {}
    cost = []
    for r in rows:
        c = r.get("cpu_s", math.nan)
        if not math.isfinite(r["accuracy"]) and not math.isfinite(c):
            c = 0.0
        before = paid.get(r["digest"], 0.0)
        cost.append(max(0.0, c - before) if math.isfinite(c) else c)
        if math.isfinite(c):
            paid[r["digest"]] = max(before, c)
    return np.cumsum(cost)


def budget(runs: Sequence[RunCurves]) -> int:
    """The equal budget: the smallest sample count among the runs."""
    return min(len(r.rows) for r in runs)


BUDGETS = {  # --budget NAME -> what "equal" means, and the x axis of curves.png
    "samples": "samples",
    "cpu": "training CPU seconds",
}


def cpu_budget(runs: Sequence[RunCurves]) -> float:
    """The equal CPU budget: the smallest training CPU seconds among the runs; InputError
    when a run's samples lack them (trained before latbench recorded CPU seconds)."""
    for r in runs:
        bad = [row["sample"] for row, c in zip(r.rows, r.cpu_s) if not math.isfinite(c)]
        if bad:
            raise InputError(
                f"{r.path}/samples.csv: sample {bad[0]} has no training CPU seconds (trained "
                f"before latbench recorded them); compare these runs with --budget samples",
                "--budget",
            )
    total = float(min(r.cpu_s[-1] for r in runs))
    for r in runs:
        if r.cpu_s[0] > total:
            raise InputError(
                f"{r.path}: its first sample alone took {r.cpu_s[0]:.0f} training CPU seconds, "
                f"more than another run's whole {total:.0f} s: no equal CPU budget holds a "
                f"sample of every run; run that one further, or compare with --budget samples",
                "--budget",
            )
    return total


def samples_within(run: RunCurves, cpu_s: float) -> int:
    """How many of the run's samples were done within `cpu_s` training CPU seconds."""
    return int(np.searchsorted(run.cpu_s, cpu_s * (1 + 1e-12), side="right"))


def at_budget(run: RunCurves, metric: str, x: float, by: str = "samples") -> float:
    """A run's `metric` once it has spent budget x (samples, or CPU seconds); NaN before its
    first sample is done."""
    n = int(x) if by == "samples" else samples_within(run, x)
    return float(getattr(run, metric)[n - 1]) if n >= 1 else math.nan


def check_comparable(runs: Sequence[RunCurves]) -> None:
    """Runs compared at equal budget must share the target (the reward's T)."""
    targets = {r.target_ms for r in runs}
    if len(targets) > 1:
        raise InputError(
            f"runs have different targets {sorted(targets)}: their rewards and "
            f"hypervolumes are not comparable",
            "RUNS",
        )


def table(runs: Sequence[RunCurves], checkpoints: Sequence[float], by: str = "samples") -> list:
    """Rows of (budget, controller, metric mean/min/max) at the given budgets (sample counts,
    or CPU seconds with `by="cpu"`, where each row also gives the runs' sample counts)."""
    rows = []
    for x in checkpoints:
        for metric in METRICS:
            for ctrl in sorted({r.controller for r in runs}):
                mine = [r for r in runs if r.controller == ctrl]
                v = np.array([at_budget(r, metric, x, by) for r in mine])
                row = {"samples": int(x)} if by == "samples" else {"cpu_s": float(x)}
                if by != "samples":
                    n = [samples_within(r, x) for r in mine]
                    row |= {"samples_min": min(n), "samples_max": max(n)}
                rows.append(
                    row
                    | {
                        "controller": ctrl,
                        "runs": len(mine),
                        "metric": metric,
                        "mean": float(np.mean(v)),
                        "min": float(np.min(v)),
                        "max": float(np.max(v)),
                    }
                )
    return rows


def checkpoints(n: int, step: int = 25) -> list[int]:
    return sorted({*range(step, n + 1, step), n})


def cpu_checkpoints(runs: Sequence[RunCurves], total: float, parts: int = 4) -> list[float]:
    """Quarters of the CPU budget, from where every run has at least one sample."""
    first = max(float(r.cpu_s[0]) for r in runs)
    marks = sorted({total * (i + 1) / parts for i in range(parts)})
    return [x for x in marks if x >= first] or [total]


def curves_png(runs: Sequence[RunCurves], n: float, path: Path, by: str = "samples") -> None:
    """Best reward, hypervolume and recent mean reward against the budget (samples, or
    training CPU seconds), mean and min-max band per controller."""
    from latbench.plotting import pyplot, save_figure

    plt = pyplot()
    fig, axes = plt.subplots(1, len(METRICS), figsize=(5 * len(METRICS), 3.8))
    if by == "samples":
        x = np.arange(1, int(n) + 1)
    else:
        x = np.linspace(max(float(r.cpu_s[0]) for r in runs), n, 200)
    colors = {"ppo": "tab:red", "random": "tab:blue"}
    for ax, (metric, label) in zip(axes, METRICS.items()):
        for ctrl in sorted({r.controller for r in runs}):
            m = np.array([[at_budget(r, metric, v, by) for v in x]
                          for r in runs if r.controller == ctrl])  # fmt: skip
            c = colors.get(ctrl)
            ax.plot(x, m.mean(0), color=c, label=f"{ctrl} (mean of {len(m)})")
            ax.fill_between(x, m.min(0), m.max(0), color=c, alpha=0.2, lw=0)
        ax.set_xlabel(BUDGETS[by])
        ax.set_ylabel(label)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8, loc="lower right")
    each = f"{int(n)} samples each" if by == "samples" else f"{n:.0f} training CPU s each"
    fig.suptitle(f"{len(runs)} runs at equal budget ({each}); band: min-max over seeds", fontsize=9)
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
    n: int | dict,
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
        for row in front_networks(run, n[run.path] if isinstance(n, dict) else n):
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
