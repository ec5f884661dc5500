"""A full disk and a read-only file system, for real (a small tmpfs, as root): every writer
of `profile`, `zoo --write`, `search --out` and `predict --png` exits 1 with one line naming
the file and the reason, no traceback, and nothing written before is damaged."""

import json
import os
import subprocess
from pathlib import Path

import pytest

from tests.conftest import latbench_cli


@pytest.fixture
def small_fs(tmp_path):
    """A real tmpfs of a few pages: fill() leaves it with no free page, ro() remounts it
    read-only, free() deletes the filler. Skipped where this process cannot mount one."""
    mnt = tmp_path / "fs"
    mnt.mkdir()
    if (
        os.geteuid() != 0
        or subprocess.run(
            ["mount", "-t", "tmpfs", "-o", "size=2m", "tmpfs", str(mnt)], capture_output=True
        ).returncode
    ):
        pytest.skip("cannot mount a tmpfs here (not root, or no mount permission)")

    class FS:
        path = mnt

        @staticmethod
        def fill():
            fd = os.open(mnt / "filler", os.O_WRONLY | os.O_CREAT | os.O_APPEND)
            try:
                while os.write(fd, b"\0" * 512):  # small: the last partial page fills too
                    pass
            except OSError:
                pass
            finally:
                os.close(fd)

        @staticmethod
        def free():
            (mnt / "filler").unlink()

        @staticmethod
        def ro():
            subprocess.run(["mount", "-o", "remount,ro", str(mnt)], check=True)

    yield FS
    subprocess.run(["umount", "-l", str(mnt)], check=False)


TINY = {
    "name": "tiny",
    "resolution": 32,
    "stem": {"filters": 16},
    "blocks": ["r1_k3_s11_e1_i16_o8", "r2_k5_s22_e3_i8_o16_se0.25"],
    "head": {"filters": 64},
    "classes": 10,
}


# Five more blocks, each a new layer: with them a variant has a dozen new rows of ~460 bytes,
# more than the free end of a LUT file's last page can hold.
DEEPER = [
    "r1_k3_s11_e6_i16_o24", "r1_k5_s11_e3_i24_o24", "r1_k3_s22_e6_i24_o32",
    "r1_k5_s11_e6_i32_o32_se0.25", "r1_k3_s11_e3_i32_o40",
]  # fmt: skip


def _variant(path: Path, resolution: int, deeper: bool = False) -> Path:
    """The tiny network at another resolution: new keys to append to the same LUT file."""
    blocks = TINY["blocks"] + (DEEPER if deeper else [])
    path.write_text(json.dumps({**TINY, "resolution": resolution, "blocks": blocks}))
    return path


def _one_line(r, *words):
    """exit 1, a single line on stderr naming what was refused, no traceback."""
    assert r.returncode == 1, (r.returncode, r.stderr[-2000:])
    # the host's notes on its timing conditions (a busy or stolen CPU) come and go with the
    # machine's load; the error itself is one line
    lines = [
        ln for ln in r.stderr.strip().splitlines()
        if not (ln.startswith("host: ") and ("under contention" in ln or "contended" in ln))
    ]  # fmt: skip
    assert len(lines) == 1 and "Traceback" not in r.stderr, r.stderr[-2000:]
    for w in words:
        assert w.lower() in lines[0].lower(), lines[0]
    return lines[0]


def _snapshot(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*"))
            if p.is_file() and p.name != "filler" and not p.name.startswith(".")}  # fmt: skip


def test_zoo_write_on_a_full_disk_and_a_read_only_one(small_fs):
    out = small_fs.path / "zoo"
    r = latbench_cli("zoo", "--write", out)
    assert r.returncode == 0, r.stderr
    before = _snapshot(small_fs.path)
    (out / "mnasnet_a1.json").unlink()  # one to write again, on a disk with no room left
    small_fs.fill()
    line = _one_line(latbench_cli("zoo", "--write", out), "no space left on device")
    assert str(out) in line and ".json" in line and "unchanged" in line
    after = _snapshot(small_fs.path)
    assert after == {k: v for k, v in before.items() if "mnasnet_a1" not in k}
    small_fs.ro()
    line = _one_line(latbench_cli("zoo", "--write", out), "read-only file system", str(out))
    assert _snapshot(small_fs.path) == after


@pytest.fixture(scope="module")
def tiny_lut(tmp_path_factory, fast_host_env):
    """A real LUT of the tiny test network (profiled once for this module, on the host with
    the fast protocol: run commands on it with `fast_host_env`)."""
    root = tmp_path_factory.mktemp("lut")
    arch = root / "tiny.json"
    arch.write_text(json.dumps(TINY))
    r = latbench_cli(
        "profile", "--arch", arch, "--lut-dir", root / "lut", "--no-progress", env=fast_host_env
    )
    assert r.returncode == 0, r.stderr
    return arch, root / "lut"


