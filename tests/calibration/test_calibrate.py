"""Measurements files and few-shot calibration (calibrate.py, `latbench calibrate --measurements`)."""

import json
import random
from pathlib import Path

import pytest

from latbench.calibration.calibrate import read_measurements
from latbench.errors import InputError
from latbench.nets.spaces import get_space


def latbench_cli(*args):
    """The real command line, as a user runs it."""
    import subprocess
    import sys
    from pathlib import Path

    return subprocess.run(
        [sys.executable, "-m", "latbench.commands.main", *map(str, args)],
        cwd=Path(__file__).resolve().parents[2],
        capture_output=True,
        text=True,
        timeout=600,
    )


def _tokens(sp, seed):
    return "-".join(map(str, sp.sample(random.Random(seed))))


def _write(path, lines):
    path.write_text("\n".join(lines) + "\n")
    return path


def test_networks_are_given_as_tokens_or_arch_json_paths(tmp_path, tiny_arch_dict):
    sp = get_space("tiny")
    (tmp_path / "nets").mkdir()
    (tmp_path / "nets" / "a.json").write_text(json.dumps(tiny_arch_dict))
    f = _write(
        tmp_path / "m.csv",
        ["network,latency_ms,name", f"{_tokens(sp, 1)},1.5,", "nets/a.json,2.5,mine"],
    )
    got = read_measurements(f, sp)
    assert [r.median_ms for r in got] == [1.5, 2.5]
    assert got[0].network.arch == sp.decode([int(t) for t in _tokens(sp, 1).split("-")])
    assert got[1].network.arch.name == "mine" and got[1].network.source == "file:3"


@pytest.mark.parametrize(
    "row,expect",
    [
        ("0-1-2,1.0", "row 3: unknown network"),
        ("nowhere.json,1.0", "row 3: unknown network"),
        ("{t},-2", r"row 3 .*latency_ms must be a time in \[1e-06, 1e\+06\) ms"),
        ("{t},1e-300", "row 3 .*must be a time in"),
        ("{t},", "row 3 .*missing or not a number"),
        ("{t},fast", "row 3 .*missing or not a number"),
        ("{t},nan", "row 3 .*must be a time in"),
        ("{t0},3.0", "row 3 .*duplicate of row 2"),
    ],
)
def test_bad_rows_are_named(tmp_path, row, expect):
    sp = get_space("tiny")
    row = row.format(t=_tokens(sp, 2), t0=_tokens(sp, 1))
    f = _write(tmp_path / "m.csv", ["network,latency_ms", f"{_tokens(sp, 1)},1.0", row])
    with pytest.raises(InputError, match=expect):
        read_measurements(f, sp)


def test_a_file_without_the_columns_is_refused(tmp_path):
    f = _write(tmp_path / "m.csv", ["net,ms", "1-2,3"])
    with pytest.raises(InputError, match="network, latency_ms"):
        read_measurements(f, get_space("tiny"))


@pytest.mark.slow
def test_few_shot_calibration_makes_a_predictor_predict_uses(synthetic_tiny, tmp_path):
    """A device with no LUT: 12 networks timed elsewhere + the host LUT as prior."""
    sp, table, lut_dir = synthetic_tiny
    rng = random.Random(7)
    toks = [sp.sample(rng) for _ in range(12)]
    lut_ms = table.features([sp.decode(t) for t in toks])[:, 0]
    f = _write(
        tmp_path / "phone.csv",
        ["network,latency_ms"]
        + [f"{'-'.join(map(str, t))},{2.5 * ms:.6f}" for t, ms in zip(toks, lut_ms)],
    )
    r = latbench_cli(
        "calibrate",
        "--device",
        "myphone",
        "--measurements",
        f,
        "--prior",
        "host",
        "--space",
        "tiny",
        "--lut-dir",
        lut_dir,
    )
    assert r.returncode == 0, r.stderr
    assert "few-shot" in r.stdout
    doc = json.loads((lut_dir / "myphone_tiny_fp32.predictor.json").read_text())
    assert doc["lut"]["device"] == "host" and doc["calibration"]["mode"] == "few-shot"
    import hashlib

    assert doc["calibration"]["measurements_sha256"] == hashlib.sha256(f.read_bytes()).hexdigest()
    arch = sp.decode(sp.sample(random.Random(99)), name="new")
    (tmp_path / "new.json").write_text(arch.to_json())
    r = latbench_cli(
        "predict",
        tmp_path / "new.json",
        "--device",
        "myphone",
        "--space",
        "tiny",
        "--lut-dir",
        lut_dir,
        "--json",
    )
    assert r.returncode == 0, r.stderr
    out = json.loads(r.stdout)
    assert out["predictor"] == "scaled" and out["lut_device"] == "host"
    assert out["latency_ms"] == pytest.approx(2.5 * out["lut_sum_ms"], rel=0.02)
    # a bad row: exit 2 and the row named
    bad = _write(tmp_path / "bad.csv", ["network,latency_ms", f"{'-'.join(map(str, toks[0]))},0"])
    r = latbench_cli(
        "calibrate",
        "--device",
        "myphone",
        "--measurements",
        bad,
        "--prior",
        "host",
        "--space",
        "tiny",
        "--lut-dir",
        lut_dir,
    )
    assert r.returncode == 2 and "row 2" in r.stderr
    # the search uses it like any other predictor (no profile for myphone: no spot checks)
    run = tmp_path / "search"
    r = latbench_cli(
        "search",
        "--device",
        "myphone",
        "--space",
        "tiny",
        "--target-ms",
        "100",
        "--samples",
        "2",
        "--batch",
        "2",
        "--evaluator",  # a user's evaluator, no training: the latency model is the point
        f"{Path(__file__).resolve().parents[1] / 'fixtures/evaluators/tiny_eval.py'}:steady",
        "--baselines",
        "",
        "--spot-every",
        "0",
        "--lut-dir",
        lut_dir,
        "--out",
        run,
        "--no-progress",
    )
    assert r.returncode == 0, r.stderr
    ident = json.loads((run / "latency_model.json").read_text())
    assert ident["predictor"] == "scaled" and ident["lut_device"] == "host"
    assert ident["device"] == "myphone" and ident["predictor_sha"]


