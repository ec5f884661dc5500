"""Files latbench writes: modes that follow the umask, names that cannot leave their folder."""

import os
import re
import stat
from pathlib import Path

import pytest

from latbench import records
from latbench.errors import InputError
from latbench.fileio import append_line, safe_name, write_atomic
from latbench.profiling.lut import lut_path


@pytest.fixture
def umask_022():
    old = os.umask(0o022)
    yield
    os.umask(old)


def _mode(p):
    return stat.S_IMODE(p.stat().st_mode)


def test_atomic_writes_are_readable_by_others_under_umask_022(tmp_path, umask_022):
    write_atomic(tmp_path / "a.bin", b"x")
    assert _mode(tmp_path / "a.bin") == 0o644


def test_atomic_writes_follow_a_stricter_umask(tmp_path):
    old = os.umask(0o077)
    try:
        write_atomic(tmp_path / "a.bin", b"x")
    finally:
        os.umask(old)
    assert _mode(tmp_path / "a.bin") == 0o600


def test_tables_and_appends_follow_the_umask(tmp_path, umask_022):
    records.create(tmp_path / "t.csv", {"k": 1}, ["a"])
    records.append(tmp_path / "t.csv", ["1"])
    append_line(tmp_path / "new.log", "x\n")
    assert _mode(tmp_path / "t.csv") == 0o644
    assert _mode(tmp_path / "new.log") == 0o644


def test_no_temp_file_is_left_behind(tmp_path):
    write_atomic(tmp_path / "a.bin", b"x")
    assert [p.name for p in tmp_path.iterdir()] == ["a.bin"]


@pytest.mark.parametrize("name", ["mnasnet_a1", "mobilenet_v2_x0.35", "net-1+se", "A"])
def test_ordinary_network_names_are_safe(name):
    assert safe_name(name) == name


@pytest.mark.parametrize(
    "name",
    [
        "../../../escaped",
        "/tmp/x",
        "",
        "a/b",
        "..",
        ".hidden",
        "a..b",
        "with space",
        "x" * 101,
        "tab\there",
    ],
)
def test_names_that_could_leave_the_folder_are_refused(name):
    with pytest.raises(InputError, match="cannot be part of a file name"):
        safe_name(name, "name")


def test_a_lut_path_stays_in_its_folder(tmp_path):
    assert lut_path(tmp_path, "host", "mnasnet", "fp32") == tmp_path / "host_mnasnet_fp32.csv"
    with pytest.raises(InputError, match="space"):
        lut_path(tmp_path, "host", "../../escaped", "fp32")


def test_a_device_profile_name_cannot_name_files_outside_the_folder(tmp_path):
    from latbench.devices import load_profile

    toml = tmp_path / "evil.toml"
    toml.write_text('name = "../../escaped"\nkind = "host"\n')
    with pytest.raises(InputError, match="name.*cannot be part of a file name"):
        load_profile(str(toml))


# ---- a full disk, a file-size limit, symlinks: nothing measured is lost ----------------------

_APPEND_UNDER_LIMIT = """
import resource, signal, sys
from latbench.fileio import append_line
from latbench.errors import LatbenchError
signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # the kernel then returns EFBIG, as a full disk does
resource.setrlimit(resource.RLIMIT_FSIZE, (int(sys.argv[2]), int(sys.argv[2])))
try:
    for i in range(1000):
        append_line(sys.argv[1], f"row {i:04d}," + "x" * 50 + "\\n")
except LatbenchError as exc:
    print(type(exc).__name__, exc)
"""


