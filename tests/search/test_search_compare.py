"""latbench compare: equal-budget curves of several search runs (search/compare.py)."""

import json
import math

import numpy as np
import pytest

from latbench.search import samples as samples_file
from latbench.search.compare import budget, load_run, table
from latbench.search.run import SearchConfig


def _run(root, name, controller, seed, points, target=2.0, cpu=None, digests=None):
    """A run directory as `latbench search` leaves it: config.json and samples.csv (with
    each sample's training CPU seconds when `cpu` gives them)."""
    d = root / name
    d.mkdir()
    (d / "config.json").write_text(
        SearchConfig(target_ms=target, controller=controller, seed=seed).to_json()
    )
    for i, (lat, acc, rew) in enumerate(points):
        samples_file.append(
            d / "samples.csv",
            {
                "sample": i,
                "batch": i // 8,
                "digest": digests[i] if digests else f"d{i}",
                "tokens": [0, 1],
                "arch": "",
                "accuracy": acc,
                "pred_ms": lat,
                "meas_ms": float("nan"),
                "lat_ms": lat,
                "reward": rew,
                "train_s": 1.0,
                "wall_s": 1.0,
                "cached": False,
                "error": "",
                **({"cpu_s": cpu[i]} if cpu else {}),
            },
        )
    return d


def test_curves_group_and_budget(tmp_path):
    a = _run(tmp_path, "ppo-s0", "ppo", 0, [(3.0, 0.5, 0.4), (1.0, 0.6, 0.7), (2.5, 0.9, 0.6)])
    b = _run(tmp_path, "ppo-s1", "ppo", 1, [(1.0, 0.5, 0.5), (1.5, 0.7, 0.9)])
    c = _run(tmp_path, "random-s0", "random", 0, [(2.0, 0.8, 0.1), (0.5, 0.2, 0.3), (1, 1, 1)])
    runs = [load_run(p) for p in (a, b, c)]
    np.testing.assert_allclose(runs[0].best_reward, [0.4, 0.7, 0.7])
    # ref point (2T = 4 ms, acc 0): after 2 samples the front is (1.0, 0.6) alone
    # (3.0, 0.5 is dominated): area (4 - 1) * 0.6; then (2.5, 0.9) joins it
    np.testing.assert_allclose(runs[0].hypervolume, [1.0 * 0.5, 3 * 0.6, 1.5 * 0.6 + 1.5 * 0.9])
    np.testing.assert_allclose(runs[0].recent_reward, [0.4, 0.55, (0.4 + 0.7 + 0.6) / 3])
    assert budget(runs) == 2
    g = {(r["samples"], r["controller"]): r for r in table(runs, [1, 2])
         if r["metric"] == "best_reward"}  # fmt: skip
    assert g[2, "ppo"]["runs"] == 2 and g[2, "random"]["runs"] == 1
    assert [g[n, "ppo"]["mean"] for n in (1, 2)] == pytest.approx([0.45, 0.8])
    assert [g[n, "ppo"]["min"] for n in (1, 2)] == pytest.approx([0.4, 0.7])
    assert [g[n, "ppo"]["max"] for n in (1, 2)] == pytest.approx([0.5, 0.9])
    rows = table(runs, [2])
    assert {(r["controller"], r["metric"]) for r in rows} == {
        (c, m) for c in ("ppo", "random") for m in ("best_reward", "hypervolume", "recent_reward")
    }


def test_an_equal_cpu_budget_counts_each_runs_training_seconds(tmp_path):
    """A controller whose networks train quicker gets more samples for the same CPU; a
    network the run trained before costs nothing again; runs without CPU seconds are refused
    with the way out."""
    from latbench.errors import InputError
    from latbench.search.compare import at_budget, cpu_budget, cpu_checkpoints, samples_within

    pts = [(1.0, 0.5, 0.1 * (i + 1)) for i in range(6)]
    fast = _run(tmp_path, "ppo-s0", "ppo", 0, pts, cpu=[1, 1, 1, 1, 1, 1],
                digests=["a", "b", "a", "c", "d", "e"])  # fmt: skip
    slow = _run(tmp_path, "random-s0", "random", 0, pts, cpu=[3, 3, 3, 3, 3, 3])
    runs = [load_run(p) for p in (fast, slow)]
    np.testing.assert_allclose(runs[0].cpu_s, [1, 2, 2, 3, 4, 5])  # "a" again: free
    total = cpu_budget(runs)
    assert total == 5.0  # the smaller of 5 and 18
    assert [samples_within(r, total) for r in runs] == [6, 1]
    assert at_budget(runs[0], "best_reward", total, "cpu") == pytest.approx(0.6)
    assert at_budget(runs[1], "best_reward", total, "cpu") == pytest.approx(0.1)
    assert math.isnan(at_budget(runs[1], "best_reward", 2.9, "cpu"))  # nothing done yet
    assert cpu_checkpoints(runs, total) == [3.75, 5.0]  # from where both have a sample
    rows = table(runs, [5.0], "cpu")
    best = {r["controller"]: r for r in rows if r["metric"] == "best_reward"}
    assert best["ppo"]["mean"] == pytest.approx(0.6) and best["random"]["samples_max"] == 1
    # a halving child drawn again and promoted pays only its new rungs (2.5 -> 7.5 in all);
    # a failed training costs 0, and the same network trained later pays in full
    nan = float("nan")
    h = _run(tmp_path, "ppo-s9", "ppo", 9, [pts[0], pts[1], pts[2], (1.0, nan, nan), pts[3]],
             cpu=[2.5, 7.5, 1.0, 0.0, 3.0], digests=["h", "h", "x", "f", "f"])  # fmt: skip
    np.testing.assert_allclose(load_run(h).cpu_s, [2.5, 7.5, 8.5, 8.5, 11.5])
    # an equal budget must hold a sample of every run
    big = _run(tmp_path, "random-s8", "random", 8, pts[:2], cpu=[9.0, 1.0])
    with pytest.raises(InputError, match="first sample alone took 9 training CPU seconds"):
        cpu_budget([runs[0], load_run(big)])
    # a run written before cpu_s existed: its own header, resumed in it, refused by cpu
    old = _run(tmp_path, "random-s1", "random", 1, pts)
    lines = (old / "samples.csv").read_text().splitlines()
    cols = lines[0].split(",")
    k = cols.index("cpu_s")
    (old / "samples.csv").write_text(
        "\n".join(",".join(c for i, c in enumerate(ln.split(",")) if i != k) for ln in lines) + "\n"
    )  # (no field of these rows holds a comma)
    samples_file.append(old / "samples.csv", {**samples_file.read(old / "samples.csv")[-1],
                                               "sample": 6, "cpu_s": 4.0})  # fmt: skip
    assert "cpu_s" not in (old / "samples.csv").read_text().splitlines()[0]
    assert len(samples_file.read(old / "samples.csv")) == 7
    assert math.isnan(load_run(old).cpu_s[-1])
    with pytest.raises(InputError, match="sample 0 has no training CPU seconds.*--budget samples"):
        cpu_budget([*runs, load_run(old)])
    from conftest import latbench_cli

    out = tmp_path / "cmp"
    r = latbench_cli("compare", fast, slow, "--budget", "cpu", "--out", out, "--json")
    assert r.returncode == 0, r.stderr
    doc = json.loads(r.stdout)
    assert doc["budget"] == 5.0 and doc["budget_kind"] == "cpu"
    assert (out / "curves.png").stat().st_size > 10_000
    r = latbench_cli("compare", fast, old, "--budget", "cpu", "--out", out)
    assert r.returncode == 2 and "--budget samples" in r.stderr and "Traceback" not in r.stderr


