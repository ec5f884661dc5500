"""Uniform random sampling behind the controller interface: the search baseline."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Sequence

import numpy as np

from latbench.fileio import load_json, write_atomic
from latbench.search.controllers import Controller


class RandomController(Controller):
    """Samples every token uniformly; `update` learns nothing, by design."""

    kind = "random"

    def __init__(self, vocab_sizes: Sequence[int], seed: int = 0):
        self.vocab_sizes = [int(n) for n in vocab_sizes]
        self.rng = np.random.default_rng(seed)
        self.updates = 0

    def sample(self, n: int) -> tuple[list[list[int]], np.ndarray]:
        toks = [[int(self.rng.integers(v)) for v in self.vocab_sizes] for _ in range(n)]
        logp = -sum(math.log(v) for v in self.vocab_sizes)
        return toks, np.full(n, logp)

    def log_prob(self, tokens: Sequence[Sequence[int]]) -> np.ndarray:
        return np.full(len(tokens), -sum(math.log(v) for v in self.vocab_sizes))

    def update(self, tokens, old_logp, rewards) -> dict[str, float]:
        self.updates += 1
        return {}

    def save(self, path: str | Path) -> None:
        """JSON only: the RNG state and the update count."""
        state = {
            "kind": self.kind,
            "vocab_sizes": self.vocab_sizes,
            "updates": self.updates,
            "rng": self.rng.bit_generator.state,
        }
        write_atomic(Path(path).with_suffix(".json"), json.dumps(state).encode())

    def restore(self, path: str | Path) -> None:
        state = load_json(Path(path).with_suffix(".json"), "controller checkpoint", allow_nan=True)
        if state["vocab_sizes"] != self.vocab_sizes:
            raise ValueError("checkpoint is for another search space")
        self.updates = state["updates"]
        self.rng.bit_generator.state = state["rng"]
