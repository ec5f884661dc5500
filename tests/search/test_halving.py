"""Successive halving inside a batch: who is promoted, the fidelity each sample ends at, and a
resume in the middle of a round that trains nothing twice."""

from dataclasses import replace

import numpy as np
import pytest

from latbench.proxy.evaluator import AccuracyResult
from latbench.search import halving
from latbench.search.run import LatencySource, Search, SearchConfig, read_samples


class Fidelities:
    """A deterministic accuracy per network and fidelity (no training), recording every
    training; `stop_after` trainings, the next one is a Ctrl-C."""

    def __init__(self, trained: list, stop_after: int | None = None, fidelity: float = 1.0):
        self.trained, self.stop_after, self.fidelity = trained, stop_after, fidelity
        self.cache: dict = {}

    def at(self, f):
        out = Fidelities(self.trained, self.stop_after, f)
        out.cache = self.cache
        return out

    def key(self, arch):
        return (arch.digest(), self.fidelity)

    def lookup(self, arch):
        return self.cache.get(self.key(arch))

    def train(self, arch):
        if self.stop_after is not None and len(self.trained) >= self.stop_after:
            raise KeyboardInterrupt
        self.trained.append(self.key(arch))
        acc = (0.4 + int(arch.digest()[:4], 16) / 2**17) * (0.6 + 0.4 * self.fidelity)
        return AccuracyResult(acc, 0.01, 1, fidelity=self.fidelity, cpu_s=10 * self.fidelity)

    def record(self, arch, res):
        self.cache[self.key(arch)] = replace(res, cached=True)


def cfg(**kw):
    base = dict(
        target_ms=3.0,
        samples=8,
        batch=8,
        latency="lut",
        space="tiny",
        seed=5,
        controller="random",
        spot_every=0,
        fidelity="halving",
    )
    return SearchConfig(**{**base, **kw})


def lat():
    return LatencySource(predict=lambda archs: np.array([a.macs() / 1e6 for a in archs]))


def test_every_sample_records_its_last_fidelity_and_the_better_half_goes_on(tmp_path):
    trained: list = []
    Search(tmp_path, cfg(), Fidelities(trained), lat(), progress=False).run()
    rows = read_samples(tmp_path / "samples.csv")
    assert sorted(r["fidelity"] for r in rows) == [0.25] * 4 + [0.5] * 2 + [1.0] * 2
    assert len(trained) == 8 + 4 + 2  # 6 full trainings' worth of steps instead of 8
    rungs = {(int(r["sample"]), int(r["rung"])): r for r in _rungs(tmp_path)}
    assert len(rungs) == 14
    for r in rows:  # the reward is the last rung's accuracy's
        last = max(k[1] for k in rungs if k[0] == r["sample"])
        assert float(rungs[(r["sample"], last)]["accuracy"]) == r["accuracy"]
        assert halving.SCHEDULES["halving"][last] == r["fidelity"]
        # what the child cost: every rung it trained (CPU seconds 10 x the rung's fidelity)
        assert r["cpu_s"] == pytest.approx({0: 2.5, 1: 7.5, 2: 17.5}[last])
    # the ones promoted from rung 0 were the better half by reward
    rung0 = sorted((r for k, r in rungs.items() if k[1] == 0), key=lambda r: int(r["sample"]))
    promoted = {k[0] for k in rungs if k[1] == 1}
    assert len(promoted) == 4
    pred = {r["sample"]: r["pred_ms"] for r in rows}
    s = Search(tmp_path / "x", cfg(), Fidelities([]), lat(), progress=False)
    r0 = {int(r["sample"]): s.reward(float(r["accuracy"]), pred[int(r["sample"])]) for r in rung0}
    assert promoted == set(sorted(r0, key=lambda k: (-r0[k], k))[:4])


def _rungs(run_dir):
    from latbench import records

    return records.read(run_dir / "rungs.csv", halving.COLUMNS)[1]


@pytest.mark.parametrize("stop_after", [3, 10])  # inside rung 0, inside rung 1
def test_a_resume_in_the_middle_of_a_round_trains_nothing_twice(tmp_path, stop_after):
    Search(tmp_path / "whole", cfg(), Fidelities([]), lat(), progress=False).run()
    first: list = []
    with pytest.raises(KeyboardInterrupt):
        Search(tmp_path / "cut", cfg(), Fidelities(first, stop_after), lat(), progress=False).run()
    assert len(first) == stop_after and not (tmp_path / "cut" / "samples.csv").exists()
    again: list = []  # a new process: an empty in-memory cache, only rungs.csv remains
    Search(tmp_path / "cut", cfg(), Fidelities(again), lat(), progress=False).run()
    assert not set(first) & set(again) and len(first) + len(again) == 14

    def outcome(d):
        return [
            (r["tokens"], r["accuracy"], r["fidelity"], r["reward"])
            for r in read_samples(tmp_path / d / "samples.csv")
        ]

    assert outcome("cut") == outcome("whole")
    cost = [r["cpu_s"] for r in read_samples(tmp_path / "cut" / "samples.csv")]
    assert cost == [r["cpu_s"] for r in read_samples(tmp_path / "whole" / "samples.csv")]


def test_an_unknown_fidelity_schedule_names_the_option():
    from latbench.errors import InputError

    with pytest.raises(InputError, match="--fidelity"):
        cfg(fidelity="hyperband")
