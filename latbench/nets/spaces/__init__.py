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


def get_space(name: str) -> SearchSpace:
    if name not in SPACES:
        raise InputError(f"unknown search space {name!r}; known: {', '.join(SPACES)}", "--space")
    return SPACES[name]


__all__ = ["SPACES", "FBNetSpace", "MnasNetSpace", "SearchSpace", "Term", "get_space"]
