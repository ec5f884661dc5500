"""Every search space in the table passes the same tests (spaces are peers)."""

import json
import math
import random

import numpy as np
import pytest

from latbench.devices.measure import summarize
from latbench.errors import InputError
from latbench.nets.load import arch_from_dict
from latbench.nets.spaces import SPACES, get_space
from latbench.nets.spaces.mnasnet import DECISIONS, MnasNetSpace
from latbench.predictors import LayerTable, SpaceTable
from latbench.profiling.lut import LUT, Row

# Distinct layers per space (fp32); pinned because the LUT, its benchmarks and
# every predictor table depend on them. MnasNet's 1382 is the 224x224 space.
DISTINCT_LAYERS = {"mnasnet": 1382, "tiny": 213, "fbnet-cifar100": 106, "fbnet-imagenet": 106}
NETWORKS = {
    "mnasnet": (4 * 2 * 2 * 2 * 3 * 3) ** 7,
    "tiny": (4 * 2 * 2 * 2 * 3 * 3) ** 2,
    "fbnet-cifar100": 9**22,
    "fbnet-imagenet": 9**22,
}

spaces = pytest.mark.parametrize("name", list(SPACES))


def test_every_space_in_the_table_has_pinned_counts():
    assert set(DISTINCT_LAYERS) == set(SPACES) == set(NETWORKS)


@spaces
def test_enumeration_count_and_determinism(name):
    sp = get_space(name)
    a = sp.enumerate_specs()
    assert len(a) == DISTINCT_LAYERS[name]
    assert [s.key for s in a] == sorted(s.key for s in a)
    assert [s.key for s in sp.enumerate_specs()] == [s.key for s in a]
    assert all(s.precision == "int8" for s in sp.enumerate_specs("int8"))
    assert sp.size() == NETWORKS[name] == math.prod(sp.vocab_sizes)


@spaces
def test_enumeration_covers_every_sampled_network(name):
    sp = get_space(name)
    keys = {s.key for s in sp.enumerate_specs()}
    rng = random.Random(3)
    for _ in range(200):
        arch = sp.decode(sp.sample(rng))
        assert {s.key for s in arch.layers()} <= keys


@spaces
def test_the_additive_terms_hold_exactly_the_distinct_layers(name):
    sp = get_space(name)
    from_terms = {s.key for t in sp.additive_terms() for v in t.variants for s in v}
    assert from_terms == {s.key for s in sp.enumerate_specs()}


@spaces
def test_vectorised_space_table_equals_the_per_layer_sum(name, tmp_path):
    """A synthetic LUT (latency a known function of the layer): bookkeeping, not timing."""
    sp = get_space(name)
    lut = LUT.create(
        tmp_path / "lut.csv",
        {"fingerprint": {"device": "host"}, "converter": "c", "precision": "fp32", "space": name},
    )
    for s in sp.enumerate_specs():
        lut.append(Row(s, "ok", summarize([0.01 + s.macs() / 1e7 + s.groups * 1e-3])))
    table = LayerTable(lut, "host", "fp32")
    rng = random.Random(0)
    tokens = np.array([sp.sample(rng) for _ in range(100)] + sp.cheapest_candidates())
    fast = SpaceTable(sp, table).features(tokens)
    slow = table.features([sp.decode([int(x) for x in t]) for t in tokens])
    np.testing.assert_allclose(fast, slow, rtol=1e-9, atol=1e-12)


@spaces
def test_sampling_is_seeded_and_tokens_round_trip_as_text(name):
    sp = get_space(name)
    t1 = [sp.sample(random.Random(7)) for _ in range(3)]
    t2 = [sp.sample(random.Random(7)) for _ in range(3)]
    assert t1 == t2 and len(t1[0]) == sp.num_tokens == len(sp.vocab_sizes)
    text = sp.format_tokens(t1[0])
    assert sp.parse_tokens(text) == t1[0]


@spaces
def test_decoded_networks_round_trip_through_arch_json(name):
    sp = get_space(name)
    rng = random.Random(11)
    for _ in range(20):
        t = sp.sample(rng)
        arch = sp.decode(t)
        assert arch_from_dict(json.loads(arch.to_json())) == arch
        assert arch_from_dict(arch.to_dict(block_strings=False)) == arch
        by_tokens = {"name": arch.name, "space": name, "tokens": sp.format_tokens(t)}
        assert arch_from_dict(by_tokens) == arch
        assert arch_from_dict({**by_tokens, "tokens": t}) == arch


