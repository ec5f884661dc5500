import pytest

from latbench.devices.measure import summarize
from latbench.errors import InputError
from latbench.nets.arch import LayerSpec
from latbench.profiling.lut import LUT, Row, load_luts

META = {
    "fingerprint": {"device": "host", "cpu": "x"},
    "converter": "tf-1/recipe-1",
    "precision": "fp32",
    "space": "t",
}


def _spec(c):
    return LayerSpec("mbconv", 14, c, 14, c, 3, 1, 6.0, skip=True)


def test_append_load_round_trip(tmp_path):
    p = tmp_path / "host_t_fp32.csv"
    lut = LUT.create(p, META)
    lut.append(Row(_spec(16), "ok", summarize([1.0, 1.1, 1.2])))
    lut.append(Row(_spec(24), "failed", error="run: boom,\nwith comma"))
    back = LUT.load(p)
    assert back.meta == META
    assert list(back.rows) == [_spec(16).key, _spec(24).key]
    assert back.rows[_spec(16).key].measurement.median_ms == pytest.approx(1.1)
    assert back.rows[_spec(16).key].spec == _spec(16)
    assert back.failed()[_spec(24).key].error == "run: boom, with comma"


def test_torn_last_line_is_ignored_and_resume_appends(tmp_path):
    p = tmp_path / "l.csv"
    lut = LUT.create(p, META)
    lut.append(Row(_spec(16), "ok", summarize([1.0])))
    with open(p, "a") as f:
        f.write("mbconv:i14x14x24:o14x14")  # a kill -9 in the middle of a write
    back = LUT.open(p, META)
    assert list(back.rows) == [_spec(16).key]
    # the next append must not be glued onto the torn fragment
    back.append(Row(_spec(32), "ok", summarize([2.0])))
    again = LUT.load(p)
    assert set(again.rows) == {_spec(16).key, _spec(32).key}


def test_other_settings_are_refused(tmp_path):
    p = tmp_path / "l.csv"
    LUT.create(p, META)
    other = {**META, "fingerprint": {"device": "host", "cpu": "y"}}
    with pytest.raises(InputError, match="fingerprint"):
        LUT.open(p, other)
    q = tmp_path / "m.csv"
    LUT.create(q, {**META, "precision": "int8"})
    with pytest.raises(InputError, match="precision"):
        load_luts([p, q])


def test_malformed_files_are_clear_errors(tmp_path):
    p = tmp_path / "bad.csv"
    p.write_text("hello\n")
    with pytest.raises(InputError, match="not a latbench table"):
        LUT.load(p)
    lut = LUT.create(tmp_path / "k.csv", META)
    lut.append(Row(_spec(16), "ok", summarize([1.0])))
    text = (tmp_path / "k.csv").read_text().replace("mbconv:i14x14x16", "mbconv:i99x14x16")
    (tmp_path / "k.csv").write_text(text)
    with pytest.raises(InputError, match="does not match its fields"):
        LUT.load(tmp_path / "k.csv")


def test_grouped_fbconv_rows_round_trip_through_the_file(tmp_path):
    p = tmp_path / "host_t_fp32.csv"
    g2 = LayerSpec("fbconv", 32, 24, 32, 24, 5, 1, 1.0, skip=True, groups=2)
    LUT.create(p, META).append(Row(g2, "ok", summarize([0.5])))
    back = LUT.load(p)
    assert back.rows[g2.key].spec == g2 and g2.key.endswith(":g2")


def test_a_lut_from_before_the_groups_column_loads_and_resumes(tmp_path):
    """LUTs written before LayerSpec.groups existed: read with the default, upgraded on resume."""
    from latbench import records
    from latbench.profiling.lut import COLUMNS, OPTIONAL_COLUMNS

    p = tmp_path / "host_t_fp32.csv"
    old = Row(_spec(16), "ok", summarize([1.0]))
    legacy = [c for c in COLUMNS if c not in OPTIONAL_COLUMNS]  # the first release's columns
    keep = [i for i, c in enumerate(COLUMNS) if c in legacy]
    records.create(p, META, legacy, [[old.to_csv()[i] for i in keep]])
    assert "groups" not in p.read_text().splitlines()[len(META)]
    assert LUT.load(p).rows[_spec(16).key].spec == _spec(16)
    lut = LUT.open(p, META)  # resuming rewrites it with today's columns, losing nothing
    lut.append(Row(_spec(24), "ok", summarize([2.0])))
    back = LUT.load(p)
    assert set(back.rows) == {_spec(16).key, _spec(24).key}
    assert back.rows[_spec(16).key].measurement.median_ms == pytest.approx(1.0)
    assert "groups" in p.read_text().splitlines()[len(META)]


