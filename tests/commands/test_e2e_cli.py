"""End to end on the host: profile -> calibrate -> validate -> predict -> export (slow)."""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from latbench.profiling.lut import LUT

REPO = Path(__file__).resolve().parents[2]
pytestmark = pytest.mark.slow


def run(*args, **kw):
    return subprocess.run(
        [sys.executable, "-m", "latbench.commands.main", *map(str, args)],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=900,
        **kw,
    )


def test_tiny_space_end_to_end(tmp_path, tiny_pipeline):
    lut, env = tiny_pipeline["lut_dir"], tiny_pipeline["env"]
    table = LUT.load(lut / "host_tiny_fp32.csv")
    assert len(table.ok()) == 213 and not table.failed()
    assert all(row.measurement.median_ms > 0 for row in table.ok().values())
    assert "213 measured, 0 failed" in tiny_pipeline["steps"]["profile"].stdout
    # a second run measures nothing new
    r = run("profile", "--space", "tiny", "--lut-dir", lut, "--no-progress", env=env)
    assert "0 measured, 0 failed, 213 already" in r.stdout

    assert (lut / "host_tiny_fp32.predictor.json").exists()
    assert "fitted on 16 networks" in tiny_pipeline["steps"]["calibrate"].stdout
    # calibrate --heldout 8 measured validate's 8 networks in its pass; validate added none
    after_calibrate = tiny_pipeline["steps"]["validate_rows_after_calibrate"]
    assert sum(1 for ln in after_calibrate.splitlines() if ",space:7," in ln) == 8
    assert (lut / "host_tiny_fp32.validate.csv").read_text() == after_calibrate
    out = tiny_pipeline["validate"]
    m = json.loads((out / "metrics.json").read_text())
    from latbench.calibration.calibrate import make_predictors

    assert set(m) == set(make_predictors()) and m["scaled"]["n"] == 8
    # validate evaluated the very file predict and search load
    assert json.loads((out / "predictor.json").read_text())["path"] == str(
        lut / "host_tiny_fp32.predictor.json"
    )
    assert (out / "predicted_vs_measured.png").stat().st_size > 10_000

    # predict and export a network of the tiny space
    from latbench.nets.spaces import get_space

    arch = get_space("tiny").decode([2, 0, 0, 0, 1, 1] * 2, name="t")
    af = tmp_path / "t.json"
    af.write_text(arch.to_json())
    r = run("predict", af, "--space", "tiny", "--lut-dir", lut, "--json", env=env)
    assert r.returncode == 0, r.stderr
    p = json.loads(r.stdout)
    # the method in use is calibrate's judgement, or the LUT sum if validate found it worse
    doc = json.loads((lut / "host_tiny_fp32.predictor.json").read_text())
    assert doc["default"] == ("lut" if doc.get("verdict") else doc["selection"]["default"])
    assert p["predictor"] == doc["default"] and p["predictor_reason"]
    assert len(p["layers"]) == len(arch.layers())
    assert p["lut_sum_ms"] == pytest.approx(sum(x["ms"] for x in p["layers"]))
    r = run("export", af, "-o", tmp_path / "t.tflite", "--precision", "int8")
    assert r.returncode == 0 and (tmp_path / "t.tflite").read_bytes()[4:8] == b"TFL3"


@pytest.mark.phone
def test_kill_9_mid_profile_loses_nothing_and_resumes(tmp_path, tiny_arch_dict):
    """Killed while a row is being timed, at a point fixed by the test, not by the machine's speed:
    the emulated phone (a separate process) hangs the run of the 4th layer's model file (the
    pre-flight run and the sentinel's come first, whatever their number), so exactly 3 rows
    are written when the kill comes, however fast the machine."""
    import socket

    from latbench.build.cache import spec_path
    from latbench.nets.arch import unique_specs
    from latbench.nets.load import arch_from_dict

    af = tmp_path / "a.json"
    af.write_text(json.dumps({**tiny_arch_dict, "resolution": 96}))
    import hashlib

    from latbench.build.convert import convert_layers

    specs = unique_specs([arch_from_dict({**tiny_arch_dict, "resolution": 96})])
    # all converted now, so the profile below finds them in the same cache and times them
    # in this order (a cached layer is timed before those still converting)
    list(convert_layers([s for s in specs if not spec_path(s).exists()]))
    spec = specs[3]
    # pushed as models/SHA256[:24].tflite (devices/adb.py)
    fourth = hashlib.sha256(spec_path(spec).read_bytes()).hexdigest()[:24] + ".tflite"
    lut = tmp_path / "lut"
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    phone = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "latbench.devices.emulated",
            "--port",
            str(port),
            "--sandbox",
            tmp_path / "phone",
            "--hang-graph",
            fourth,
        ],
        cwd=REPO,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert "listening" in phone.stdout.readline()
        prof = tmp_path / "standin.toml"
        prof.write_text(f"""name = "standin"
kind = "emulated"
cpus = [0]
[protocol]
warmup_runs = 2
min_runs = 5
max_runs = 50
max_seconds = 0.5
target_ci = 1.0
[options]
connect = "127.0.0.1:{port}"
sandbox = "{tmp_path / "host"}"
adbkey = "{tmp_path / "adbkey"}"
repeats = 1
warmup_s = 0.1
run_timeout_s = 600
temp_check_s = 1000
""")
        csv = lut / "standin_tiny_fp32.csv"
        args = ["profile", "--arch", af, "--device", prof, "--lut-dir", lut, "--no-progress"]
        proc = subprocess.Popen(
            [sys.executable, "-m", "latbench.commands.main", *map(str, args)],
            cwd=REPO,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,
        )
        deadline = time.time() + 600
        while time.time() < deadline and proc.poll() is None:
            if csv.exists() and len(LUT.load(csv).rows) >= 3:
                break
            time.sleep(0.05)
        time.sleep(1.0)  # the 4th run hangs: nothing more can be written
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
        before = LUT.load(csv).rows
        assert len(before) == 3
        r = run(*args)  # the hung run is still on the phone: the new session kills it first
        assert r.returncode == 0, r.stderr
        after = LUT.load(csv)
        assert len(after.rows) == 8 and not after.failed()
        for k, row in before.items():  # what was measured before the kill is kept as it was
            assert after.rows[k].measured_at == row.measured_at
        assert csv.read_text().count("\n") == len(after.meta) + 1 + 8  # no duplicates
    finally:
        phone.kill()
        phone.wait()
