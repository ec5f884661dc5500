"""The Python API (api.py) and the example in docs/python-api.md that documents it."""

import json
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import latbench
from latbench.devices.measure import summarize
from latbench.errors import InputError
from latbench.profiling.lut import LUT, Row

REPO = Path(__file__).resolve().parents[1]
META = {
    "fingerprint": {"device": "host"},
    "converter": "c",
    "precision": "fp32",
    "space": "mnasnet",
    "protocol": {},
}


@pytest.fixture
def workdir(tmp_path):
    """A directory with a synthetic host LUT of the MnasNet space + MobileNetV2 and its arch.json."""
    from latbench.nets import zoo
    from latbench.nets.spaces import get_space

    arch = zoo.get("mobilenet_v2_x1")
    lut = LUT(meta=dict(META), path=tmp_path / "lut" / "host_mnasnet_fp32.csv")
    for s in [*get_space("mnasnet").enumerate_specs(), *arch.layers()]:
        lut.rows[s.key] = Row(s, "ok", summarize([0.01 + s.macs() / 1e8]))
    lut.save()
    (tmp_path / "mobilenet_v2_x1.json").write_text(arch.to_json())
    return tmp_path


def _readme_example() -> str:
    text = (REPO / "docs" / "python-api.md").read_text()
    m = re.search(r"<!-- API-EXAMPLE.*?-->\n```python\n(.*?)```", text, re.S)
    assert m, "docs/python-api.md lost its API example"
    return m.group(1)


@pytest.mark.slow
def test_the_readme_example_runs(workdir):
    r = subprocess.run(
        [sys.executable, "-c", _readme_example()],
        cwd=workdir,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert r.returncode == 0, r.stderr
    lines = r.stdout.splitlines()
    assert lines[0].endswith(" ms") and float(lines[0].split()[0]) > 0
    assert "kind='lut'" in lines[1]  # no predictor file in this directory: the plain LUT sum


def test_predict_and_predictor_agree_with_the_lut(workdir, monkeypatch):
    monkeypatch.chdir(workdir)
    p = latbench.Predictor(device="host")
    from latbench.nets import zoo

    arch = zoo.get("mobilenet_v2_x1")
    want = sum(0.01 + s.macs() / 1e8 for s in arch.layers())
    assert latbench.predict("mobilenet_v2_x1.json", device="host") == pytest.approx(want, rel=1e-5)
    assert p.predict(arch) == pytest.approx(want, rel=1e-5)
    assert p.predict(json.loads(arch.to_json())) == pytest.approx(want, rel=1e-5)
    tokens = [1] * p.space.num_tokens
    many = p.predict([arch, tokens, "-".join(["1"] * p.space.num_tokens)])
    assert many.shape == (3,) and many[1] == pytest.approx(many[2])
    assert p.predict_tokens(np.array([tokens]))[0] == pytest.approx(many[1], rel=1e-9)
    assert p.breakdown(arch)[0][0] == arch.layers()[0].key
    assert p.provenance["lut_device"] == "host" and p.provenance["file"] is None


def test_a_network_it_cannot_read_is_a_named_error(workdir, monkeypatch):
    monkeypatch.chdir(workdir)
    p = latbench.Predictor(device="host")
    with pytest.raises(InputError, match="tokens"):
        p.predict("not-a-network")
    with pytest.raises(InputError, match="expected 42 tokens"):
        p.predict([1, 2, 3])
