"""End to end over the real ADB wire protocol, against the loopback emulated phone.

The same AdbDevice / adb-shell code a Pixel gets: RSA auth, shell, sync push,
benchmark_model output parsing; then the faults, each a clear error and a
clean resume.
"""

from __future__ import annotations

import dataclasses
import os
import stat
import time
from pathlib import Path

import pytest

from latbench.devices import DeviceLost, ModelRunError, open_device
from latbench.devices.adb_transport import (
    AdbShellTransport,
    CommandTimeout,
    UsbBusy,
    ensure_adb_key,
    sh_join,
)
from latbench.devices.emulated import (
    Clocks,
    EmulatedPhone,
    Faults,
    decode_adb_public_key,
    verify_token_signature,
)
from latbench.devices.profiles import load_profile, parse_profile
from latbench.errors import InputError

pytestmark = (
    pytest.mark.phone
)  # every test here starts the stand-in phone: -m "not phone" skips them

FAST = {"warmup_runs": 2, "min_runs": 10, "max_runs": 40, "max_seconds": 0.5, "target_ci": 0.5}


@pytest.fixture(scope="session")
def tflite(tmp_path_factory) -> Path:
    """A real one-layer .tflite made by latbench's own builder and TF's converter."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    import tensorflow as tf

    from latbench.build.builder import layer_model
    from latbench.nets.arch import LayerSpec

    spec = LayerSpec(op="mbconv", in_hw=8, cin=8, out_hw=8, cout=8, kernel=3, stride=1, expand=3.0)
    data = tf.lite.TFLiteConverter.from_keras_model(layer_model(spec)).convert()
    p = tmp_path_factory.mktemp("models") / "layer.tflite"
    p.write_bytes(data)
    return p


def _convert(tmp_path_factory, spec, name: str) -> Path:
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    import tensorflow as tf

    from latbench.build.builder import layer_model

    data = tf.lite.TFLiteConverter.from_keras_model(layer_model(spec)).convert()
    p = tmp_path_factory.mktemp("models") / name
    p.write_bytes(data)
    return p


@pytest.fixture(scope="session")
def medium_tflite(tmp_path_factory) -> Path:
    """A layer of a few hundred microseconds, with SE (MEAN and MUL ops, which the stand-in GPU refuses)."""
    from latbench.nets.arch import LayerSpec

    spec = LayerSpec(
        op="mbconv", in_hw=28, cin=32, out_hw=28, cout=32, kernel=3, stride=1, expand=6.0, se=8
    )
    return _convert(tmp_path_factory, spec, "medium.tflite")


@pytest.fixture(scope="session")
def adbkey(tmp_path_factory) -> Path:
    return ensure_adb_key(tmp_path_factory.mktemp("android") / "adbkey")


@pytest.fixture
def phone(tmp_path):
    with EmulatedPhone(tmp_path / "phone") as ph:
        yield ph


def profile(phone: EmulatedPhone, adbkey: Path, tmp_path: Path, cpus_=(0,), **opts):
    options = {
        "connect": phone.address,
        "adbkey": str(adbkey),
        "sandbox": str(tmp_path / "host"),
        "connect_timeout_s": 3,
        "command_timeout_s": 30,
        "run_timeout_s": 120,
        "retries": 2,
        "temp_check_s": 0,
        "warmup_s": 0.3,
        # one benchmark_model invocation per row (each is a Python process here): the tests of
        # the row protocol itself (back-to-back invocations, warm-up, heat) ask for 3
        "repeats": 1,
        "reconnect_wait_s": 0.2,
        **opts,
    }
    return parse_profile(
        {
            "name": "emulated-test",
            "kind": "emulated",
            "threads": 1,
            "cpus": list(cpus_),
            "protocol": FAST,
            "options": options,
        }
    )


def test_end_to_end_measure(phone, adbkey, tmp_path, tflite):
    with open_device(profile(phone, adbkey, tmp_path, repeats=3)) as dev:
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
        # the tool's own per-invocation medians, read from its result proto
        assert m.extra["stat"] == "median_of_medians" and m.extra["invocations"] >= 3
        assert m.extra["result_source"] == "result_proto"
        assert m.median_ms == pytest.approx(
            sorted(m.extra["medians_ms"])[len(m.extra["medians_ms"]) // 2]
        )
        assert m.extra["min_ms"] <= m.median_ms
        st = m.extra["state"]["after"]
        assert st["thermal_status"] == 0 and st["battery_level"] == 87 and st["charging"] == "usb"
        assert (
            st["cur_khz"] > 0
            and st["max_khz"] == st["cpuinfo_max_khz"]
            and st["power_saver"] is False
        )
    models = [p for p in phone.pushes if "/models/" in p and "preflight" not in p]
    assert len(models) == 1, "the model is pushed once, then found on the phone by its content hash"
    # one shell line per row: state, three back-to-back invocations (the first warms the core), state
    row = [c for c in phone.log if "--graph=" in c and "preflight" not in c][0]
    runs = [r for r in row.split("; ") if "--graph=" in r]
    assert len(runs) == 3 and all(
        r.startswith("taskset 1 /data/local/tmp/latbench/benchmark_model.") for r in runs
    )
    for flag in (
        "--num_threads=1",
        "--use_xnnpack=true",
        "--warmup_runs=2",
        "--num_runs=4",
        "--min_secs=0",
    ):
        assert all(flag in r for r in runs)
    assert "--warmup_min_secs=0.3" in runs[0] and "--warmup_min_secs=0.06" in runs[1]
    assert (
        row.index("dumpsys thermalservice")
        < row.index("--graph=")
        < row.rindex("dumpsys thermalservice")
    )
    assert phone.stayon == "false", "the screen is kept on while profiling and released after"
    assert any("svc power stayon true" in c for c in phone.log)
    assert not list((phone.sandbox / "data/local/tmp/latbench/models").iterdir()), (
        "models removed after a run"
    )


def test_the_users_stay_awake_setting_is_put_back(phone, adbkey, tmp_path, tflite):
    """`svc power stayon false` would turn off a setting the user had on (here: on USB)."""
    phone.stay_on_while_plugged_in, phone.stayon = 2, "usb"
    with open_device(profile(phone, adbkey, tmp_path)) as dev:
        assert phone.stay_on_while_plugged_in == 7, "kept awake on every plug type while timing"
        dev.measure(tflite)
    assert phone.stay_on_while_plugged_in == 2 and phone.stayon == "usb"
    assert any("settings put global stay_on_while_plugged_in 2" in c for c in phone.log)


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
    assert len(phone.keys_file.read_bytes().splitlines()) == 1, (
        "no second key: the signature was accepted"
    )

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
        t = time.monotonic()
        with pytest.raises(DeviceLost, match="Allow USB debugging"):
            open_device(profile(ph, adbkey, tmp_path, auth_timeout_s=1.5))
        # a real phone never closes the socket on a declined key: only our own timeout ends the wait
        assert time.monotonic() - t >= 1.5


def test_a_link_that_never_answers_is_a_link_problem_not_a_refused_key(tmp_path, adbkey):
    with EmulatedPhone(
        tmp_path / "phone", faults=Faults(blackhole_until=time.monotonic() + 3600)
    ) as ph:
        with pytest.raises(DeviceLost, match="Wi-Fi") as e:
            open_device(profile(ph, adbkey, tmp_path, connect_timeout_s=0.5, retries=1))
    assert "Allow USB debugging" not in str(e.value)


def test_a_wifi_blackhole_of_seconds_is_ridden_out_with_back_off(tmp_path, adbkey, tflite):
    with EmulatedPhone(
        tmp_path / "phone", faults=Faults(blackhole_until=time.monotonic() + 2.0)
    ) as ph:
        with open_device(
            profile(ph, adbkey, tmp_path, connect_timeout_s=0.5, reconnect_wait_s=0.5, retries=4)
        ) as dev:
            assert dev.fingerprint()["model"] == "latbench emulated phone"


def test_a_roam_mid_session_is_ridden_out_with_back_off(phone, adbkey, tmp_path, tflite):
    with open_device(
        profile(phone, adbkey, tmp_path, connect_timeout_s=1, reconnect_wait_s=1.0, retries=2)
    ) as dev:
        # links drop and the phone refuses connections for 2.5 s: two reconnects 1 s and 2 s apart
        # ride it out; the old 0.2 s / 0.4 s back-off gave up after 0.6 s
        phone.roam(2.5)
        assert dev.measure(tflite).runs >= 10


def test_wireless_debugging_gets_a_pairing_hint(tmp_path, adbkey):
    with EmulatedPhone(tmp_path / "phone", faults=Faults(tls_only=True)) as ph:
        with pytest.raises(DeviceLost, match="adb pair"):
            open_device(profile(ph, adbkey, tmp_path))


def test_a_usb_read_timeout_is_a_command_timeout_not_a_lost_phone():
    class UsbReadFailedError(Exception):  # adb-shell's wrapper of a libusb error
        pass

    class Dev:
        def shell(self, *a, **kw):
            raise UsbReadFailedError(
                "Could not receive data from ... (timeout 300000ms)", "LIBUSB_ERROR_TIMEOUT [-7]"
            )

        def close(self):
            pass

    t = AdbShellTransport(serial="XYZ")
    t._dev = Dev()
    with pytest.raises(CommandTimeout):
        t.shell("true", 1)


def test_a_hung_run_outlives_the_host_and_the_next_session_kills_it(
    phone, adbkey, tmp_path, tflite
):
    prof = profile(phone, adbkey, tmp_path)
    with open_device(prof) as dev:
        remote_bin = dev.remote_bin
    phone.faults.hang_benchmark = 1
    t = AdbShellTransport(host=phone.host, port=phone.port, key_path=adbkey, connect_timeout_s=3)
    t.connect()
    with pytest.raises(
        CommandTimeout
    ):  # the host gives up and hangs up (a crash, a kill -9, a cable)
        t.shell(sh_join([remote_bin, "--graph=/data/local/tmp/x.tflite"]), 1.0)
    time.sleep(0.3)
    assert phone.stale_processes(), "like on a phone, the hung process survives the host hanging up"
    with open_device(prof) as dev:
        assert dev.stale_killed
        assert not phone.stale_processes()
        assert dev.measure(tflite).runs >= 10


def test_a_cold_core_is_warmed_up_before_a_row_is_timed(tmp_path, adbkey, medium_tflite):
    """The stand-in's idle core runs at 35 % clock and ramps over 0.4 s of load, like a phone's big core."""
    rows = {}
    for name, clocks in (("steady", Clocks(idle=1.0)), ("ramping", Clocks())):
        with EmulatedPhone(tmp_path / name, clocks=clocks) as ph:
            got = []  # the faster of two rows, each from an idle core: this host's own speed
            for _ in range(2):  # jumps 1.2-1.4x within seconds (BENCHMARKS, few-shot)
                time.sleep(0.5)  # the core idles down again (as before "cold" below)
                prof = profile(ph, adbkey, tmp_path / name, warmup_s=0.6, repeats=3)
                with open_device(prof) as dev:
                    got.append(dev.measure(medium_tflite).median_ms)
            rows[name] = min(got)
            if name == "ramping":  # what latbench did before: no time-based warm-up, one invocation
                time.sleep(0.5)
                with open_device(
                    profile(ph, adbkey, tmp_path / name, warmup_s=0, repeats=1)
                ) as dev:
                    rows["cold"] = dev.measure(medium_tflite).median_ms
    assert rows["cold"] > 1.6 * rows["steady"], rows  # the stand-in really ramps
    assert 0.75 < rows["ramping"] / rows["steady"] < 1.33, rows


def test_a_hot_phone_is_cooled_down_before_rows_are_timed(tmp_path, adbkey, tflite):
    # The stand-in heats by the wall time its benchmark runs take, which grows on a slow or
    # loaded machine: size the thermal limit from one row timed here (a few rows heat the
    # phone; one row after a cool-down, which ends below half the limit, cannot tip it over).
    with EmulatedPhone(tmp_path / "p0", clocks=Clocks(idle=1.0)) as ph:
        with open_device(profile(ph, adbkey, tmp_path / "p0", repeats=3)) as dev:
            t0 = time.monotonic()
            dev.measure(tflite)
            row_s = time.monotonic() - t0
    limit = max(4.0, 3 * row_s)
    clocks = Clocks(idle=1.0, throttle_after_s=limit, cool_rate=0.5)
    with EmulatedPhone(tmp_path / "p", clocks=clocks) as ph:
        with open_device(
            profile(
                ph, adbkey, tmp_path, cool_poll_s=0.2, cool_wait_s=max(30.0, 4 * limit), repeats=3
            )
        ) as dev:
            rows = []
            while not any(m.extra["cooled_s"] > 0 for m in rows) and len(rows) < 20:
                rows.append(dev.measure(tflite))  # each row heats the phone further
    assert rows[-1].extra["cooled_s"] > 0, "the load heated the phone until it had to cool"
    assert not any("throttled" in m.extra["flags"] for m in rows)


def test_a_row_that_stays_throttled_is_flagged(tmp_path, adbkey, medium_tflite):
    clocks = Clocks(idle=1.0, throttle_after_s=0.2, cool_rate=0.01)
    with EmulatedPhone(tmp_path / "p", clocks=clocks) as ph:
        with open_device(
            profile(ph, adbkey, tmp_path, cool_poll_s=0.2, cool_wait_s=0.5, repeats=3)
        ) as dev:
            dev.measure(medium_tflite)
            m = dev.measure(medium_tflite)
            st = m.extra["state"]["after"]
    assert "throttled" in m.extra["flags"]
    assert (
        st["thermal_status"] >= 2
        and st["max_khz"] < st["cpuinfo_max_khz"]
        and st["capped_cpus"] == [0]
    )


def test_a_value_the_phone_does_not_show_is_unavailable(tmp_path, adbkey, tflite):
    faults = Faults(no_thermalservice=True, unreadable_sysfs=("scaling_cur_freq",))
    with EmulatedPhone(tmp_path / "p", faults=faults) as ph:
        with open_device(profile(ph, adbkey, tmp_path)) as dev:
            m = dev.measure(tflite)
    st = m.extra["state"]["after"]
    assert st["thermal_status"] == "unavailable" and st["cur_khz"] == "unavailable"
    assert any("Permission denied" in e for e in st["freq_errors"]), (
        "read errors are kept, not dropped"
    )
    assert st["max_khz"] == st["cpuinfo_max_khz"]  # what could be read still is


def test_a_partly_delegated_gpu_row_is_flagged(phone, adbkey, tmp_path, medium_tflite):
    gpu = parse_profile({**_as_dict(profile(phone, adbkey, tmp_path)), "delegate": "gpu"})
    with open_device(gpu) as dev:
        m = dev.measure(medium_tflite)
    st = m.extra["state"]
    assert "partial_delegate" in m.extra["flags"]
    assert 0 < st["fraction"] < 1 and st["delegate_nodes"] < st["graph_nodes"]
    with open_device(profile(phone, adbkey, tmp_path)) as dev:  # XNNPACK takes every node
        m = dev.measure(medium_tflite)
    assert m.extra["state"]["fraction"] == 1.0 and "partial_delegate" not in m.extra["flags"]


def test_the_binary_checksum_is_checked_locally_and_on_the_phone(phone, adbkey, tmp_path, tflite):
    prof = profile(phone, adbkey, tmp_path)
    with pytest.raises(InputError, match="benchmark_model_sha256"):
        open_device(profile(phone, adbkey, tmp_path, benchmark_model_sha256="0" * 64))
    with open_device(prof) as dev:
        remote = phone.host_path(dev.remote_bin)
    good = remote.read_bytes()
    remote.write_bytes(b"x" * len(good))  # same size, wrong bytes: a size check alone would keep it
    with open_device(prof):
        pass
    assert remote.read_bytes() == good


def test_modern_adbd_features_and_shell_v2(phone, adbkey):
    import struct

    t = AdbShellTransport(host=phone.host, port=phone.port, key_path=adbkey, connect_timeout_s=3)
    t.connect()
    try:
        raw = t._dev._service(b"shell,v2,raw", b"echo hi; ls /nonexistent; false", decode=False)
    finally:
        t.close()
    packets, i = [], 0
    while i < len(raw):
        kind, n = struct.unpack_from("<BI", raw, i)
        packets.append((kind, raw[i + 5 : i + 5 + n]))
        i += 5 + n
    assert (1, b"hi\n") in packets and any(k == 2 and b"No such file" in d for k, d in packets)
    assert packets[-1] == (3, bytes([1])), "the exit code comes last"


def test_drop_mid_push_is_retried(phone, adbkey, tmp_path, tflite):
    with open_device(profile(phone, adbkey, tmp_path, keep_models=True)) as dev:
        dev.preflight()
        phone.faults.drop_push, phone.faults.drop_push_after_bytes = 1, 1024
        m = dev.measure(tflite)
    assert m.runs >= 10
    pushed = [p for p in phone.pushes if "/models/" in p and "preflight" not in p]
    assert len(pushed) == 1
    assert phone.host_path(pushed[0]).read_bytes() == tflite.read_bytes()


def test_link_that_keeps_dropping_is_device_lost_then_resumes(phone, adbkey, tmp_path, tflite):
    prof = profile(phone, adbkey, tmp_path, retries=1)
    with open_device(prof) as dev:
        dev.preflight()
        phone.faults.drop_push, phone.faults.drop_push_after_bytes = -1, 1024
        with pytest.raises(DeviceLost, match="unreachable after 2 attempts"):
            dev.measure(tflite)
    assert not [p for p in phone.pushes if "/models/" in p and "preflight" not in p], (
        "no partial model is left as if pushed"
    )
    phone.faults.drop_push = 0
    with open_device(prof) as dev:  # resume: a fresh session picks up where it stopped
        assert dev.measure(tflite).runs >= 10


def test_hung_benchmark_is_a_model_error_and_the_phone_recovers(phone, adbkey, tmp_path, tflite):
    with open_device(profile(phone, adbkey, tmp_path, run_timeout_s=60, repeats=1)) as dev:
        dev.preflight()
        phone.faults.hang_benchmark = 1
        dev.run_timeout_s = 3  # the hung row's limit (the pre-flight and the next row get 60 s)
        t = time.monotonic()
        with pytest.raises(ModelRunError, match="did not finish within 3 s"):
            dev.measure(tflite)
        assert time.monotonic() - t < 60
        assert not phone.stale_processes(), "the hung process was killed"
        dev.run_timeout_s = 60
        assert dev.measure(tflite).runs >= 10


def test_garbage_output_is_a_model_error(phone, adbkey, tmp_path, tflite):
    with open_device(profile(phone, adbkey, tmp_path)) as dev:
        dev.preflight()
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
    phone.faults.gpu_unavailable = True
    with open_device(gpu) as dev:  # a delegate the phone cannot create: the pre-flight says so
        with pytest.raises(InputError, match="pre-flight.*GPU"):
            dev.measure(tflite)
    with open_device(dataclasses.replace(gpu, options={**gpu.options, "preflight": False})) as dev:
        with pytest.raises(ModelRunError, match="GPU"):
            dev.measure(tflite)


def _as_dict(p):
    return {
        "name": p.name,
        "kind": p.kind,
        "threads": p.threads,
        "cpus": list(p.cpus),
        "delegate": p.delegate,
        "protocol": FAST,
        "options": dict(p.options),
    }


def test_waits_to_cool_when_hot(phone, adbkey, tmp_path, tflite):
    with open_device(profile(phone, adbkey, tmp_path, max_temp_c=40, cool_poll_s=0.2)) as dev:
        dev.preflight()
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

    from latbench.commands.devices import devices_command

    r = CliRunner().invoke(
        devices_command, ["--no-server", "--with-emulated", "--adbkey", str(adbkey)]
    )
    assert r.exit_code == 0, r.output
    assert "latbench emulated phone" in r.output and "emulated" in r.output and "30.1 C" in r.output
    r = CliRunner().invoke(devices_command, ["--no-server", "--adbkey", str(adbkey)])
    assert r.exit_code == 1 and "no phone found" in r.output
    r = CliRunner().invoke(devices_command, ["--no-server", "--connect", "nonsense"])
    assert r.exit_code == 2


@pytest.mark.slow
@pytest.mark.skipif(
    not __import__("shutil").which("adb"), reason="Debian's adb client is not installed"
)
def test_google_adb_client_and_server_route(phone, tmp_path, monkeypatch, tflite):
    """Google's own adb (server + client) against the emulated phone: the wire protocol is faithful,
    and latbench's server transport works end to end."""
    import socket
    import subprocess

    from click.testing import CliRunner

    from latbench.commands.devices import devices_command
    from latbench.devices.adb import AdbDevice, make_transport
    from latbench.devices.emulated import standin_script

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
        subprocess.run(
            ["adb", "-s", phone.address, "wait-for-device"], capture_output=True, timeout=60
        )
        # the phone advertises shell_v2, so adb uses it: exit codes and a separate stderr come through
        r = subprocess.run(
            ["adb", "-s", phone.address, "shell", "ls /nonexistent"],
            capture_output=True,
            timeout=30,
        )
        assert r.returncode == 1 and b"No such file" in r.stderr and not r.stdout, r
        r = subprocess.run(
            ["adb", "-s", phone.address, "shell", "echo", "hi"], capture_output=True, timeout=30
        )
        assert r.returncode == 0 and r.stdout == b"hi\n", r
        stub = tmp_path / "stub"
        stub.write_bytes(standin_script())
        prof = parse_profile(
            {
                "name": "via-server",
                "kind": "adb",
                "cpus": [0],
                "protocol": FAST,
                "options": {
                    "transport": "server",
                    "serial": phone.address,
                    "benchmark_model": str(stub),
                },
            }
        )
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

    with (
        EmulatedPhone(tmp_path / "a", serial="emu-a") as a,
        EmulatedPhone(tmp_path / "b", serial="emu-b") as b,
    ):
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


