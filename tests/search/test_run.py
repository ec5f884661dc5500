"""The search loop against real sources: host LiteRT latency and real proxy training."""

import csv
from dataclasses import replace
from pathlib import Path

import pytest

from latbench.errors import InputError
from latbench.nets.spaces import get_space
from latbench.proxy.accuracy import ProxyEvaluator
from latbench.proxy.data import FASHION_MNIST_DIR, load_fashion_mnist
from latbench.proxy.recipe import ProxyRecipe
from latbench.search.run import LatencySource, Search, SearchConfig, read_samples

needs_fmnist = pytest.mark.skipif(
    not (FASHION_MNIST_DIR / "train-images-idx3-ubyte.gz").exists(),
    reason="apt-get install dataset-fashion-mnist",
)
TINY_RECIPE = ProxyRecipe(
    resolution=16, width=1.0, train_images=256, val_images=128, epochs=1, batch=64
)


@pytest.fixture(scope="module")
def host():
    from latbench.devices import load_profile, open_device

    dev = open_device(load_profile("host"))
    yield dev
    dev.close()


@pytest.fixture(scope="module")
def memo_latency(host):
    """Real host latency, measured once per network so reruns see the same numbers."""
    from latbench.profiling.networks import measure_arch

    memo = {}

    def measure(arch):
        if arch.digest() not in memo:
            memo[arch.digest()] = measure_arch(host, arch).median_ms
        return memo[arch.digest()]

    return measure


@needs_fmnist
def test_accuracy_is_trained_once_and_cached(tmp_path):
    ev = ProxyEvaluator(load_fashion_mnist(), TINY_RECIPE, cache_dir=tmp_path)
    arch = get_space("tiny").decode([1] * 12)
    first = ev.evaluate(arch)
    again = ev.evaluate(replace(arch, name="renamed"))  # the name is not part of the key
    assert not first.cached and again.cached and ev.trained == 1
    assert again.accuracy == first.accuracy and 0.0 <= first.accuracy <= 1.0
    assert len(list(tmp_path.glob("*.json"))) == 1


@needs_fmnist
def test_unreachable_target_is_refused_with_the_fix(tmp_path, memo_latency):
    cfg = SearchConfig(target_ms=1e-4, samples=2, batch=2, latency="device", space="tiny")
    ev = ProxyEvaluator(load_fashion_mnist(), TINY_RECIPE, cache_dir=tmp_path / "acc")
    s = Search(tmp_path / "run", cfg, ev, LatencySource(measure=memo_latency))
    with pytest.raises(InputError, match="Raise --target-ms to at least"):
        s.run()
    assert not (tmp_path / "run" / "samples.csv").exists()


class Interrupting:
    """Wraps an evaluator; a Ctrl-C arrives while sample `at` is in flight."""

    def __init__(self, inner, at):
        self.inner, self.at, self.calls = inner, at, 0
        self.key, self.train, self.record = inner.key, inner.train, inner.record

    def lookup(self, arch):
        if self.calls == self.at:
            raise KeyboardInterrupt
        self.calls += 1
        return self.inner.lookup(arch)


