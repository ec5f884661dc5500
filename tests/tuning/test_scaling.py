"""Compound scaling: the scaled networks against EfficientNet's published ones, the grid, the budgets."""

from __future__ import annotations

import json

import numpy as np
import pytest

from latbench.errors import InputError
from latbench.nets import zoo
from latbench.tuning.scaling import (
    Coefficients,
    ScaleConfig,
    grid_search,
    phi_for_budget,
    scale_arch,
)
from tests.conftest import latbench_cli


def macs_ms(archs):
    """A real, monotone cost (MACs) standing in for a latency predictor in the pure tests."""
    return np.array([a.macs() / 1e6 for a in archs])


@pytest.mark.parametrize(
    "name,d,w,res,published_m,repeats",
    [
        # EfficientNet-B1 and -B2 are B0 scaled by (depth, width, resolution): Tan & Le 2019, Table 1
        ("b1", 1.1, 1.0, 240, 7.8, [2, 3, 3, 4, 4, 5, 2]),
        ("b2", 1.2, 1.1, 260, 9.2, [2, 3, 3, 4, 4, 5, 2]),
    ],
)
def test_scaling_b0_gives_efficientnets_published_networks(name, d, w, res, published_m, repeats):
    b0 = zoo.get("efficientnet_b0")
    a = scale_arch(b0, d, w, res / 224, step=4)
    assert a.resolution == res
    assert [b.repeats for b in a.blocks] == repeats
    assert a.params(trainable=True) / 1e6 == pytest.approx(published_m, rel=0.03)


def test_scaled_flops_follow_alpha_beta2_gamma2():
    b0 = zoo.get("efficientnet_b0")
    c = Coefficients(1.2, 1.1, 1.15)  # EfficientNet's choice, ~2x FLOPs
    a = scale_arch(b0, *c.at(1.0), step=4)
    assert a.macs() / b0.macs() == pytest.approx(c.flops_ratio, rel=0.2)


def test_the_latency_grid_never_measures_pairs_that_dominate_one_already_too_slow():
    base = zoo.get("mnasnet_small")
    seen = []

    def predict(archs):
        seen.extend((a.width, a.resolution) for a in archs)
        return macs_ms(archs)

    cfg = ScaleConfig(
        target_ratio=1.5,
        tolerance=0.15,
        alphas=(1.0, 1.25, 1.5),
        betas=(1.0, 1.1, 1.3, 1.6),
        gammas=(1.0, 1.1, 1.3, 1.6),
        max_candidates=2,
    )
    ranked = grid_search(
        base, cfg, predict, lambda arch, coef: 1.0 / coef.alpha, log=lambda m: None
    )
    best = ranked[0]
    assert 1.275 <= best.ratio <= 1.725 and best.accuracy is not None
    # (1.3, 1.3) is ~2.9x MACs at alpha=1, so (1.6, *) and (*, 1.6) beyond it are skipped
    assert (round(base.width * 1.6, 6), scale_arch(base, 1, 1, 1.6).resolution) not in seen
    judged = [c for c in ranked if c.accuracy is not None]
    assert len(judged) == 2 and best.accuracy == max(c.accuracy for c in judged)


def test_the_flops_constraint_keeps_alpha_beta2_gamma2_near_two():
    cfg = ScaleConfig(constraint="flops", tolerance=0.05)
    ranked = grid_search(
        zoo.get("efficientnet_b0"), cfg, macs_ms, lambda arch, coef: coef.gamma, log=lambda m: None
    )
    assert 1.9 <= ranked[0].coef.flops_ratio <= 2.1


def test_the_budget_search_returns_the_largest_network_within_the_budget():
    base = zoo.get("mnasnet_small")
    c = Coefficients(1.2, 1.1, 1.15)
    base_ms = float(macs_ms([base])[0])
    phi, arch, ms = phi_for_budget(base, c, 2 * base_ms, macs_ms, step=8, tol=0.02)
    assert ms <= 2 * base_ms and phi > 0
    over = scale_arch(base, *c.at(phi + 0.05), step=8)
    assert macs_ms([over])[0] > 2 * base_ms or over.macs() == arch.macs()
    with pytest.raises(InputError, match="below|above"):
        phi_for_budget(base, c, base_ms / 2, macs_ms)


def test_coefficients_below_one_are_refused():
    with pytest.raises(InputError, match="--betas"):
        ScaleConfig(betas=(0.9, 1.0))


@pytest.mark.slow
def test_scale_writes_a_family_with_predicted_and_measured_latency(tmp_path, fast_host):
    import itertools

    from latbench.nets.load import arch_from_dict
    from latbench.predictors.ondemand import OnDemandLatency

    small = {
        "name": "small",
        "resolution": 32,
        "act": "relu",
        "stem": {"filters": 16},
        "blocks": ["r1_k3_s11_e1_i16_o16_noskip", "r2_k3_s22_e4_i16_o24"],
        "head": {"filters": 64},
        "classes": 10,
    }
    arch = tmp_path / "small.json"
    arch.write_text(json.dumps(small))
    lut, out = tmp_path / "lut", tmp_path / "run"
    grid = {"--alphas": (1, 2), "--betas": (1, 1.3), "--gammas": (1, 1.3)}
    # the base network's latency, and the grid's layers, measured here in one batch (the
    # budget search's layers are left to the command to profile on demand)
    base = arch_from_dict(small)
    points = [scale_arch(base, a, b, g, 8) for a, b, g in itertools.product(*grid.values())]
    with OnDemandLatency(str(fast_host), lut_dir=lut, progress=False, log=lambda m: None) as lat:
        assert lat.ensure([base, *points]) > 0
        base_ms = float(lat.predict([base])[0])
    r = latbench_cli(
        "scale",
        arch,
        "--device",
        fast_host,
        "--lut-dir",
        lut,
        "--out",
        out,
        *[x for k, v in grid.items() for x in (k, ",".join(map(str, v)))],
        "--tolerance",
        "0.35",
        "--max-candidates",
        "2",
        "--proxy-resolution",
        "16",
        "--proxy-train",
        "300",
        "--budgets-ms",
        f"{1.6 * base_ms:.4f}",
        "--no-progress",
    )
    assert r.returncode == 0, r.stderr
    s = json.loads(r.stdout)
    assert s["base"]["predicted_ms"] == pytest.approx(base_ms, abs=1e-4)
    assert s["chosen"]["accuracy"] is not None
    (fam,) = s["family"]
    assert fam["predicted_ms"] <= 1.6 * base_ms and fam["measured_ms"] > 0
    assert (out / f"{fam['name']}.json").exists() and (out / "scale.json").exists()