def test_route_policy_uses_a_running_server_else_usb(monkeypatch):
    from latbench.devices import adb_transport
    from latbench.devices.adb import make_transport

    def prof(**o):
        return parse_profile({"name": "p", "kind": "adb", "options": o})

    monkeypatch.setattr(adb_transport, "adb_server_running", lambda timeout_s=0.5: True)
    assert make_transport(prof()).name.startswith("adb-server")
    assert make_transport(prof(host="10.0.0.2")).name == "tcp 10.0.0.2:5555"
    with pytest.raises(InputError, match="adb kill-server"):
        make_transport(prof(transport="usb"))
    monkeypatch.setattr(adb_transport, "adb_server_running", lambda timeout_s=0.5: False)
    assert make_transport(prof()).name.startswith("usb")
    assert make_transport(prof(transport="usb")).name.startswith("usb")


def test_devices_never_starts_an_adb_server(monkeypatch):
    import subprocess

    from latbench.devices import adb_transport

    monkeypatch.setattr(adb_transport, "adb_server_running", lambda timeout_s=0.5: False)
    monkeypatch.setattr(subprocess, "run", lambda *a, **kw: pytest.fail(f"ran {a}"))
    assert adb_transport.list_server_devices() == []


@pytest.mark.parametrize(
    "model,codename,want",
    [
        ("Pixel 7 Pro", "cheetah", "pixel7"),
        ("Pixel 6a", "bluejay", "pixel6"),
        ("Pixel 4 XL", "coral", "pixel4"),
        ("Pixel 8a", "akita", "pixel8"),
    ],
)
def test_pro_xl_and_a_variants_match_their_profile(model, codename, want):
    from latbench.commands.devices import PhoneInfo, _profiles, match_profile

    assert (
        match_profile(PhoneInfo("s", "device", "usb", model=model, device=codename), _profiles())
        == want
    )
    assert (
        match_profile(PhoneInfo("s", "device", "usb", model=model, device=""), _profiles()) == want
    )


