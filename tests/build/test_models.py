"""Any model a user brings: .tflite, Keras files, SavedModels, in-memory Keras models, and
damaged or hostile files (one line, exit 2, never a traceback or a hang)."""

import json
import os
from pathlib import Path

import pytest

from tests.conftest import REPO, latbench_cli

# the host in a few runs per model (what is timed is checked, not how fast)
FAST = ("--device", REPO / "tests" / "fixtures" / "fast_profiles" / "host.toml")


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    """A tiny Keras model saved three ways, one with a dynamic input, and its .tflite."""
    import keras
    import tensorflow as tf

    root = tmp_path_factory.mktemp("models")
    net = keras.Sequential(
        [keras.Input((32, 32, 3)), keras.layers.Conv2D(8, 3), keras.layers.DepthwiseConv2D(3),
         keras.layers.GlobalAveragePooling2D(), keras.layers.Dense(4)]
    )  # fmt: skip
    net.save(root / "net.keras")
    (root / "net.tflite").write_bytes(tf.lite.TFLiteConverter.from_keras_model(net).convert())
    net.export(str(root / "saved"), verbose=False)
    i = keras.Input((None, None, 3))
    keras.Model(i, keras.layers.Conv2D(4, 3)(i)).save(root / "dyn.keras")
    return root


def _json(r):
    assert r.returncode == 0, r.stderr
    return json.loads(r.stdout)


@pytest.mark.slow
def test_a_tflite_keras_file_and_savedmodel_are_measured_like_an_arch(models, tmp_path):
    lut = tmp_path / "lut"
    d = _json(latbench_cli("measure", models / "net.tflite", *FAST, "--json", "--lut-dir", lut))
    assert d["kind"] == "tflite" and d["precision"] == "as-is" and d["median_ms"] > 0
    assert d["inputs"] == [{"name": d["inputs"][0]["name"], "shape": [1, 32, 32, 3],
                            "dtype": "float32"}]  # fmt: skip
    assert d["ops"]["CONV_2D"] == 1 and d["ops"]["DEPTHWISE_CONV_2D"] == 1
    assert (
        d["extra"]["bursts"] == 3
        and Path(d["tflite"]).read_bytes() == (models / "net.tflite").read_bytes()
    )  # the file timed is the file given, copied into the cache
    k = _json(latbench_cli("measure", models / "net.keras", *FAST, "--json", "--precision", "int8",
                           "--bursts", "1", "--lut-dir", lut))  # fmt: skip
    assert k["kind"] == "keras" and k["precision"] == "int8" and k["median_ms"] > 0
    assert k["ops"].get("QUANTIZE", 0) + k["ops"].get("CONV_2D", 0) >= 1
    s = _json(latbench_cli("measure", models / "saved", *FAST, "--json", "--bursts", "1",
                           "--lut-dir", lut))  # fmt: skip
    assert s["kind"] == "savedmodel" and s["inputs"][0]["shape"] == [1, 32, 32, 3]
    # a dynamic spatial dimension: refused naming the tensor, then fixed by --input-shape
    r = latbench_cli("measure", models / "dyn.keras", "--lut-dir", lut)
    assert r.returncode == 2 and "dynamic dimension" in r.stderr and "--input-shape" in r.stderr
    assert r.stderr.count("\n") == 1 and "Traceback" not in r.stderr
    f = _json(latbench_cli("measure", models / "dyn.keras", *FAST, "--input-shape", "1,20,24,3",
                           "--json", "--bursts", "1", "--lut-dir", lut))  # fmt: skip
    assert f["inputs"][0]["shape"] == [1, 20, 24, 3]


@pytest.mark.slow
def test_the_python_api_measures_an_in_memory_keras_model_and_tflite_bytes(models, tmp_path):
    import keras

    import latbench

    net = keras.models.load_model(models / "net.keras")
    m = latbench.measure(net, device=str(FAST[1]), lut_dir=tmp_path, bursts=2)
    assert m.median_ms > 0 and m.extra["bursts"] == 2
    b = latbench.measure(
        (models / "net.tflite").read_bytes(), device=str(FAST[1]), lut_dir=tmp_path, bursts=1
    )
    assert b.median_ms > 0


