"""Per-network features from a LUT and their vectorised space table (predictors/features.py,
predictors/space_table.py)."""

import random

import numpy as np
import pytest

from latbench.nets.load import arch_from_dict
from latbench.predictors import FEATURES, KINDS, FailedLayers, MissingKeys, SpaceTable
from latbench.profiling.lut import Row


def test_kind_columns_partition_the_lut_time(synthetic_tiny):
    sp, table, _ = synthetic_tiny
    X = table.features([sp.decode(sp.sample(random.Random(i))) for i in range(20)])
    kinds = X[:, [FEATURES.index(f"lut_ms_{k}") for k in KINDS]]
    np.testing.assert_allclose(kinds.sum(axis=1), X[:, FEATURES.index("lut_ms")], rtol=1e-12)


def test_vectorised_space_table_equals_per_layer_sum(synthetic_tiny):
    sp, table, _ = synthetic_tiny
    rng = random.Random(0)
    tokens = np.array([sp.sample(rng) for _ in range(200)])
    fast = SpaceTable(sp, table).features(tokens)
    slow = table.features([sp.decode(list(map(int, t))) for t in tokens])
    np.testing.assert_allclose(fast, slow, rtol=1e-9, atol=1e-12)


def test_missing_keys_are_listed_with_the_command(synthetic_tiny, tiny_arch_dict):
    _, table, _ = synthetic_tiny
    arch = arch_from_dict(tiny_arch_dict)
    with pytest.raises(MissingKeys) as e:
        table.features([arch])
    assert "latbench profile --device host --precision fp32" in str(e.value)
    assert arch.layers()[0].key in str(e.value)


def test_failed_layers_make_a_network_unpredictable_not_unmeasured(synthetic_tiny):
    sp, table, _ = synthetic_tiny
    arch = sp.decode(sp.sample(random.Random(5)))
    victim = arch.layers()[2]
    table.lut.append(Row(victim, "failed", error="run: XNNPACK failed to prepare"))
    assert table.failed([arch]) == [victim.key] and table.missing([arch]) == []
    with pytest.raises(FailedLayers, match="failed to run on host"):
        table.features([arch])


def test_space_table_scores_networks_with_failed_layers_as_nan_without_crashing(synthetic_tiny):
    sp, table, _ = synthetic_tiny
    rng = random.Random(3)
    tokens = [sp.sample(rng) for _ in range(300)]
    victim = sp.decode(tokens[0]).layers()[3]
    table.lut.append(Row(victim, "failed", error="run: boom"))
    st = SpaceTable(sp, table)
    assert st.failed_keys == [victim.key]
    got = st.features(np.array(tokens))[:, 0]
    for t, v in zip(tokens, got):
        arch = sp.decode(t)
        if table.failed([arch]):
            assert np.isnan(v)
        else:
            assert v == pytest.approx(table.features([arch])[0, 0], rel=1e-9)
    assert np.isnan(got).any() and not np.isnan(got).all()
