"""The command line as a user meets it: exit codes and messages."""

import json
import os
import subprocess
import sys
from pathlib import Path

import click
import pytest

from latbench.commands.main import cli, main

REPO = Path(__file__).resolve().parents[2]


def run(*args, cwd=REPO, **kw):
    return subprocess.run(
        [sys.executable, "-m", "latbench.commands.main", *map(str, args)],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=600,
        **kw,
    )


def test_zoo_lists_networks_with_params():
    r = run("zoo", "--json")
    assert r.returncode == 0
    rows = {x["name"]: x for x in json.loads(r.stdout)}
    assert abs(rows["mobilenet_v2_x1"]["params_m"] - 3.5) < 0.07
    assert rows["mnasnet_a1"]["layers"] == 20


def test_space_reports_distinct_layer_count():
    r = run("space", "--space", "mnasnet")
    assert r.returncode == 0 and "distinct layers (fp32): 1382" in r.stdout


def test_malformed_arch_exits_2_naming_the_field(tmp_path):
    bad = tmp_path / "a.json"
    bad.write_text(json.dumps({"blocks": ["r1_k3_s11_e1_i32_o16", "r2_k9_s22_e6_i16_o24"]}))
    r = run("predict", bad)
    assert r.returncode == 2
    assert "blocks[1].kernel" in r.stderr and "9" in r.stderr


def test_unknown_device_exits_2_listing_profiles(tmp_path):
    r = run("profile", "--device", "nokia3310", "--zoo")
    assert r.returncode == 2
    assert "nokia3310" in r.stderr and "host" in r.stderr and "pixel4" in r.stderr


def test_usage_errors_exit_2():
    assert run("profile", "--device", "host").returncode == 2  # no layer source
    assert run("profile", "--precision", "fp16", "--zoo").returncode == 2


def test_predict_without_lut_says_how_to_measure(tmp_path):
    r = run("predict", REPO / "examples/zoo/mnasnet_a1.json", "--lut-dir", tmp_path)
    assert r.returncode == 2 and "latbench profile --device host" in r.stderr
    assert "--arch ARCH.json" in r.stderr and f"--lut-dir {tmp_path}" in r.stderr
    assert "--profile-missing" in r.stderr


def test_dry_run_reports_the_lut_file(tmp_path):
    r = run("profile", "--space", "mnasnet", "--dry-run", "--lut-dir", tmp_path)
    assert r.returncode == 0 and "1382 distinct layers" in r.stdout
    assert "host_mnasnet_fp32.csv" in r.stdout


def test_every_space_is_a_choice_and_token_strings_decode_to_arch_json():
    from latbench.nets.load import arch_from_dict
    from latbench.nets.spaces import get_space

    r = run("space", "--space", "fbnet-cifar100")
    assert r.returncode == 0 and "distinct layers (fp32): 106" in r.stdout
    tokens = "7-8-1-8-4-8-8-8-7-4-1-4-7-3-2-7-3-2-4-2-4-5"
    r = run("space", "--space", "fbnet-imagenet", "--decode", tokens)
    assert r.returncode == 0, r.stderr
    sp = get_space("fbnet-imagenet")
    assert arch_from_dict(json.loads(r.stdout)) == sp.decode(sp.parse_tokens(tokens))
    r = run("space", "--space", "fbnet-cifar100", "--decode", "7-8-9")
    assert r.returncode == 2 and "--decode" in r.stderr and "22 tokens" in r.stderr
    r = run("profile", "--space", "nasbench", "--dry-run")
    assert r.returncode == 2 and "fbnet-cifar100" in r.stderr


# ---- a user's first hour (issue 10) -------------------------------------------------------


TINY = {
    "name": "tiny",
    "resolution": 32,
    "stem": {"filters": 16},
    "blocks": ["r1_k3_s11_e1_i16_o8"],
    "head": {"filters": 64},
    "classes": 10,
}