def test_content_hash_follows_row_values_and_protocol_is_part_of_the_settings(tmp_path):
    p = tmp_path / "host_t_fp32.csv"
    lut = LUT.create(p, {**META, "protocol": {"min_runs": 15}})
    lut.append(Row(_spec(16), "ok", summarize([1.0])))
    lut.append(Row(_spec(24), "failed", error="boom"))
    before, settings = lut.content_hash(), lut.settings_identity()
    assert lut.content() == {_spec(16).key: "1", _spec(24).key: "failed"}
    assert LUT.load(p).content_hash() == before  # a load round trip changes nothing
    lut.rows[_spec(16).key] = Row(_spec(16), "ok", summarize([1.01]))  # re-profiled row
    lut.save()  # (one row per key: appending a second measured row is refused on load)
    assert lut.content_hash() != before
    assert lut.content_hash([_spec(24).key]) == LUT.load(p).content_hash([_spec(24).key])
    other = LUT(meta={**META, "protocol": {"min_runs": 30}})
    assert other.settings_identity() != settings


def test_rows_record_which_statistic_they_hold_and_the_phone_state(tmp_path):
    from latbench.devices.measure import Measurement

    p = tmp_path / "phone_t_fp32.csv"
    lut = LUT.create(p, META)
    lut.append(Row(_spec(16), "ok", summarize([1.0, 1.1, 1.2])))
    state = {"after": {"thermal_status": 2, "cur_khz": "unavailable"}, "flags": ["throttled"]}
    phone = Measurement(
        2.0,
        1.9,
        2.2,
        0.1,
        2.05,
        40,
        0.02,
        {"stat": "median_of_means", "min_ms": 1.8, "state": state},
    )
    lut.append(Row(_spec(24), "ok", phone))
    back = LUT.load(p)
    host_row, phone_row = back.rows[_spec(16).key], back.rows[_spec(24).key]
    assert host_row.measurement.extra == {"stat": "median", "min_ms": 1.0} and host_row.flags == []
    assert phone_row.measurement.extra["stat"] == "median_of_means"
    assert (
        phone_row.measurement.extra["min_ms"] == 1.8
        and phone_row.measurement.extra["state"] == state
    )
    assert phone_row.flags == ["throttled"]


def test_a_lut_from_before_the_added_columns_loads_and_resumes(tmp_path):
    from latbench import records
    from latbench.profiling.lut import ADDED_COLUMNS, COLUMNS

    p = tmp_path / "old_t_fp32.csv"
    old_cols = COLUMNS[: -len(ADDED_COLUMNS)]
    row = Row(_spec(16), "ok", summarize([1.0, 1.2])).to_csv()[: len(old_cols)]
    records.create(p, META, old_cols, [row])
    back = LUT.load(p)
    assert back.rows[_spec(16).key].measurement.median_ms == pytest.approx(1.1)
    assert back.rows[_spec(16).key].measurement.extra["stat"] == "median"  # what old rows held
    lut = LUT.open(p, META)  # resuming rewrites the header once, keeping every row
    lut.append(Row(_spec(24), "ok", summarize([2.0])))
    again = LUT.load(p)
    assert set(again.rows) == {_spec(16).key, _spec(24).key}
    assert p.read_text().count("\n") == len(META) + 1 + 2


def test_a_device_whose_name_extends_another_s_keeps_its_own_files(tmp_path):
    """`host_4t_*_fp32.csv` matches the glob `host_*_fp32.csv`; the header says whose it is."""
    from latbench.profiling.lut import find_luts

    for device in ("host", "host_4t"):
        LUT.create(tmp_path / f"{device}_tiny_fp32.csv", {"fingerprint": {"device": device}})
    assert [p.name for p in find_luts(tmp_path, "host", "fp32")] == ["host_tiny_fp32.csv"]
    assert [p.name for p in find_luts(tmp_path, "host_4t", "fp32")] == ["host_4t_tiny_fp32.csv"]


