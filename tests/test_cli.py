"""The command line as a user meets it: exit codes and messages."""

import json
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def run(*args, cwd=REPO, **kw):
    return subprocess.run([sys.executable, "-m", "latbench.cli", *map(str, args)], cwd=cwd,
                          capture_output=True, text=True, timeout=600, **kw)


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


def test_dry_run_reports_the_lut_file(tmp_path):
    r = run("profile", "--space", "mnasnet", "--dry-run", "--lut-dir", tmp_path)
    assert r.returncode == 0 and "1382 distinct layers" in r.stdout
    assert "host_mnasnet_fp32.csv" in r.stdout


def test_every_space_is_a_choice_and_token_strings_decode_to_arch_json():
    from latbench.arch import arch_from_dict
    from latbench.spaces import get_space

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
