"""The phone farm on Ray: which phone goes to which profile (fast), and one real two-node
Ray cluster on this machine, each node with its own stand-in phone (slow)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from latbench.devices.farm import assign_phones, bind_profile, cluster_phones
from latbench.devices.profiles import load_profile, parse_profile
from latbench.errors import InputError

P9 = {"ro.product.model": "Pixel 9", "ro.product.device": "tokay", "ro.serialno": "A9"}
P8 = {"ro.product.model": "Pixel 8", "ro.product.device": "shiba", "ro.serialno": "B8"}


def test_phones_go_to_the_profile_of_their_model_and_same_models_share_it():
    phones = {"A9": P9, "C9": {**P9, "ro.serialno": "C9"}, "B8": P8, "Z": {"ro.product.model": "x"}}
    groups = assign_phones([load_profile("pixel8"), load_profile("pixel9")], phones)
    assert groups == [["B8"], ["A9", "C9"]]  # the unknown phone is left out


def test_a_profile_naming_a_serial_takes_that_phone_first():
    mine = parse_profile({"name": "mine", "kind": "adb", "options": {"serial": "C9"}})
    groups = assign_phones([load_profile("pixel9"), mine], {"A9": P9, "C9": P9})
    assert groups == [["A9"], ["C9"]]


def test_a_profile_without_a_phone_on_the_cluster_is_one_line_naming_what_is_there():
    with pytest.raises(InputError, match=r"pixel10: options.model: no phone .*A9 \(Pixel 9\)"):
        assign_phones([load_profile("pixel9"), load_profile("pixel10")], {"A9": P9})


def test_nodes_advertise_phones_as_resources_and_profiles_are_pointed_at_them():
    nodes = [
        {"Alive": True, "NodeID": "n1", "Resources": {"CPU": 1.0, "phone:A9": 1.0}},
        {"Alive": True, "NodeID": "n2", "Resources": {"phone:10.0.0.5:5555": 1.0}},
        {"Alive": False, "NodeID": "n3", "Resources": {"phone:GONE": 1.0}},
    ]
    assert cluster_phones(nodes) == {"A9": "n1", "10.0.0.5:5555": "n2"}
    assert bind_profile({"kind": "adb"}, "A9")["options"] == {"serial": "A9"}
    tcp = bind_profile({"kind": "adb", "options": {"x": 1}}, "10.0.0.5:5555")["options"]
    assert tcp == {"x": 1, "host": "10.0.0.5", "port": 5555, "transport": "tcp"}
    assert bind_profile({"kind": "emulated"}, "127.0.0.1:9")["options"] == {
        "connect": "127.0.0.1:9"
    }


STANDIN9 = """
name = "standin9"
kind = "emulated"
threads = 1
cpus = [7]
[protocol]
warmup_runs = 2
min_runs = 10
max_runs = 40
max_seconds = 0.5
target_ci = 0.5
[options]
model = ["Pixel 9"]
warmup_s = 0.2
repeats = 2
temp_check_s = 0
"""


@pytest.mark.slow
@pytest.mark.phone
def test_a_two_node_ray_farm_shards_one_lut_across_its_phones(tmp_path):
    """ray start --head and ray start --address, each node advertising its own stand-in Pixel 9:
    one LUT for the model, rows from both phones with their serials, each phone's actor on
    the node that has it; the cluster is always stopped."""
    from latbench.devices.emulated.raycluster import LocalRayFarm

    (tmp_path / "profiles").mkdir()
    (tmp_path / "profiles" / "standin9.toml").write_text(STANDIN9)
    farm = LocalRayFarm(2, layout="tensor_g4")
    with farm:
        r = subprocess.run(
            [sys.executable, "-m", "latbench.commands.main", "profile", "--device", "standin9",
             "--space", "tiny", "--limit", "4", "--workers", "1", "--ray-address", farm.address,
             "--lut-dir", str(tmp_path / "lut"), "--no-progress", "--json"],
            env={**farm.env, "LATBENCH_PROFILES": str(tmp_path / "profiles")},
            capture_output=True, text=True, timeout=300,
        )  # fmt: skip
        assert r.returncode == 0, r.stderr[-2000:]
        docs = json.loads(r.stdout)
        assert {d["lut"] for d in docs} == {str(tmp_path / "lut" / "standin9_tiny_fp32.csv")}
        assert len({d["health_before"]["node"] for d in docs}) == 2, "one phone per node"
        assert sum(d["measured"] for d in docs) == 4
    assert not farm._pids() and not Path(farm.dir).exists(), "the cluster is stopped"
    from latbench.profiling.lut import LUT

    lut = LUT.load(tmp_path / "lut" / "standin9_tiny_fp32.csv")
    serials = [row.measurement.extra["state"]["serial"] for row in lut.rows.values()]
    assert sorted(set(serials)) == ["lab-0", "lab-1"] and len(serials) == 4
