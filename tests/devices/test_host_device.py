import os
import signal
import threading

import pytest

from latbench.build import convert
from latbench.devices import DeviceLost, ModelRunError, load_profile, open_device
from latbench.devices.base import DeviceProfile
from latbench.devices.measure import Protocol
from latbench.errors import InputError
from latbench.nets.arch import LayerSpec


@pytest.fixture(scope="module")
def model_path():
    spec = LayerSpec("mbconv", 28, 16, 28, 16, 3, 1, 6.0, skip=True)
    return next(iter(convert.convert_layers([spec]))).path


def _fast_profile(**protocol):
    p = dict(warmup_runs=2, min_runs=10, max_runs=50, max_seconds=1)
    p.update(protocol)
    return DeviceProfile("host", "host", threads=1, cpus=(0,), protocol=Protocol(**p))


def _kill_mid_measure(dev, model_path):
    """SIGKILL the runtime process while it is timing a model."""
    pid = dev._worker().pid
    threading.Timer(0.5, os.kill, (pid, signal.SIGKILL)).start()
    dev.measure(model_path)


def test_host_measures_a_real_model(model_path):
    with open_device(_fast_profile()) as dev:
        m = dev.measure(model_path)
        fp = dev.fingerprint()
    assert 0 < m.p10_ms <= m.median_ms <= m.p90_ms
    assert 10 <= m.runs <= 50
    assert fp["runtime"] in ("ai-edge-litert", "tflite-runtime", "tensorflow")
    assert fp["threads"] == "1" and fp["cpus"] == "0"


def test_the_op_resolver_option_runs_other_kernels_and_names_itself_in_the_fingerprint(
    model_path,
):
    from dataclasses import replace

    ref = replace(_fast_profile(), options={"op_resolver": "builtin_without_default_delegates"})
    with open_device(ref) as dev:
        m = dev.measure(model_path)
        assert dev.fingerprint()["op_resolver"] == "builtin_without_default_delegates"
    assert m.median_ms > 0
    with open_device(_fast_profile()) as dev:  # the default leaves existing LUTs' identity
        assert "op_resolver" not in dev.fingerprint()
    assert load_profile("host-ref").options["op_resolver"] == "builtin_without_default_delegates"
    with pytest.raises(InputError, match="options.op_resolver"):
        open_device(replace(_fast_profile(), options={"op_resolver": "fastest"}))


def test_runtime_crash_costs_one_entry_not_the_profiler(model_path, tmp_path):
    bad = tmp_path / "garbage.tflite"
    bad.write_bytes(b"\x00" * 64)
    with open_device(_fast_profile()) as dev:
        with pytest.raises(ModelRunError):
            dev.measure(bad)
        dev.measure(model_path)
    with open_device(_fast_profile(max_runs=10**6, max_seconds=3, target_ci=-1)) as dev:
        with pytest.raises(ModelRunError, match="crashed"):
            _kill_mid_measure(dev, model_path)  # the runtime process dies mid-run
        assert dev.measure(model_path).runs >= 10  # a fresh worker took over


def test_repeated_crashes_mean_the_device_is_lost(model_path):
    with open_device(_fast_profile(max_runs=10**6, max_seconds=3, target_ci=-1)) as dev:
        dev.max_consecutive_crashes = 2
        with pytest.raises(ModelRunError):
            _kill_mid_measure(dev, model_path)
        with pytest.raises(DeviceLost):
            _kill_mid_measure(dev, model_path)


def test_unknown_device_lists_known_profiles():
    with pytest.raises(InputError) as e:
        load_profile("pixel99")
    assert "host" in str(e.value) and "pixel99" in str(e.value)


def test_an_operator_is_timed_on_its_saved_inputs_and_a_damaged_file_fails_its_row(tmp_path):
    """A model with an `.inputs.npz` beside it is timed on those arrays (the network's
    activations, profiling/opinputs.extract_to_cache); a file that does not fit the model
    (names, shape, type, values, size, a pickled object, not a zip) fails that row, naming
    the file, and the device goes on."""
    import numpy as np

    from tests.build.test_tflite_ops import FIXTURES

    op = tmp_path / "op.tflite"  # the int8 network's first operator, a QUANTIZE of 1x16x16x3 fp32
    from latbench.build.tflite_ops import extract_op, load_model

    op.write_bytes(extract_op(load_model((FIXTURES / "net_int8.tflite").read_bytes()), 0))
    side = tmp_path / "op.inputs.npz"
    good = np.zeros((1, 16, 16, 3), np.float32)
    bad = {
        "a wrong name": {"x": good},
        "a wrong shape": {"in0": good[:, :4]},
        "a wrong type": {"in0": good.astype(np.float64)},
        "a value that is not finite": {"in0": np.full_like(good, np.nan)},
        "a pickled object": {"in0": np.array([{"a": 1}], dtype=object)},
    }
    with open_device(_fast_profile()) as dev:
        assert dev.measure(op).extra["inputs"] == "random"
        np.savez(side, in0=good)
        assert dev.measure(op).extra["inputs"] == "network"
        for why, arrays in bad.items():
            np.savez(side, **arrays)
            with pytest.raises(ModelRunError, match="op.inputs.npz") as e:
                dev.measure(op)
            assert "Traceback" not in str(e.value), why
        np.savez_compressed(side, in0=good)  # numpy would allocate what a header declares
        with pytest.raises(ModelRunError, match="op.inputs.npz: member .* compressed"):
            dev.measure(op)
        np.save(tmp_path / "plain.npy", good)  # an .npy, not an .npz
        (tmp_path / "plain.npy").replace(side)
        with pytest.raises(ModelRunError, match="op.inputs.npz"):
            dev.measure(op)
        side.write_bytes(b"PK\x03\x04 not a zip")
        with pytest.raises(ModelRunError, match="op.inputs.npz"):
            dev.measure(op)
        side.write_bytes(b"\0" * (1 << 20))  # far more bytes than the model's inputs
        with pytest.raises(ModelRunError, match="op.inputs.npz: .* bytes"):
            dev.measure(op)
        side.unlink()
        assert dev.measure(op).median_ms > 0  # the same device, still up
