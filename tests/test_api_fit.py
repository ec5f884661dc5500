"""Fitting from Python (api.Predictor.fit / save / load) and what it shares with calibrate:
the space taken from the LUT, exact file names, device names with `_`."""

import json
import random

import numpy as np
import pytest

import latbench
from latbench.errors import InputError
from latbench.predictors import predictor_path


def _measured(sp, table, n=12, seed=7, slower=2.5):
    rng = random.Random(seed)
    toks = [sp.sample(rng) for _ in range(n)]
    lut_ms = table.features([sp.decode(t) for t in toks])[:, 0]
    return [("-".join(map(str, t)), float(slower * ms)) for t, ms in zip(toks, lut_ms)]


def test_fit_takes_a_list_a_dataframe_or_a_csv_and_writes_nothing(synthetic_tiny, tmp_path):
    import pandas as pd

    sp, table, lut_dir = synthetic_tiny
    pairs = _measured(sp, table)
    before = sorted(p.name for p in lut_dir.iterdir())
    p = latbench.Predictor.fit(pairs, prior="host", lut_dir=lut_dir)  # space: the LUT's
    assert sorted(p.name for p in lut_dir.iterdir()) == before
    assert p.space.name == "tiny" and p.model.table.device == "host"
    assert set(p.methods()) >= {"scaled", "stagewise", "lut"} and p.kind in p.methods()
    csv = tmp_path / "m.csv"
    csv.write_text("network,latency_ms\n" + "".join(f"{n},{ms!r}\n" for n, ms in pairs))
    frame = pd.DataFrame(pairs, columns=["network", "latency_ms"])
    new = sp.sample(random.Random(99))
    want = p.predict(new)
    assert want == pytest.approx(2.5 * float(table.features([sp.decode(new)])[0, 0]), rel=0.02)
    for source in (csv, str(csv), frame, [(list(map(int, n.split("-"))), ms) for n, ms in pairs]):
        assert latbench.Predictor.fit(source, lut_dir=lut_dir).predict(new) == pytest.approx(want)


def test_save_and_load_give_the_same_predictions_and_the_file_knows_its_space(
    synthetic_tiny, tmp_path
):
    sp, table, lut_dir = synthetic_tiny
    p = latbench.Predictor.fit(_measured(sp, table), device="samsung_a50", lut_dir=lut_dir)
    path = p.save(tmp_path / "anywhere" / "phone.json")
    doc = json.loads(path.read_text())
    assert (doc["device"], doc["space"], doc["lut"]["device"]) == ("samsung_a50", "tiny", "host")
    assert doc["calibration"]["mode"] == "few-shot" and doc["selection"]["mape"]
    q = latbench.Predictor.load(path, lut_dir=lut_dir)
    tokens = np.array([sp.sample(random.Random(i)) for i in range(20)])
    np.testing.assert_allclose(q.predict_tokens(tokens), p.predict_tokens(tokens))
    assert q.space.name == "tiny" and q.kind == p.kind
    with pytest.raises(InputError, match="only one made by Predictor.fit"):
        q.save(tmp_path / "again.json")


def test_tokens_of_the_wrong_length_name_the_spaces_they_fit(synthetic_tiny):
    sp, table, lut_dir = synthetic_tiny
    pairs = _measured(sp, table)
    with pytest.raises(InputError, match="22 tokens fit the fbnet-cifar100 or fbnet-imagenet"):
        latbench.Predictor.fit([("-".join(["0"] * 22), 3.0)], lut_dir=lut_dir)
    with pytest.raises(InputError, match="12/22 tokens fit no space; .* name tiny"):
        latbench.Predictor.fit([("-".join(["0"] * 22), 3.0)] + pairs, lut_dir=lut_dir)
    with pytest.raises(InputError, match="42 tokens fit the mnasnet space"):
        latbench.Predictor.fit(pairs + [([0] * 42, 3.0)], space="tiny", lut_dir=lut_dir)


def test_bad_measurements_are_named(synthetic_tiny):
    sp, table, lut_dir = synthetic_tiny
    pairs = _measured(sp, table)
    with pytest.raises(InputError, match=r"measurements\[1\]: latency_ms must be a positive"):
        latbench.Predictor.fit([pairs[0], (pairs[1][0], -1.0)], lut_dir=lut_dir)
    with pytest.raises(InputError, match="give it once"):
        latbench.Predictor.fit([pairs[0], pairs[0]], lut_dir=lut_dir)


def test_device_names_with_underscores_and_exact_file_names(synthetic_tiny, tmp_path):
    sp, table, lut_dir = synthetic_tiny
    assert predictor_path(lut_dir, "samsung_a50", "tiny", "fp32").name == (
        "samsung_a50_tiny_fp32.predictor.json"
    )
    # a predictor of host_4t is not host's, though its name starts with host_
    p = latbench.Predictor.fit(_measured(sp, table), device="host_4t", lut_dir=lut_dir)
    p.save(predictor_path(lut_dir, "host_4t", "tiny", "fp32"))
    assert latbench.Predictor("host", lut_dir=lut_dir).kind == "lut"
    assert latbench.Predictor("host_4t", lut_dir=lut_dir).model.path.name.startswith("host_4t_")