# ---- issue 20: phones as they are today (each test fails on the code before it)


def test_the_compiled_model_tool_is_recognised_given_its_flags_and_parsed(
    phone, adbkey, tmp_path, tflite
):
    """LiteRT's CompiledModel benchmark_model prints a BENCHMARK RESULTS block in ms and has no
    --use_xnnpack: it is told apart by its --help, given --use_cpu, and its rows are timed."""
    with open_device(profile(phone, adbkey, tmp_path, standin="compiled_model")) as dev:
        fp = dev.fingerprint()
        m = dev.measure(tflite)
    assert fp["benchmark_tool"] == "compiled_model" and fp["benchmark_tool_version"]
    assert m.extra["output_form"] == "compiled_model" and m.runs >= 10
    assert m.extra["stat"] == "median_of_medians"
    row = [c for c in phone.log if "--graph=" in c and "preflight" not in c][0]
    assert "--use_cpu=true" in row and "--use_xnnpack" not in row


def test_the_classic_tool_is_recognised_and_nnapi_is_refused_for_the_compiled_one(
    phone, adbkey, tmp_path, tflite
):
    with open_device(profile(phone, adbkey, tmp_path)) as dev:
        assert dev.fingerprint()["benchmark_tool"] == "classic"
    nnapi = parse_profile(
        {
            **_as_dict(profile(phone, adbkey, tmp_path, standin="compiled_model")),
            "delegate": "nnapi",
        }
    )
    with open_device(nnapi) as dev:
        with pytest.raises(InputError, match="nnapi.*not offered by the compiled_model"):
            dev.measure(tflite)


