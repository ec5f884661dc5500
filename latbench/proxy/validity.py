"""Is the proxy accuracy worth ranking networks by? A measurement, not part of the search.

Trains N networks of a space (plus zoo references) with the search's proxy
recipe and with a reference recipe that trains `factor` x longer (more training
images, the same number of epochs), and some of them again with other recipe
seeds. Reports the Kendall rank correlation between proxy and reference
accuracy, the spread of one network's proxy accuracy over recipe seeds, and
the proxy's training time. Every trained network is one JSON line in
`results.jsonl` (appended as it finishes, so a rerun resumes); the report is
`summary.json` plus `validity.png`.

    latbench proxy-validity --out runs/proxy_validity --networks 20
"""

from __future__ import annotations

import json
import random
import time
from dataclasses import asdict, replace
from pathlib import Path

from latbench.errors import InputError
from latbench.fileio import MAX_TABLE_BYTES, append_line, parse_json, read_text, write_atomic
from latbench.proxy.accuracy import ProxyEvaluator
from latbench.proxy.recipe import ProxyRecipe


def _done(path: Path) -> dict[tuple[str, str], dict]:
    out = {}
    if path.exists():
        for n, line in enumerate(read_text(path, limit=MAX_TABLE_BYTES).splitlines(), 1):
            try:
                d = parse_json(line, f"{path}: line {n}", allow_nan=True)
            except InputError:
                continue  # a torn last line
            if not (isinstance(d, dict) and isinstance(d.get("net"), str)
                    and isinstance(d.get("recipe_name"), str)):  # fmt: skip
                raise InputError(f"{path}: line {n} is not a result of this study")
            out[(d["net"], d["recipe_name"])] = d
    return out


def summarize(results: list[dict], seeds: int) -> dict:
    import numpy as np
    from scipy.stats import kendalltau, spearmanr

    by = {}
    for r in results:
        by.setdefault(r["net"], {})[r["recipe_name"]] = r
    both = [
        (v["proxy_s0"]["accuracy"], v["long_s0"]["accuracy"])
        for v in by.values()
        if "proxy_s0" in v and "long_s0" in v
    ]
    p, q = np.array(both).T if both else (np.array([]), np.array([]))
    tau = kendalltau(p, q) if len(both) > 2 else None
    spreads = []
    for net, v in by.items():
        accs = [v[f"proxy_s{s}"]["accuracy"] for s in range(seeds) if f"proxy_s{s}" in v]
        if len(accs) == seeds and seeds > 1:
            spreads.append(
                {
                    "net": net,
                    "accs": accs,
                    "std": float(np.std(accs, ddof=1)),
                    "range": float(max(accs) - min(accs)),
                }
            )
    proxy_cpu = [r["cpu_s"] for r in results if r["recipe_name"].startswith("proxy")]
    proxy_wall = [r["wall_s"] for r in results if r["recipe_name"].startswith("proxy")]
    return {
        "networks_with_both": len(both),
        "kendall_tau": None if tau is None else float(tau.statistic),
        "kendall_p": None if tau is None else float(tau.pvalue),
        "spearman": None if len(both) < 3 else float(spearmanr(p, q).statistic),
        "proxy_acc_min_mean_max": [float(p.min()), float(p.mean()), float(p.max())]
        if both
        else None,
        "long_acc_min_mean_max": [float(q.min()), float(q.mean()), float(q.max())]
        if both
        else None,
        "seed_spread": spreads,
        "mean_seed_std": float(np.mean([s["std"] for s in spreads])) if spreads else None,
        "proxy_cpu_s_median_max": [float(np.median(proxy_cpu)), float(max(proxy_cpu))]
        if proxy_cpu
        else None,
        "proxy_wall_s_median_max": [float(np.median(proxy_wall)), float(max(proxy_wall))]
        if proxy_wall
        else None,
    }