@needs_fmnist
@pytest.mark.slow
def test_resume_continues_exactly_like_an_uninterrupted_run(tmp_path, memo_latency):
    # two batches of two: the least that has a batch to resume after and one to cut mid-way
    cfg = SearchConfig(target_ms=0.2, samples=4, batch=2, latency="device", space="tiny", seed=5)
    ds = load_fashion_mnist()
    acc_dir = tmp_path / "acc"  # shared accuracy cache: same network, same number
    lat = LatencySource(measure=memo_latency)
    full = Search(
        tmp_path / "full", cfg, ProxyEvaluator(ds, TINY_RECIPE, acc_dir), lat, progress=False
    ).run()
    # interrupted while the 2nd sample of the 2nd batch is in flight
    with pytest.raises(KeyboardInterrupt):
        Search(
            tmp_path / "cut",
            cfg,
            Interrupting(ProxyEvaluator(ds, TINY_RECIPE, acc_dir), 3),
            lat,
            progress=False,
        ).run()
    assert len(read_samples(tmp_path / "cut" / "samples.csv")) == 3  # only the one in flight lost
    resumed = Search(
        tmp_path / "cut", cfg, ProxyEvaluator(ds, TINY_RECIPE, acc_dir), lat, progress=False
    ).run()
    a = read_samples(tmp_path / "full" / "samples.csv")
    b = read_samples(tmp_path / "cut" / "samples.csv")
    assert [r["tokens"] for r in a] == [r["tokens"] for r in b]
    assert [r["reward"] for r in a] == [r["reward"] for r in b]
    assert resumed["best_reward"] == full["best_reward"]
    assert resumed["hypervolume"] == pytest.approx(full["hypervolume"])
    for name in (
        "pareto.csv",
        "pareto.png",
        "reward.png",
        "best/arch.json",
        "summary.json",
        "controller/latest.json",
    ):
        assert (tmp_path / "cut" / name).exists(), name


def test_a_torn_last_line_is_ignored_by_readers_and_cut_by_the_writer(tmp_path):
    p = tmp_path / "samples.csv"
    head = (
        "sample,batch,digest,tokens,arch,accuracy,pred_ms,meas_ms,lat_ms,reward,train_s,"
        "wall_s,cached,error\n"
    )
    good = "0,0,abc,1-2,r1,0.5,,1.0,1.0,0.5,1.0,2.0,0,\n"
    p.write_text(head + good + "1,0,def,1-")
    rows = read_samples(p)  # a reader (compare, a count) changes nothing
    assert len(rows) == 1 and rows[0]["tokens"] == [1, 2]
    assert p.read_text() == head + good + "1,0,def,1-"
    assert len(read_samples(p, repair=True)) == 1  # the resuming writer cuts the torn tail
    assert p.read_text() == head + good
    assert list(csv.reader(Path(p).open()))[1][0] == "0"


def test_a_malformed_row_in_the_middle_is_refused_and_nothing_is_cut(tmp_path):
    """One bad line (X before sample 2) must not cost the good rows after it."""
    p = tmp_path / "samples.csv"
    head = (
        "sample,batch,digest,tokens,arch,accuracy,pred_ms,meas_ms,lat_ms,reward,train_s,"
        "wall_s,cached,error\n"
    )
    rows = [f"{i},0,d{i},1-2,r1,0.5,,1.0,1.0,0.5,1.0,2.0,0,\n" for i in range(5)]
    rows[2] = "X" + rows[2]
    p.write_text(head + "".join(rows))
    before = p.read_bytes()
    for repair in (False, True):
        with pytest.raises(InputError, match=r"line 4 is malformed.*not changed"):
            read_samples(p, repair=repair)
    assert p.read_bytes() == before


# -- the loop's bookkeeping, with cheap deterministic stand-ins for training and timing --


class FakeAccuracy:
    """A deterministic accuracy per network (no training): the AccuracySource protocol."""

    def __init__(self):
        self.cache, self.trained = {}, 0

    def key(self, arch):
        return arch.digest()

    def lookup(self, arch):
        return self.cache.get(self.key(arch))

    def train(self, arch):
        from latbench.proxy.accuracy import AccuracyResult

        self.trained += 1
        return AccuracyResult(0.5 + int(arch.digest()[:4], 16) / 2**17, 0.01, 1)

    def record(self, arch, res):
        self.cache[self.key(arch)] = replace(res, cached=True)


def fake_pred(archs):
    import numpy as np

    return np.array([a.macs() / 1e6 for a in archs])


class CountingMeasure:
    def __init__(self, factor):
        self.factor, self.calls = factor, 0

    def __call__(self, arch):
        self.calls += 1
        return arch.macs() / 1e6 * self.factor


def tiny_cfg(**kw):
    base = dict(
        target_ms=3.0, samples=5, batch=2, latency="lut", space="tiny", seed=3, controller="random"
    )
    return SearchConfig(**{**base, **kw})


