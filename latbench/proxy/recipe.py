"""The proxy recipe: how every network is trained for an accuracy signal (one frozen dataclass).

Light on purpose (no numpy, no TensorFlow): the command line takes its option defaults from it.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass

from latbench.errors import InputError


@dataclass(frozen=True)
class ProxyRecipe:
    """How every network is trained for the search (same for baselines)."""

    resolution: int = 28
    width: float = 0.5
    train_images: int = 3000
    val_images: int = 2000
    epochs: int = 2
    batch: int = 64
    lr: float = 3e-3
    bn_momentum: float = 0.9  # few steps: BN statistics must settle fast
    seed: int = 0
    min_map: int = 4  # proxy strides: no stage shrinks the map below min_map x min_map
    # TensorFlow intra- and inter-op threads per trainer (0: TensorFlow's default pools, which
    # differ between a serial run and Ray workers). Part of the cache key: the count changes
    # the low bits of a training. One thread per trainer with one trainer per core is also the
    # faster way to use a CPU (BENCHMARKS.md).
    threads: int = 1

    def __post_init__(self) -> None:
        if self.min_map < 1 or self.resolution < 1 or not self.width > 0 or self.threads < 0:
            raise InputError(
                f"proxy recipe needs resolution, min_map >= 1, width > 0 and threads >= 0: {self}",
                "recipe",
            )

    def key(self) -> str:
        return json.dumps(asdict(self), sort_keys=True)