def test_a_write_cut_short_by_the_kernel_leaves_no_partial_row(tmp_path):
    """A real file-size limit (RLIMIT_FSIZE): the kernel writes part of the row that crosses it,
    then refuses; the file must end on a whole row, and the message must say so in one line."""
    import subprocess
    import sys

    path = tmp_path / "t.csv"
    limit, row = 1000, 60  # not a multiple of the 60-byte row: the crossing row is written in part
    r = subprocess.run(
        [sys.executable, "-c", _APPEND_UNDER_LIMIT, str(path), str(limit)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert r.returncode == 0, r.stderr
    assert (
        r.stdout.startswith("WriteFailed cannot write")
        and "every row before it is kept" in r.stdout
    )
    data = path.read_bytes()
    assert data.endswith(b"\n") and len(data) == (limit // row) * row
    assert [ln[:8] for ln in data.decode().splitlines()] == [f"row {i:04d}" for i in range(16)]


def test_a_full_file_system_leaves_no_partial_row(tmp_path):
    """A real full tmpfs, where the machine lets root mount one."""
    import subprocess

    mnt = tmp_path / "small"
    mnt.mkdir()
    if (
        os.geteuid() != 0
        or subprocess.run(
            ["mount", "-t", "tmpfs", "-o", "size=16k", "tmpfs", str(mnt)], capture_output=True
        ).returncode
    ):
        pytest.skip("cannot mount a tmpfs here (not root, or no mount permission)")
    try:
        path = mnt / "t.csv"
        from latbench.fileio import WriteFailed

        with pytest.raises(WriteFailed, match="No space left"):
            for i in range(100_000):
                append_line(path, f"row {i:05d}," + "y" * 90 + "\n")
        data = path.read_bytes()
        assert data.endswith(b"\n") and len(data) % 101 == 0
        with pytest.raises(WriteFailed, match="unchanged"):
            write_atomic(mnt / "big.json", b"z" * 100_000)
        assert not list(mnt.glob(".tmp-*"))  # no temp file left behind
    finally:
        subprocess.run(["umount", str(mnt)], check=False)


def test_appends_refuse_a_symlink_instead_of_writing_through_it(tmp_path):
    outside = tmp_path / "outside.csv"
    outside.write_text("precious\n")
    run = tmp_path / "run"
    run.mkdir()
    (run / "events.log").symlink_to(outside)
    with pytest.raises(InputError, match="symbolic link"):
        append_line(run / "events.log", "x\n")
    with pytest.raises(InputError, match="symbolic link"):
        records.drop_torn_tail(run / "events.log")
    assert outside.read_text() == "precious\n"


def test_cutting_a_torn_tail_keeps_the_file_itself(tmp_path):
    path = tmp_path / "lut.csv"
    path.write_text("# a: 1\nkey,ms\nk1,1.0\nk2,2.")
    os.chmod(path, 0o640)
    inode = path.stat().st_ino
    records.drop_torn_tail(path)
    assert path.read_text() == "# a: 1\nkey,ms\nk1,1.0\n"
    assert path.stat().st_ino == inode and stat.S_IMODE(path.stat().st_mode) == 0o640
    records.drop_torn_tail(path)  # nothing torn: nothing cut
    assert path.read_text() == "# a: 1\nkey,ms\nk1,1.0\n"


# ---- a second writer: refused, naming the first ----------------------------------------------

_HOLD = """
import sys
from latbench.fileio import hold_lock
with hold_lock(sys.argv[1]):
    print("held", flush=True)
    sys.stdin.read()  # until the test closes our stdin
"""


@pytest.fixture
def held(tmp_path):
    """A real second process holding the lock of a path until the test ends."""
    import subprocess
    import sys

    procs = []

    def hold(path):
        p = subprocess.Popen(
            [sys.executable, "-c", _HOLD, str(path)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        assert p.stdout.readline().strip() == "held"
        procs.append(p)
        return p

    yield hold
    for p in procs:
        p.stdin.close()
        p.wait(timeout=60)


def test_a_second_writer_is_refused_naming_the_holder_and_freed_when_it_dies(tmp_path, held):
    from latbench.fileio import Locked, hold_lock

    lut = tmp_path / "host_x_fp32.csv"
    p = held(lut)
    with pytest.raises(Locked, match=rf"being written by pid {p.pid} \(.*\) since 20"):
        with hold_lock(lut):
            pass
    p.kill()  # killed, not released: the kernel drops the lock with the process
    p.wait()
    with hold_lock(lut):
        pass


def test_profile_into_a_lut_another_process_writes_exits_1_with_one_line(
    tmp_path, held, tiny_arch_dict
):
    import json
    import subprocess
    import sys

    af = tmp_path / "a.json"
    af.write_text(json.dumps(tiny_arch_dict))
    lut = tmp_path / "lut"
    p = held(lut / "host_tiny_fp32.csv")
    r = subprocess.run(
        [sys.executable, "-m", "latbench.commands.main", "profile", "--arch", str(af),
         "--lut-dir", str(lut), "--no-progress"],
        capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    assert r.returncode == 1
    (line,) = r.stderr.strip().splitlines()
    assert f"is being written by pid {p.pid}" in line and "run the same command again" in line
    assert not (lut / "host_tiny_fp32.csv").exists()


# ---- the one reading path (read_bytes, read_text, parse_json, load_toml, read_npz) ----------


def test_non_regular_files_are_refused_without_blocking(tmp_path):
    import os

    from latbench.fileio import read_bytes

    fifo = tmp_path / "arch.json"
    os.mkfifo(fifo)  # nobody writes: an open without O_NONBLOCK would hang here
    with pytest.raises(InputError, match=r"arch.json is a FIFO"):
        read_bytes(fifo)
    with pytest.raises(InputError, match=r"/dev/zero is not a regular file"):
        read_bytes(Path("/dev/zero"))
    with pytest.raises(InputError, match=r"is a folder"):
        read_bytes(tmp_path)
    with pytest.raises(InputError, match=r"cannot read .*nothing.json: No such file"):
        read_bytes(tmp_path / "nothing.json")


def test_size_cap_and_head(tmp_path):
    from latbench.fileio import read_bytes

    p = tmp_path / "big.csv"
    p.write_bytes(b"x" * 100)
    with pytest.raises(InputError, match=r"big.csv is 100 bytes, over the 99 bytes limit"):
        read_bytes(p, limit=99)
    assert read_bytes(p, limit=10, head=True) == b"x" * 10


def test_text_must_be_utf8_and_the_bad_byte_is_located(tmp_path):
    from latbench.fileio import read_text

    p = tmp_path / "lut.csv"
    p.write_bytes(b"# a: 1\nkey,\xe9t\xe9\n")
    with pytest.raises(
        InputError, match=r"lut.csv is not UTF-8 text: byte 0xe9 at offset 11 \(line 2\)"
    ):
        read_text(p)


@pytest.mark.parametrize(
    "text,why",
    [
        ('{"a": NaN}', "NaN is not a number latbench accepts"),
        ('{"a": -Infinity}', "-Infinity is not a number"),
        ('{"a": 1e999}', "1e999 is not a finite number"),
        ('{"a": ' + "9" * 5000 + "}", "an integer of 5000 digits"),
        ('{"a": 1, "a": 2}', "key 'a' appears twice"),
        ("[" * 100000 + "]" * 100000, "nests lists/objects deeper than 64"),
        ("[" * 65 + "]" * 65, "nests lists/objects deeper than 64"),
        ('{"a": ', "is not valid JSON: Expecting value at line 1 column 7"),
    ],
)
def test_parse_json_refuses_what_no_latbench_file_holds(text, why):
    from latbench.fileio import parse_json

    with pytest.raises(InputError, match=re.escape(why)):
        parse_json(text, "f.json")


def test_parse_json_keeps_ordinary_documents():
    from latbench.fileio import parse_json

    big = 2**127  # a PCG64 state: 39 digits
    assert parse_json(f'{{"rng": {big}, "x": [1.5, -2, null]}}', "f") == {
        "rng": big,
        "x": [1.5, -2, None],
    }
    assert parse_json('{"a": NaN}', "f", allow_nan=True)["a"] != 0  # NaN where allowed


def test_toml_is_as_strict(tmp_path):
    from latbench.fileio import load_toml

    p = tmp_path / "dev.toml"
    for body, why in [
        ("a = nan\n", "nan is not a finite number"),
        ("a = " + "9" * 5000 + "\n", "an integer of more than 40 digits"),
        ("a = " + "[" * 5000 + "]" * 5000 + "\n", "too deep"),
        ("a = 1\na = 2\n", "not valid TOML"),
    ]:
        p.write_text(body)
        with pytest.raises(InputError, match=why):
            load_toml(p)


def test_npz_without_pickles_and_with_its_crc_checked(tmp_path):
    import io

    import numpy as np

    from latbench.fileio import read_npz

    p = tmp_path / "w.npz"
    buf = io.BytesIO()
    np.savez(buf, a=np.arange(64, dtype=np.float32))
    p.write_bytes(buf.getvalue())
    assert read_npz(p)["a"][5] == 5
    data = bytearray(buf.getvalue())
    data[data.index(b"\x93NUMPY") + 140] ^= 0x80
    p.write_bytes(bytes(data))
    with pytest.raises(InputError, match="fails its CRC check"):
        read_npz(p)
    p.write_bytes(b"junk")
    with pytest.raises(InputError, match="not an .npz archive"):
        read_npz(p)
