"""Search spaces as peers: one module each behind one interface (`base.SearchSpace`).

SPACES is the name -> space table that CLI choices, listings and the
parametrized tests read; adding a space means one module and one entry here.
"""

from __future__ import annotations

from latbench.errors import InputError
from latbench.nets.spaces.base import SearchSpace, Term
from latbench.nets.spaces.fbnet import FBNET_CIFAR100, FBNET_IMAGENET, FBNetSpace
from latbench.nets.spaces.mnasnet import MNASNET, TINY, MnasNetSpace

SPACES: dict[str, SearchSpace] = {
    "mnasnet": MNASNET,
    "tiny": TINY,  # two MnasNet blocks at 32x32, for tests and demos
    "fbnet-cifar100": FBNET_CIFAR100,
    "fbnet-imagenet": FBNET_IMAGENET,
}


def check_token_count(space: SearchSpace, tokens, where: str = "tokens") -> None:
    """InputError when `tokens` is not as long as the space's sequences, naming the spaces
    whose sequences are that long (a forgotten --space)."""
    n = len(tokens)
    if n == space.num_tokens:
        return
    fit = [name for name, sp in SPACES.items() if sp.num_tokens == n]
    hint = f"; {n} tokens fit the {' or '.join(fit)} space (--space {fit[0]})" if fit else ""
    raise InputError(
        f"expected {space.num_tokens} tokens for the {space.name} space, got {n}{hint}", where
    )


def get_space(name: str) -> SearchSpace:
    if name not in SPACES:
        raise InputError(f"unknown search space {name!r}; known: {', '.join(SPACES)}", "--space")
    return SPACES[name]


__all__ = [
    "check_token_count",
    "SPACES",
    "FBNetSpace",
    "MnasNetSpace",
    "SearchSpace",
    "Term",
    "get_space",
]