def read_csv(path):
    return list(csv.DictReader(Path(path).open()))


def test_an_error_message_with_a_newline_keeps_every_row(tmp_path):
    from latbench.search import samples

    p = tmp_path / "samples.csv"
    row = {
        "sample": 0,
        "batch": 0,
        "digest": "abc",
        "tokens": [1, 2],
        "arch": "r1",
        "accuracy": float("nan"),
        "pred_ms": 1.0,
        "meas_ms": float("nan"),
        "lat_ms": 1.0,
        "reward": 0.0,
        "train_s": 0.0,
        "wall_s": 0.1,
        "cached": False,
        "error": "accuracy: line one\nline two, with a comma",
    }
    samples.append(p, row)
    samples.append(p, {**row, "sample": 1, "error": ""})
    rows = read_samples(p)
    assert [r["sample"] for r in rows] == [0, 1]
    assert rows[0]["error"] == "accuracy: line one | line two, with a comma"
    assert [r["error"] for r in read_samples(p)] == [r["error"] for r in rows]
    assert len(p.read_text().splitlines()) == 3  # one physical line per row
    # a file written by the old code (a quoted field spanning two lines) loses nothing
    old = tmp_path / "old.csv"
    with old.open("w", newline="") as f:
        w = csv.DictWriter(f, samples.COLUMNS)
        w.writeheader()
        for r in (row, {**row, "sample": 1, "error": ""}):
            w.writerow({**r, "tokens": "1-2", "cached": "0", "accuracy": "", "meas_ms": ""})
    assert [r["sample"] for r in read_samples(old)] == [0, 1]
    assert [r["sample"] for r in read_samples(old)] == [0, 1]  # and the file was not cut


def test_extending_a_finished_run_whose_last_batch_was_partial(tmp_path):
    acc = FakeAccuracy()
    lat = LatencySource(predict=fake_pred)
    Search(tmp_path, tiny_cfg(controller="ppo"), acc, lat, progress=False).run()
    assert len(read_samples(tmp_path / "samples.csv")) == 5  # batches of 2, 2, 1
    summary = Search(
        tmp_path, tiny_cfg(controller="ppo", samples=9), acc, lat, progress=False
    ).run()
    rows = read_samples(tmp_path / "samples.csv")
    assert summary["samples"] == 9 and [r["sample"] for r in rows] == list(range(9))
    assert [r["batch"] for r in rows] == [0, 0, 1, 1, 2, 3, 3, 4, 4]
    # one row of PPO statistics per update, none lost or repeated by the extension
    updates = read_csv_table(tmp_path / "updates.csv")
    assert [u["batch"] for u in updates] == ["0", "1", "2", "3", "4"]
    assert [u["samples"] for u in updates] == ["2", "4", "5", "7", "9"]
    for u in updates:
        assert 0.0 <= float(u["clip_frac"]) <= 1.0 and float(u["entropy"]) > 0
        assert u["loss"] != ""


def read_csv_table(path):
    from latbench import records
    from latbench.search.run import UPDATE_COLUMNS

    return records.read(path, UPDATE_COLUMNS)[1]


def test_spot_every_zero_never_measures(tmp_path):
    measure = CountingMeasure(1.0)
    Search(
        tmp_path,
        tiny_cfg(spot_every=0, measure_front=False),
        FakeAccuracy(),
        LatencySource(predict=fake_pred, measure=measure),
        progress=False,
    ).run()
    rows = read_samples(tmp_path / "samples.csv")
    assert measure.calls == 0 and all(r["meas_ms"] != r["meas_ms"] for r in rows)  # NaN


