"""How well can any proxy rank networks, and which recipe spends the CPU best (issue 23, §1-2).

Trains networks drawn uniformly from the MnasNet space (seed 0: the same first 20 as
`latbench proxy-validity`) under several recipes, one JSON line per training in
OUT/results.jsonl (appended as each finishes, so a rerun resumes):

  proxy_s0, proxy_s1   today's recipe (3000 images, 2 epochs), recipe seeds 0 and 1
  long_s0, long_s1     the reference: 5x the images (15000, 2 epochs), seeds 0 and 1
  f025_s0, f050_s0     today's recipe cut to 1/4 and 1/2 of its steps (successive halving's
                       lower rungs: 0.5 and 1 epoch of the 3000 images)
  img2x_s0             6000 images, 2 epochs (more images per child)

Networks are trained in order, every recipe of one network before the next network, so a
run stopped at any point has complete networks. WORKERS processes train side by side, one
TensorFlow thread each (the recipes' thread count). Between trainings the timing lock
/tmp/latbench-quiet is honoured (no new training starts while another job times). Then

    python benchmarks/proxy_ceiling.py report OUT

prints §1's ceiling (Kendall tau between the reference's two seeds, 95 % bootstrap interval
over networks) beside every recipe's tau against the reference, and CPU seconds per search
batch of 8, and writes OUT/report.json. The full study (issue 23):

    nice -n 19 python benchmarks/proxy_ceiling.py run runs/proxy_ceiling --networks 40 --workers 2
"""

from __future__ import annotations

import argparse
import json
import os
import random
import sys
import time
from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait
from pathlib import Path

LOCK = Path("/tmp/latbench-quiet")
BATCH = 8  # a PPO batch: the unit the CPU budget is counted in
FIDELITY = {"f025_s0": 0.25, "f050_s0": 0.5}
ORDER = ("proxy_s0", "long_s0", "long_s1", "f025_s0", "f050_s0", "proxy_s1", "img2x_s0")
CORE = ORDER[:6]  # --core: without img2x_s0 (a loaded machine's reduced study)


def recipe(name: str):
    from dataclasses import replace

    from latbench.proxy.recipe import ProxyRecipe

    base = ProxyRecipe()
    kind, seed = name.rsplit("_s", 1)
    r = replace(base, seed=int(seed))
    if kind == "long":
        return replace(r, train_images=base.train_images * 5)
    if kind == "img2x":
        return replace(r, train_images=base.train_images * 2)
    if name in FIDELITY:
        return replace(r, epochs=base.epochs * FIDELITY[name])
    return r


def networks(n: int, seed: int = 0):
    from latbench.nets.spaces import get_space

    space, rng = get_space("mnasnet"), random.Random(seed)
    return [(f"net{i:02d}", space.decode(space.sample(rng))) for i in range(n)]


def _init() -> None:
    os.environ["TF_CPP_MIN_LOG_LEVEL"] = "3"
    os.environ["TF_NUM_INTRAOP_THREADS"] = "1"
    os.environ["TF_NUM_INTEROP_THREADS"] = "1"


_EVALUATORS: dict = {}


def _train(net: str, blocks: dict, rname: str) -> dict:
    from latbench.nets.load import arch_from_dict
    from latbench.proxy.accuracy import ProxyEvaluator
    from latbench.proxy.data import load_fashion_mnist

    if rname not in _EVALUATORS:
        _EVALUATORS[rname] = ProxyEvaluator(load_fashion_mnist(), recipe(rname))
    arch = arch_from_dict(blocks)
    t0, c0 = time.monotonic(), time.process_time()
    res = _EVALUATORS[rname].train(arch)
    return {
        "net": net,
        "recipe_name": rname,
        "accuracy": res.accuracy,
        "params": res.params,
        "wall_s": time.monotonic() - t0,
        "cpu_s": time.process_time() - c0,
        "load1": os.getloadavg()[0],
        "threads": 1,
        "date": time.strftime("%Y-%m-%dT%H:%M:%S"),
    }


def _wait_lock() -> None:
    while LOCK.exists():
        time.sleep(30)


def run(out: Path, n: int, workers: int, order=ORDER) -> None:
    out.mkdir(parents=True, exist_ok=True)
    res = out / "results.jsonl"
    done = {(d["net"], d["recipe_name"]) for d in _read(res)}
    jobs = [
        (net, arch.to_dict(), r) for net, arch in networks(n) for r in order if (net, r) not in done
    ]
    print(f"{len(jobs)} trainings to go ({len(done)} done)", file=sys.stderr, flush=True)
    import multiprocessing

    # spawned, not forked: a worker forked from a process with threads can inherit a held lock
    ctx = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(workers, mp_context=ctx, initializer=_init) as pool:
        pending = set()
        while jobs or pending:
            while jobs and len(pending) < workers:
                _wait_lock()
                pending.add(pool.submit(_train, *jobs.pop(0)))
            finished, pending = wait(pending, return_when=FIRST_COMPLETED)
            for f in finished:
                rec = f.result()
                with open(res, "a") as fh:  # one line per training, flushed as it ends
                    fh.write(json.dumps(rec) + "\n")
                print(
                    f"{rec['net']} {rec['recipe_name']}: {rec['accuracy']:.4f} "
                    f"cpu {rec['cpu_s']:.1f} s wall {rec['wall_s']:.1f} s load {rec['load1']:.1f}",
                    file=sys.stderr,
                    flush=True,
                )


def _read(path: Path) -> list[dict]:
    if not path.exists():
        return []
    out = []
    for line in path.read_text().splitlines():
        try:
            out.append(json.loads(line))
        except json.JSONDecodeError:
            continue  # a torn last line
    return out


