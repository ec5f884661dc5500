"""Fault injection: every artifact latbench reads, damaged every way a disk, a kill, an editor or
a stranger can damage it, read by the real command line.

A generator builds one valid set of artifacts (small, with the project's own writers), then for
each (artifact, damage) pair copies it, damages the one file, runs the command that reads it
in this process (the real entry point, `main()`) and checks:

- exit code 2 (bad input), or 1 where the environment is at fault;
- the error is one line that names the damaged file, and there is no traceback;
- the damaged file is byte-for-byte as it was (only a torn last line of a table may be cut,
  the documented repair; no command here is a writer of the damaged file, so none is).

`test_subprocess_sample` runs a few cases through `python -m latbench.commands.main`, so the
no-traceback claim also holds for the installed entry point and a fresh interpreter.
The count of cases is printed (`-s`) and recorded in BENCHMARKS.md ("Fault injection").
"""

from __future__ import annotations

import json
import os
import random
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import pytest

from latbench.commands.main import main

REPO = Path(__file__).resolve().parents[1]


# ---- the valid world ----------------------------------------------------------------------


@dataclass
class Kind:
    """An artifact kind: where its file lives in the world and the command that reads it."""

    name: str
    file: str  # relative to the world
    argv: Callable[[Path], list[str]]  # the command line, given the world's folder
    fmt: str  # csv | json | toml | npz
    number: tuple | None = None  # (JSON path, CSV column or TOML key; bad values to put there)
    field: list | None = None  # JSON: a field whose type the wrong-type damage changes
    header: bool = True  # csv: starts with latbench's `# key: json` metadata lines
    missing_ok: bool = False  # a missing file is a valid state (a fresh start): no case
    duplicates: bool = False  # csv: a row twice is an error (not a second pass or sample)
    slow: bool = False
    valid_error: str = ""  # the command's exit-2 message on the valid file (must not show)


