"""The operator LUT: operators of several models timed once each, resumed, listed as `oplut`,
kept apart from layer LUTs; `profile --model` refuses damaged files in one line."""

import json
from pathlib import Path

import pytest

from latbench.build.tflite_ops import decompose, inputs_path
from latbench.devices import open_device
from latbench.devices.base import DeviceProfile
from latbench.devices.measure import Protocol
from latbench.profiling.inventory import inventory
from latbench.profiling.lut import find_luts
from latbench.profiling.oplut import ModelOps, OpLUT, op_lut_path, profile_ops, unique_ops
from tests.build.test_tflite_ops import FIXTURES, FP32, _damaged, edited
from tests.conftest import latbench_cli

FAST = Protocol(
    warmup_runs=1, min_runs=5, max_runs=20, batch_runs=5, max_seconds=0.2, target_ci=1.0
)
HOST_FAST = FIXTURES.parent / "fast_profiles" / "host.toml"  # the same, for the command line


def _model(path: Path) -> ModelOps:
    return ModelOps(path.stem, str(path), path, decompose(path.read_bytes(), str(path)))


def test_operators_shared_by_two_models_are_one_row_each(tmp_path):
    other = tmp_path / "custom_add.tflite"
    other.write_bytes(edited(FP32, "MyAdd"))
    models = [_model(FIXTURES / "net_fp32.tflite"), _model(other)]
    assert len(unique_ops(models)) == 5  # the second model's 4 operators are all in the first
    assert models[1].refused_line() == "CUSTOM:MyAdd (a custom operator)"


@pytest.mark.slow
def test_profile_ops_measures_each_key_once_and_resumes(tmp_path):
    other = tmp_path / "custom_add.tflite"
    other.write_bytes(edited(FP32, "MyAdd"))
    models = [_model(FIXTURES / "net_fp32.tflite"), _model(other)]
    lut_dir = tmp_path / "lut"
    with open_device(
        DeviceProfile("host", "host", cpus=(0,), protocol=FAST, options={"retime_wait_s": 0.1})
    ) as dev:
        timed = []
        measure = dev.measure
        dev.measure = lambda p: timed.append(Path(p)) or measure(p)
        (s,) = profile_ops([dev], models, "fp32", lut_dir, workers=1, progress=False)
        assert (s.measured, s.failed) == (5, 0), s.errors
        ops = [p for p in timed if p.parent.name == "ops"]  # the rest: the sentinel
        assert len(ops) == len(set(ops)) == 5
        # each timed on its network's activations, saved beside it (one taken away: the
        # operator is extracted again, not timed on random bytes)
        assert all(measure(p).extra["inputs"] == "network" for p in ops)
        inputs_path(ops[0]).unlink()
        (fresh,) = profile_ops([dev], models, "fp32", tmp_path / "lut2", workers=1,
                               progress=False)  # fmt: skip
        assert fresh.measured == 5 and inputs_path(ops[0]).exists()
        (again,) = profile_ops([dev], models, "fp32", lut_dir, workers=1, progress=False)
        assert (again.measured, again.skipped) == (0, 5)
    path = op_lut_path(lut_dir, "host", "", "fp32")
    lut = OpLUT.load(path)
    assert set(lut.ok()) == {o.key for o in unique_ops(models)}
    assert {r.measurement.extra["state"]["inputs"] for r in lut.rows.values()} == {"network"}
    assert lut.rows[models[0].ops[0].key].spec.op == "CONV_2D"
    assert [e.kind for e in inventory(lut_dir) if e.file == path.name] == ["oplut"]
    assert find_luts(lut_dir, "host", "fp32") == []  # never mistaken for a layer LUT


@pytest.mark.slow
def test_profile_model_resumes_refuses_by_name_and_damaged_files_are_one_line(tmp_path):
    lut = tmp_path / "lut"
    custom = tmp_path / "custom_add.tflite"
    custom.write_bytes(edited(FP32, "MyAdd"))
    args = ("profile", "--model", FIXTURES / "net_fp32.tflite", "--model", custom,
            "--device", HOST_FAST, "--lut-dir", lut, "--no-progress", "--json")  # fmt: skip
    first = latbench_cli(*args)
    assert first.returncode == 0, first.stderr
    (doc,) = json.loads(first.stdout)
    assert doc["measured"] == 5 and doc["models"][1]["refused"] == {
        "CUSTOM:MyAdd": "a custom operator"
    }
    assert "CUSTOM:MyAdd (a custom operator)" in first.stderr
    second = latbench_cli(*args)
    (doc,) = json.loads(second.stdout)
    assert (doc["measured"], doc["skipped"]) == (0, 5)
    pred = latbench_cli("predict", FIXTURES / "net_fp32.tflite", "--lut-dir", lut, "--json")
    assert pred.returncode == 0, pred.stderr
    p = json.loads(pred.stdout)
    rows = OpLUT.load(op_lut_path(lut, "host", "", "fp32")).ok()
    assert p["predictor"] == "lut" and len(p["operators"]) == 5  # the plain operator sum
    assert p["latency_ms"] == pytest.approx(sum(r.measurement.median_ms for r in rows.values()))
    r = latbench_cli("profile", "--model", FIXTURES / "net_int8.tflite", "--lut-dir", lut)
    assert r.returncode == 2 and "--precision int8" in r.stderr
    for name, data in list(_damaged().items())[:5]:
        bad = tmp_path / f"{name}.tflite"
        bad.write_bytes(data)
        r = latbench_cli("profile", "--model", bad, "--lut-dir", lut, timeout=300)
        assert r.returncode == 2, (name, r.stderr)
        assert r.stderr.count("\n") == 1 and "Traceback" not in r.stderr, (name, r.stderr)