def _all_commands(group=cli, prefix="latbench"):
    for name, cmd in group.commands.items():
        yield f"{prefix} {name}", cmd
        if isinstance(cmd, click.Group):
            yield from _all_commands(cmd, f"{prefix} {name}")


def test_every_option_of_every_command_has_help_text():
    missing = [
        f"{where} {p.opts[0]}"
        for where, cmd in _all_commands()
        for p in cmd.params
        if isinstance(p, click.Option) and not p.help
    ]
    missing += [p.opts[0] for p in cli.params if isinstance(p, click.Option) and not p.help]
    assert not missing, f"options without help: {missing}"


def _main(monkeypatch, capsys, *args):
    """Run the real entry point in this process: (exit code, stdout, stderr)."""
    monkeypatch.setattr(sys, "argv", ["latbench", *map(str, args)])
    code = 0
    try:
        main()
    except SystemExit as exc:
        code = exc.code
    out = capsys.readouterr()
    return code, out.out, out.err


@pytest.mark.parametrize("name", ["../../../escaped", "/tmp/x", ""])
def test_a_network_name_that_would_escape_the_lut_folder_is_refused(
    tmp_path, monkeypatch, capsys, name
):
    af = tmp_path / "a.json"
    af.write_text(json.dumps({**TINY, "name": name}))
    code, out, err = _main(
        monkeypatch, capsys, "predict", af, "--profile-missing", "--lut-dir", tmp_path / "lut"
    )
    assert code == 2 and "name" in err and "cannot be part of a file name" in err
    assert str(af) in err  # the error names the file
    assert not (tmp_path / "lut").exists() and not list(tmp_path.parent.glob("escaped*"))


def test_an_arch_error_names_the_file_it_came_from(tmp_path, monkeypatch, capsys):
    good, bad = tmp_path / "good.json", tmp_path / "bad.json"
    good.write_text(json.dumps(TINY))
    bad.write_text(json.dumps({**TINY, "classes": 0}))
    code, _, err = _main(
        monkeypatch,
        capsys,
        "profile",
        "--arch",
        good,
        "--arch",
        bad,
        "--dry-run",
        "--lut-dir",
        tmp_path,
    )
    assert code == 2 and f"{bad}: classes" in err and str(good) not in err


def test_errors_are_json_when_json_is_asked_for(tmp_path, monkeypatch, capsys):
    code, out, err = _main(monkeypatch, capsys, "predict", tmp_path / "none.json", "--json")
    assert code == 2 and not err
    doc = json.loads(out)
    assert doc["exit_code"] == 2 and doc["kind"] == "InputError" and "none.json" in doc["error"]
    code, out, _ = _main(monkeypatch, capsys, "space", "--space", "nope", "--json")
    assert code == 2 and "nope" in json.loads(out)["error"]


class _LostPhone:
    """A device that goes away mid-measurement, as an unplugged phone does."""

    def __init__(self, profile):
        self.profile = profile

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        pass

    def close(self):
        pass


@pytest.mark.parametrize("exc_name", ["DeviceLost", "ModelRunError"])
def test_a_device_failure_ends_in_one_line_with_a_hint_not_a_traceback(
    tmp_path, monkeypatch, capsys, exc_name
):
    import latbench.devices
    import latbench.profiling.sentinel
    from latbench.devices import base

    af = tmp_path / "a.json"
    af.write_text(json.dumps(TINY))

    def boom(*a, **k):
        raise getattr(base, exc_name)("adb: device 'X1' not found\nerror: closed")

    monkeypatch.setattr(latbench.devices, "open_device", _LostPhone)
    monkeypatch.setattr(latbench.profiling.sentinel, "measure_watched", boom)
    code, out, err = _main(monkeypatch, capsys, "measure", af)
    assert code == 1 and not out
    assert err.count("\n") == 1 and "Traceback" not in err
    assert err.startswith("error: adb: device 'X1' not found error: closed -- ")
    if exc_name == "DeviceLost":
        assert "run the same command again" in err and "--resume" in err


