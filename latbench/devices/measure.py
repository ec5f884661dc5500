"""The measurement protocol: warm up, time until the median is pinned down.

Pure statistics plus one loop (`run_protocol`) that any device can drive with
its own timer. The stopping rule: the 95 % confidence interval of the median
(distribution-free, from order statistics) is within `target_ci` of the median
on each side, or a run / time cap is hit. Every Measurement records how many
timed runs it took and how tight it got, and which statistic median_ms is
(extra["stat"]: "median" of single timed runs here; a phone, whose tool
prints only means, records "median_of_means", see devices/adb.py).
"""

from __future__ import annotations

import math
import time
from dataclasses import asdict, dataclass, field
from typing import Any, Callable, Sequence

import numpy as np


@dataclass(frozen=True)
class Protocol:
    warmup_runs: int = 5
    min_runs: int = 15
    max_runs: int = 400
    batch_runs: int = 10
    max_seconds: float = 3.0
    target_ci: float = 0.01  # half-width of the 95 % CI of the median, relative
    clock: str = "auto"  # host only: auto | wall | thread_cpu (see devices/host_worker.py)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "Protocol":
        known = set(cls.__dataclass_fields__)
        unknown = set(d) - known
        if unknown:
            from latbench.errors import InputError

            raise InputError(
                f"unknown field(s) {sorted(unknown)}; known: {sorted(known)}", "protocol"
            )
        for k, v in d.items():  # a number of the default's type, finite, in [0, 1e6]
            want = type(getattr(cls, k))
            ok = (
                isinstance(v, str)
                if want is str
                else isinstance(v, (int, float) if want is float else int)
                and not isinstance(v, bool)
                and math.isfinite(v)
                and 0 <= v <= 1e6
            )
            if not ok:
                from latbench.errors import InputError

                raise InputError(
                    f"expected a {want.__name__} in [0, 1e6], got {v!r}", f"protocol.{k}"
                )
        return cls(**d)


@dataclass(frozen=True)
class Measurement:
    """Latency of one model on one device, in milliseconds."""

    median_ms: float
    p10_ms: float
    p90_ms: float
    std_ms: float
    mean_ms: float
    runs: int
    ci_rel: float  # achieved relative half-width of the 95 % CI of the median
    extra: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def median_ci(samples: Sequence[float], z: float = 1.96) -> tuple[float, float]:
    """Distribution-free CI of the median from order statistics (binomial)."""
    x = np.sort(np.asarray(samples, dtype=float))
    n = len(x)
    if n < 3:
        return float(x[0]), float(x[-1])
    half = z * math.sqrt(n) / 2
    lo = max(0, int(math.floor(n / 2 - half)))
    hi = min(n - 1, int(math.ceil(n / 2 + half)))
    return float(x[lo]), float(x[hi])


def ci_rel(samples: Sequence[float]) -> float:
    med = float(np.median(samples))
    lo, hi = median_ci(samples)
    return max(med - lo, hi - med) / med if med > 0 else math.inf


def summarize(samples_ms: Sequence[float], extra: dict[str, Any] | None = None) -> Measurement:
    x = np.asarray(samples_ms, dtype=float)
    return Measurement(
        median_ms=float(np.median(x)),
        p10_ms=float(np.percentile(x, 10)),
        p90_ms=float(np.percentile(x, 90)),
        std_ms=float(np.std(x, ddof=1)) if len(x) > 1 else 0.0,
        mean_ms=float(np.mean(x)),
        runs=int(len(x)),
        ci_rel=ci_rel(x),
        extra={"stat": "median", "min_ms": float(np.min(x)), **(extra or {})},
    )


def run_protocol(
    time_once: Callable[[], float], protocol: Protocol, clock: Callable[[], float] = time.monotonic
) -> Measurement:
    """Warm up, then time in batches until the median's CI is tight or a cap hits.

    `time_once` runs the model once and returns its latency in ms.
    """
    for _ in range(protocol.warmup_runs):
        time_once()
    samples: list[float] = []
    start = clock()
    while True:
        for _ in range(protocol.batch_runs):
            samples.append(time_once())
        n = len(samples)
        if n >= protocol.max_runs or clock() - start >= protocol.max_seconds:
            break
        if n >= protocol.min_runs and ci_rel(samples) <= protocol.target_ci:
            break
    return summarize(samples)


# t(0.975, n - 1) for the few bursts a measurement spreads over (scipy-free)
_T975 = {2: 12.706, 3: 4.303, 4: 3.182, 5: 2.776, 6: 2.571, 7: 2.447, 8: 2.365, 9: 2.306}


def combine_bursts(bursts: Sequence[Measurement], span_s: float) -> Measurement:
    """One measurement from several bursts of the protocol taken seconds apart.

    A burst's own confidence interval only says how steady the device was for that
    burst; a machine whose speed moves over seconds (load, clocks, heat) breaks it.
    The interval claimed here is the wider of (a) the bursts' within-burst intervals
    and (b) the 95 % t-interval of the burst medians, so it holds over time. The
    median is the median of the burst medians; flags of any burst are kept.
    """
    if not bursts:
        raise ValueError("no bursts")
    meds = np.array([b.median_ms for b in bursts], float)
    med = float(np.median(meds))
    n = len(meds)
    within = max(b.ci_rel for b in bursts)
    between = math.inf if n < 2 else _T975.get(n, 1.96) * float(np.std(meds, ddof=1)) / math.sqrt(n)
    ci = max(within, between / med if med > 0 else math.inf)
    flags = sorted({f for b in bursts for f in (b.extra.get("flags") or [])})
    # the state of the most disturbed burst (contended, else retimed, else the last)
    worst = max(
        bursts,
        key=lambda b: (
            "contended" in (b.extra.get("flags") or []),
            bool((b.extra.get("state") or {}).get("retimed")),
        ),
    )
    extra = dict(
        worst.extra,
        bursts=n,
        burst_medians_ms=[round(float(x), 6) for x in meds],
        span_s=round(float(span_s), 2),
        ci_basis="bursts",
        flags=flags,
        min_ms=min(float(b.extra.get("min_ms", b.median_ms)) for b in bursts),
    )
    return Measurement(
        median_ms=med,
        p10_ms=float(np.median([b.p10_ms for b in bursts])),
        p90_ms=float(np.median([b.p90_ms for b in bursts])),
        std_ms=float(np.sqrt(np.mean([b.std_ms**2 for b in bursts]) + np.var(meds))),
        mean_ms=float(np.mean([b.mean_ms for b in bursts])),
        runs=int(sum(b.runs for b in bursts)),
        ci_rel=ci,
        extra=extra,
    )
