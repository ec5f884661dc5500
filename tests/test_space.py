import random

import pytest

from latbench.errors import InputError
from latbench.space import DECISIONS, SearchSpace, get_space

# The number of distinct layers in the MnasNet space at 224x224; pinned because
# the LUT, its benchmarks and every predictor table depend on it.
MNASNET_DISTINCT_LAYERS = 1382


def test_enumeration_count_and_determinism():
    sp = get_space("mnasnet")
    a = sp.enumerate_specs()
    assert len(a) == MNASNET_DISTINCT_LAYERS
    assert [s.key for s in a] == sorted(s.key for s in a)
    assert [s.key for s in sp.enumerate_specs()] == [s.key for s in a]
    assert all(s.precision == "int8" for s in sp.enumerate_specs("int8"))


def test_enumeration_covers_every_sampled_network():
    sp = get_space("mnasnet")
    keys = {s.key for s in sp.enumerate_specs()}
    rng = random.Random(3)
    for _ in range(300):
        arch = sp.decode(sp.sample(rng))
        assert {s.key for s in arch.layers()} <= keys


def test_sampling_is_seeded_and_tokens_decode():
    sp = SearchSpace()
    t1 = [sp.sample(random.Random(7)) for _ in range(3)]
    t2 = [sp.sample(random.Random(7)) for _ in range(3)]
    assert t1 == t2 and len(t1[0]) == 7 * len(DECISIONS)
    assert sp.size() == (4 * 2 * 2 * 2 * 3 * 3) ** 7
    arch = sp.decode([0, 1, 1, 1, 2, 2] * 7)  # conv k5 se.25 noskip x1.25 +1 everywhere
    first = arch.blocks[0]
    assert (first.op, first.kernel, first.se_ratio, first.skip, first.out_filters, first.repeats) == \
        ("conv", 5, 0.25, False, 24, 2)
    assert [b.repeats for b in arch.blocks] == [2, 3, 4, 5, 4, 4, 2]


def test_decode_rejects_bad_tokens():
    sp = SearchSpace()
    with pytest.raises(InputError, match="expected 42 tokens"):
        sp.decode([0] * 5)
    with pytest.raises(InputError) as e:
        sp.decode([0] * 41 + [3])
    assert e.value.field == "tokens[41]"