def tau_ci(a, b, reps: int = 2000, seed: int = 0) -> tuple[float, float, float]:
    """Kendall tau of a vs b, with a 95 % percentile bootstrap interval over networks."""
    import numpy as np
    from scipy.stats import kendalltau

    a, b = np.asarray(a), np.asarray(b)
    rng = np.random.default_rng(seed)
    boots = []
    for _ in range(reps):
        i = rng.integers(0, len(a), len(a))
        t = kendalltau(a[i], b[i]).statistic
        if np.isfinite(t):
            boots.append(t)
    lo, hi = np.percentile(boots, [2.5, 97.5])
    return float(kendalltau(a, b).statistic), float(lo), float(hi)


def halving(by: dict, nets: list[str], group: int, rungs=("f025_s0", "f050_s0", "proxy_s0")):
    """Successive halving inside each batch of `group` (in draw order): every child at the
    first rung, the better half (by accuracy) at the next, and so on. (final accuracy per
    network, CPU s per network trained, summed over rungs and averaged over networks)."""
    final, cpu = {}, []
    for k in range(0, len(nets) - len(nets) % group, group):
        alive = nets[k : k + group]
        for depth, r in enumerate(rungs):
            for n in alive:
                final[n] = by[n][r]["accuracy"]
                cpu.append(by[n][r]["cpu_s"])
            if depth < len(rungs) - 1:
                alive = sorted(alive, key=lambda n: -final[n])[: max(1, len(alive) // 2)]
    return final, sum(cpu) / len(final)


def report(out: Path) -> dict:
    import numpy as np

    by: dict = {}
    for d in _read(out / "results.jsonl"):
        by.setdefault(d["net"], {})[d["recipe_name"]] = d
    nets = [n for n in sorted(by) if all(r in by[n] for r in CORE)]
    group = BATCH if len(nets) >= 2 * BATCH else 4  # a reduced study halves in batches of 4
    if len(nets) < group:  # too few for a rank correlation: the costs only
        cpu = {r: [by[n][r]["cpu_s"] for n in nets] for r in CORE}
        rep = {"networks": len(nets), "too_few_for_tau": True, "cpu_s_per_network": cpu}
        (out / "report.json").write_text(json.dumps(rep, indent=2) + "\n")
        return rep
    nets = nets[: len(nets) - len(nets) % group]  # halving needs whole batches

    def acc(r, ns=nets):
        return [by[n][r]["accuracy"] for n in ns]

    def cpu(r, ns=nets):  # CPU s per network (one TensorFlow thread: CPU s = core s)
        return float(np.mean([by[n][r]["cpu_s"] for n in ns]))

    ref, ref1 = acc("long_s0"), acc("long_s1")
    ref2 = list(np.mean([ref, ref1], 0))
    fin, c_half = halving(by, nets, group)
    recipes = [
        ("today (3000 images, 2 epochs)", acc("proxy_s0"), cpu("proxy_s0"), nets),
        (
            "two-seed average (today's, seeds 0 and 1)",
            list(np.mean([acc("proxy_s0"), acc("proxy_s1")], 0)),
            cpu("proxy_s0") + cpu("proxy_s1"),
            nets,
        ),
        (
            f"successive halving in batches of {group} (1/4, 1/2, 1 of today's steps)",
            [fin[n] for n in nets],
            c_half,
            nets,
        ),  # fmt: skip
        ("1/4 of today's steps", acc("f025_s0"), cpu("f025_s0"), nets),
        ("1/2 of today's steps", acc("f050_s0"), cpu("f050_s0"), nets),
    ]
    big = [n for n in nets if "img2x_s0" in by[n]]
    if len(big) >= 4:
        recipes.append(
            ("more images (6000, 2 epochs)", acc("img2x_s0", big), cpu("img2x_s0", big), big)
        )
    rows = {}
    for name, a, c, ns in recipes:
        idx = [nets.index(n) for n in ns]
        rows[name] = {
            "networks": len(ns),
            "tau_vs_long_s0": tau_ci(a, [ref[i] for i in idx]),
            "tau_vs_mean_of_long_s0_s1": tau_ci(a, [ref2[i] for i in idx]),
            "cpu_s_per_network": c,
            "cpu_s_per_batch_of_8": c * BATCH,
            "x_today": c / cpu("proxy_s0"),
        }
    loads = [d["load1"] for v in by.values() for d in v.values()]
    rep = {
        "networks": len(nets),
        "ceiling_long_s0_vs_long_s1": tau_ci(ref, ref1),
        "proxy_s0_vs_proxy_s1": tau_ci(acc("proxy_s0"), acc("proxy_s1")),
        "recipes": rows,
        "reference_cpu_s_per_network": cpu("long_s0"),
        "load1_min_median_max": [min(loads), float(np.median(loads)), max(loads)],
        "first": min(d["date"] for v in by.values() for d in v.values()),
        "last": max(d["date"] for v in by.values() for d in v.values()),
    }
    (out / "report.json").write_text(json.dumps(rep, indent=2) + "\n")
    return rep


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("what", choices=["run", "report"])
    p.add_argument("out", type=Path)
    p.add_argument("--networks", type=int, default=40)
    p.add_argument("--workers", type=int, default=2)
    p.add_argument("--core", action="store_true", help="leave img2x_s0 out (cheaper)")
    a = p.parse_args()
    if a.what == "run":
        run(a.out, a.networks, a.workers, CORE if a.core else ORDER)
    print(json.dumps(report(a.out), indent=2))


if __name__ == "__main__":
    main()
