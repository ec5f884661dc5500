import os
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
# The proxy recipe's TensorFlow thread count (ProxyRecipe.threads), set before any test starts
# TensorFlow: one process cannot change it later, and every test that trains asks for it.
os.environ.setdefault("TF_NUM_INTRAOP_THREADS", "1")
os.environ.setdefault("TF_NUM_INTEROP_THREADS", "1")


@pytest.fixture(scope="session", autouse=True)
def _isolated_cache(tmp_path_factory):
    """Converted models go to a per-session cache, never the user's."""
    if "LATBENCH_CACHE" not in os.environ or os.environ.get("LATBENCH_TEST_SHARED_CACHE") != "1":
        os.environ["LATBENCH_CACHE"] = str(tmp_path_factory.mktemp("cache"))
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    yield


@pytest.fixture
def tiny_arch_dict():
    """A small but complete network (fast to convert and time)."""
    return {
        "name": "tiny",
        "resolution": 32,
        "act": "relu6",
        "stem": {"filters": 16},
        "blocks": [
            "r1_k3_s11_e1_i16_o8",
            "r2_k5_s22_e3_i8_o16_se0.25",
            {
                "repeats": 1,
                "kernel": 3,
                "stride": 1,
                "expand": 1,
                "in_filters": 16,
                "out_filters": 16,
                "op": "conv",
            },
        ],
        "head": {"filters": 64},
        "classes": 10,
    }


def latbench_cli(*args, timeout: int = 1200, env: dict[str, str] | None = None):
    """Run the real command line (as a user would) from the repository root."""
    import subprocess
    import sys

    return subprocess.run(
        [sys.executable, "-m", "latbench.commands.main", *map(str, args)],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=timeout,
        env=env,
    )


# The host device with a short timing protocol and a short pause before a contended row is
# timed again (the one copy: tests/fixtures/fast_profiles/host.toml). Named "host", so its rows
# land in host_*_fp32.csv as the default host's do: the end-to-end tests check the profiling /
# calibrating / measuring path and its files, not the precision of a reading (that is
# tests/devices/ and tests/profiling/).
FAST_PROFILES = Path(__file__).resolve().parent / "fixtures" / "fast_profiles"
FAST_HOST_TOML = FAST_PROFILES / "host.toml"


@pytest.fixture(scope="session")
def fast_host_profiles():
    """A folder for $LATBENCH_PROFILES whose host.toml is the fast host: every command run
    with it (`--device host`, the default) times with the short protocol."""
    return FAST_PROFILES


@pytest.fixture(scope="session")
def fast_host():
    """Path of the fast host profile (.toml), for `--device`."""
    return FAST_HOST_TOML


@pytest.fixture(scope="session")
def fast_host_env(fast_host_profiles):
    """os.environ for a command-line subprocess, with the fast host profile in front."""
    return dict(os.environ, LATBENCH_PROFILES=str(fast_host_profiles))


@pytest.fixture(scope="session")
def tiny_pipeline(tmp_path_factory, fast_host_env):
    """profile -> calibrate -> validate on the tiny space, once per test session, on the host
    with the fast protocol (FAST_HOST_TOML; run commands on its files with `env`).

    Shared by the end-to-end CLI tests and the notebook tests (it takes minutes).
    Returns the paths and each command's CompletedProcess. Read-only: a test that writes
    into its folders copies them first.
    """
    root = tmp_path_factory.mktemp("tiny")
    lut_dir, val_dir = root / "lut", root / "validate"
    steps = {}
    for name, args in (
        ("profile", ("profile", "--space", "tiny", "--lut-dir", lut_dir, "--no-progress")),
        (
            "calibrate",
            (
                "calibrate",
                "--space",
                "tiny",
                "--archs",
                "16",
                "--no-zoo",
                "--heldout",
                "8",
                "--lut-dir",
                lut_dir,
                "--no-progress",
            ),
        ),
        (
            "validate",
            (
                "validate",
                "--space",
                "tiny",
                "--archs",
                "8",
                "--lut-dir",
                lut_dir,
                "--out",
                val_dir,
                "--no-progress",
            ),
        ),
    ):
        steps[name] = r = latbench_cli(*args, env=fast_host_env)
        assert r.returncode == 0, f"latbench {name} failed:\n{r.stdout}\n{r.stderr}"
        if name == "calibrate":  # --heldout measured validate's networks already
            steps["validate_rows_after_calibrate"] = (
                lut_dir / "host_tiny_fp32.validate.csv"
            ).read_text()
    return {
        "root": root,
        "lut_dir": lut_dir,
        "lut": lut_dir / "host_tiny_fp32.csv",
        "nets": lut_dir / "host_tiny_fp32.validate.csv",
        "validate": val_dir,
        "steps": steps,
        "env": fast_host_env,
    }


SYNTHETIC_META = {
    "fingerprint": {"device": "host"},
    "converter": "c",
    "precision": "fp32",
    "space": "tiny",
    "protocol": {"min_runs": 15},
}


@pytest.fixture
def synthetic_tiny(tmp_path):
    """(space, LayerTable, lut_dir): a LUT of the tiny space whose values are a known
    function of each layer (0.01 ms + MACs / 1e7).

    An arithmetic fixture: it checks predictors' bookkeeping and fitting, not
    latency; real latencies are exercised in tests/commands/test_e2e_cli.py.
    """
    from latbench.devices.measure import summarize
    from latbench.nets.spaces import get_space
    from latbench.predictors import LayerTable
    from latbench.profiling.lut import LUT, Row

    sp = get_space("tiny")
    lut = LUT.create(tmp_path / "host_tiny_fp32.csv", SYNTHETIC_META)
    for s in sp.enumerate_specs():
        lut.append(Row(s, "ok", summarize([0.01 + s.macs() / 1e7])))
    return sp, LayerTable(lut, "host", "fp32"), tmp_path
