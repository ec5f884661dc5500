"""The device-kind table: every entry opens through a real callable, profiles read it."""

import importlib

import pytest

from latbench.devices import KINDS, device_kind, known_profiles, load_profile
from latbench.errors import InputError


@pytest.mark.parametrize("name", list(KINDS))
def test_every_kind_names_an_opener_that_exists(name):
    kind = KINDS[name]
    module, attr = kind.opener
    assert callable(getattr(importlib.import_module(module), attr))
    assert kind.name == name and kind.description


def test_every_shipped_profile_has_a_kind_from_the_table():
    kinds = {load_profile(n).kind for n in known_profiles()}
    assert kinds <= set(KINDS) and {"host", "emulated"} <= kinds


def test_only_the_phones_need_a_transport_and_the_stand_ins_time_here():
    assert [k for k in KINDS if KINDS[k].needs_transport] == ["adb", "emulated"]
    assert [k for k in KINDS if KINDS[k].times_on_this_cpu] == ["host", "emulated"]


def test_an_unknown_kind_in_a_profile_names_the_file_and_field(tmp_path, monkeypatch):
    (tmp_path / "odd.toml").write_text('name = "odd"\nkind = "fpga"\n')
    monkeypatch.setenv("LATBENCH_PROFILES", str(tmp_path))
    with pytest.raises(InputError, match=r"kind must be one of \('host', 'adb', 'emulated'\)"):
        load_profile("odd")
    with pytest.raises(InputError, match="fpga"):
        device_kind("fpga")
