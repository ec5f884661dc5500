"""Compound scaling (EfficientNet) under a measured-latency budget.

EfficientNet scales depth by alpha^phi, width by beta^phi and resolution by
gamma^phi, choosing (alpha, beta, gamma) at phi = 1 by a small grid search
under alpha * beta^2 * gamma^2 ~ 2 (FLOPs double). latbench offers that FLOPs
constraint and the measured-latency one: keep the *predicted latency* of the
phi = 1 network at about `target_ratio` times the base network's, then pick by
proxy accuracy. A family for a list of latency budgets follows by searching
phi per budget. Every network's latency comes from the device's LUT, growing
it on demand (`OnDemandLatency`), so new widths and resolutions are measured,
not guessed.

Latency grows with width and resolution, which lets the grid skip every
(beta, gamma) pair that dominates one already too slow at alpha = 1: those
layers are never profiled.
"""

from __future__ import annotations

import itertools
import math
from dataclasses import dataclass, field, replace
from typing import Callable, Sequence

from latbench.errors import InputError
from latbench.nets.arch import Arch

CONSTRAINTS = ("latency", "flops")


@dataclass(frozen=True)
class ScaleConfig:
    """The grid search at phi = 1 and the family search."""

    constraint: str = "latency"  # latency: predicted latency ratio | flops: alpha*beta^2*gamma^2
    target_ratio: float = 2.0
    tolerance: float = 0.1  # a candidate's ratio within target * (1 +- tolerance)
    alphas: tuple[float, ...] = (1.0, 1.2, 1.4, 1.6, 1.8, 2.0)
    betas: tuple[float, ...] = (1.0, 1.1, 1.2, 1.3)
    gammas: tuple[float, ...] = (1.0, 1.1, 1.2, 1.3)
    max_candidates: int = 6  # proxy-trained per grid search, those closest to the target ratio
    resolution_step: int = 8  # scaled resolutions are rounded to a multiple of this
    phi_tolerance: float = 0.02

    def __post_init__(self) -> None:
        if self.constraint not in CONSTRAINTS:
            raise InputError(
                f"must be one of {CONSTRAINTS}, got {self.constraint!r}", "--constraint"
            )
        for name in ("alphas", "betas", "gammas"):
            vals = getattr(self, name)
            if not vals or min(vals) < 1.0:
                raise InputError(f"coefficients must be >= 1, got {vals}", f"--{name}")
        if self.target_ratio <= 1.0:
            raise InputError(f"must be > 1, got {self.target_ratio}", "--target-ratio")


@dataclass(frozen=True)
class Coefficients:
    alpha: float
    beta: float
    gamma: float

    def at(self, phi: float) -> tuple[float, float, float]:
        return self.alpha**phi, self.beta**phi, self.gamma**phi

    @property
    def flops_ratio(self) -> float:
        return self.alpha * self.beta**2 * self.gamma**2

    def label(self) -> str:
        return f"a{self.alpha:g}_b{self.beta:g}_g{self.gamma:g}"


def scale_arch(
    arch: Arch,
    depth: float,
    width: float,
    resolution: float,
    step: int = 8,
    name: str | None = None,
) -> Arch:
    """The network with every block's repeats x depth (ceil), width x width, input x resolution.

    Repeats round up (EfficientNet's `round_repeats`); widths go through the
    width multiplier, so every layer stays a multiple of 8 (`round_filters`);
    the resolution rounds to a multiple of `step`.
    """
    if min(depth, width, resolution) <= 0:
        raise InputError(f"scaling factors must be > 0, got {(depth, width, resolution)}")
    blocks = tuple(
        replace(b, repeats=int(math.ceil(b.repeats * depth - 1e-9))) for b in arch.blocks
    )
    res = max(step, int(round(arch.resolution * resolution / step)) * step)
    return replace(
        arch,
        name=name or arch.name,
        blocks=blocks,
        width=round(arch.width * width, 6),
        resolution=res,
    )


@dataclass
class Candidate:
    coef: Coefficients
    arch: Arch
    latency_ms: float | None = None
    ratio: float | None = None  # of the judged quantity (latency or FLOPs) to the base's
    accuracy: float | None = None
    extra: dict = field(default_factory=dict)


def grid(cfg: ScaleConfig) -> list[Coefficients]:
    return [
        Coefficients(a, b, g) for a, b, g in itertools.product(cfg.alphas, cfg.betas, cfg.gammas)
    ]


def _dominates(p: tuple[float, float], q: tuple[float, float]) -> bool:
    return p[0] >= q[0] and p[1] >= q[1]


