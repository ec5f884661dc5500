"""The search loop against real sources: host LiteRT latency and real proxy training."""

import csv
import random
from dataclasses import replace
from pathlib import Path

import pytest

from latbench.errors import InputError
from latbench.search.accuracy import ProxyEvaluator, ProxyRecipe, proxy_arch
from latbench.search.data import FASHION_MNIST_DIR, load_fashion_mnist
from latbench.search.run import LatencySource, Search, SearchConfig, read_samples
from latbench.space import get_space
from latbench.zoo import mobilenet_v2

needs_fmnist = pytest.mark.skipif(not (FASHION_MNIST_DIR / "train-images-idx3-ubyte.gz").exists(),
                                  reason="apt-get install dataset-fashion-mnist")
TINY_RECIPE = ProxyRecipe(resolution=16, width=1.0, train_images=256, val_images=128, epochs=1,
                          batch=64)


@pytest.fixture(scope="module")
def host():
    from latbench.devices import load_profile, open_device

    dev = open_device(load_profile("host"))
    yield dev
    dev.close()


@pytest.fixture(scope="module")
def memo_latency(host):
    """Real host latency, measured once per network so reruns see the same numbers."""
    from latbench.e2e import measure_arch

    memo = {}

    def measure(arch):
        if arch.digest() not in memo:
            memo[arch.digest()] = measure_arch(host, arch).median_ms
        return memo[arch.digest()]

    return measure


def test_proxy_arch_is_the_space_decode_at_proxy_input():
    space = get_space("mnasnet")
    tokens = space.sample(random.Random(4))
    recipe = ProxyRecipe(resolution=28, width=0.35)
    via_space = space.with_input(28, 10, 1).decode(tokens)
    p = proxy_arch(space.decode(tokens), recipe, 10, 1)
    assert p.blocks == via_space.blocks and p.resolution == 28 and p.classes == 10
    assert p.width == pytest.approx(0.35) and p.channels == 1
    # MobileNetV2 goes through the same transformation (its head shrinks like the rest)
    m = proxy_arch(mobilenet_v2(), recipe, 10, 1)
    assert m.blocks == mobilenet_v2().blocks and m.head.scale


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

    def evaluate(self, arch):
        if self.calls == self.at:
            raise KeyboardInterrupt
        self.calls += 1
        return self.inner.evaluate(arch)


@needs_fmnist
@pytest.mark.slow
def test_resume_continues_exactly_like_an_uninterrupted_run(tmp_path, memo_latency):
    cfg = SearchConfig(target_ms=0.2, samples=9, batch=3, latency="device", space="tiny", seed=5)
    ds = load_fashion_mnist()
    acc_dir = tmp_path / "acc"  # shared accuracy cache: same network, same number
    lat = LatencySource(measure=memo_latency)
    full = Search(tmp_path / "full", cfg, ProxyEvaluator(ds, TINY_RECIPE, acc_dir), lat,
                  progress=False).run()
    # interrupted while the 2nd sample of the 2nd batch is in flight
    with pytest.raises(KeyboardInterrupt):
        Search(tmp_path / "cut", cfg, Interrupting(ProxyEvaluator(ds, TINY_RECIPE, acc_dir), 4),
               lat, progress=False).run()
    assert len(read_samples(tmp_path / "cut" / "samples.csv")) == 4  # only the one in flight lost
    resumed = Search(tmp_path / "cut", cfg, ProxyEvaluator(ds, TINY_RECIPE, acc_dir), lat,
                     progress=False).run()
    a = read_samples(tmp_path / "full" / "samples.csv")
    b = read_samples(tmp_path / "cut" / "samples.csv")
    assert [r["tokens"] for r in a] == [r["tokens"] for r in b]
    assert [r["reward"] for r in a] == [r["reward"] for r in b]
    assert resumed["best_reward"] == full["best_reward"]
    assert resumed["hypervolume"] == pytest.approx(full["hypervolume"])
    for name in ("pareto.csv", "pareto.png", "reward.png", "best/arch.json", "summary.json",
                 "controller/latest.json"):
        assert (tmp_path / "cut" / name).exists(), name


def test_torn_last_line_is_dropped(tmp_path):
    p = tmp_path / "samples.csv"
    head = ("sample,batch,digest,tokens,arch,accuracy,pred_ms,meas_ms,lat_ms,reward,train_s,"
            "wall_s,cached,error\n")
    good = "0,0,abc,1-2,r1,0.5,,1.0,1.0,0.5,1.0,2.0,0,\n"
    p.write_text(head + good + "1,0,def,1-")
    rows = read_samples(p)
    assert len(rows) == 1 and rows[0]["tokens"] == [1, 2]
    assert p.read_text() == head + good
    assert list(csv.reader(Path(p).open()))[1][0] == "0"
