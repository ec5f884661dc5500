import json
import random

import numpy as np
import pytest

from latbench.arch import arch_from_dict
from latbench.errors import InputError
from latbench.lut import LUT, Row
from latbench.measure import summarize
from latbench.predict import (FEATURES, LayerTable, LinearPredictor, LutSumPredictor, MissingKeys,
                              load_predictor, predictor_path, save_predictors)
from latbench.space import get_space

META = {"fingerprint": {"device": "host"}, "converter": "c", "precision": "fp32", "space": "tiny"}


def _synthetic_lut(path, specs):
    """Arithmetic fixture: a LUT whose values are a known function of the layer.

    These tests check the predictor's bookkeeping, not latency; real latencies
    are exercised in tests/test_e2e_cli.py.
    """
    lut = LUT.create(path, META)
    for s in specs:
        lut.append(Row(s, "ok", summarize([0.01 + s.macs() / 1e7])))
    return lut


@pytest.fixture
def tiny(tmp_path):
    sp = get_space("tiny")
    lut = _synthetic_lut(tmp_path / "host_tiny_fp32.csv", sp.enumerate_specs())
    return sp, LayerTable(lut, "host", "fp32"), tmp_path


def test_vectorised_space_table_equals_per_layer_sum(tiny):
    sp, table, _ = tiny
    from latbench.predict import SpaceTable

    st = SpaceTable(sp, table)
    rng = random.Random(0)
    tokens = np.array([sp.sample(rng) for _ in range(200)])
    fast = st.features(tokens)
    slow = table.features([sp.decode(list(map(int, t))) for t in tokens])
    np.testing.assert_allclose(fast, slow, rtol=1e-9, atol=1e-12)


def test_regression_learns_in_network_bias_lut_sum_cannot(tiny):
    sp, table, _ = tiny
    rng = random.Random(1)
    archs = [sp.decode(sp.sample(rng)) for _ in range(40)]
    X = table.features(archs)
    y = 1.11 * X[:, FEATURES.index("lut_ms")] + 0.02 * X[:, FEATURES.index("layers")]
    reg = LinearPredictor().fit(X, y)
    assert np.max(np.abs(reg.predict(X) - y) / y) < 0.01
    assert np.mean(np.abs(LutSumPredictor().predict(X) - y) / y) > 0.05


def test_missing_keys_are_listed_with_the_command(tiny, tiny_arch_dict):
    _, table, _ = tiny
    arch = arch_from_dict(tiny_arch_dict)
    with pytest.raises(MissingKeys) as e:
        table.features([arch])
    msg = str(e.value)
    assert "latbench profile --device host --precision fp32" in msg
    assert arch.layers()[0].key in msg


def test_predictor_file_is_json_and_bound_to_its_lut(tiny):
    sp, table, tmp = tiny
    rng = random.Random(2)
    archs = [sp.decode(sp.sample(rng)) for _ in range(20)]
    X = table.features(archs)
    fitted = {"regression": LinearPredictor().fit(X, X[:, 0] * 1.1)}
    path = predictor_path(tmp, "host", "fp32")
    save_predictors(path, table.lut, fitted, len(archs))
    json.loads(path.read_text())  # plain JSON: nothing to execute on load
    model = load_predictor("host", "fp32", tmp, require_calibrated=True)
    assert model.name == "regression"
    np.testing.assert_allclose(model.predict(archs), fitted["regression"].predict(X), rtol=1e-4)  # CSV keeps 6 digits
    np.testing.assert_allclose(model.predict_tokens(sp, np.array([sp.sample(rng)])).shape, (1,))
    # the same file against a LUT from another device is refused
    lut_file = tmp / "host_tiny_fp32.csv"
    lut_file.write_text(lut_file.read_text().replace('"device": "host"', '"device": "other"'))
    with pytest.raises(InputError, match="another LUT"):
        load_predictor("host", "fp32", tmp)


def test_no_lut_is_a_clear_error(tmp_path):
    with pytest.raises(InputError, match="latbench profile --device host"):
        load_predictor("host", "fp32", tmp_path)


def test_failed_layers_are_not_missing_ones(tiny):
    """A layer the device could not run makes its networks unpredictable, not unmeasured."""
    from latbench.lut import Row
    from latbench.predict import FailedLayers

    sp, table, _ = tiny
    arch = sp.decode(sp.sample(random.Random(5)))
    victim = arch.layers()[2]
    table.lut.append(Row(victim, "failed", error="run: XNNPACK failed to prepare"))
    assert table.failed([arch]) == [victim.key] and table.missing([arch]) == []
    with pytest.raises(FailedLayers, match="failed to run on host"):
        table.features([arch])