def test_space_and_dry_run_speak_json(tmp_path, monkeypatch, capsys):
    code, out, _ = _main(monkeypatch, capsys, "space", "--space", "tiny", "--json")
    assert code == 0
    doc = json.loads(out)
    assert doc["space"] == "tiny" and doc["distinct_layers"] > 0 and "op" in doc["decisions"]
    af = tmp_path / "a.json"
    af.write_text(json.dumps(TINY))
    code, out, _ = _main(
        monkeypatch, capsys, "profile", "--arch", af, "--dry-run", "--json", "--lut-dir", tmp_path
    )
    from latbench.nets.arch import unique_specs
    from latbench.nets.load import arch_from_dict

    n = len(unique_specs([arch_from_dict(TINY)]))
    assert json.loads(out) == [
        {
            "device": "host",
            "distinct_layers": n,
            "measured": 0,
            "missing": n,
            "lut": str(tmp_path / "host_tiny_fp32.csv"),
        }
    ]


def test_lut_list_reads_the_folder(tmp_path, monkeypatch, capsys):
    from latbench.devices.measure import summarize
    from latbench.nets.arch import LayerSpec
    from latbench.profiling.lut import LUT, Row

    lut = LUT.create(
        tmp_path / "host_t_fp32.csv",
        {"fingerprint": {"device": "host"}, "converter": "c", "precision": "fp32", "space": "t"},
    )
    lut.append(
        Row(LayerSpec("mbconv", 14, 16, 14, 16, 3, 1, 6.0, skip=True), "ok", summarize([1.0, 2.0]))
    )
    code, out, _ = _main(monkeypatch, capsys, "lut", "list", "--lut-dir", tmp_path)
    assert code == 0 and "host_t_fp32.csv" in out and " 1 " in out
    code, out, _ = _main(monkeypatch, capsys, "lut", "list", "--lut-dir", tmp_path, "--json")
    assert [(e["file"], e["rows"]) for e in json.loads(out)] == [("host_t_fp32.csv", 1)]


def test_quiet_keeps_notes_off_stderr(tmp_path, monkeypatch, capsys):
    code, out, err = _main(monkeypatch, capsys, "lut", "list", "--lut-dir", tmp_path)
    assert "no LUT or predictor files" in err
    code, out, err = _main(monkeypatch, capsys, "--quiet", "lut", "list", "--lut-dir", tmp_path)
    assert not err and not out


def test_progress_bars_only_on_a_terminal(monkeypatch):
    from click.testing import CliRunner

    from latbench.commands import console

    seen = {}

    @click.command()
    def probe():
        seen["bar"] = console.progress_wanted(False)

    CliRunner().invoke(probe)  # CliRunner's stderr is not a terminal
    assert seen["bar"] is False
    monkeypatch.setattr(sys.stderr, "isatty", lambda: True, raising=False)
    monkeypatch.setattr(console, "_terminal_columns", lambda: 80)
    assert console.progress_wanted(False) is True
    assert console.progress_wanted(True) is False
    monkeypatch.setattr(console, "_terminal_columns", lambda: 0)  # a pty nobody sized
    assert console.progress_wanted(False) is False


def test_no_bars_on_an_unsized_terminal(tmp_path):
    """`script` with no terminal of its own gives the command a pty of width 0 (as some CI
    runners do): a bar there is a blank line per update, so none is drawn."""
    import shutil

    if not shutil.which("script"):
        pytest.skip("no `script` here")
    code = (
        "import sys\nfrom latbench.commands import console\n"
        "print('tty' if sys.stderr.isatty() else 'pipe', "
        "'bars' if console.progress_wanted(False) else 'no-bars')"
    )
    out = tmp_path / "typescript"
    subprocess.run(
        ["script", "-qfc", f'{sys.executable} -c "{code}"', str(out)],
        cwd=REPO,
        capture_output=True,
        timeout=120,
        stdin=subprocess.DEVNULL,
    )
    assert "tty no-bars" in out.read_text()