@pytest.mark.slow
def test_predict_png_on_a_full_disk_and_a_read_only_one(small_fs, tiny_lut, fast_host_env):
    arch, lut = tiny_lut
    png = small_fs.path / "b.png"
    args = ("predict", arch, "--device", "host", "--lut-dir", lut, "--png", png)
    assert latbench_cli(*args, env=fast_host_env).returncode == 0
    old = png.read_bytes()
    small_fs.fill()
    line = _one_line(latbench_cli(*args, env=fast_host_env), "no space left on device", str(png))
    assert png.read_bytes() == old and not list(small_fs.path.glob(".tmp-*"))
    small_fs.ro()
    _one_line(latbench_cli(*args, env=fast_host_env), "read-only file system", str(png))
    assert png.read_bytes() == old and "b.png" in line


@pytest.mark.slow
def test_profile_into_a_full_disk_keeps_every_row_and_resumes(small_fs, tiny_lut, fast_host_env):
    """A LUT on a disk that fills while profiling: one line, every row before kept whole, and
    after freeing space the same command finishes the LUT with each key once."""
    import shutil

    from latbench.profiling.lut import LUT

    _, lut0 = tiny_lut
    lut = small_fs.path / "lut"
    shutil.copytree(lut0, lut)
    (path,) = lut.glob("host_*_fp32.csv")
    old = path.read_bytes()
    small_fs.fill()

    def profile(arch):
        return latbench_cli(
            "profile", "--arch", arch, "--lut-dir", lut, "--no-progress", env=fast_host_env
        )

    # more new rows than the free end of the LUT file's last page holds: the disk is full
    # before the last of them is written, whatever that file's length
    wider = _variant(lut0.parent / "w48.json", 48, deeper=True)
    line = _one_line(profile(wider), "no space left on device")
    assert str(path) in line and "every row before it is kept" in line, line
    data = path.read_bytes()
    assert data.startswith(old) and data.endswith(b"\n")
    LUT.load(path)  # every row whole: it loads
    small_fs.free()
    r = profile(wider)
    assert r.returncode == 0, r.stderr
    keys = [ln.split(",")[0] for ln in path.read_text().splitlines()[1:] if ln[:1] != "#"][1:]
    assert len(keys) == len(set(keys)) > len(LUT.load(lut0 / path.name).rows)
    before = path.read_bytes()
    small_fs.ro()
    _one_line(profile(_variant(lut0.parent / "w64.json", 64)), "read-only file system")
    assert path.read_bytes() == before


_SEARCH = ("search", "--space", "tiny", "--latency", "flops", "--target-mmacs", "5",
           "--batch", "2", "--proxy-train", "64", "--proxy-epochs", "1", "--baselines", "",
           "--no-progress")  # fmt: skip


@pytest.mark.slow
def test_search_out_on_a_full_disk_and_a_read_only_one(small_fs):
    from latbench.proxy.data import FASHION_MNIST_DIR

    if not (FASHION_MNIST_DIR / "train-images-idx3-ubyte.gz").exists():
        pytest.skip("apt-get install dataset-fashion-mnist")
    run = small_fs.path / "run"
    r = latbench_cli(*_SEARCH, "--samples", "2", "--out", run)
    assert r.returncode == 0, r.stderr
    samples = (run / "samples.csv").read_bytes()
    small_fs.fill()
    _one_line(latbench_cli(*_SEARCH, "--samples", "4", "--resume", run), "no space left on device")
    assert (run / "samples.csv").read_bytes().startswith(samples)
    _one_line(latbench_cli(*_SEARCH, "--samples", "2", "--out", small_fs.path / "new"),
              "no space left on device")  # fmt: skip
    small_fs.free()
    r = latbench_cli(*_SEARCH, "--samples", "4", "--resume", run)
    assert r.returncode == 0, r.stderr
    rows = (run / "samples.csv").read_text().splitlines()[1:]
    ids = [ln.split(",")[0] for ln in rows]
    assert len(ids) == 4 and len(set(ids)) == 4, rows
    before = _snapshot(small_fs.path)
    small_fs.ro()
    _one_line(latbench_cli(*_SEARCH, "--samples", "6", "--resume", run), "read-only file system")
    _one_line(latbench_cli(*_SEARCH, "--samples", "2", "--out", small_fs.path / "new2"),
              "read-only file system")  # fmt: skip
    assert _snapshot(small_fs.path) == before
