"""The controller interface and the name -> controller table the search and its CLI read.

A controller proposes token sequences of a search space and learns from their rewards, as
Ray Tune's `Searcher` suggests configurations and learns from results: `sample` a batch,
`update` on its rewards, `save` / `restore` between batches so an interrupted run resumes
exactly. The table maps a name to the module and class that implement it; a controller's
module is imported only when one is made, so choosing `random` never loads TensorFlow (which
the PPO controller needs).
"""

from __future__ import annotations

import importlib
from abc import ABC, abstractmethod
from pathlib import Path
from typing import ClassVar, Sequence

import numpy as np

from latbench.errors import InputError


class Controller(ABC):
    """Proposes token sequences; one per position, token t in range(vocab_sizes[t])."""

    kind: ClassVar[str]  # its name in CONTROLLERS, written into its checkpoints

    @abstractmethod
    def __init__(self, vocab_sizes: Sequence[int], seed: int = 0) -> None:
        """A fresh controller; the seed fixes every token it will sample."""

    @abstractmethod
    def sample(self, n: int) -> tuple[list[list[int]], np.ndarray]:
        """n token sequences and their log-probabilities under the current policy."""

    @abstractmethod
    def log_prob(self, tokens: Sequence[Sequence[int]]) -> np.ndarray:
        """Log-probabilities of given sequences under the current policy."""

    @abstractmethod
    def update(
        self, tokens: Sequence[Sequence[int]], old_logp: np.ndarray, rewards: Sequence[float]
    ) -> dict[str, float]:
        """Learn from one batch's rewards; training statistics for the run's log."""

    @abstractmethod
    def save(self, path: str | Path) -> None:
        """Write the whole state next to `path` (suffixes are the controller's); no pickle."""

    @abstractmethod
    def restore(self, path: str | Path) -> None:
        """Read what `save` wrote; a checkpoint of another space is refused."""


# name -> (module, class): imported on demand (see the module docstring)
CONTROLLERS: dict[str, tuple[str, str]] = {
    "ppo": ("latbench.search.ppo", "PPOController"),
    "random": ("latbench.search.random_search", "RandomController"),
}


def controller_class(kind: str) -> type[Controller]:
    if kind not in CONTROLLERS:
        raise InputError(f"must be one of {', '.join(CONTROLLERS)}, got {kind!r}", "--controller")
    module, name = CONTROLLERS[kind]
    return getattr(importlib.import_module(module), name)


def make_controller(kind: str, vocab_sizes: Sequence[int], seed: int) -> Controller:
    """A fresh controller of the given kind."""
    return controller_class(kind)(vocab_sizes, seed)