def _world(root: Path) -> dict:
    """Every artifact, valid: LUT, predictor file, calibration table, measurements file,
    arch.json, device profile, search run folder, NetAdapt state."""
    from dataclasses import asdict

    import numpy as np

    from latbench import records
    from latbench.calibration.calibrate import (
        NET_COLUMNS,
        NetResult,
        Network,
        fit_and_save,
    )
    from latbench.devices.measure import summarize
    from latbench.nets.spaces import get_space
    from latbench.predictors import LayerTable
    from latbench.profiling.lut import LUT, Row
    from latbench.proxy import train
    from latbench.search import samples
    from latbench.search.random_search import RandomController
    from latbench.search.run import SearchConfig
    from latbench.tuning.netadapt import NetAdaptConfig

    lut_dir = root / "lut"
    lut_dir.mkdir(parents=True)
    sp = get_space("tiny")
    meta = {
        "fingerprint": {"device": "host"},
        "converter": "c",
        "precision": "fp32",
        "space": "tiny",
        "protocol": {"min_runs": 15},
    }
    lut = LUT.create(lut_dir / "host_tiny_fp32.csv", meta)
    for s in sp.enumerate_specs():
        lut.append(Row(s, "ok", summarize([0.01 + s.macs() / 1e7])))
    table = LayerTable(lut, "host", "fp32")
    rng = random.Random(2)
    tokens = [sp.sample(rng) for _ in range(20)]
    archs = [sp.decode(t) for t in tokens]
    X = table.features(archs)
    results = [
        NetResult(Network(a, "space:2", tuple(t)), float(x[0]) * 1.1)
        for a, t, x in zip(archs, tokens, X)
    ]
    meas = root / "measurements.csv"
    meas.write_text(
        "network,latency_ms\n"
        + "".join(f"{'-'.join(map(str, t))},{r.median_ms:.4f}\n" for t, r in zip(tokens, results))
    )
    fit_and_save(
        table, results, lut_dir, device="host", space="tiny", precision="fp32",
        measurements=meas, mode="test",
    )  # fmt: skip
    # the calibration table of `calibrate --archs 8 --no-zoo` (seed 0), measured already
    from latbench.calibration.calibrate import nets_path, sample_networks
    from latbench.devices import load_profile, open_device
    from latbench.profiling.layers import lut_meta

    with open_device(load_profile("host")) as dev:
        net_meta = lut_meta(dev, "fp32", space="networks")
    calib = nets_path(lut_dir, "host", "tiny", "fp32", "calib")
    records.create(calib, net_meta, NET_COLUMNS)
    nets = sample_networks(sp, 8, 0)
    for a, t, x in zip(
        [n.arch for n in nets], [n.tokens for n in nets], table.features([n.arch for n in nets])
    ):
        m = summarize([float(x[0]) * 1.1] * 3)
        records.append(
            calib,
            [
                a.digest(), a.name, "space:2", json.dumps(list(t)),
                json.dumps(a.to_dict(), separators=(",", ":")), "ok",
                f"{m.median_ms:.6g}", f"{m.p10_ms:.6g}", f"{m.p90_ms:.6g}", f"{m.std_ms:.6g}",
                str(m.runs), f"{m.ci_rel:.4g}", "", "2026-12-01T00:00:00+00:00", "1",
            ][: len(NET_COLUMNS)],
        )  # fmt: skip
    arch = root / "arch.json"
    arch.write_text(json.dumps({"space": "tiny", "tokens": "-".join(map(str, tokens[0]))}) + "\n")
    explicit = root / "explicit.json"
    explicit.write_text(json.dumps({**archs[0].to_dict(), "dropout": 0.2}, indent=1) + "\n")
    (root / "host.toml").write_text(
        (REPO / "device_profiles" / "host.toml").read_text() + '\n[options]\nnote = "fault test"\n'
    )

    run = root / "run"
    (run / "controller").mkdir(parents=True)
    cfg = SearchConfig(
        target_ms=5.0, space="tiny", latency="flops", controller="random", baselines=(),
        samples=8, batch=4,
    )  # fmt: skip
    (run / "config.json").write_text(cfg.to_json())
    ctrl = RandomController(sp.vocab_sizes, seed=0)
    ctrl.save(run / "controller" / "batch_00000")
    (run / "controller" / "latest.json").write_text('{"batch": 0, "samples": 4}')
    (run / "baselines.json").write_text(json.dumps([{"name": "mobilenet_v2_x1", "accuracy": 0.5,
        "pred_ms": 1.0, "meas_ms": None, "lat_ms": 1.0, "train_s": 1.0}]) + "\n")  # fmt: skip
    for i, t in enumerate(tokens[:4]):
        samples.append(run / "samples.csv", _sample(sp, i, t))

    na = root / "na"
    na.mkdir()
    na_cfg = NetAdaptConfig(target_ms=0.5, max_steps=1)
    weights = {"conv": [np.zeros((3, 3, 1, 4), np.float32), np.zeros(4, np.float32)]}
    train.save_weights(na / "current.npz", weights)
    state = {
        "config": asdict(na_cfg), "step": 1, "arch": archs[0].to_dict(block_strings=False),
        "accuracy": 0.5, "predicted_ms": 0.6, "measured_ms": None, "status": "running",
        "seed": {"name": "s", "accuracy": 0.5, "predicted_ms": 0.6, "measured_ms": None},
        "wall_s": 1.0,
    }  # fmt: skip
    (na / "state.json").write_text(json.dumps(state, indent=2) + "\n")
    return {"tokens": tokens[0]}


def _sample(sp, i: int, t) -> dict:
    a = sp.decode(t)
    return {
        "sample": i, "batch": 0, "digest": a.digest(), "tokens": t,
        "arch": json.dumps(a.to_dict()), "accuracy": 0.5, "pred_ms": 1.5, "meas_ms": float("nan"),
        "lat_ms": 1.5, "reward": 0.45, "train_s": 1.0, "wall_s": 1.2, "cached": False, "error": "",
    }  # fmt: skip


# ---- the artifacts and the commands that read them -----------------------------------------


def _predict(w: Path, arch: str = "arch.json") -> list[str]:
    return ["predict", str(w / arch), "--space", "tiny", "--lut-dir", str(w / "lut")]


def _resume(w: Path) -> list[str]:
    return ["search", "--resume", str(w / "run"), "--no-progress"]


def _netadapt(w: Path) -> list[str]:
    return ["netadapt", str(w / "explicit.json"), "--out", str(w / "na"), "--target-ms", "0.5",
            "--max-steps", "1", "--lut-dir", str(w / "lut"), "--no-progress"]  # fmt: skip


