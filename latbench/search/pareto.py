"""The accuracy/latency Pareto front and its 2-D hypervolume (pure functions).

Lower latency and higher accuracy are better. The hypervolume is the area
dominated by the front inside the box bounded by a reference point
(ref_ms, ref_acc): one number that compares two searches' whole fronts.
"""

from __future__ import annotations

import math
from typing import Sequence


def pareto_front(lat_ms: Sequence[float], acc: Sequence[float]) -> list[int]:
    """Indices of non-dominated points, by increasing latency.

    A point is dominated when another is no slower and no less accurate and
    better in one of the two. Exact duplicates keep their first index only.
    """
    pts = [
        (float(lat), -float(a), i)
        for i, (lat, a) in enumerate(zip(lat_ms, acc))
        if math.isfinite(lat) and math.isfinite(a)
    ]
    pts.sort()
    front: list[int] = []
    best_acc = -math.inf
    for _lat, neg_a, i in pts:
        if -neg_a > best_acc:
            front.append(i)
            best_acc = -neg_a
    return front


def hypervolume(
    lat_ms: Sequence[float], acc: Sequence[float], ref_ms: float, ref_acc: float = 0.0
) -> float:
    """Area dominated by the points within [.., ref_ms] x [ref_acc, ..]."""
    idx = [i for i in pareto_front(lat_ms, acc) if lat_ms[i] < ref_ms and acc[i] > ref_acc]
    area = 0.0
    for j, i in enumerate(idx):
        nxt = lat_ms[idx[j + 1]] if j + 1 < len(idx) else ref_ms
        area += (nxt - lat_ms[i]) * (acc[i] - ref_acc)
    return float(area)
