import os
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


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
        "name": "tiny", "resolution": 32, "act": "relu6",
        "stem": {"filters": 16},
        "blocks": ["r1_k3_s11_e1_i16_o8", "r2_k5_s22_e3_i8_o16_se0.25",
                   {"repeats": 1, "kernel": 3, "stride": 1, "expand": 1,
                    "in_filters": 16, "out_filters": 16, "op": "conv"}],
        "head": {"filters": 64}, "classes": 10,
    }