def test_command_writes_the_figure_and_refuses_mixed_targets(tmp_path):
    from conftest import latbench_cli

    pts = [(1.0 + i / 10, 0.5 + i / 100, 0.5 + i / 100) for i in range(10)]
    a = _run(tmp_path, "ppo-s0", "ppo", 0, pts)
    b = _run(tmp_path, "random-s0", "random", 0, pts[::-1])
    out = tmp_path / "cmp"
    r = latbench_cli("compare", a, b, "--out", out, "--json")
    assert r.returncode == 0, r.stderr
    doc = json.loads(r.stdout)
    assert doc["budget"] == 10
    best = {t["controller"]: t["mean"] for t in doc["at_budget"] if t["metric"] == "best_reward"}
    assert best == {"ppo": pytest.approx(0.59), "random": pytest.approx(0.59)}
    assert (out / "curves.png").stat().st_size > 10_000 and (out / "table.csv").exists()
    c = _run(tmp_path, "other", "ppo", 1, pts, target=5.0)
    r = latbench_cli("compare", a, c, "--out", out)
    assert r.returncode == 2 and "different targets" in r.stderr
    r = latbench_cli("compare", tmp_path, "--out", out)
    assert r.returncode == 2 and "not a search run" in r.stderr


@pytest.mark.slow
def test_retrain_trains_each_runs_front_at_the_reference_fidelity_and_draws_both_curves(tmp_path):
    import math
    from pathlib import Path

    from latbench.proxy.evaluator import AccuracyResult
    from latbench.search.compare import front_networks, front_png, retrain
    from latbench.search.run import LatencySource, Search

    class Fake:  # the search's proxy accuracy: a function of the network (no training)
        def key(self, a):
            return a.digest()

        def lookup(self, a):
            return None

        def train(self, a):
            return AccuracyResult(0.4 + int(a.digest()[:4], 16) / 2**17, 0.0, 1)

        def record(self, a, r):
            pass

    spec = f"{Path(__file__).resolve().parents[1] / 'fixtures/evaluators/tiny_eval.py'}:steady"
    cfg = SearchConfig(
        target_ms=3.0, samples=6, batch=3, space="tiny", seed=1, controller="random",
        spot_every=0, evaluator=spec, baselines=(),
    )  # fmt: skip
    lat = LatencySource(
        predict=lambda archs: np.array([a.macs() / 1e6 for a in archs]),
        measure=lambda a: a.macs() / 1e6 * 1.1,
    )
    Search(tmp_path / "r", cfg, Fake(), lat, progress=False).run()
    run = load_run(tmp_path / "r")
    front = front_networks(run, 6)
    assert front and all(math.isfinite(r["meas_ms"]) for r in front)  # measured as the search ended
    out = retrain([run], 6, [0, 1], reference="mobilenet_v2_x0.35")
    nets = [r for r in out if r["run"] != "reference"]
    assert [r["network"] for r in nets] == [f"front_{r['digest']}" for r in front]
    assert sum(r["best"] for r in nets) == 1
    assert all(r["acc_seed1"] == pytest.approx(r["acc_seed0"] + 0.001) for r in out)
    front_png(out, 5, tmp_path / "front.png")
    assert (tmp_path / "front.png").stat().st_size > 10_000


def test_the_reference_fidelity_is_the_runs_recipe_with_five_times_the_images():
    from latbench.proxy.data import FASHION_MNIST_DIR
    from latbench.search.compare import reference_evaluator

    if not (FASHION_MNIST_DIR / "train-images-idx3-ubyte.gz").exists():
        pytest.skip("apt-get install dataset-fashion-mnist")
    cfg = SearchConfig(target_ms=3.0, recipe={"train_images": 3000})
    ev = reference_evaluator(cfg, 2, 5)
    assert ev.recipe.train_images == 15000 and ev.recipe.seed == 2