def test_the_result_proto_is_preferred_and_the_text_is_the_fallback(
    phone, adbkey, tmp_path, tflite
):
    with open_device(profile(phone, adbkey, tmp_path)) as dev:
        assert dev.fingerprint()["result_source"] == "result_proto"
        m = dev.measure(tflite)
    assert m.extra["result_source"] == "result_proto" and m.extra["stat"] == "median_of_medians"
    assert any("--result_file_path=/data/local/tmp/latbench/result.pb" in c for c in phone.log)
    # an older build without --result_file_path: the new stats line's median, from the text
    with open_device(profile(phone, adbkey, tmp_path, standin_result_file=False)) as dev:
        assert dev.fingerprint()["result_source"] == "text"
        m = dev.measure(tflite)
    assert m.extra["result_source"] == "text" and m.extra["stat"] == "median_of_medians"


def test_preflight_stops_a_pixel8_profile_on_a_pixel9(tmp_path, adbkey, tflite):
    """Tensor G4 has 8 cores: `cpus = [8]` (Pixel 8's X3) does not exist there, and cpu3 is a
    little core; each stops before anything is measured, with one line."""
    with EmulatedPhone(tmp_path / "p9", layout="tensor_g4") as p9:
        with open_device(profile(p9, adbkey, tmp_path, cpus_=[8])) as dev:
            with pytest.raises(InputError, match="no cpu8"):
                dev.measure(tflite)
        with open_device(profile(p9, adbkey, tmp_path, cpus_=[3])) as dev:
            with pytest.raises(InputError, match=r"cpu3 .*not in the big cluster .*cpus = \[7\]"):
                dev.measure(tflite)
        assert not [c for c in p9.log if "--graph=" in c], "nothing ran"
        with open_device(profile(p9, adbkey, tmp_path, cpus_=[7])) as dev:
            assert dev.measure(tflite).runs >= 10
            assert dev.clusters()[7] == 3105000 and len(dev.clusters()) == 8


