"""The interface every search space implements, and what the rest of latbench may ask of one.

A space is a fixed list of token positions, each with a number of choices. It
samples token sequences, decodes one into an `Arch`, lists every distinct layer
any of its networks can contain (what `latbench profile --space` times), and
describes each network as a sum of additive terms, so a predictor can tabulate
per-term features once and score a whole token matrix with a few gathers
(`predict.SpaceTable`). Code outside `latbench/spaces/` only uses this class;
it never asks which space it holds.
"""

from __future__ import annotations

import math
import random
from abc import ABC, abstractmethod
from dataclasses import dataclass
from typing import Callable, Sequence

from latbench.errors import InputError
from latbench.nets.arch import Arch, LayerSpec


@dataclass(frozen=True)
class Term:
    """One additive part of every network of a space.

    `variants[i]` are the layers the part holds in its i-th form (empty: no
    layer, e.g. an identity skip); `index(tokens)` picks the form of each row
    of an (N, num_tokens) int array, `count(tokens)` how many times it occurs
    (None: once). A network's layers are the concatenation over terms of
    `count` copies of its chosen variant, in some order.
    """

    variants: tuple[tuple[LayerSpec, ...], ...]
    index: Callable  # (N, T) int array -> (N,) int array
    count: Callable | None = None  # (N, T) int array -> (N,) array, or None for 1


class SearchSpace(ABC):
    """A search space: token positions, decoding, distinct layers, additive terms."""

    name: str
    baselines: tuple[str, ...] = ()  # zoo networks a search of this space is compared with
    calibrate_with_zoo: bool = False  # the zoo is of this space's family: calibrate measures it too

    # -- what subclasses define ------------------------------------------------
    @property
    @abstractmethod
    def vocab_sizes(self) -> list[int]:
        """Number of choices for each token position, in order."""

    @abstractmethod
    def decode(self, tokens: Sequence[int], name: str | None = None) -> Arch:
        """Tokens -> Arch (checks the tokens first: `check_tokens`)."""

    @abstractmethod
    def describe(self, tokens: Sequence[int]) -> list[dict]:
        """Human-readable choices of a network (for CSVs, plots and notebooks)."""

    @abstractmethod
    def summary(self) -> list[str]:
        """Lines describing the decisions of the space (for `latbench space`)."""

    @abstractmethod
    def additive_terms(self, precision: str = "fp32") -> list[Term]:
        """The network as a sum of terms (see `Term`)."""

    @abstractmethod
    def cheapest_candidates(self) -> list[list[int]]:
        """A few networks at the cheap corner: a latency target must be reachable by one."""

    @abstractmethod
    def with_input(self, resolution: int, classes: int, channels: int) -> "SearchSpace":
        """The same space at another input size (proxy training on small images)."""

    # -- shared behaviour --------------------------------------------------------
    @property
    def num_tokens(self) -> int:
        return len(self.vocab_sizes)

    def size(self) -> int:
        """Number of token sequences in the space."""
        return math.prod(self.vocab_sizes)

    def decisions(self) -> dict[str, list]:
        """Each decision's name and its choices (repeated per block/layer by the tokens)."""
        return {f"token{i}": list(range(n)) for i, n in enumerate(self.vocab_sizes)}

    def distinct_networks(self) -> int:
        """Number of different networks: token sequences up to equivalent values.

        Every sequence is its own network unless a space says otherwise.
        """
        return self.size()

    def sample(self, rng: random.Random) -> list[int]:
        """Uniform over the token sequences."""
        return [rng.randrange(n) for n in self.vocab_sizes]

    def check_tokens(self, tokens: Sequence[int], where: str = "tokens") -> None:
        """InputError naming the first bad position, if any."""
        if len(tokens) != self.num_tokens:
            raise InputError(
                f"expected {self.num_tokens} tokens for the {self.name} space, got {len(tokens)}",
                where,
            )
        for i, (t, n) in enumerate(zip(tokens, self.vocab_sizes)):
            if not (isinstance(t, int) and not isinstance(t, bool) and 0 <= t < n):
                raise InputError(f"must be an int in [0, {n}), got {t!r}", f"{where}[{i}]")

    def check_token_matrix(self, tokens, where: str = "tokens") -> None:
        """`check_tokens` for an (N, num_tokens) integer matrix, vectorised: InputError naming
        the first bad row and position."""
        import numpy as np

        t = np.asarray(tokens)
        vocab = np.asarray(self.vocab_sizes)
        if t.ndim != 2 or t.shape[1] != len(vocab) or not np.issubdtype(t.dtype, np.integer):
            raise InputError(
                f"expected an integer matrix of shape (N, {len(vocab)}) for the {self.name} "
                f"space, got {t.dtype} {t.shape}",
                where,
            )
        bad = np.argwhere((t < 0) | (t >= vocab))
        if len(bad):
            r, c = bad[0]
            raise InputError(
                f"row {r}, position {c}: token {t[r, c]} outside 0..{vocab[c] - 1}", where
            )

    def parse_tokens(self, text: str, where: str = "tokens") -> list[int]:
        """'7-8-1-...' -> [7, 8, 1, ...], checked against the space."""
        parts = str(text).strip().split("-")
        try:
            tokens = [int(p) for p in parts]
        except ValueError:
            raise InputError(
                f"expected {self.num_tokens} integers joined by '-', got {text!r}", where
            ) from None
        self.check_tokens(tokens, where)
        return tokens

    @staticmethod
    def format_tokens(tokens: Sequence[int]) -> str:
        return "-".join(str(int(t)) for t in tokens)

    def enumerate_specs(self, precision: str = "fp32") -> list[LayerSpec]:
        """Every distinct LayerSpec any network of the space can contain, sorted by key."""
        seen: dict[str, LayerSpec] = {}
        for term in self.additive_terms(precision):
            for variant in term.variants:
                for s in variant:
                    seen.setdefault(s.key, s)
        return sorted(seen.values(), key=lambda s: s.key)
