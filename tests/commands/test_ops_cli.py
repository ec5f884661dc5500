"""Bring your own model, end to end on the command line: the operator-level predictor calibrated
on whole models (calibrate --ops, their operators profiled first), used by predict MODEL (its
file found by name or given with --predictor), each operator's share as a table and a PNG."""

import json

import pytest

from latbench import records
from latbench.build.tflite_ops import load_model, prefix_model
from latbench.calibration.opcalib import MODEL_COLUMNS, MODEL_OPTIONAL
from latbench.profiling import sentinel as sen
from tests.build.test_tflite_ops import FIXTURES
from tests.conftest import latbench_cli

HOST_FAST = FIXTURES.parents[0] / "fast_profiles" / "host.toml"  # a few runs per model


@pytest.mark.slow
def test_calibrate_ops_then_predict_any_model_with_its_shares_and_picture(tmp_path):
    model = load_model((FIXTURES / "net_fp32.tflite").read_bytes())
    nets = []
    for k in (2, 3, 4, 5):  # the fixture's graph cut after k operators: four real models
        p = tmp_path / f"cut{k}.tflite"
        p.write_bytes(prefix_model(model, k))
        nets.append(p)
    lut = tmp_path / "lut"
    # the device as a user's own profile file, outside the profile folders: its name names
    # the files, and it is the profile timed (not one looked up again by that name)
    mine = tmp_path / "mine.toml"
    mine.write_text(HOST_FAST.read_text().replace('name = "host"', 'name = "mybench"'))
    args = ["--device", mine, "--lut-dir", lut, "--no-progress", "--json"]
    cal = latbench_cli("calibrate", "--ops", *[a for p in nets for a in ("--model", p)], *args)
    assert cal.returncode == 0, cal.stderr
    doc = json.loads(cal.stdout)
    assert (
        doc["networks"] == 4
        and doc["ops"]
        and doc["default"] in ("lut", "ratio", "global", "opwise")
    )
    ppath = lut / "mybench_ops_fp32.predictor.json"
    assert doc["predictor"] == str(ppath) and (lut / "mybench_ops_fp32.calib.csv").exists()
    # the sentinel: read while the operators were profiled (the reference) and while the
    # models were timed; each model's row has its speed against that reference
    got = sen.read(sen.sentinel_path(lut, "mybench", "fp32"))
    assert {x.context for x in got} == {"profile mybench_fp32.ops.csv", "calibrate ops"}
    _, rows = records.read(lut / "mybench_ops_fp32.calib.csv", MODEL_COLUMNS, MODEL_OPTIONAL)
    assert len(rows) == 4 and all(0 < float(r["speed"]) < 100 for r in rows)
    under = json.loads(ppath.read_text())["calibration"]["conditions"]
    assert under["networks"] == 4 and under["sentinel"]["layer"]["n"] >= 2
    png = tmp_path / "ops.png"
    pred = latbench_cli("predict", nets[-1], *args, "--png", png)
    assert pred.returncode == 0, pred.stderr
    p = json.loads(pred.stdout)
    assert p["predictor"] == doc["default"] and p["predictor_file"] == str(ppath)
    assert sum(o["predicted_ms"] for o in p["operators"]) == pytest.approx(p["latency_ms"])
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    plain = latbench_cli("predict", nets[-1], *args, "--predictor", ppath,
                         "--predictor-method", "lut")  # fmt: skip
    assert json.loads(plain.stdout)["latency_ms"] == pytest.approx(p["op_sum_ms"])

    # a machine 3x faster when the operators were timed than now: a further pass is refused
    # before a model is timed (the layer LUTs' readings in the same file are not its reference)
    path = sen.sentinel_path(lut, "mybench", "fp32")
    meta, rows = records.read(path, sen.COLUMNS)
    ref = sen.reference_ms(lut, "mybench", "fp32", context="profile mybench_fp32.ops.csv")
    for r in rows:
        if r["context"].startswith("profile"):
            r["median_ms"] = f"{ref / 3:.6g}"
    # a layer LUT's readings, more of them than the operators', at today's speed: counted,
    # they would make the median today's and nothing would be refused
    rows += [{**r, "context": "profile mybench_mnasnet_fp32.csv", "median_ms": f"{ref:.6g}"}
             for r in rows for _ in range(3)]  # fmt: skip
    records.create(path, meta, sen.COLUMNS, [[r[c] for c in sen.COLUMNS] for r in rows])
    again = latbench_cli(
        "calibrate", "--ops", *[a for p in nets for a in ("--model", p)], *args, "--passes", "2"
    )
    assert again.returncode == 1, again.stderr + again.stdout
    err = json.loads(again.stdout)  # --json: the error as JSON
    assert "slower than when its LUT was timed" in err["error"] and err["exit_code"] == 1
    assert "Traceback" not in again.stderr
    assert len(records.read(lut / "mybench_ops_fp32.calib.csv", MODEL_COLUMNS)[1]) == 4