def test_taskset_fails_for_a_cpu_the_phone_does_not_have(tmp_path, adbkey):
    with EmulatedPhone(tmp_path / "p10", layout="tensor_g5") as p10:
        t = AdbShellTransport(host=p10.host, port=p10.port, key_path=adbkey, connect_timeout_s=3)
        t.connect()
        r = t.shell("taskset 100 /system/bin/true", 10)
        assert r.rc == 1 and "Invalid argument" in r.output
        assert "Tensor G5" in t.shell("getprop ro.soc.model", 10).output
        t.close()


def test_preflight_stops_on_a_binary_that_is_not_benchmark_model(phone, adbkey, tmp_path, tflite):
    from latbench.devices.adb import AdbDevice

    wrong = tmp_path / "not_benchmark_model"
    wrong.write_bytes(b"\x7fELF something else entirely")
    prof = profile(phone, adbkey, tmp_path)
    t = AdbShellTransport(host=phone.host, port=phone.port, key_path=adbkey, connect_timeout_s=3)
    dev = AdbDevice(prof, t, wrong)
    try:
        with pytest.raises(InputError, match="pre-flight.*wrong binary"):
            dev.measure(tflite)
    finally:
        dev.close()


def test_a_partial_gpu_row_records_the_gpu_and_the_xnnpack_fallback_apart(
    phone, adbkey, tmp_path, medium_tflite
):
    """The tool prints the GPU's `Replacing` line, then XNNPACK's for what the GPU left: the
    row must keep the GPU's counts under the GPU's name, and the fallback beside them."""
    gpu = parse_profile({**_as_dict(profile(phone, adbkey, tmp_path)), "delegate": "gpu"})
    with open_device(gpu) as dev:
        m = dev.measure(medium_tflite)
    st = m.extra["state"]
    assert st["delegate"] == "TfLiteGpuDelegateV2" and st["gpu_backend"] == "opencl"
    assert 0 < st["delegate_nodes"] < st["graph_nodes"]
    assert [f["delegate"] for f in st["fallback"]] == ["TfLiteXNNPackDelegate"]
    assert "partial_delegate" in m.extra["flags"]
    row = [c for c in phone.log if "--graph=" in c and "preflight" not in c][0]
    assert "--delegate_serialize_dir=/data/local/tmp/latbench/gpu_cache" in row
    phone.faults.gpu_api = "OpenGL"  # no OpenCL on this phone: the delegate falls back to GL
    with open_device(gpu) as dev:
        assert dev.measure(medium_tflite).extra["state"]["gpu_backend"] == "opengl"