@pytest.mark.slow
def test_a_keras_file_or_savedmodel_converted_before_comes_from_the_cache(
    models, tmp_path, monkeypatch
):
    """The second time, no conversion (nor Keras load); a damaged cache entry is converted
    again; other bytes or another --input-shape are another entry."""
    import latbench.build.convert as convert
    from latbench.build.models import _prepare_worker

    monkeypatch.setenv("LATBENCH_CACHE", str(tmp_path / "cache"))
    calls = []
    real = convert._convert
    monkeypatch.setattr(convert, "_convert", lambda *a: calls.append(1) or real(*a))
    first = _prepare_worker(str(models / "net.keras"), "keras", "fp32", None, None)
    import keras

    with monkeypatch.context() as m:  # a hit neither loads the model nor converts it
        m.setattr(keras.models, "load_model", lambda *a, **k: pytest.fail("loaded again"))
        again = _prepare_worker(str(models / "net.keras"), "keras", "fp32", None, None)
    assert len(calls) == 1 and again == first and first["name"] == "net"
    assert first["inputs"][0]["shape"] == [1, 32, 32, 3] and first["extra"]["ops"]["CONV_2D"] == 1
    sidecar = Path(first["path"]).with_suffix(".json")
    for damage in (b"{not json", b'{"name": "net", "inputs": [{"shape": [-1]}]}'):
        sidecar.write_bytes(damage)
        assert _prepare_worker(str(models / "net.keras"), "keras", "fp32", None, None) == first
    assert len(calls) == 3
    Path(first["path"]).write_bytes(b"TFL3")  # a truncated .tflite in the cache
    assert _prepare_worker(str(models / "net.keras"), "keras", "fp32", None, None) == first
    assert len(calls) == 4
    dyn = [_prepare_worker(str(models / "dyn.keras"), "keras", "fp32", s, None)
           for s in ((1, 20, 24, 3), (1, 16, 16, 3), (1, 20, 24, 3))]  # fmt: skip
    assert len(calls) == 6 and dyn[0] == dyn[2] and dyn[1]["inputs"][0]["shape"] == [1, 16, 16, 3]
    saved = [_prepare_worker(str(models / "saved"), "savedmodel", "fp32", None, None)
             for _ in range(2)]  # fmt: skip
    assert len(calls) == 7 and saved[0] == saved[1] and saved[0]["name"] == "saved"
    import latbench.build.models as bm

    with monkeypatch.context() as m:  # another Keras rebuilds the model: another entry
        m.setattr(bm, "_keras_version", lambda: "0.0-other")
        other = _prepare_worker(str(models / "net.keras"), "keras", "fp32", None, None)
    assert len(calls) == 8 and other["path"] != first["path"]


@pytest.mark.slow
def test_keras_loads_the_bytes_that_were_hashed_not_the_file_again(models, tmp_path, monkeypatch):
    """A .keras file rewritten between the cache lookup and Keras' load: the conversion
    stored under the first bytes' key is of the first bytes' model."""
    import shutil

    import keras

    from latbench.build.models import _prepare_worker

    monkeypatch.setenv("LATBENCH_CACHE", str(tmp_path / "cache"))
    user = tmp_path / "user.keras"
    shutil.copy(models / "net.keras", user)
    real = keras.models.load_model

    def swap_then_load(path, **kw):  # the user's file changes under latbench's feet
        shutil.copy(models / "dyn.keras", user)
        return real(path, **kw)

    monkeypatch.setattr(keras.models, "load_model", swap_then_load)
    first = _prepare_worker(str(user), "keras", "fp32", None, None)
    assert first["inputs"][0]["shape"] == [1, 32, 32, 3]  # net.keras', not dyn.keras'


def _damaged(models: Path, tmp: Path) -> dict[str, Path]:
    good = (models / "net.tflite").read_bytes()
    out = {}
    for name, data in {
        "random.tflite": os.urandom(4096),
        "empty.tflite": b"",
        "truncated.tflite": good[: len(good) // 3],
        "header_only.tflite": good[:8] + b"\xff" * 64,
        "flipped.tflite": good[:8] + bytes(b ^ 0x5A for b in good[8:4096]) + good[4096:],
    }.items():
        (tmp / name).write_bytes(data)
        out[name] = tmp / name
    os.mkfifo(tmp / "fifo.tflite")
    out["fifo.tflite"] = tmp / "fifo.tflite"
    (tmp / "notes.txt").write_text("hello")
    out["notes.txt"] = tmp / "notes.txt"
    (tmp / "folder").mkdir()
    out["folder"] = tmp / "folder"
    (tmp / "bad.keras").write_bytes(b"PK\x03\x04" + os.urandom(200))
    out["bad.keras"] = tmp / "bad.keras"
    out["missing.tflite"] = tmp / "missing.tflite"
    return out


@pytest.mark.slow
def test_damaged_and_hostile_model_files_are_one_line_and_exit_2(models, tmp_path):
    for name, path in _damaged(models, tmp_path).items():
        before = path.read_bytes() if path.is_file() else None
        r = latbench_cli("measure", path, "--lut-dir", tmp_path / "lut", timeout=300)
        assert r.returncode == 2, (name, r.returncode, r.stderr)
        assert r.stderr.count("\n") == 1 and "Traceback" not in r.stderr, (name, r.stderr)
        assert str(path) in r.stderr, (name, r.stderr)
        if before is not None:
            assert path.read_bytes() == before