@spaces
def test_decode_and_parse_reject_bad_tokens_naming_the_position(name):
    sp = get_space(name)
    n = sp.num_tokens
    with pytest.raises(InputError, match=f"expected {n} tokens"):
        sp.decode([0] * 5)
    bad = [0] * (n - 1) + [sp.vocab_sizes[-1]]
    with pytest.raises(InputError) as e:
        sp.decode(bad)
    assert e.value.field == f"tokens[{n - 1}]"
    with pytest.raises(InputError) as e:
        sp.parse_tokens("-".join(["0"] * (n - 1) + ["x"]), "row 3")
    assert e.value.field == "row 3"
    with pytest.raises(InputError) as e:
        arch_from_dict({"space": name, "tokens": sp.format_tokens(bad)})
    assert e.value.field == f"tokens[{n - 1}]"


@spaces
def test_cheapest_candidates_are_networks_of_the_space(name):
    sp = get_space(name)
    cands = sp.cheapest_candidates()
    assert cands
    macs = [sp.decode(c).macs() for c in cands]
    rng = random.Random(5)
    typical = np.median([sp.decode(sp.sample(rng)).macs() for _ in range(30)])
    assert min(macs) < typical


@spaces
def test_with_input_changes_only_the_input(name):
    sp = get_space(name)
    small = sp.with_input(28, 10, 1)
    t = sp.sample(random.Random(2))
    a, b = sp.decode(t), small.decode(t)
    assert (b.resolution, b.classes, b.channels) == (28, 10, 1)
    assert a.blocks == b.blocks
    assert sp.describe(t) == small.describe(t) and len(sp.summary()) >= 2


def test_arch_json_by_tokens_names_its_errors():
    with pytest.raises(InputError) as e:
        arch_from_dict({"space": "nope", "tokens": "1-2"})
    assert e.value.field == "space" and "fbnet-imagenet" in str(e.value)
    with pytest.raises(InputError) as e:
        arch_from_dict({"space": "fbnet-cifar100"})
    assert e.value.field == "tokens"
    with pytest.raises(InputError, match="unknown field"):
        arch_from_dict({"space": "fbnet-cifar100", "tokens": "0-" * 21 + "0", "width": 0.5})
    with pytest.raises(InputError) as e:
        arch_from_dict({"space": "fbnet-cifar100", "tokens": 7})
    assert e.value.field == "tokens"


def test_mnasnet_decodes_its_tokens_as_before_the_move():
    sp = MnasNetSpace()
    assert sp == get_space("mnasnet") and len(DECISIONS) == 6
    arch = sp.decode([0, 1, 1, 1, 2, 2] * 7)  # conv k5 se.25 noskip x1.25 +1 everywhere
    first = arch.blocks[0]
    assert (
        first.op,
        first.kernel,
        first.se_ratio,
        first.skip,
        first.out_filters,
        first.repeats,
    ) == ("conv", 5, 0.25, False, 24, 2)
    assert [b.repeats for b in arch.blocks] == [2, 3, 4, 5, 4, 4, 2]


@spaces
def test_zoo_and_baselines_belong_only_to_the_zoos_family(name):
    from latbench.nets import zoo

    sp = get_space(name)
    family = isinstance(sp, MnasNetSpace)  # the zoo's networks are MobileNet-style
    assert sp.calibrate_with_zoo == family
    assert all(b in zoo.ZOO for b in sp.baselines) and bool(sp.baselines) == family


def test_a_token_matrix_is_checked_naming_the_bad_row_and_position():
    import numpy as np

    from latbench.errors import InputError

    sp = get_space("tiny")
    ok = np.zeros((3, sp.num_tokens), dtype=int)
    sp.check_token_matrix(ok)
    bad = ok.copy()
    bad[2, 1] = 99
    with pytest.raises(InputError, match=r"row 2, position 1: token 99"):
        sp.check_token_matrix(bad)
    with pytest.raises(InputError, match="integer matrix of shape"):
        sp.check_token_matrix(ok[:, :-1])