LATENCY = ["nan", "inf", "-5", "1e308", "0", "1e-300", "9" * 5000]
HUGE_INT = "9" * 5000
KINDS = [
    Kind("lut", "lut/host_tiny_fp32.csv", _predict, "csv", ("median_ms", LATENCY),
         duplicates=True),
    Kind("predictor", "lut/host_tiny_fp32.predictor.json", _predict, "json",
         (["predictors", "scaled", "ratio_range", 0],
          ["NaN", "Infinity", "-5", "1e308", "0", "1e-300", HUGE_INT]), ["predictors"],
         missing_ok=True),
    Kind("predictor-linear", "lut/host_tiny_fp32.predictor.json", _predict, "json",
         (["predictors", "flops", "scale", 0], ["NaN", "-5", "1e308", "0"]),
         ["predictors", "flops", "coef"], missing_ok=True),
    Kind("calibration-table", "lut/host_tiny_fp32.calib.csv",
         lambda w: ["calibrate", "--device", "host", "--space", "tiny", "--archs", "8",
                    "--no-zoo", "--lut-dir", str(w / "lut"), "--no-progress"],
         "csv", ("median_ms", LATENCY), missing_ok=True),
    Kind("measurements", "measurements.csv",
         lambda w: ["calibrate", "--device", "host", "--space", "tiny", "--lut-dir",
                    str(w / "lut"), "--measurements", str(w / "measurements.csv")],
         "csv", ("latency_ms", LATENCY), header=False, duplicates=True),
    Kind("arch-tokens", "arch.json", _predict, "json", None, ["tokens"]),
    Kind("arch-explicit", "explicit.json", lambda w: _predict(w, "explicit.json"), "json",
         (["dropout"], ["NaN", "Infinity", "-5", "1e308", "1.5", HUGE_INT]), ["blocks"]),
    Kind("device-profile", "host.toml",
         lambda w: ["predict", str(w / "arch.json"), "--device", str(w / "host.toml"),
                    "--space", "tiny", "--lut-dir", str(w / "lut")],
         "toml", ("max_seconds", ["nan", "inf", "-5", "1e308", HUGE_INT]),
         valid_error="no fp32 LUT for device"),
    Kind("run-config", "run/config.json", lambda w: ["compare", str(w / "run"), "--out",
         str(w / "cmp")], "json", (["target_ms"], ["NaN", "-5", "1e308", "0", HUGE_INT]),
         ["baselines"]),
    Kind("run-samples", "run/samples.csv", lambda w: ["compare", str(w / "run"), "--out",
         str(w / "cmp")], "csv", ("accuracy", ["nan", "inf", "-5", "1e308"]), header=False),
    Kind("run-latest", "run/controller/latest.json", _resume, "json",
         (["batch"], ["NaN", "-5", "1e308", "1e-300", HUGE_INT]), ["samples"], missing_ok=True,
         slow=True),
    Kind("run-checkpoint", "run/controller/batch_00000.json", _resume, "json", None,
         ["vocab_sizes"], slow=True),
    Kind("run-baselines", "run/baselines.json", _resume, "json", None, [0], missing_ok=True,
         slow=True),
    Kind("netadapt-state", "na/state.json", _netadapt, "json",
         (["accuracy"], ["NaN", "Infinity", "-5", "1e308", HUGE_INT]), ["step"],
         missing_ok=True, slow=True),
    Kind("netadapt-weights", "na/current.npz", _netadapt, "npz", slow=True),
]  # fmt: skip


# ---- the damages ----------------------------------------------------------------------------
# Each returns the damaged bytes (None: not applicable to this kind) and what is expected:
# "refused" (exit 2, one line naming the file) or "torn" (a torn last row: the reader ignores
# it, exit 0 or a one-line error, and the file is unchanged or cut after its last newline).


def _json_set(data: bytes, path: list, literal: str) -> bytes:
    doc = json.loads(data)
    target = doc
    for p in path[:-1]:
        target = target[p]
    target[path[-1]] = "@@PLACEHOLDER@@"
    return json.dumps(doc, indent=1).replace('"@@PLACEHOLDER@@"', literal).encode() + b"\n"


def _csv_set(data: bytes, kind: Kind, column: str, value: str) -> bytes:
    """`value` in `column` of the first data row (after the metadata and the header)."""
    import csv
    import io

    lines = data.split(b"\n")
    i = 0
    while lines[i].startswith(b"# "):
        i += 1
    header = next(csv.reader([lines[i].decode()]))
    row = next(csv.reader([lines[i + 1].decode()]))
    row[header.index(column)] = value
    buf = io.StringIO()
    csv.writer(buf, lineterminator="").writerow(row)
    lines[i + 1] = buf.getvalue().encode()
    return b"\n".join(lines)