@pytest.mark.slow
def test_calibrate_out_and_predictor_files_for_a_device_named_with_an_underscore(
    synthetic_tiny, tmp_path
):
    """calibrate --out FILE without --space (the prior LUT names it), then predict and
    validate --predictor FILE; the output leads with each method's held-out error."""
    sp, table, lut_dir = synthetic_tiny
    rng = random.Random(3)
    toks = [sp.sample(rng) for _ in range(10)]
    lut_ms = table.features([sp.decode(t) for t in toks])[:, 0]
    f = _write(
        tmp_path / "a50.csv",
        ["network,latency_ms"]
        + [f"{'-'.join(map(str, t))},{2.0 * ms + 0.05:.6f}" for t, ms in zip(toks, lut_ms)],
    )
    out = tmp_path / "elsewhere" / "a50.json"
    r = latbench_cli(
        "calibrate", "--device", "samsung_a50", "--measurements", f, "--prior", "host",
        "--lut-dir", lut_dir, "--out", out,
    )  # fmt: skip
    assert r.returncode == 0, r.stderr
    assert "held-out MAPE" in r.stdout and "<- default" in r.stdout
    assert "regression has 15 free parameters for 10 networks" in r.stderr
    assert not list(lut_dir.glob("*.predictor.json"))  # --out: nothing in the LUT folder
    assert json.loads(out.read_text())["space"] == "tiny"
    arch = sp.decode(sp.sample(random.Random(99)), name="new")
    (tmp_path / "new.json").write_text(arch.to_json())
    r = latbench_cli("predict", tmp_path / "new.json", "--predictor", out, "--lut-dir", lut_dir,
                     "--json")  # fmt: skip
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout)["device"] == "samsung_a50"
    held = sp.sample(random.Random(5))
    ms = float(table.features([sp.decode(held)])[0, 0])
    v = _write(tmp_path / "v.csv", ["network,latency_ms", f"{'-'.join(map(str, held))},{ms}"])
    r = latbench_cli("validate", "--predictor", out, "--measurements", v, "--lut-dir", lut_dir,
                     "--out", tmp_path / "report", "--json")  # fmt: skip
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout)["predictor_file"] == str(out)


def test_a_network_file_from_before_the_memory_columns_still_loads_and_is_upgraded(tmp_path):
    from latbench import records
    from latbench.calibration.calibrate import NET_COLUMNS, NET_OPTIONAL, load_results

    old = [c for c in NET_COLUMNS if c not in ("peak_mem_mb", "mem_delta_mb")]
    path = tmp_path / "host_mnasnet_fp32.calib.csv"
    meta = {"device": "host"}
    records.open_for_append(path, meta, old, {"pass", "speed", "device_state"})
    from latbench.nets.zoo import all_archs

    a = all_archs()[0]
    row = dict.fromkeys(old, "")
    row.update(digest=a.digest(), name=a.name, arch=json.dumps(a.to_dict()), status="ok")
    row.update(median_ms="1.5", runs="5", ci_rel="0.01")
    records.append(path, [row[c] for c in old])
    assert load_results(path)[a.digest()].median_ms == 1.5
    records.open_for_append(path, meta, NET_COLUMNS, NET_OPTIONAL)  # rewritten with them, empty
    _, rows = records.read(path, NET_COLUMNS, NET_OPTIONAL)
    assert rows[0]["peak_mem_mb"] == "" and load_results(path)[a.digest()].median_ms == 1.5
