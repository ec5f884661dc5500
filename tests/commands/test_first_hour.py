"""A new user's first commands, end to end on the host, with TensorFlow's logging left at its
defaults: nothing but latbench's own lines may reach the terminal (slow)."""

import json
import os
import re
import stat
import subprocess
import sys
from pathlib import Path

import pytest

from latbench.profiling.lut import LUT

REPO = Path(__file__).resolve().parents[2]
pytestmark = pytest.mark.slow

# What TensorFlow, absl, oneDNN and LiteRT print when nobody silences them.
TF_LOG = re.compile(
    r"^[IWEF]\d{4} |oneDNN|absl::|cpu_feature_guard|This TensorFlow binary|"
    r"tensorflow/|XNNPACK delegate|WARNING:tensorflow|rebuild TensorFlow|"
    r"fully_quantize|UserWarning|warnings\.warn",
    re.M,
)


@pytest.fixture
def user_env(tmp_path, fast_host_profiles):
    """A user's environment: no TF_* variables, umask 022, an empty model cache; the host
    profile is the fast one (tests/conftest.py FAST_HOST: the same path, a shorter protocol)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("TF_", "ABSL", "GLOG"))}
    env["LATBENCH_CACHE"] = str(tmp_path / "cache")
    env["LATBENCH_PROFILES"] = str(fast_host_profiles)
    old = os.umask(0o022)
    yield env
    os.umask(old)


def cli(env, *args):
    r = subprocess.run(
        [sys.executable, "-m", "latbench.commands.main", *map(str, args)],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=900,
    )
    assert not TF_LOG.search(r.stderr), f"TensorFlow log lines on stderr:\n{r.stderr}"
    assert not TF_LOG.search(r.stdout), f"TensorFlow log lines on stdout:\n{r.stdout}"
    return r


def test_first_hour_predict_measure_compare_with_no_lut_and_no_tf_noise(
    tmp_path, user_env, tiny_arch_dict, fast_host_profiles
):
    a, b = tmp_path / "a.json", tmp_path / "b.json"
    a.write_text(json.dumps(tiny_arch_dict))
    b.write_text(json.dumps({**tiny_arch_dict, "name": "tiny_b", "classes": 7}))  # new fc only
    lut_dir = tmp_path / "lut"

    # predict with no LUT at all: --profile-missing starts one for this network
    r = cli(user_env, "predict", a, "--profile-missing", "--lut-dir", lut_dir)
    assert r.returncode == 0, r.stderr
    assert "tiny on host (fp32)" in r.stdout and "[lut;" in r.stdout
    lut_a = lut_dir / "host_tiny_fp32.csv"
    n_a = len(LUT.load(lut_a).ok())
    assert n_a > 0 and stat.S_IMODE(lut_a.stat().st_mode) == 0o644

    # another network sharing all but its classifier: only that layer is missing
    r = cli(user_env, "profile", "--arch", b, "--lut-dir", lut_dir, "--dry-run", "--json")
    (dry,) = json.loads(r.stdout)
    assert (dry["measured"], dry["missing"]) == (dry["distinct_layers"] - 1, 1)
    r = cli(user_env, "profile", "--arch", b, "--lut-dir", lut_dir, "--json")
    assert r.returncode == 0, r.stderr
    (summ,) = json.loads(r.stdout)
    assert (summ["measured"], summ["reused"]) == (1, dry["distinct_layers"] - 1)
    rows_a, rows_b = LUT.load(lut_a).rows, LUT.load(lut_dir / "host_tiny_b_fp32.csv").rows
    shared = set(rows_a) & set(rows_b)
    assert len(shared) == dry["distinct_layers"] - 1
    assert all(rows_a[k].measured_at == rows_b[k].measured_at for k in shared)

    # the whole network, end to end, as the LUT rows are timed
    r = cli(user_env, "measure", a, "--json")
    assert r.returncode == 0, r.stderr
    m = json.loads(r.stdout)
    import tomllib

    host = tomllib.loads((fast_host_profiles / "host.toml").read_text())
    assert m["arch"] == "tiny" and m["median_ms"] > 0
    assert m["runs"] >= host["protocol"]["min_runs"]  # the profile's protocol was followed
    assert m["p10_ms"] <= m["median_ms"] <= m["p90_ms"]

    r = cli(
        user_env,
        "predict",
        a,
        "--lut-dir",
        lut_dir,
        "--compare",
        "--json",
        "--png",
        tmp_path / "a.png",
    )
    assert r.returncode == 0, r.stderr
    p = json.loads(r.stdout)
    med = p["measured"]["median_ms"]
    assert p["error_pct"] == pytest.approx(100 * (p["latency_ms"] - med) / med)
    assert (tmp_path / "a.png").read_bytes()[:4] == b"\x89PNG"

    r = cli(user_env, "export", a, "-o", tmp_path / "a.tflite")
    assert r.returncode == 0 and stat.S_IMODE((tmp_path / "a.tflite").stat().st_mode) == 0o644
    r = cli(user_env, "export", a, "-o", tmp_path / "a8.tflite", "--precision", "int8")
    assert r.returncode == 0 and not r.stderr  # the int8 calibrator's chatter is filtered too

    r = cli(user_env, "lut", "list", "--lut-dir", lut_dir, "--json")
    files = {e["file"]: e for e in json.loads(r.stdout)}
    assert files["host_tiny_fp32.csv"]["rows"] == n_a
    assert files["host_tiny_fp32.csv"]["identity"] == files["host_tiny_b_fp32.csv"]["identity"]


def test_calibrate_and_validate_speak_json(tiny_pipeline, tmp_path):
    """Re-running them on the networks already measured only refits and reports."""
    import shutil

    lut_dir = tmp_path / "lut"  # a copy: the session's pipeline is shared
    shutil.copytree(tiny_pipeline["lut_dir"], lut_dir)
    env = tiny_pipeline["env"]
    r = cli(
        env,
        "calibrate",
        "--space",
        "tiny",
        "--archs",
        "16",
        "--no-zoo",
        "--lut-dir",
        lut_dir,
        "--json",
    )
    assert r.returncode == 0, r.stderr
    doc = json.loads(r.stdout)
    assert doc["networks"] == 16
    from latbench.calibration.calibrate import make_predictors

    assert set(doc["training"]) == set(make_predictors())  # every method the file holds
    assert doc["training"]["scaled"]["n"] == 16
    r = cli(
        env,
        "validate",
        "--space",
        "tiny",
        "--archs",
        "8",
        "--lut-dir",
        lut_dir,
        "--out",
        tmp_path / "v",
        "--json",
    )
    assert r.returncode == 0, r.stderr
    doc = json.loads(r.stdout)
    assert doc["heldout"] == 8 and doc["metrics"]["scaled"]["n"] == 8
    assert json.loads((tmp_path / "v" / "metrics.json").read_text()) == doc["metrics"]
    r = cli(env, "--quiet", "lut", "list", "--lut-dir", lut_dir)
    assert "host_tiny_fp32.calib.csv" in r.stdout and "networks" in r.stdout
    assert "predictor" in r.stdout and not r.stderr