def test_the_search_ends_with_its_pareto_front_measured_and_a_resume_keeps_it(tmp_path):
    measure = CountingMeasure(1.0)
    cfg, lat = tiny_cfg(spot_every=0), LatencySource(predict=fake_pred, measure=measure)
    Search(tmp_path, cfg, FakeAccuracy(), lat, progress=False).run()
    front = read_csv(tmp_path / "pareto.csv")
    assert front and all(float(r["meas_ms"]) > 0 for r in front)  # every member measured
    assert measure.calls >= len(front)
    calls = measure.calls
    Search(tmp_path, cfg, FakeAccuracy(), lat, progress=False).run()  # the same run again
    assert measure.calls == calls  # nothing measured twice
    assert read_csv(tmp_path / "pareto.csv") == front


def test_a_measured_latency_replaces_the_prediction_in_reward_and_front(tmp_path):
    cfg = tiny_cfg(spot_every=1)
    s = Search(
        tmp_path,
        cfg,
        FakeAccuracy(),
        LatencySource(predict=fake_pred, measure=CountingMeasure(2.0)),
        progress=False,
    )
    s.run()
    rows = read_samples(tmp_path / "samples.csv")
    assert all(r["meas_ms"] == pytest.approx(2 * r["pred_ms"]) for r in rows)
    assert all(r["lat_ms"] == r["meas_ms"] for r in rows)
    assert all(r["reward"] == s.reward(r["accuracy"], r["meas_ms"]) for r in rows)
    for p in read_csv(tmp_path / "pareto.csv"):
        assert float(p["lat_ms"]) == float(p["meas_ms"])


def test_recalibration_rescales_earlier_rows_and_baselines(tmp_path):
    class Drifting(CountingMeasure):  # predictions are right for 3 checks, then 2x too slow
        def __call__(self, arch):
            self.factor = 1.0 if self.calls < 3 else 0.5
            return super().__call__(arch)

    cfg = tiny_cfg(spot_every=2, recalibrate=True, samples=14)
    s = Search(
        tmp_path,
        cfg,
        FakeAccuracy(),
        LatencySource(predict=fake_pred, measure=Drifting(1)),
        progress=False,
    )
    base = [{"name": "b", "accuracy": 0.7, "pred_ms": 2.0, "meas_ms": None, "lat_ms": 2.0}]
    summary = s.run(base)
    rows = read_samples(tmp_path / "samples.csv")
    scale = summary["calibration_scale"]
    assert scale < 1
    assert all(r["lat_ms"] == r["meas_ms"] for r in rows if r["meas_ms"] == r["meas_ms"])
    unmeasured = [r for r in rows if r["meas_ms"] != r["meas_ms"]]
    # some were scored on an earlier scale...
    assert any(r["lat_ms"] != pytest.approx(scale * r["pred_ms"]) for r in unmeasured)
    view = {r["sample"]: r for r in s.view(rows)}
    for r in unmeasured:  # ...and every output shows them on today's scale, reward to match
        assert view[r["sample"]]["lat_ms"] == pytest.approx(scale * r["pred_ms"])
        assert view[r["sample"]]["reward"] == s.reward(r["accuracy"], scale * r["pred_ms"])
    for p in read_csv(tmp_path / "pareto.csv"):
        assert float(p["lat_ms"]) == pytest.approx(view[int(p["sample"])]["lat_ms"])
    assert summary["baselines"][0]["lat_ms"] == pytest.approx(2.0 * scale)


def test_an_unclosed_quote_or_a_cut_character_loses_no_row_after_it(tmp_path):
    p = tmp_path / "samples.csv"
    head = (
        "sample,batch,digest,tokens,arch,accuracy,pred_ms,meas_ms,lat_ms,reward,train_s,"
        "wall_s,cached,error\n"
    )
    good = "0,0,abc,1-2,r1,0.5,,1.0,1.0,0.5,1.0,2.0,0,\n"
    p.write_bytes((head + good).encode() + "1,0,d,1-2,r1,0.5,,1,1,0.5,1,2,0,é".encode()[:-1])
    assert len(read_samples(p)) == 1  # the torn tail ends inside a UTF-8 character
    p.write_text(head + good.replace(",r1,", ',"r1,') + good)
    before = p.read_bytes()
    with pytest.raises(InputError, match="line 2 is malformed"):
        read_samples(p)
    assert p.read_bytes() == before