def test_two_luts_of_other_settings_are_both_named_with_the_differing_key_only(tmp_path):
    from latbench.profiling.lut import load_luts

    fp = {"device": "host", "cpu": "AMD EPYC", "cpus": "auto", "threads": "1"}
    LUT.create(tmp_path / "host_a_fp32.csv", {"fingerprint": fp, "precision": "fp32"})
    LUT.create(
        tmp_path / "host_b_fp32.csv", {"fingerprint": {**fp, "cpus": "0"}, "precision": "fp32"}
    )
    with pytest.raises(InputError) as e:
        load_luts([tmp_path / "host_a_fp32.csv", tmp_path / "host_b_fp32.csv"])
    msg = str(e.value)
    assert "fingerprint.cpus" in msg and "'0'" in msg and "'auto'" in msg
    assert "host_a_fp32.csv" in msg and "host_b_fp32.csv" in msg
    assert "AMD EPYC" not in msg and "delete" not in msg


@pytest.mark.parametrize("median", ["nan", "inf", "-5", "1e308", "0"])
def test_a_damaged_median_is_refused_naming_the_file_and_row(tmp_path, median):
    """nan, inf, negative, absurd or zero medians were summed and printed (-3.411 ms)."""
    spec = LayerSpec("mbconv", 8, 16, 8, 16, 3, 1, 6.0, skip=True)
    path = tmp_path / "host_t_fp32.csv"
    lut = LUT.create(path, {"fingerprint": {"device": "host"}})
    lut.append(Row(spec, "ok", summarize([0.5, 0.6, 0.7])))
    text = path.read_text().splitlines()
    fields = text[-1].split(",")
    i = text[-2].split(",").index("median_ms")
    fields[i] = median
    path.write_text("\n".join(text[:-1] + [",".join(fields)]) + "\n")
    with pytest.raises(InputError, match=r"host_t_fp32.csv: row 1 is malformed: median_ms"):
        LUT.load(path)


def test_two_measured_rows_of_one_key_are_refused_but_a_retried_failure_is_not(tmp_path):
    spec = LayerSpec("mbconv", 8, 16, 8, 16, 3, 1, 6.0, skip=True)
    path = tmp_path / "host_t_fp32.csv"
    lut = LUT.create(path, {"fingerprint": {"device": "host"}})
    lut.append(Row(spec, "failed", None, "boom"))
    lut.append(Row(spec, "ok", summarize([0.5])))  # --retry-failed measured it
    assert LUT.load(path).rows[spec.key].status == "ok"
    lut.append(Row(spec, "ok", summarize([0.9])))  # a second writer did it again
    with pytest.raises(InputError, match="rows 2 and 3 both measure"):
        LUT.load(path)


def test_resuming_a_torn_lut_keeps_its_mode_and_group(tmp_path):
    """Issue 19 item 9: a resume that cuts a torn tail, and one that rewrites the file with
    today's columns, both keep the file's permission bits and group (and every row)."""
    import os
    import stat

    from latbench import records
    from latbench.profiling.lut import COLUMNS, OPTIONAL_COLUMNS

    p = tmp_path / "host_t_fp32.csv"
    legacy = [c for c in COLUMNS if c not in OPTIONAL_COLUMNS]
    keep = [i for i, c in enumerate(COLUMNS) if c in legacy]
    row = Row(_spec(16), "ok", summarize([1.0])).to_csv()
    records.create(p, META, legacy, [[row[i] for i in keep]])
    with open(p, "a") as f:
        f.write("mbconv:i8x8x16:o8x8")  # a row torn by a kill
    os.chmod(p, 0o640)
    gid = 4242 if os.geteuid() == 0 else os.getgid()  # root may give any group
    os.chown(p, -1, gid)
    lut = LUT.open(p, META)  # cuts the torn tail, then upgrades the columns (a rewrite)
    lut.append(Row(_spec(24), "ok", summarize([2.0])))
    st = p.stat()
    assert stat.S_IMODE(st.st_mode) == 0o640 and st.st_gid == gid
    assert set(LUT.load(p).rows) == {_spec(16).key, _spec(24).key}
    lut.save()  # a merge's rewrite keeps them too
    st = p.stat()
    assert stat.S_IMODE(st.st_mode) == 0o640 and st.st_gid == gid
