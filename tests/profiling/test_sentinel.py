"""The sentinel: readings recorded by the jobs that measure, and what calibrate does with them."""

import json
import time
from pathlib import Path

import pytest

from latbench import records
from latbench.calibration.calibrate import (
    NET_COLUMNS,
    NetResult,
    conditions,
    conditions_warning,
    load_results,
    sample_networks,
)
from latbench.nets.spaces import get_space
from latbench.profiling import sentinel as sen
from tests.conftest import REPO, latbench_cli

# "host" in a few runs per model, a contended timing re-timed after 0.1 s (not 3 s)
FAST_PROFILES = REPO / "tests" / "fixtures" / "fast_profiles"


def _doctor_reference(lut_dir: Path, ms: float) -> None:
    """Pretend the LUT was timed on a machine that ran the sentinel layer in `ms`."""
    path = sen.sentinel_path(lut_dir, "host", "fp32")
    meta, rows = records.read(path, sen.COLUMNS)
    for r in rows:
        if r["context"].startswith("profile"):
            r["median_ms"] = f"{ms:.6g}"
    records.create(path, meta, sen.COLUMNS, [[r[c] for c in sen.COLUMNS] for r in rows])


def test_profile_takes_sentinel_readings_and_names_them_in_its_summary(tmp_path, monkeypatch):
    monkeypatch.setenv("LATBENCH_PROFILES", str(FAST_PROFILES))  # the commands' host
    # the layers of the one network calibrate --archs 1 samples (its LUT, not the space's 213)
    (net,) = sample_networks(get_space("tiny"), 1, 0)
    arch = tmp_path / "net0.json"
    arch.write_text(net.arch.to_json())
    lut = tmp_path / "lut"
    r = latbench_cli(
        "profile", "--arch", arch, "--workers", "1", "--lut-dir", lut, "--no-progress", "--json"
    )
    assert r.returncode == 0, r.stderr
    doc = json.loads(r.stdout)[0]
    assert doc["measured"] == len({s.key for s in net.arch.layers("fp32")}) > 0
    lut_file = Path(doc["lut"])
    assert doc["sentinel"]["layer"]["n"] >= 2  # one before the first row, one after the last
    got = sen.read(sen.sentinel_path(lut, "host", "fp32"))
    assert {x.context for x in got} == {f"profile {lut_file.name}"}
    assert {x.what for x in got} == {"layer", "network"}  # profile times both
    layer = sorted(x.median_ms for x in got if x.what == "layer")
    assert min(layer) <= sen.reference_ms(lut, "host", "fp32") <= max(layer)
    header = lut_file.read_text().split("\n")
    assert any(ln.startswith("# sentinel: ") and "host_fp32.sentinel.csv" in ln for ln in header)
    listed = latbench_cli("lut", "list", "--lut-dir", lut, "--json")
    kinds = {e["file"]: e["kind"] for e in json.loads(listed.stdout)}
    assert kinds["host_fp32.sentinel.csv"] == "sentinel"

    # a machine 3x faster at LUT time than now: calibrate refuses before timing anything
    # (the profile given by its path: its files are named after its name, host, as profile's)
    _doctor_reference(lut, sen.reference_ms(lut, "host", "fp32") / 3)
    r = latbench_cli(
        "calibrate", "--space", "tiny", "--archs", "1", "--no-zoo", "--lut-dir", lut,
        "--no-progress", "--device", FAST_PROFILES / "host.toml",
    )  # fmt: skip
    assert r.returncode == 1, r.stderr
    assert "slower than when its LUT was timed" in r.stderr and "nothing was measured" in r.stderr
    assert "Traceback" not in r.stderr
    calib = lut / "host_tiny_fp32.calib.csv"
    assert not calib.exists() or records.read(calib, NET_COLUMNS)[1] == []

    # measure says the same of a network, in one warning line, and claims its interval
    # from bursts
    r = latbench_cli(
        "measure", "examples/zoo/mobilenet_v2_x0.35.json", "--lut-dir", lut, "--json",
        "--bursts", "2",
    )  # fmt: skip
    assert r.returncode == 0, r.stderr
    m = json.loads(r.stdout)
    assert m["extra"]["bursts"] == 2 and m["extra"]["ci_basis"] == "bursts"
    assert m["extra"]["sentinel"]["speed"] > 2
    assert "slower than when the LUT was timed" in m["warning"]


