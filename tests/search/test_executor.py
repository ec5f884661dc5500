"""Children trained serially or on a real local Ray: same samples, same rewards, dead workers retried."""

import os
import sys
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from latbench.errors import InputError
from latbench.proxy.accuracy import AccuracyResult, ProxyEvaluator
from latbench.proxy.data import FASHION_MNIST_DIR, load_fashion_mnist
from latbench.proxy.recipe import ProxyRecipe
from latbench.search.executor import SerialExecutor, make_executor
from latbench.search.run import LatencySource, Search, SearchConfig, read_samples

needs_fmnist = pytest.mark.skipif(
    not (FASHION_MNIST_DIR / "train-images-idx3-ubyte.gz").exists(),
    reason="apt-get install dataset-fashion-mnist",
)
TINY_RECIPE = ProxyRecipe(
    resolution=16, width=1.0, train_images=256, val_images=128, epochs=1, batch=64
)


class FakeAccuracy:
    """A deterministic accuracy per network (no training), cached in memory."""

    def __init__(self):
        self.cache = {}

    def key(self, arch):
        return arch.digest()

    def lookup(self, arch):
        return self.cache.get(self.key(arch))

    def train(self, arch):
        return AccuracyResult(0.5 + int(arch.digest()[:4], 16) / 2**17, 0.01, os.getpid())

    def record(self, arch, res):
        self.cache[self.key(arch)] = replace(res, cached=True)


class DiesOnce(FakeAccuracy):
    """The first training of `victim` kills its worker process (like the OOM killer)."""

    def __init__(self, marker, victim):
        super().__init__()
        self.marker, self.victim = str(marker), victim

    def train(self, arch):
        if arch.digest() == self.victim and not os.path.exists(self.marker):
            open(self.marker, "w").close()
            os._exit(9)
        return super().train(arch)


def fake_pred(archs):
    return np.array([a.macs() / 1e6 for a in archs])


def cfg(**kw):
    base = dict(
        target_ms=3.0,
        samples=8,
        batch=4,
        latency="lut",
        space="tiny",
        seed=11,
        controller="ppo",
        spot_every=0,
    )
    return SearchConfig(**{**base, **kw})


def outcome(path):
    return [
        (r["tokens"], r["accuracy"], r["lat_ms"], r["reward"], r["error"])
        for r in read_samples(path / "samples.csv")
    ]


def test_the_serial_path_needs_no_ray(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "ray", None)  # `import ray` now fails
    assert isinstance(make_executor(), SerialExecutor)
    Search(
        tmp_path,
        cfg(controller="random", samples=3),
        FakeAccuracy(),
        LatencySource(predict=fake_pred),
        progress=False,
    ).run()
    assert len(read_samples(tmp_path / "samples.csv")) == 3
    with pytest.raises(InputError, match="pip install"):
        make_executor(workers=2)


@pytest.fixture(scope="module")
def ray_executor():
    ray = pytest.importorskip("ray")
    ray.cloudpickle.register_pickle_by_value(sys.modules[__name__])  # workers can't import tests/
    from latbench.search.executor import RayExecutor

    ex = RayExecutor(workers=2)
    yield ex
    ex.close()
    ray.shutdown()


@pytest.mark.slow
def test_ray_gives_the_serial_samples_and_rewards(tmp_path, ray_executor):
    lat = LatencySource(predict=fake_pred)
    Search(tmp_path / "serial", cfg(), FakeAccuracy(), lat, progress=False).run()
    Search(
        tmp_path / "ray", cfg(), FakeAccuracy(), lat, progress=False, executor=ray_executor
    ).run()
    assert outcome(tmp_path / "serial") == outcome(tmp_path / "ray")
    # the children ran in Ray's workers, never in the driver; how many of the two took tasks
    # depends on how fast each started (a loaded machine may give every task to one)
    assert 1 <= len(ray_executor.worker_pids) <= 2
    assert os.getpid() not in ray_executor.worker_pids


