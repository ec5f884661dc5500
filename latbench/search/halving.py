"""Successive halving inside one search batch: train every child briefly, continue the better half.

`latbench search --fidelity halving` trains a batch's children at 1/4 of the recipe's training
steps, the better half of them (by the reward their accuracy gives with the predicted latency;
by accuracy where latency is only measured) again at 1/2, and the better half of those with the
full recipe, as Hyperband's successive halving does: a batch of 8 costs 8/4 + 4/2 + 2 = 6 full
trainings instead of 8. Each rung trains from scratch: a result depends on the network and its
fidelity alone and is cached as such, no weights travel between rungs. A child's reward uses
its last rung's accuracy; `samples.csv` records that fidelity beside it.

Every training of every rung is one row of `rungs.csv` in the run directory, appended as it
finishes, so an interrupted batch resumes in the middle of a round: the rows there are reused,
never trained again, and the same children are promoted.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Callable, Sequence

from latbench import records
from latbench.errors import InputError, LatbenchError
from latbench.nets.arch import Arch
from latbench.proxy.evaluator import AccuracyResult
from latbench.search.executor import ChildResult, Executor

# --fidelity NAME -> the rungs' fidelities (shares of the recipe's training steps), last = 1.0
SCHEDULES: dict[str, tuple[float, ...]] = {"full": (1.0,), "halving": (0.25, 0.5, 1.0)}
COLUMNS = (
    "sample",
    "rung",
    "fidelity",
    "digest",
    "accuracy",
    "train_s",
    "wall_s",
    "params",
    "cached",
    "metrics",
    "error",
    "cpu_s",
)
OPTIONAL = ("cpu_s",)  # added later: a rungs.csv written before it reads it as missing


def _num(text: str, what: str, lo: float, hi: float) -> float:
    v = float(text)
    if not (math.isfinite(v) and lo <= v <= hi):
        raise ValueError(f"{what} must be in [{lo:g}, {hi:g}], got {text!r}")
    return v


class RungLog:
    """rungs.csv: every rung's training of every child, reused by a resume."""

    def __init__(self, path: Path):
        self.path = Path(path)
        records.open_for_append(self.path, {"kind": "halving-rungs"}, COLUMNS, OPTIONAL)
        _, rows = records.read(self.path, COLUMNS, OPTIONAL)
        self.done: dict[tuple[int, int], tuple[str, ChildResult]] = {}
        for n, r in enumerate(rows, start=1):
            try:
                key = (int(r["sample"]), int(r["rung"]))
                fid = _num(r["fidelity"], "fidelity", 0.0, 1.0)
                res = None
                if r["accuracy"] != "":
                    metrics = json.loads(r["metrics"] or "{}")
                    if not isinstance(metrics, dict):
                        raise ValueError("metrics must be a JSON object")
                    res = AccuracyResult(
                        _num(r["accuracy"], "accuracy", 0.0, 1.0),
                        _num(r["train_s"], "train_s", 0.0, 1e9),
                        int(r["params"]),
                        r["cached"] == "1",
                        {str(k): _num(str(v), k, -1e300, 1e300) for k, v in metrics.items()},
                        fid,
                        _num(r["cpu_s"], "cpu_s", 0.0, 1e9) if r.get("cpu_s") else math.nan,
                    )
                wall = _num(r["wall_s"], "wall_s", 0.0, 1e9)
            except (ValueError, KeyError) as exc:
                raise InputError(f"{self.path}: row {n} is malformed ({exc})") from None
            self.done[key] = (r["digest"], ChildResult(res, r["error"], wall))

    def get(self, sample: int, rung: int, digest: str) -> ChildResult | None:
        hit = self.done.get((sample, rung))
        if hit is None:
            return None
        if hit[0] != digest:
            raise LatbenchError(
                f"{self.path}: sample {sample} rung {rung} is network {hit[0]}, but the "
                f"controller now samples {digest} there (was the run directory edited?)"
            )
        return hit[1]

    def add(self, sample: int, rung: int, fidelity: float, digest: str, child: ChildResult) -> None:
        res = child.result
        records.append(
            self.path,
            [
                sample,
                rung,
                repr(fidelity),
                digest,
                "" if res is None else repr(res.accuracy),
                "" if res is None else repr(res.train_s),
                repr(child.elapsed_s),
                "" if res is None else res.params,
                "" if res is None else int(res.cached),
                "" if res is None else json.dumps(res.metrics, sort_keys=True),
                " | ".join(child.error.splitlines()),
                "" if res is None or not math.isfinite(res.cpu_s) else repr(res.cpu_s),
            ],
        )
        self.done[(sample, rung)] = (digest, child)

    def cpu_s(self, sample: int) -> float:
        """Training CPU seconds of every rung of one child (NaN where one is unknown; a
        rung served from the accuracy cache counts what it cost when it was trained)."""
        costs = [
            child.result.cpu_s if child.result is not None else 0.0
            for (s, _), (_, child) in self.done.items()
            if s == sample
        ]
        return float(sum(costs))


def run_batch(
    schedule: Sequence[float],
    source,
    executor: Executor,
    archs: Sequence[Arch],
    first_sample: int,
    log: RungLog,
    score: Callable[[Arch, ChildResult], float],
) -> list[tuple[ChildResult, float]]:
    """Every child's last result and its fidelity, in sample order.

    Rung r trains the children still in the race at `schedule[r]` (those the log lacks),
    then keeps the better half by `score` (ties: the earlier sample)."""
    alive = list(range(len(archs)))
    last: dict[int, tuple[ChildResult, float]] = {}
    for r, fid in enumerate(schedule):
        src = source.at(fid) if fid != 1.0 else source
        need = [j for j in alive if log.get(first_sample + j, r, archs[j].digest()) is None]
        children = executor.accuracies(src, [archs[j] for j in need])
        try:
            for j, child in zip(need, children):
                log.add(first_sample + j, r, fid, archs[j].digest(), child)
        finally:
            children.close()  # cancels what is still in flight
        for j in alive:
            last[j] = (log.get(first_sample + j, r, archs[j].digest()), fid)
        if r < len(schedule) - 1:
            ranked = sorted(alive, key=lambda j: (-score(archs[j], last[j][0]), j))
            alive = sorted(ranked[: max(1, len(alive) // 2)])
    return [last[j] for j in range(len(archs))]
