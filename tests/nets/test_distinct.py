"""Counting distinct networks: equivalent token values are merged, nothing else."""

import itertools

import pytest

from latbench.nets.spaces import get_space
from latbench.nets.spaces.distinct import distinct_networks


def test_mnasnet_space_holds_fewer_networks_than_token_sequences():
    sp = get_space("mnasnet")
    n = distinct_networks(sp)
    # x0.75 = x1.0 in blocks 0-1, -1 = 0 layers in blocks 0 and 6, skip inert on 1-layer blocks
    assert sp.size() / 20 < n < sp.size() / 5
    assert n == 15216811431690240  # pinned: docs/arch-format.md and `latbench space` quote it


@pytest.mark.slow
def test_the_count_equals_brute_force_on_the_tiny_space():
    sp = get_space("tiny")
    nets = {
        tuple(s.key for s in sp.decode(list(t)).layers())
        for t in itertools.product(*[range(v) for v in sp.vocab_sizes])
    }
    assert distinct_networks(sp) == len(nets) < sp.size()