def grid_search(
    base: Arch,
    cfg: ScaleConfig,
    predict: Callable[[Sequence[Arch]], "object"],
    accuracy: Callable[[Arch, Coefficients], float],
    log=print,
) -> list[Candidate]:
    """All grid points judged, the chosen one first; accuracy only for the closest few.

    predict(archs) -> latencies (ms); accuracy(arch, coef) -> proxy accuracy.
    """
    lo, hi = cfg.target_ratio * (1 - cfg.tolerance), cfg.target_ratio * (1 + cfg.tolerance)
    cands: list[Candidate] = []
    if cfg.constraint == "flops":
        for c in grid(cfg):
            cands.append(
                Candidate(
                    c,
                    scale_arch(
                        base, *c.at(1.0), step=cfg.resolution_step, name=f"{base.name}_{c.label()}"
                    ),
                    ratio=c.flops_ratio,
                )
            )
    else:
        base_ms = float(predict([base])[0])
        too_slow: list[tuple[float, float]] = []
        for b, g in sorted(itertools.product(cfg.betas, cfg.gammas)):
            if any(_dominates((b, g), t) for t in too_slow):
                log(f"  skip beta={b:g} gamma={g:g}: dominates a pair already too slow at alpha=1")
                continue
            archs = [
                scale_arch(
                    base,
                    a,
                    b,
                    g,
                    cfg.resolution_step,
                    name=f"{base.name}_{Coefficients(a, b, g).label()}",
                )
                for a in sorted(cfg.alphas)
            ]
            lat = [float(x) for x in predict(archs)]
            for a, arch, ms in zip(sorted(cfg.alphas), archs, lat):
                cands.append(Candidate(Coefficients(a, b, g), arch, ms, ms / base_ms))
            if lat[0] / base_ms > hi:
                too_slow.append((b, g))
    inside, seen = [], set()
    for c in sorted(cands, key=lambda c: (abs(c.ratio - cfg.target_ratio), c.coef.flops_ratio)):
        digest = c.arch.digest()  # e.g. alpha 1.8 and 2.0 round to the same repeats
        if lo <= c.ratio <= hi and digest not in seen:
            seen.add(digest)
            inside.append(c)
    if not inside:
        raise InputError(
            f"no grid point has a {cfg.constraint} ratio within "
            f"[{lo:.2f}, {hi:.2f}]: widen --tolerance or the grid"
        )
    for c in inside[: cfg.max_candidates]:
        c.accuracy = float(accuracy(c.arch, c.coef))
        log(f"  {c.coef.label():18} ratio {c.ratio:5.2f}  proxy accuracy {c.accuracy:.4f}")
    judged = [c for c in inside if c.accuracy is not None]
    best = max(judged, key=lambda c: (c.accuracy, -abs(c.ratio - cfg.target_ratio)))
    return [best] + [c for c in cands if c is not best]


def phi_for_budget(
    base: Arch,
    coef: Coefficients,
    budget_ms: float,
    predict: Callable[[Sequence[Arch]], "object"],
    step: int = 8,
    tol: float = 0.02,
    phi_max: float = 8.0,
) -> tuple[float, Arch, float]:
    """The largest phi whose scaled network is predicted within `budget_ms` (bisection).

    Returns (phi, network, predicted ms). phi = 0 is the base network; a budget
    below the base network's latency is an input error.
    """

    def lat(phi: float) -> tuple[Arch, float]:
        a = scale_arch(base, *coef.at(phi), step=step, name=f"{base.name}_phi{phi:.2f}")
        return a, float(predict([a])[0])

    a0, ms0 = lat(0.0)
    if ms0 > budget_ms:
        raise InputError(
            f"the base network is predicted at {ms0:.2f} ms, above the budget "
            f"{budget_ms:g} ms: nothing to scale up to",
            "--budgets-ms",
        )
    lo, lo_arch, lo_ms = 0.0, a0, ms0
    hi = 1.0
    while True:
        a, ms = lat(hi)
        if ms > budget_ms:
            break
        lo, lo_arch, lo_ms = hi, a, ms
        hi *= 2
        if hi > phi_max:
            raise InputError(f"budget {budget_ms:g} ms is beyond phi = {phi_max:g}", "--budgets-ms")
    while hi - lo > tol:
        mid = (lo + hi) / 2
        a, ms = lat(mid)
        if ms <= budget_ms:
            lo, lo_arch, lo_ms = mid, a, ms
        else:
            hi = mid
    return lo, lo_arch, lo_ms


def proxy_resolution(base_resolution: int, gamma: float, step: int = 4) -> int:
    """The proxy input for a resolution factor, so resolution scaling is visible to the proxy."""
    return max(step, int(round(base_resolution * gamma / step)) * step)