def _calib_file(tmp_path: Path, speeds) -> Path:
    nets = sample_networks(get_space("tiny"), len(speeds), 0)
    path = tmp_path / "c.csv"
    rows = []
    for n, s in zip(nets, speeds):
        rows.append(
            [
                n.arch.digest(), n.arch.name, n.source, json.dumps(list(n.tokens)),
                json.dumps(n.arch.to_dict()), "ok", "2.0", "", "", "", "20", "0.01", "",
                "2026-12-01T00:00:00+00:00", "1", "" if s is None else str(s),
                json.dumps({"flags": ["contended"]}) if s == 1.0 else "",
            ]
        )  # fmt: skip
    records.create(path, {"precision": "fp32"}, NET_COLUMNS, rows)
    return path


def test_networks_timed_on_a_slower_machine_are_scaled_back_or_left_out(tmp_path):
    path = _calib_file(tmp_path, [None, 1.0, 1.03, 1.10, 1.40])
    res = list(load_results(path).values())
    ms = [r.median_ms for r in res]
    assert ms[:3] == [2.0, 2.0, 2.0]  # unknown, or within DRIFT_LIMIT: as measured
    assert ms[3] == pytest.approx(2.0 / 1.10)  # scaled back
    assert ms[4] is None and res[4].disturbed == 1 and res[4].passes == 0  # timed again later
    c = conditions(res)
    assert (c["corrected"], c["disturbed"], c["flagged"]) == (1, 1, {"contended": 1})
    line = conditions_warning(c, "held-out networks")
    assert line.startswith("warning: of 5 held-out networks, 1 timed on a machine")
    assert "1 left out" in line and "1 flagged contended" in line and "\n" not in line
    assert conditions_warning(conditions([NetResult(res[0].network, 2.0)])) is None


def test_a_damaged_sentinel_file_is_one_line(tmp_path):
    path = sen.sentinel_path(tmp_path, "host", "fp32")
    rows = [["2026-12-01", f"{time.time():.3f}", "profile x", "layer", "k", "nan", "0", "1", ""]]
    records.create(path, {}, sen.COLUMNS, rows)
    from latbench.errors import InputError

    with pytest.raises(InputError, match="row 1: median_ms 'nan' is not a latency"):
        sen.reference_ms(tmp_path, "host", "fp32")


def test_the_speed_is_the_median_of_the_last_readings_so_one_jittery_reading_scales_nothing():
    """Seen on this host: a job's first reading 17 % high, the next on time; the speed from
    that one reading scaled every model timed before the next reading, 90 s later, by 1.16."""
    from types import SimpleNamespace

    dev = SimpleNamespace(profile=SimpleNamespace(name="host", options={}))
    s = sen.Sentinel(dev, Path("."), "fp32", "calibrate")
    s._reference = 0.100
    assert s.speed() is None  # no reading yet
    for ms in (0.117, 0.100, 0.101):
        s.readings.append(sen.Reading(0.0, "calibrate", "layer", ms))
        s.readings.append(sen.Reading(0.0, "calibrate", "network", 10 * ms))  # not the layer's
    assert s.speed() == pytest.approx(1.01)
    for ms in (0.130, 0.131):  # a lasting slowdown shows from its second reading
        s.readings.append(sen.Reading(0.0, "calibrate", "layer", ms))
    assert s.speed() == pytest.approx(1.30)


def test_each_lut_kind_is_its_own_reference(tmp_path):
    """The layer LUTs' reference leaves out the readings taken while an operator LUT was
    profiled, and an operator LUT's is its own file's readings only."""
    path = sen.sentinel_path(tmp_path, "host", "fp32")
    rows = [
        [f"2026-12-02T10:00:0{k}+00:00", "1.0", ctx, "layer", "k", ms, "0.01", "10", ""]
        for k, (ctx, ms) in enumerate([
            ("profile host_mnasnet_fp32.csv", "0.2"), ("profile host_fbnet_fp32.csv", "0.2"),
            ("profile host_fp32.ops.csv", "0.5"), ("calibrate", "0.9"),
        ])
    ]  # fmt: skip
    records.create(path, {"space": "sentinel"}, sen.COLUMNS, rows)
    assert sen.reference_ms(tmp_path, "host", "fp32") == pytest.approx(0.2)
    assert sen.reference_ms(
        tmp_path, "host", "fp32", context="profile host_fp32.ops.csv"
    ) == pytest.approx(0.5)