def test_nnapi_on_android_15_is_warned_about(phone, adbkey, tmp_path, tflite, caplog):
    phone.props["ro.build.version.sdk"] = "35"
    nnapi = parse_profile({**_as_dict(profile(phone, adbkey, tmp_path)), "delegate": "nnapi"})
    with open_device(nnapi) as dev:
        dev.preflight()
    assert "NNAPI is deprecated from Android 15" in caplog.text


def test_the_stale_process_pkill_cannot_kill_its_own_shell(phone, adbkey, tmp_path):
    """`sh -c "pkill -f PATTERN; echo rc"`: the shell's own command line holds the pattern."""
    with open_device(profile(phone, adbkey, tmp_path)) as dev:
        naive = sh_join(["pkill", "-f", "/data/local/tmp/latbench/benchmark_model"])
        assert dev.t.shell(naive, 10).rc is None, "the stand-in's pkill sees its caller"
        out, rc = dev._sh(dev._pkill_line())
        assert rc == 1, "nothing to kill, and the exit code arrives"


def test_the_tool_logs_on_stderr_and_rows_keep_it(phone, adbkey, tmp_path, tflite):
    """The real tool logs on stderr: a row line that dropped stderr would see nothing."""
    with open_device(profile(phone, adbkey, tmp_path, keep_models=True)) as dev:
        assert dev.measure(tflite).runs >= 10
        remote = next(p for p in phone.pushes if "/models/" in p and "preflight" not in p)
        run = sh_join(
            [dev.remote_bin, f"--graph={remote}", "--num_runs=2", "--warmup_runs=1"]
            + ["--min_secs=0", "--warmup_min_secs=0"]  # the tool's defaults run 1.5 s
        )
        assert "Inference timings in us" not in dev.t.shell(run + " 2>/dev/null", 60).output
        assert "Inference timings in us" in dev.t.shell(run + " 2>&1", 60).output


