"""End to end over the real ADB wire protocol, against the loopback emulated phone.

The same AdbDevice / adb-shell code a Pixel gets: RSA auth, shell, sync push,
benchmark_model output parsing; then the faults, each a clear error and a
clean resume.
"""

from __future__ import annotations

import os
import stat
import time
from pathlib import Path

import pytest

from latbench.devices import DeviceLost, ModelRunError, open_device
from latbench.devices.adb_transport import (AdbShellTransport, UsbBusy, ensure_adb_key, sh_join)
from latbench.devices.emulated_phone import (EmulatedPhone, Faults, decode_adb_public_key,
                                             verify_token_signature)
from latbench.devices.profiles import load_profile, parse_profile

FAST = {"warmup_runs": 2, "min_runs": 10, "max_runs": 40, "max_seconds": 0.5, "target_ci": 0.5}


@pytest.fixture(scope="session")
def tflite(tmp_path_factory) -> Path:
    """A real one-layer .tflite made by latbench's own builder and TF's converter."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    import tensorflow as tf

    from latbench.arch import LayerSpec
    from latbench.build import layer_model

    spec = LayerSpec(op="mbconv", in_hw=8, cin=8, out_hw=8, cout=8, kernel=3, stride=1, expand=3.0)
    data = tf.lite.TFLiteConverter.from_keras_model(layer_model(spec)).convert()
    p = tmp_path_factory.mktemp("models") / "layer.tflite"
    p.write_bytes(data)
    return p


@pytest.fixture(scope="session")
def adbkey(tmp_path_factory) -> Path:
    return ensure_adb_key(tmp_path_factory.mktemp("android") / "adbkey")


@pytest.fixture
def phone(tmp_path):
    with EmulatedPhone(tmp_path / "phone") as ph:
        yield ph


def profile(phone: EmulatedPhone, adbkey: Path, tmp_path: Path, **opts):
    options = {"connect": phone.address, "adbkey": str(adbkey), "sandbox": str(tmp_path / "host"),
               "connect_timeout_s": 3, "command_timeout_s": 5, "run_timeout_s": 20, "retries": 2,
               "temp_check_s": 0, "warmup_s": 0.3, "repeats": 3, "reconnect_wait_s": 0.2, **opts}
    return parse_profile({"name": "emulated-test", "kind": "emulated", "threads": 1, "cpus": [0],
                          "protocol": FAST, "options": options})


def test_end_to_end_measure(phone, adbkey, tmp_path, tflite):
    with open_device(profile(phone, adbkey, tmp_path)) as dev:
        fp = dev.fingerprint()
        assert fp["model"] == "latbench emulated phone" and fp["android"] == "14"
        assert fp["cpu_mask"] == "1" and fp["runtime"] == "benchmark_model"
        h = dev.health()
        assert h["battery_temp_c"] == pytest.approx(30.1)
        assert h["thermal_c"]["battery"] == pytest.approx(30.1) and "cpu0" in h["cpufreq"]
        m1 = dev.measure(tflite)
        m2 = dev.measure(tflite)
    for m in (m1, m2):
        assert 0 < m.p10_ms <= m.median_ms <= m.p90_ms and m.runs >= 10
        assert m.extra["source"] == "benchmark_model" and m.extra["output_form"] == "current"
        assert m.extra["stat"] == "median_of_means" and m.extra["invocations"] >= 3
        assert m.median_ms == pytest.approx(sorted(m.extra["means_ms"])[len(m.extra["means_ms"]) // 2])
        assert m.extra["min_ms"] <= m.median_ms
        st = m.extra["state"]["after"]
        assert st["thermal_status"] == 0 and st["battery_level"] == 87 and st["charging"] == "usb"
        assert st["cur_khz"] > 0 and st["max_khz"] == st["cpuinfo_max_khz"] and st["power_saver"] is False
    models = [p for p in phone.pushes if "/models/" in p]
    assert len(models) == 1, "the model is pushed once, then found on the phone by its content hash"
    # one shell line per row: state, three back-to-back invocations (the first warms the core), state
    row = [c for c in phone.log if "--graph=" in c][0]
    runs = [r for r in row.split("; ") if "--graph=" in r]
    assert len(runs) == 3 and all(r.startswith("taskset 1 /data/local/tmp/latbench/benchmark_model.") for r in runs)
    for flag in ("--num_threads=1", "--use_xnnpack=true", "--warmup_runs=2", "--num_runs=4", "--min_secs=0"):
        assert all(flag in r for r in runs)
    assert "--warmup_min_secs=0.3" in runs[0] and "--warmup_min_secs=0.06" in runs[1]
    assert row.index("dumpsys thermalservice") < row.index("--graph=") < row.rindex("dumpsys thermalservice")
    assert phone.stayon == "false", "the screen is kept on while profiling and released after"
    assert any("svc power stayon true" in c for c in phone.log)
    assert not list((phone.sandbox / "data/local/tmp/latbench/models").iterdir()), "models removed after a run"


def test_paths_are_quoted(phone, adbkey, tmp_path, tflite):
    odd = "/data/local/tmp/lat bench;'x $(rm -rf y)"
    with open_device(profile(phone, adbkey, tmp_path, remote_dir=odd)) as dev:
        assert dev.measure(tflite).runs >= 10
    assert any(p.startswith(odd + "/models/") for p in phone.pushes)
    assert (phone.sandbox / odd.lstrip("/")).is_dir()


def test_rsa_auth_really_checks_signatures(phone, adbkey, tmp_path):
    t = AdbShellTransport(host=phone.host, port=phone.port, key_path=adbkey, connect_timeout_s=3)
    t.connect()  # first time: the public key is offered and accepted ("Allow")
    t.close()
    lines = phone.keys_file.read_bytes().splitlines()
    assert len(lines) == 1
    t.connect()  # second time: the token signature must verify against that key
    assert t.shell(sh_join(["echo", "hi there"]), 5).output == "hi there\n"
    t.close()
    assert len(phone.keys_file.read_bytes().splitlines()) == 1, "no second key: the signature was accepted"

    import secrets

    from adb_shell.auth.sign_pythonrsa import PythonRSASigner

    signer = PythonRSASigner.FromRSAKeyPath(str(adbkey))
    key = decode_adb_public_key(Path(str(adbkey) + ".pub").read_text())
    token = secrets.token_bytes(20)
    sig = signer.Sign(token)
    assert verify_token_signature(key, token, sig)
    assert not verify_token_signature(key, secrets.token_bytes(20), sig)
    assert not verify_token_signature(key, token, bytes([sig[0] ^ 1]) + sig[1:])


@pytest.mark.parametrize("how", ["refuse_auth", "no_prompt_answer"])
def test_refused_auth_is_a_clear_device_lost(tmp_path, adbkey, how):
    kw = {"faults": Faults(refuse_auth=True)} if how == "refuse_auth" else {"auto_accept": False}
    with EmulatedPhone(tmp_path / "phone", **kw) as ph:
        with pytest.raises(DeviceLost, match="Allow USB debugging"):
            open_device(profile(ph, adbkey, tmp_path))


def test_drop_mid_push_is_retried(phone, adbkey, tmp_path, tflite):
    with open_device(profile(phone, adbkey, tmp_path, keep_models=True)) as dev:
        phone.faults.drop_push, phone.faults.drop_push_after_bytes = 1, 1024
        m = dev.measure(tflite)
    assert m.runs >= 10
    pushed = [p for p in phone.pushes if "/models/" in p]
    assert len(pushed) == 1
    assert phone.host_path(pushed[0]).read_bytes() == tflite.read_bytes()


def test_link_that_keeps_dropping_is_device_lost_then_resumes(phone, adbkey, tmp_path, tflite):
    prof = profile(phone, adbkey, tmp_path, retries=1)
    with open_device(prof) as dev:
        phone.faults.drop_push, phone.faults.drop_push_after_bytes = -1, 1024
        with pytest.raises(DeviceLost, match="unreachable after 2 attempts"):
            dev.measure(tflite)
    assert not [p for p in phone.pushes if "/models/" in p], "no partial model is left as if pushed"
    phone.faults.drop_push = 0
    with open_device(prof) as dev:  # resume: a fresh session picks up where it stopped
        assert dev.measure(tflite).runs >= 10


def test_hung_benchmark_is_a_model_error_and_the_phone_recovers(phone, adbkey, tmp_path, tflite):
    with open_device(profile(phone, adbkey, tmp_path, run_timeout_s=8)) as dev:
        phone.faults.hang_benchmark = 1
        t = time.monotonic()
        with pytest.raises(ModelRunError, match="did not finish within 8 s"):
            dev.measure(tflite)
        assert time.monotonic() - t < 20
        assert not phone.stale_processes(), "the hung process was killed"
        assert dev.measure(tflite).runs >= 10


def test_garbage_output_is_a_model_error(phone, adbkey, tmp_path, tflite):
    with open_device(profile(phone, adbkey, tmp_path)) as dev:
        phone.faults.garbage_benchmark = 1
        with pytest.raises(ModelRunError, match="no 'Inference timings in us'"):
            dev.measure(tflite)
        assert dev.measure(tflite).runs >= 10


def test_missing_model_and_bad_delegate_are_model_errors(phone, adbkey, tmp_path, tflite):
    bad = tmp_path / "bad.tflite"
    bad.write_bytes(b"not a flatbuffer")
    with open_device(profile(phone, adbkey, tmp_path)) as dev:
        with pytest.raises(ModelRunError, match="benchmark_model failed on bad.tflite"):
            dev.measure(bad)
    gpu = parse_profile({**_as_dict(profile(phone, adbkey, tmp_path)), "delegate": "gpu"})
    with open_device(gpu) as dev:
        with pytest.raises(ModelRunError, match="GPU"):
            dev.measure(tflite)


def _as_dict(p):
    return {"name": p.name, "kind": p.kind, "threads": p.threads, "cpus": list(p.cpus),
            "delegate": p.delegate, "protocol": FAST, "options": dict(p.options)}


def test_waits_to_cool_when_hot(phone, adbkey, tmp_path, tflite):
    with open_device(profile(phone, adbkey, tmp_path, max_temp_c=40, cool_poll_s=0.2)) as dev:
        phone.faults.hot_until = time.monotonic() + 0.7
        assert dev.health()["battery_temp_c"] == pytest.approx(48.0)
        m = dev.measure(tflite)
    assert m.extra["cooled_s"] >= 0.5


def test_in_process_phone_from_the_shipped_profile(tmp_path, adbkey, tflite):
    p = load_profile("emulated")
    opts = dict(p.options, adbkey=str(adbkey), sandbox=str(tmp_path / "s"))
    prof = parse_profile({**_as_dict(p), "options": opts, "protocol": FAST})
    with open_device(prof) as dev:
        assert dev.measure(tflite).runs >= 10


def test_key_is_created_private(tmp_path):
    k = ensure_adb_key(tmp_path / "new" / ".android" / "adbkey")
    assert stat.S_IMODE(k.stat().st_mode) == 0o600
    assert Path(str(k) + ".pub").read_text().strip()


def test_usb_busy_is_explained():
    class USBErrorBusy(Exception):
        pass

    t = AdbShellTransport(serial="XYZ")
    err = t._classify(USBErrorBusy("LIBUSB_ERROR_BUSY [-6]"), "connect")
    assert isinstance(err, UsbBusy)
    assert "adb kill-server" in str(err) and 'transport = "server"' in str(err)


def test_devices_command_lists_the_emulated_phone(adbkey):
    from click.testing import CliRunner

    from latbench.devices.cli_devices import devices_command

    r = CliRunner().invoke(devices_command, ["--no-server", "--with-emulated", "--adbkey", str(adbkey)])
    assert r.exit_code == 0, r.output
    assert "latbench emulated phone" in r.output and "emulated" in r.output and "30.1 C" in r.output
    r = CliRunner().invoke(devices_command, ["--no-server", "--adbkey", str(adbkey)])
    assert r.exit_code == 1 and "no phone found" in r.output
    r = CliRunner().invoke(devices_command, ["--no-server", "--connect", "nonsense"])
    assert r.exit_code == 2


@pytest.mark.slow
@pytest.mark.skipif(not __import__("shutil").which("adb"), reason="Debian's adb client is not installed")
def test_google_adb_client_and_server_route(phone, tmp_path, monkeypatch, tflite):
    """Google's own adb (server + client) against the emulated phone: the wire protocol is faithful,
    and latbench's server transport works end to end."""
    import socket
    import subprocess

    from click.testing import CliRunner

    from latbench.devices.adb import AdbDevice, make_transport
    from latbench.devices.cli_devices import devices_command
    from latbench.devices.emulated_phone import standin_script

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    monkeypatch.setenv("ANDROID_ADB_SERVER_PORT", str(port))  # a private server, never the user's
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    (tmp_path / "home").mkdir()
    try:
        subprocess.run(["adb", "start-server"], capture_output=True, timeout=30, check=True)
        subprocess.run(["adb", "connect", phone.address], capture_output=True, timeout=30)
        # the server authenticates after `connect` returns: wait until it reports "device"
        subprocess.run(["adb", "-s", phone.address, "wait-for-device"], capture_output=True,
                       timeout=60)
        stub = tmp_path / "stub"
        stub.write_bytes(standin_script())
        prof = parse_profile({"name": "via-server", "kind": "adb", "cpus": [0], "protocol": FAST,
                              "options": {"transport": "server", "serial": phone.address,
                                          "benchmark_model": str(stub)}})
        dev = AdbDevice(prof, make_transport(prof), stub)
        try:
            assert dev.fingerprint()["model"] == "latbench emulated phone"
            assert dev.measure(tflite).runs >= 10
        finally:
            dev.close()
        r = CliRunner().invoke(devices_command, [])
        assert r.exit_code == 0 and phone.address in r.output and "adb-server" in r.output, r.output
    finally:
        subprocess.run(["adb", "kill-server"], capture_output=True, timeout=30)


def test_split_needs_identical_phones(tmp_path, adbkey):
    from latbench.devices.fleet import WorkQueue, split_fingerprint
    from latbench.errors import InputError

    with EmulatedPhone(tmp_path / "a", serial="emu-a") as a, EmulatedPhone(tmp_path / "b", serial="emu-b") as b:
        pa, pb = profile(a, adbkey, tmp_path / "ha"), profile(b, adbkey, tmp_path / "hb")
        pc = parse_profile({**_as_dict(pb), "name": "other", "threads": 2})
        with open_device(pa) as da, open_device(pb) as db, open_device(pc) as dc:
            assert split_fingerprint([da, db])["model"] == "latbench emulated phone"
            with pytest.raises(InputError, match="differ in threads"):
                split_fingerprint([da, dc])
    q = WorkQueue(range(5))
    first = q.take()
    q.put_back(first)
    assert list(q) == [0, 1, 2, 3, 4] and len(q) == 0
