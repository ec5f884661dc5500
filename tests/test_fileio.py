"""Files latbench writes: modes that follow the umask, names that cannot leave their folder."""

import os
import stat

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