def _set(data: bytes, kind: Kind, value: str) -> bytes:
    where = kind.number[0]
    if kind.fmt == "json":
        return _json_set(data, where, value)
    if kind.fmt == "csv":
        return _csv_set(data, kind, where, value)
    assert kind.fmt == "toml"
    lines = [ln for ln in data.decode().split("\n")]
    i = next(n for n, ln in enumerate(lines) if ln.startswith(f"{where} ="))
    lines[i] = f"{where} = {value}"
    return "\n".join(lines).encode()


def _last_nonspace(data: bytes) -> int:
    return len(data.rstrip()) - 1


def _flip(data: bytes, at: int) -> bytes:
    while at < len(data) - 1 and not 0x21 <= data[at] < 0x7F:
        at += 1
    return data[:at] + bytes([data[at] ^ 0x80]) + data[at + 1 :]


def _flip_array(data: bytes) -> bytes:
    """One bit of the first array's data flipped (past its .npy header): only the CRC sees it."""
    at = data.index(b"\x93NUMPY") + 140
    return data[:at] + bytes([data[at] ^ 0x80]) + data[at + 1 :]


def _text_damages(kind: Kind) -> dict[str, Callable[[bytes], tuple[bytes | None, str]]]:
    D: dict[str, Callable[[bytes], tuple[bytes | None, str]]] = {}
    csv_ = kind.fmt == "csv"
    D["truncate-empty"] = lambda d: (b"", "refused")
    # the first line cut in two: a metadata line, the CSV header, the JSON document's start
    D["truncate-first-line"] = lambda d: (
        d[: max(1, d.find(b"\n") // 2)] if csv_ else d[: len(d) * 2 // 5],
        "refused",
    )
    if csv_:  # a row cut by a kill: the last line torn (the documented case)
        D["truncate-mid-row"] = lambda d: (d[: d.rstrip(b"\n").rfind(b"\n") + 12], "torn")
        D["truncate-last-byte"] = lambda d: (d[:-1], "torn")
    else:
        D["truncate-mid"] = lambda d: (d[: len(d) * 7 // 10], "refused")
        D["truncate-last-byte"] = lambda d: (d[: _last_nonspace(d)], "refused")
    if kind.fmt == "npz":
        D["flip-byte"] = lambda d: (_flip_array(d), "refused")
        D["not-a-zip"] = lambda d: (b"junk, not an npz archive\n", "refused")
        D["pickled-object"] = lambda d: (_pickled_npz(), "refused")
        return D
    D["flip-byte"] = lambda d: (_flip(d, len(d) * 3 // 5), "refused")
    D["non-utf8"] = lambda d: (d[:3] + b"\xc3(" + d[3:], "refused")
    if kind.number:
        for v in kind.number[1]:
            label = "huge-int" if len(v) > 100 else v
            D[f"number-{label}"] = lambda d, v=v: (_set(d, kind, v), "refused")
    if kind.fmt == "json":
        D["wrong-type-document"] = lambda d: (
            b'{"a": 1}\n' if d.lstrip().startswith(b"[") else b"[1]\n",
            "refused",
        )
        D["wrong-type-field"] = lambda d: (_json_set(d, kind.field, '"fast"'), "refused")
        if kind.name == "predictor":
            D["predictors-list"] = lambda d: (_json_set(d, ["predictors"], "[1]"), "refused")
        D["duplicate-key"] = lambda d: (_dup_key(d), "refused")
        D["deep-nesting"] = lambda d: (
            _json_set(d, kind.field, "[" * 10000 + "]" * 10000),
            "refused",
        )
    elif kind.fmt == "toml":
        D["wrong-type-field"] = lambda d: (d.replace(b"threads = 1", b'threads = "x"'), "refused")
        D["duplicate-key"] = lambda d: (d.replace(b'kind = "host"', b'kind = "host"\nname = "x"'),
                                        "refused")  # fmt: skip
        D["deep-nesting"] = lambda d: (d + b"deep = " + b"[" * 10000 + b"]" * 10000 + b"\n",
                                       "refused")  # fmt: skip
    else:
        D["wrong-type-field"] = lambda d: (_set(d, kind, "fast"), "refused")
        D["huge-line"] = lambda d: (_set(d, kind, "1" * 200_000), "refused")
        if kind.duplicates:
            D["duplicate-row"] = lambda d: (d + _first_row(d, kind), "refused")
        if kind.header:
            D["deep-nesting-header"] = lambda d: (
                b"# fingerprint: " + b"[" * 10000 + b"]" * 10000 + d[d.find(b"\n") :],
                "refused",
            )
            D["non-json-header"] = lambda d: (
                b"# fingerprint: {not json" + d[d.find(b"\n") :],
                "refused",
            )
    return D


def _first_row(data: bytes, kind: Kind) -> bytes:
    lines = data.split(b"\n")
    i = 0
    while lines[i].startswith(b"# "):
        i += 1
    return lines[i + 1] + b"\n"


def _dup_key(data: bytes) -> bytes:
    doc = json.loads(data)
    k, v = next(iter((doc if isinstance(doc, dict) else doc[0]).items()))
    at = data.index(b"{") + 1  # the document's (or its first element's) first key, twice
    return data[:at] + f" {json.dumps(k)}: {json.dumps(v)},".encode() + data[at:]


def _pickled_npz() -> bytes:
    import io
    import zipfile

    import numpy as np

    npy = io.BytesIO()
    np.save(npy, np.array([{"a": 1}], dtype=object), allow_pickle=True)
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as z:
        z.writestr("conv/0.npy", npy.getvalue())
    return buf.getvalue()


FS_DAMAGES = ["fifo", "folder", "dangling-symlink", "symlink-to-fifo", "symlink-to-dev-zero",
              "huge-file", "missing"]  # fmt: skip


def _fs_damage(path: Path, kind: Kind, how: str) -> bool:
    """Damage the file system entry itself; False if not applicable."""
    from latbench import fileio

    if how == "huge-file":  # a sparse file one byte over the limit of its kind
        limit = {"csv": fileio.MAX_TABLE_BYTES, "npz": fileio.MAX_ARRAY_BYTES}.get(
            kind.fmt, fileio.MAX_DOC_BYTES
        )
        os.truncate(path, limit + 1)
        return True
    path.unlink()
    if how == "fifo":
        os.mkfifo(path)
    elif how == "folder":
        path.mkdir()
    elif how == "dangling-symlink":
        path.symlink_to(path.with_name("nowhere"))
    elif how == "symlink-to-fifo":
        os.mkfifo(path.with_name("a-fifo"))
        path.symlink_to(path.with_name("a-fifo"))
    elif how == "symlink-to-dev-zero":
        path.symlink_to("/dev/zero")
    return True


def _cases() -> list:
    out = []
    for kind in KINDS:
        marks = [pytest.mark.slow] if kind.slow else []
        for name in _text_damages(kind):
            out.append(pytest.param(kind, name, id=f"{kind.name}:{name}", marks=marks))
        for name in FS_DAMAGES:
            if name in ("missing", "dangling-symlink") and kind.missing_ok:
                continue  # a fresh start (no predictor: the LUT sum; no checkpoint: batch 0)
            out.append(pytest.param(kind, name, id=f"{kind.name}:{name}", marks=marks))
    return out


CASES = _cases()


# ---- running a case ---------------------------------------------------------------------


class _Work(BaseException):
    """Raised where a command would start real work (training, timing): the file was
    accepted. A BaseException, so no `except Exception` on the way can swallow it."""


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    root = tmp_path_factory.mktemp("faults") / "world"
    _world(root)
    return root


@pytest.fixture
def guarded(monkeypatch):
    """No case trains or times anything: where a command would, _Work is raised instead."""

    def work(*a, **k):
        raise _Work()

    from latbench.calibration import calibrate
    from latbench.proxy.accuracy import ProxyEvaluator
    from latbench.tuning.netadapt import NetAdaptRun

    monkeypatch.setattr(calibrate, "measure_archs", work)
    monkeypatch.setattr(ProxyEvaluator, "train", work)
    monkeypatch.setattr(NetAdaptRun, "_train", work)
    return monkeypatch


def _run_main(monkeypatch, capsys, argv: list[str]) -> tuple[object, str, str]:
    monkeypatch.setattr(sys, "argv", ["latbench", "-q", *argv])
    code: object = 0
    try:
        main()
    except SystemExit as exc:
        code = exc.code
    except _Work:
        code = "work"
    out = capsys.readouterr()
    return code, out.out, out.err


def _damage(w: Path, kind: Kind, damage: str) -> tuple[Path, bytes | None, str]:
    """Apply one damage in world `w`: (path, the bytes now there or None, expectation)."""
    path = w / kind.file
    if damage in FS_DAMAGES:
        _fs_damage(path, kind, damage)
        data = path.read_bytes() if damage == "huge-file" else None
        return path, data, "refused"
    data, expect = _text_damages(kind)[damage](path.read_bytes())
    if expect is None:
        pytest.skip("not applicable")
    path.write_bytes(data)
    return path, data, expect


@pytest.mark.parametrize("kind,damage", CASES)
def test_damaged_artifact(world, tmp_path, guarded, capsys, kind: Kind, damage: str):
    w = tmp_path / "w"
    shutil.copytree(world, w, symlinks=True)
    path, data, expect = _damage(w, kind, damage)
    code, out, err = _run_main(guarded, capsys, kind.argv(w))
    text = (out + err).strip()
    assert "Traceback" not in text
    if expect == "torn":
        assert code in (0, 2, "work"), text
    else:
        assert code == 2, f"exit {code}: {text[:500]}"
    if code == 2:
        lines = err.strip().splitlines()
        if lines and lines[0].startswith("Usage:"):  # click's own check of a path option
            lines = [ln for ln in lines[2:] if ln.strip()]
        assert len(lines) == 1 and not out.strip(), text[:800]
        gone = damage in ("missing", "dangling-symlink") or (
            kind.name == "run-samples" and damage.startswith("truncate-")  # no sample yet
        )
        named = [path.name] + ([path.parent.name] if gone else [])
        assert expect == "torn" or any(n in lines[0] for n in named), lines[0]
        assert not (kind.valid_error and kind.valid_error in lines[0]), lines[0]
    if data is not None:  # byte for byte as damaged (a torn row may be cut: the repair)
        now = path.read_bytes()
        assert now == data or (expect == "torn" and now == data[: data.rfind(b"\n") + 1])
    elif damage != "missing":
        assert path.is_symlink() or not path.is_file()  # the entry is still what it was


SUBPROCESS_SAMPLE = [
    ("lut", "number-nan"),
    ("lut", "fifo"),
    ("predictor", "deep-nesting"),
    ("arch-tokens", "non-utf8"),
    ("measurements", "number-huge-int"),
    ("device-profile", "symlink-to-dev-zero"),
]


@pytest.mark.parametrize("kind_name,damage", SUBPROCESS_SAMPLE)
def test_subprocess_sample(world, tmp_path, kind_name: str, damage: str):
    """The same cases through a fresh interpreter and the real entry point: exit 2, one line
    on stderr naming the file, no traceback, the file unchanged."""
    kind = next(k for k in KINDS if k.name == kind_name)
    w = tmp_path / "w"
    shutil.copytree(world, w, symlinks=True)
    path, data, _ = _damage(w, kind, damage)
    r = subprocess.run(
        [sys.executable, "-m", "latbench.commands.main", "-q", *kind.argv(w)],
        cwd=REPO, capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert r.returncode == 2, r.stdout + r.stderr
    assert "Traceback" not in r.stdout + r.stderr and not r.stdout.strip()
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and path.name in lines[0], r.stderr
    if data is not None:
        assert path.read_bytes() == data


LUT_LIST_KINDS = [k for k in KINDS if k.name in ("lut", "predictor", "calibration-table")]
LUT_LIST_CASES = [
    pytest.param(k, d, id=f"{k.name}:{d}")
    for k in LUT_LIST_KINDS
    for d in [*_text_damages(k), *FS_DAMAGES]
]


@pytest.mark.parametrize("kind,damage", LUT_LIST_CASES)
def test_lut_list_lists_a_damaged_file(world, tmp_path, capsys, monkeypatch, kind, damage):
    """`lut list` is the lenient reader: whatever is wrong with one file, it exits 0, lists
    that file as unreadable with the reason (or as what it still is), and changes nothing."""
    w = tmp_path / "w"
    shutil.copytree(world, w, symlinks=True)
    path, data, _ = _damage(w, kind, damage)
    code, out, err = _run_main(monkeypatch, capsys, ["lut", "list", "--lut-dir", str(w / "lut"),
                                                     "--json"])  # fmt: skip
    assert code == 0 and "Traceback" not in out + err, out + err
    listed = {e["file"]: e for e in json.loads(out)}
    if path.is_file() and not path.is_symlink():
        assert path.name in listed or kind.fmt == "json"  # a JSON file that is no predictor
    if data is not None:
        assert path.read_bytes() == data


def test_case_count():
    """How many (artifact x damage) cases the table generates (recorded in BENCHMARKS.md)."""
    n = len(CASES)
    print(
        f"fault injection: {len(KINDS)} artifact kinds, {n} (artifact x damage) cases, "
        f"{len(LUT_LIST_CASES)} lut-list cases, {len(SUBPROCESS_SAMPLE)} through a subprocess"
    )
    assert n >= 250
