"""`latbench devices --probe`: a phone's clusters and identity read off the stand-in phone,
written as a profile that loads, and checked against the shipped Pixel profiles."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
from click.testing import CliRunner

from latbench.commands.main import cli
from latbench.devices.emulated import EmulatedPhone
from latbench.devices.emulated.state import LAYOUTS
from latbench.devices.probe import PhoneLayout, parse_cpufreq
from latbench.devices.profiles import load_profile

pytestmark = pytest.mark.phone

# shipped profile -> the stand-in layout of its SoC
SHIPPED = {
    "pixel1": "msm8996",
    "pixel2": "msm8998",
    "pixel3": "sdm845",
    "pixel4": "sm8150",
    "pixel5": "sm7250",
    "pixel6": "tensor",
    "pixel7": "tensor_g2",
    "pixel8": "tensor_g3",
    "pixel9": "tensor_g4",
    "pixel10": "tensor_g5",
}


def _probe(phone: EmulatedPhone, tmp_path, *extra: str):
    adbkey = tmp_path / "adbkey"
    return CliRunner().invoke(
        cli,
        ["devices", "--probe", phone.address, "--adbkey", str(adbkey), "--json", *extra],
        catch_exceptions=True,
    )


def test_every_layout_has_a_shipped_profile():
    assert sorted(SHIPPED.values()) == sorted(LAYOUTS)


@pytest.mark.parametrize("name", sorted(SHIPPED))
def test_probe_agrees_with_the_shipped_pixel_profile(tmp_path, name):
    """The probed big cluster holds the shipped profile's cores, and its model and codename
    are the ones the shipped profile matches."""
    shipped = load_profile(name)
    with EmulatedPhone(tmp_path / "phone", layout=SHIPPED[name]) as ph:
        r = _probe(ph, tmp_path, "--out", str(tmp_path / "probed.toml"))
    assert r.exit_code == 0, r.output
    doc = json.loads(r.output)
    big = doc["clusters"][-1]
    assert set(shipped.cpus) <= set(big["cpus"])
    assert doc["big_core"] == max(big["cpus"]) and doc["threads"] == 1
    assert doc["cpu_mask"] == format(1 << doc["big_core"], "x")
    assert doc["model"] in shipped.options["model"]
    assert doc["device"] in shipped.options["product"]
    probed = load_profile(str(tmp_path / "probed.toml"))
    assert probed.cpus == (doc["big_core"],) and probed.kind == "adb"


def test_probe_of_a_pixel9_writes_cpu7_and_names_the_soc(tmp_path):
    with EmulatedPhone(tmp_path / "phone", layout="tensor_g4") as ph:
        r = _probe(ph, tmp_path, "--out", str(tmp_path / "p9.toml"))
    doc = json.loads(r.output)
    assert [len(c["cpus"]) for c in doc["clusters"]] == [4, 3, 1]
    assert (doc["big_core"], doc["cpu_mask"], doc["soc"]) == (7, "80", "Tensor G4")
    text = (tmp_path / "p9.toml").read_text()
    assert "cpus = [7]" in text and "taskset mask 80" in text and 'product = ["tokay"]' in text


def test_probe_of_an_old_pixel_takes_the_soc_from_the_board_platform(tmp_path):
    """Android 10 has no ro.soc.model: the SoC comes from ro.board.platform."""
    with EmulatedPhone(tmp_path / "phone", layout="msm8996") as ph:
        assert "ro.soc.model" not in ph.props
        r = _probe(ph, tmp_path, "--out", str(tmp_path / "p1.toml"))
    assert json.loads(r.output)["soc"] == "msm8996"


def test_probe_refuses_to_overwrite_without_force(tmp_path):
    out = tmp_path / "device_profiles" / "tokay.toml"
    out.parent.mkdir()
    out.write_text("# mine\n")
    with EmulatedPhone(tmp_path / "phone", layout="tensor_g4") as ph:
        r = subprocess.run(
            [sys.executable, "-m", "latbench.commands.main", "devices", "--probe", ph.address,
             "--adbkey", str(tmp_path / "adbkey")],
            cwd=tmp_path, capture_output=True, text=True, timeout=120,
        )  # fmt: skip
        assert r.returncode == 2 and "exists; pass --force" in r.stderr
        assert len(r.stderr.strip().splitlines()) == 1 and out.read_text() == "# mine\n"
        r = _probe(ph, tmp_path, "--out", str(out), "--force")
    assert r.exit_code == 0 and "cpus = [7]" in out.read_text()


def test_clusters_by_related_cpus_where_shown_else_by_maximum():
    out = "\n".join(
        [f"/sys/devices/system/cpu/cpu{c}/cpufreq/cpuinfo_max_freq:{f}" for c, f in
         enumerate([1800000] * 4 + [2400000] * 4)]
        + [f"/sys/devices/system/cpu/cpu{c}/cpufreq/related_cpus:{r}" for c, r in
           enumerate(["0 1 2 3"] * 4 + ["4 5", "4 5", "6 7", "6 7"])]
        + ["grep: /sys/devices/system/cpu/cpu9/cpufreq/related_cpus: No such file or directory"]
    )  # fmt: skip
    freqs, related = parse_cpufreq(out)
    # two policies at the same maximum stay two clusters; the big core is the last CPU
    by_policy = PhoneLayout(freqs, related).clusters()
    assert [c.cpus for c in by_policy] == [(0, 1, 2, 3), (4, 5), (6, 7)]
    assert [c.cpus for c in PhoneLayout(freqs).clusters()] == [(0, 1, 2, 3), (4, 5, 6, 7)]
    assert PhoneLayout(freqs).big_core == 7