@pytest.mark.parametrize(
    "bad, named",
    [
        (["--target-ms", "-1"], "--target-ms"),
        (["--target-ms", "5", "--device", "nokia3310"], "nokia3310"),
        (["--target-ms", "5", "--space", "nope"], "nope"),
        (["--target-ms", "5", "--constraint", "hard", "--alpha", "0.1"], "alpha"),
        (["--target-ms", "5", "--data-dir", "/nonexistent/fmnist"], "/nonexistent/fmnist"),
    ],
)
def test_bad_search_arguments_are_rejected_before_tensorflow_loads(tmp_path, bad, named):
    argv = ["latbench", "search", "--out", str(tmp_path / "r"), *bad]
    code = (
        "import sys\nfrom latbench.commands.main import main\n"
        f"sys.argv = {argv!r}\n"
        "try:\n    main()\nexcept SystemExit as e:\n    print('exit', e.code)\n"
        "print('tensorflow' in sys.modules)\n"
    )
    r = subprocess.run(
        [sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, timeout=120
    )
    assert r.stdout.split() == ["exit", "2", "False"], r.stderr
    assert named in r.stderr


def test_the_target_ms_hint_points_at_the_example_files(tmp_path):
    r = run("search", "--out", tmp_path / "r")
    assert r.returncode == 2 and "examples/zoo/mobilenet_v2_x1.json" in r.stderr
    assert (REPO / "examples/zoo/mobilenet_v2_x1.json").exists()


def test_devices_json_without_a_phone_is_an_empty_list_and_exit_0():
    r = run("devices", "--no-server", "--json")
    assert r.returncode == 0 and json.loads(r.stdout) == []


def test_devices_says_a_connect_was_refused():
    import socket

    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()  # nothing listens there now
    r = run("devices", "--no-server", "--connect", f"127.0.0.1:{port}")
    assert r.returncode == 1 and "connection refused" in r.stderr
    assert "no phone found" not in r.stderr
    r = run("devices", "--no-server", "--connect", f"127.0.0.1:{port}", "--json")
    assert r.returncode == 0 and json.loads(r.stdout)[0]["state"] == "refused"


def test_json_output_is_strict_json_even_with_undefined_statistics(capsys):
    from latbench.commands.options import echo_json as _echo_json

    _echo_json({"metrics": {"kendall_tau": float("nan"), "mape": 1.5}, "l": [float("inf")]})
    assert json.loads(capsys.readouterr().out, parse_constant=lambda c: 1 / 0) == {
        "metrics": {"kendall_tau": None, "mape": 1.5},
        "l": [None],
    }


def test_missing_layers_hint_names_the_one_step_fix(tmp_path, monkeypatch, capsys):
    from latbench.devices.measure import summarize
    from latbench.nets.load import arch_from_dict
    from latbench.profiling.lut import LUT, Row

    spec = arch_from_dict(TINY).layers()[0]
    lut = LUT.create(
        tmp_path / "host_t_fp32.csv",
        {"fingerprint": {"device": "host"}, "converter": "c", "precision": "fp32"},
    )
    lut.append(Row(spec, "ok", summarize([1.0, 2.0])))
    af = tmp_path / "a.json"
    af.write_text(json.dumps(TINY))
    code, _, err = _main(monkeypatch, capsys, "predict", af, "--lut-dir", tmp_path)
    assert code == 2 and "missing from the host fp32 LUT" in err and spec.key not in err
    assert f"latbench predict {af}" in err and f"--lut-dir {tmp_path} --profile-missing" in err


def test_predict_takes_a_profile_file_outside_the_profile_folders(tmp_path, monkeypatch, capsys):
    """--device path/to/mine.toml: the profile's name names the LUT; with none yet, the hint
    gives the path back (`--device mybench` alone would be an unknown device)."""
    from latbench.devices.measure import summarize
    from latbench.nets.load import arch_from_dict
    from latbench.profiling.lut import LUT, Row

    mine = tmp_path / "mine.toml"
    mine.write_text((REPO / "device_profiles/host.toml").read_text().replace(
        'name = "host"', 'name = "mybench"'))  # fmt: skip
    af = tmp_path / "a.json"
    af.write_text(json.dumps(TINY))
    lut_dir = tmp_path / "lut"
    code, _, err = _main(monkeypatch, capsys, "predict", af, "--device", mine, "--lut-dir", lut_dir)
    assert code == 2 and "no fp32 LUT for device 'mybench'" in err and "unknown" not in err
    assert f"latbench profile --device {mine} --arch ARCH.json" in err
    lut_dir.mkdir()
    lut = LUT.create(
        lut_dir / "mybench_t_fp32.csv",
        {"fingerprint": {"device": "mybench"}, "converter": "c", "precision": "fp32"},
    )
    first, *rest = arch_from_dict(TINY).layers()
    lut.append(Row(first, "ok", summarize([0.5, 0.5])))
    code, _, err = _main(monkeypatch, capsys, "predict", af, "--device", mine, "--lut-dir", lut_dir)
    assert code == 2 and "missing from the mybench fp32 LUT" in err  # both hints give the path
    assert f"latbench profile --device {mine} " in err and f"{af} --device {mine} " in err
    for spec in rest:
        lut.append(Row(spec, "ok", summarize([0.5, 0.5])))
    code, out, err = _main(monkeypatch, capsys, "predict", af, "--device", mine, "--lut-dir",
                           lut_dir, "--json")  # fmt: skip
    assert code == 0, err
    doc = json.loads(out)
    assert doc["device"] == doc["lut_device"] == "mybench"
    assert doc["latency_ms"] == pytest.approx(0.5 * len(doc["layers"]))


@pytest.mark.parametrize(
    "args", [("zoo",), ("space", "--list", "--space", "tiny"), ("zoo", "--json")]
)
def test_a_reader_that_goes_away_ends_the_command_quietly_with_exit_0(args):
    """As `ls | head` does. The read end is closed before latbench writes a byte, so every write
    meets a closed pipe (EPIPE), whatever the machine's speed."""
    p = subprocess.Popen(
        [sys.executable, "-m", "latbench.commands.main", *args],
        cwd=REPO,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    p.stdout.close()
    err = p.stderr.read().decode()
    assert p.wait(timeout=120) == 0, err
    assert err == ""


def test_the_main_job_pipes_into_head_under_pipefail():
    """The README's main job runs `latbench predict ... | head -3` under `set -o pipefail`."""
    r = subprocess.run(
        [
            "bash",
            "-c",
            f"set -o pipefail; {sys.executable} -m latbench.commands.main zoo | head -1",
        ],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert r.returncode == 0 and r.stderr == "" and r.stdout.startswith("network")


def test_ctrl_c_under_json_is_one_json_object_and_exit_130(tmp_path):
    """SIGINT while the command waits on reading its input: deterministic. (A FIFO no longer
    blocks: latbench refuses one at once, so the read is made to wait by a stand-in that says
    when it is waiting.)"""
    import signal
    import time

    ready = tmp_path / "waiting"
    code = (
        "import pathlib, signal, sys, time\n"
        # a terminal's Ctrl-C, even when the suite was started in the background (a shell
        # then leaves SIGINT ignored, and that is inherited)
        "signal.signal(signal.SIGINT, signal.default_int_handler)\n"
        "import latbench.nets.load as load\n"
        "def stuck(path):\n"
        f"    pathlib.Path({str(ready)!r}).write_text('x')\n"
        "    time.sleep(600)\n"
        "load.load_json = stuck\n"
        "from latbench.commands.main import main\n"
        "sys.argv = ['latbench', *sys.argv[1:]]\n"
        "main()\n"
    )
    (tmp_path / "arch.json").write_text("{}")
    p = subprocess.Popen(
        [sys.executable, "-c", code, "export", str(tmp_path / "arch.json"), "-o",
         str(tmp_path / "x.tflite"), "--json"],
        cwd=REPO,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )  # fmt: skip
    deadline = time.monotonic() + 300
    while not ready.exists() and p.poll() is None and time.monotonic() < deadline:
        time.sleep(0.05)
    try:
        p.send_signal(signal.SIGINT)
        out, err = p.communicate(timeout=60)
    finally:
        p.kill()  # never left behind, whatever happened
    assert p.returncode == 130, err
    doc = json.loads(out)
    assert doc["exit_code"] == 130 and "interrupted" in doc["error"]


@pytest.fixture
def no_tensorflow(tmp_path):
    """An environment where importing TensorFlow fails: a check that needs it is too late."""
    fake = tmp_path / "fake" / "tensorflow"
    fake.mkdir(parents=True)
    (fake / "__init__.py").write_text("raise ImportError('TensorFlow was imported')\n")
    return dict(os.environ, PYTHONPATH=str(fake.parent))


@pytest.mark.parametrize(
    "args, field",
    [
        (("--target-ms", "nan"), "--target-ms"),
        (("--target-ms", "inf"), "--target-ms"),
        (("--target-ms", "5", "--alpha", "1", "--beta", "1"), "--alpha"),
        (("--latency", "flops", "--target-mmacs", "nan"), "--target-mmacs"),
    ],
)
def test_search_refuses_bad_targets_and_rewards_before_loading_anything(
    tmp_path, no_tensorflow, args, field
):
    r = run("search", *args, "--out", tmp_path / "run", "--json", env=no_tensorflow)
    assert r.returncode == 2, r.stderr
    assert json.loads(r.stdout)["field"] == field and "TensorFlow" not in r.stdout + r.stderr


def test_a_mistyped_device_is_called_unknown_by_predict_and_the_api(tmp_path):
    r = run("predict", "examples/zoo/mnasnet_a1.json", "--device", "hots", "--lut-dir", tmp_path)
    assert r.returncode == 2 and "unknown device 'hots'; known profiles:" in r.stderr
    import latbench
    from latbench.errors import InputError

    with pytest.raises(InputError, match="unknown device 'hots'"):
        latbench.Predictor(device="hots", lut_dir=tmp_path)
    with pytest.raises(InputError, match="precision"):
        latbench.Predictor(precision="fp16", lut_dir=tmp_path)


def test_json_errors_name_the_field_and_the_file(tmp_path, tiny_arch_dict):
    bad = tmp_path / "bad.json"
    blocks = [tiny_arch_dict["blocks"][0], {**tiny_arch_dict["blocks"][2], "kernel": 4}]
    bad.write_text(json.dumps({**tiny_arch_dict, "blocks": blocks}))
    doc = json.loads(run("predict", bad, "--json").stdout)
    assert doc["field"] == "blocks[1].kernel" and doc["file"] == str(bad)
    doc = json.loads(run("measure", bad, "--precision", "fp64", "--json").stdout)
    assert doc["field"] == "--precision" and doc["exit_code"] == 2


def test_profile_missing_on_a_phone_without_its_binary_says_so_before_promising_anything(
    tmp_path,
):
    r = run(
        "predict", "examples/zoo/mobilenet_v2_x0.35.json", "--device", "pixel7",
        "--profile-missing", "--lut-dir", tmp_path / "lut",
    )  # fmt: skip
    assert r.returncode == 2
    assert "measuring" not in r.stderr and "docs/phones.md" in r.stderr
    assert "options.benchmark_model" in r.stderr and not (tmp_path / "lut").exists()