@pytest.mark.parametrize(
    "name,layout,ok",
    [
        ("pixel8", "tensor_g3", True),
        ("pixel9", "tensor_g4", True),
        ("pixel10", "tensor_g5", True),
        ("pixel8", "tensor_g4", False),  # cpu8 does not exist on a Pixel 9
    ],
)
def test_shipped_pixel_profiles_pass_the_core_check_on_their_layout(
    tmp_path, adbkey, name, layout, ok
):
    shipped = load_profile(name)
    with EmulatedPhone(tmp_path / layout, layout=layout) as ph:
        with open_device(profile(ph, adbkey, tmp_path, cpus_=shipped.cpus)) as dev:
            if ok:
                dev.check_cores()
            else:
                with pytest.raises(InputError, match="no cpu8"):
                    dev.check_cores()


def test_a_row_timed_with_the_screen_off_is_flagged_or_woken_and_timed_again(
    phone, adbkey, tmp_path, tflite
):
    """`svc power stayon` does not turn a screen on: a row whose state says the screen went
    off is flagged, or, with wake_screen, woken with KEYCODE_WAKEUP and timed once more."""
    with open_device(profile(phone, adbkey, tmp_path, repeats=1)) as dev:
        dev.preflight()
        phone.faults.screen_off_after_runs = phone.runs_started  # off as the row runs
        m = dev.measure(tflite)
    st = m.extra["state"]
    assert "screen_off" in m.extra["flags"]
    assert st["before"]["wakefulness"] == "Awake" and st["after"]["wakefulness"] == "Asleep"
    assert st["after"]["display"] == "OFF" and st["after"]["screen_on"] is False
    assert not any("KEYCODE_WAKEUP" in c for c in phone.log)
    with open_device(profile(phone, adbkey, tmp_path, repeats=1, wake_screen=True)) as dev:
        assert phone.screen_on, "the session starts by waking the screen"
        dev.preflight()
        phone.faults.screen_off_after_runs = phone.runs_started
        m = dev.measure(tflite)
    st = m.extra["state"]
    assert "screen_off" not in m.extra["flags"] and st["after"]["wakefulness"] == "Awake"
    assert sum("input keyevent KEYCODE_WAKEUP" in c for c in phone.log) == 2