def plot(results: list[dict], summary: dict, path: Path) -> None:
    from latbench.plotting import pyplot, save_figure

    plt = pyplot()

    by = {}
    for r in results:
        by.setdefault(r["net"], {})[r["recipe_name"]] = r["accuracy"]
    pts = [
        (v["proxy_s0"], v["long_s0"], n)
        for n, v in by.items()
        if "proxy_s0" in v and "long_s0" in v
    ]
    fig, ax = plt.subplots(figsize=(6, 5))
    ax.scatter([a for a, _, _ in pts], [b for _, b, _ in pts], s=18)
    for a, b, n in pts:
        if not n.startswith("net"):
            ax.annotate(n, (a, b), fontsize=7)
    for s in summary["seed_spread"]:
        ax.plot(s["accs"], [by[s["net"]]["long_s0"]] * len(s["accs"]), "-", color="grey", lw=0.8)
    ax.set_xlabel("proxy accuracy (search recipe)")
    ax.set_ylabel("accuracy after 5x longer training")
    tau = summary["kendall_tau"]
    ax.set_title(
        f"Proxy validity on Fashion-MNIST: Kendall tau = {tau:.2f} "
        f"(n={summary['networks_with_both']})"
        if tau is not None
        else "proxy validity"
    )
    fig.tight_layout()
    save_figure(fig, path, dpi=120)


def study(
    out_dir: Path,
    networks: int = 20,
    seed: int = 0,
    factor: int = 5,
    seeds: int = 3,
    spread_networks: int = 5,
    space_name: str = "mnasnet",
    progress: bool = True,
) -> dict:
    """Train the study's networks (resuming from `results.jsonl`); write and return the summary.

    `networks` are drawn from the space with `seed`; the reference trains on `factor` x as
    many images (same epochs); the first `spread_networks` are also trained with `seeds`
    recipe seeds for the spread.
    """
    import os

    from tqdm import tqdm

    from latbench.nets import zoo
    from latbench.nets.spaces import get_space
    from latbench.proxy.data import load_fashion_mnist

    out_dir.mkdir(parents=True, exist_ok=True)
    res_path = out_dir / "results.jsonl"
    done = _done(res_path)
    space = get_space(space_name)
    rng = random.Random(seed)
    nets = [("mobilenet_v2_x1", zoo.get("mobilenet_v2_x1")), ("mnasnet_a1", zoo.get("mnasnet_a1"))]
    nets += [(f"net{i:02d}", space.decode(space.sample(rng))) for i in range(networks)]
    ds = load_fashion_mnist()
    base = ProxyRecipe()
    recipes = {f"proxy_s{s}": replace(base, seed=s) for s in range(seeds)}
    recipes["long_s0"] = replace(base, train_images=base.train_images * factor)
    jobs = [(n, a, r) for n, a in nets for r in ("proxy_s0", "long_s0")]
    jobs += [(n, a, f"proxy_s{s}") for n, a in nets[:spread_networks] for s in range(1, seeds)]
    evaluators: dict[str, ProxyEvaluator] = {}
    for net, arch, rname in tqdm(jobs, desc="proxy validity", unit="net", disable=not progress):
        if (net, rname) in done:
            continue
        if rname not in evaluators:
            evaluators[rname] = ProxyEvaluator(ds, recipes[rname], cache_dir=out_dir / "cache")
        t0, c0 = time.monotonic(), time.process_time()
        res = evaluators[rname].train(arch)
        rec = {
            "net": net,
            "recipe_name": rname,
            "recipe": asdict(recipes[rname]),
            "arch": " ".join(arch.to_dict()["blocks"]),
            "accuracy": res.accuracy,
            "params": res.params,
            "wall_s": time.monotonic() - t0,
            "cpu_s": time.process_time() - c0,
            "load1": os.getloadavg()[0],
        }
        append_line(res_path, json.dumps(rec) + "\n")
        done[(net, rname)] = rec
    results = list(_done(res_path).values())
    summary = summarize(results, seeds)
    write_atomic(out_dir / "summary.json", (json.dumps(summary, indent=2) + "\n").encode())
    plot(results, summary, out_dir / "validity.png")
    return summary
