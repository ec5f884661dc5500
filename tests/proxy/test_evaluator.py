"""A user's evaluator: found by its spec or refused in one line, its results checked, cached
under a key that names the evaluator, its version, the seed and the thread count."""

import json
import math
from pathlib import Path

import pytest

from latbench.errors import InputError
from latbench.nets.spaces import get_space
from latbench.proxy.evaluator import CachedEvaluator, check_result, load_evaluator

TINY = Path(__file__).resolve().parents[1] / "fixtures" / "evaluators" / "tiny_eval.py"
ARCH = get_space("tiny").decode([1] * 12)


@pytest.mark.parametrize(
    "spec, says",
    [
        ("no.such.module:fn", "cannot import 'no.such.module'"),
        ("latbench.proxy.evaluator:no_such_fn", "has no attribute 'no_such_fn'"),
        (f"{TINY}:not_callable", "not a callable"),
        ("no_colon", "MODULE:FUNCTION"),
        ("/no/such/file.py:fn", "no such file"),
    ],
)
def test_a_bad_spec_is_one_line_naming_the_option(spec, says):
    with pytest.raises(InputError, match="--evaluator") as e:
        load_evaluator(spec)
    assert says in str(e.value) and "\n" not in str(e.value)


@pytest.mark.parametrize("bad", [87.5, float("nan"), "0.9", None, {"top1": 0.9}, True])
def test_a_result_that_is_not_an_accuracy_is_refused(bad):
    with pytest.raises(InputError, match="--evaluator"):
        check_result(bad, "evaluator x")


def test_a_dict_gives_the_accuracy_and_extra_metrics():
    assert check_result({"accuracy": 0.75, "top5": 0.9}, "x") == (0.75, {"top5": 0.9})
    with pytest.raises(InputError, match="metric 'loss'"):
        check_result({"accuracy": 0.75, "loss": math.inf}, "x")


def test_the_evaluator_receives_a_ready_model_and_its_results_are_cached(tmp_path):
    ev = CachedEvaluator(load_evaluator(f"{TINY}:evaluate"), tmp_path, threads=1)
    res = ev.train(ARCH)
    assert res.params > 0 and res.metrics == {"params_k": res.params / 1000}
    ev.record(ARCH, res)
    hit = ev.lookup(ARCH)
    assert hit.cached and hit.accuracy == res.accuracy and hit.metrics == res.metrics
    assert res.cpu_s > 0 and hit.cpu_s == res.cpu_s  # the budget `compare --budget cpu` counts
    path = tmp_path / f"{ev.key(ARCH)}.json"
    doc = json.loads(path.read_text())
    del doc["cpu_s"]  # a cache file written before CPU seconds were recorded
    path.write_text(json.dumps(doc))
    assert math.isnan(ev.lookup(ARCH).cpu_s) and ev.lookup(ARCH).accuracy == res.accuracy
    path.write_text(json.dumps({**doc, "cpu_s": -1}))  # a damaged one: trained again
    assert ev.lookup(ARCH) is None


def test_the_cache_key_names_evaluator_version_seed_threads_and_fidelity(tmp_path):
    fn = load_evaluator(f"{TINY}:evaluate")
    base = CachedEvaluator(fn, tmp_path, threads=1).key(ARCH)
    assert base == CachedEvaluator(load_evaluator(f"{TINY}:evaluate"), tmp_path, 1).key(ARCH)
    other_fn = load_evaluator(f"{TINY}:returns_percent")  # same module, same version
    assert CachedEvaluator(other_fn, tmp_path, threads=1).key(ARCH) != base
    assert CachedEvaluator(fn.with_seed(1), tmp_path, threads=1).key(ARCH) != base
    assert CachedEvaluator(fn, tmp_path, threads=0).key(ARCH) != base  # TF default pools
    assert CachedEvaluator(fn, tmp_path, threads=1).at(0.5).key(ARCH) != base
    fn.version = "2"
    assert CachedEvaluator(fn, tmp_path, threads=1).key(ARCH) != base


def test_a_percentage_is_refused_when_the_evaluator_returns_it(tmp_path):
    ev = CachedEvaluator(load_evaluator(f"{TINY}:returns_percent"), tmp_path, threads=1)
    with pytest.raises(InputError, match=r"in \[0, 1\], got '87.5'"):
        ev.train(ARCH)


def test_the_example_evaluator_is_the_default_path_with_the_same_cache_entries(tmp_path):
    from latbench.proxy.accuracy import ProxyEvaluator
    from latbench.proxy.data import FASHION_MNIST_DIR, load_fashion_mnist
    from latbench.proxy.recipe import ProxyRecipe

    if not (FASHION_MNIST_DIR / "train-images-idx3-ubyte.gz").exists():
        pytest.skip("apt-get install dataset-fashion-mnist")
    example = Path(__file__).resolve().parents[2] / "examples/evaluators/proxy_trainer.py"
    mine = CachedEvaluator(load_evaluator(f"{example}:evaluate"), tmp_path, threads=1)
    default = ProxyEvaluator(load_fashion_mnist(), ProxyRecipe(), tmp_path)
    arch = get_space("mnasnet").decode([1] * 42)
    assert mine.key(arch) == default.key(arch)