def test_the_task_profile_is_set_for_the_row_and_whether_it_applied_is_recorded(
    phone, adbkey, tmp_path, tflite
):
    with open_device(profile(phone, adbkey, tmp_path, repeats=1)) as dev:
        m = dev.measure(tflite)
    assert m.extra["state"]["before"]["task_profile"] == {
        "name": "MaxPerformance",
        "applied": True,
        "rc": 0,
    }
    assert "MaxPerformance" in phone.task_profiles.values()
    phone.faults.no_settaskprofile = True  # an Android whose shell has no settaskprofile
    with open_device(profile(phone, adbkey, tmp_path, repeats=1)) as dev:
        m = dev.measure(tflite)
    tp = m.extra["state"]["before"]["task_profile"]
    assert tp["applied"] is False and tp["rc"] == 127 and m.runs >= 3


def test_whole_networks_record_their_peak_memory_and_layers_do_not(phone, adbkey, tmp_path, tflite):
    """measure/calibrate/validate time whole networks with --report_peak_memory_footprint
    and keep the tool's peak and max-RSS delta; layer rows pass neither."""
    with open_device(profile(phone, adbkey, tmp_path, repeats=1)) as dev:
        layer = dev.measure(tflite)
        net = dev.measure(tflite, network=True)
    assert "memory" not in layer.extra
    mem = net.extra["memory"]
    assert mem["peak_mb"] > 1 and mem["delta_mb"] >= 0 and mem["source"] == "benchmark_model"
    runs = [c for c in phone.log if "--graph=" in c and "preflight" not in c]
    assert "--report_peak_memory_footprint=true" not in runs[0]
    assert "--report_peak_memory_footprint=true" in runs[-1]


def test_the_phone_streams_a_runs_log_while_it_runs(phone, adbkey, tmp_path, tflite):
    """adbd forwards a process's output as it is written: a run that hangs after its first
    log line has already sent that line (the stand-in once sent everything at the end)."""
    with open_device(profile(phone, adbkey, tmp_path, keep_models=True, repeats=1)) as dev:
        dev.measure(tflite)
        remote = next(p for p in phone.pushes if "/models/" in p and "preflight" not in p)
        phone.faults.hang_benchmark = 1
        line = sh_join([dev.remote_bin, f"--graph={remote}"]) + " 2>&1"
        chunks = dev.t._dev.streaming_shell(line, transport_timeout_s=60, read_timeout_s=60)
        assert "STARTING!" in next(chunks)
        assert phone.stale_processes(), "the run has not ended: the line came while it ran"
        # hang up, as a host gives up on a hung run: the phone's one session is still busy with
        # it, so close() would otherwise wait out command_timeout_s to tidy up
        dev.t.close()


def test_in_network_operator_times_are_read_from_the_op_profile_and_matched(
    phone, adbkey, tmp_path, medium_tflite
):
    from latbench.build.tflite_ops import decompose
    from latbench.profiling.innetwork import in_network
    from latbench.profiling.oplut import ModelOps

    tfl = medium_tflite
    model = ModelOps("layer", str(tfl), tfl, decompose(tfl.read_bytes()))
    with open_device(profile(phone, adbkey, tmp_path)) as dev:
        inn = in_network(model, dev.op_profile(tfl))
    run = [c for c in phone.log if "--enable_op_profiling=true" in c]
    assert run and "--use_xnnpack=true" in run[0]
    # XNNPACK's kernel node, then one delegate operator per TFLite operator, in graph order
    assert [r.kernel for r in inn.rows][:2] == [True, False] and inn.rows[0].node == len(model.ops)
    assert inn.note == f"{len(model.ops)} delegate operators, in graph order"
    assert all(v is not None and v >= 0 for v in inn.ms) and inn.whole_ms > 0
    conv = [v for o, v in zip(model.ops, inn.ms) if o.op == "CONV_2D"]
    assert conv and max(conv) > 0