@pytest.mark.slow
def test_a_dead_worker_costs_only_its_sample_which_is_retried(tmp_path, ray_executor):
    lat = LatencySource(predict=fake_pred)
    Search(tmp_path / "serial", cfg(), FakeAccuracy(), lat, progress=False).run()
    victim = read_samples(tmp_path / "serial" / "samples.csv")[5]["digest"]
    marker = tmp_path / "died"
    Search(
        tmp_path / "ray",
        cfg(),
        DiesOnce(marker, victim),
        lat,
        progress=False,
        executor=ray_executor,
    ).run()
    assert marker.exists()  # a worker really died...
    assert outcome(tmp_path / "serial") == outcome(tmp_path / "ray")  # ...and nothing shows


@needs_fmnist
@pytest.mark.slow
def test_real_proxy_training_on_ray_matches_serial(tmp_path, ray_executor):
    ds = load_fashion_mnist()
    lat = LatencySource(predict=fake_pred)
    c = cfg(samples=2, batch=2)  # one child per worker
    Search(
        tmp_path / "serial",
        c,
        ProxyEvaluator(ds, TINY_RECIPE, tmp_path / "acc_serial"),
        lat,
        progress=False,
    ).run()
    ev = ProxyEvaluator(ds, TINY_RECIPE, tmp_path / "acc_ray")
    Search(tmp_path / "ray", c, ev, lat, progress=False, executor=ray_executor).run()
    assert outcome(tmp_path / "serial") == outcome(tmp_path / "ray")
    assert all(0.1 < a < 1 for _, a, _, _, _ in outcome(tmp_path / "ray"))
    assert len(list((tmp_path / "acc_ray").glob("*.json"))) >= 1  # the driver wrote the cache


@pytest.mark.slow
def test_a_device_is_one_actor_that_measures_in_order(ray_executor):
    from latbench.build.convert import convert_arch
    from latbench.nets.spaces import get_space

    arch = get_space("tiny").decode([1] * 12)
    # converted here, where this module's training tests loaded TensorFlow: the actor finds it
    # in the shared cache (LATBENCH_CACHE reaches Ray's workers) and only times it
    convert_arch(arch, "fp32")
    measure, close = ray_executor.device_measure("host", "fp32")
    try:
        ms = [measure(arch) for _ in range(2)]
    finally:
        close()
    assert all(0 < m < 1000 for m in ms)


TINY_EVAL = f"{Path(__file__).resolve().parents[1] / 'fixtures' / 'evaluators' / 'tiny_eval.py'}"


def users_evaluator(cache):
    from latbench.proxy.evaluator import CachedEvaluator, load_evaluator

    return CachedEvaluator(load_evaluator(f"{TINY_EVAL}:evaluate"), cache, threads=1)


@pytest.mark.slow
def test_a_users_evaluator_logs_its_metrics_and_failures_per_sample(tmp_path):
    Search(
        tmp_path,
        cfg(samples=4),
        users_evaluator(tmp_path / "acc"),
        LatencySource(fake_pred),
        progress=False,
    ).run()
    rows = read_samples(tmp_path / "samples.csv")
    ok = [r for r in rows if not r["error"]]
    assert len(rows) == 4 and ok
    assert all(r["metrics"]["params_k"] > 0 and 0.5 <= r["accuracy"] < 1 for r in ok)
    for r in rows:
        if r["error"]:  # the evaluator raised: that sample failed, the search went on
            assert "out of memory (simulated)" in r["error"] and np.isnan(r["accuracy"])


@pytest.mark.slow
def test_a_users_evaluator_on_ray_gives_the_serial_samples(tmp_path, ray_executor):
    lat = LatencySource(predict=fake_pred)
    c = cfg(samples=4)
    Search(tmp_path / "serial", c, users_evaluator(tmp_path / "a"), lat, progress=False).run()
    Search(
        tmp_path / "ray",
        c,
        users_evaluator(tmp_path / "b"),
        lat,
        progress=False,
        executor=ray_executor,
    ).run()
    assert outcome(tmp_path / "serial") == outcome(tmp_path / "ray")
    rows = read_samples(tmp_path / "ray" / "samples.csv")
    assert [r["metrics"] for r in rows] == [
        r["metrics"] for r in read_samples(tmp_path / "serial" / "samples.csv")
    ]
