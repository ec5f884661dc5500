"""`latbench lut list`: a LUT folder read file by file, by each file's own header."""

import json

from latbench.devices.measure import summarize
from latbench.nets.arch import LayerSpec
from latbench.profiling.inventory import identity_of, inventory
from latbench.profiling.lut import LUT, Row

META = {
    "fingerprint": {
        "device": "host",
        "cpu": "x",
        "runtime": "ai-edge-litert",
        "runtime_version": "2.3.0",
    },
    "converter": "tf-1/recipe-1",
    "precision": "fp32",
    "space": "t",
    "created": "2026-11-24",
}


def _spec(c):
    return LayerSpec("mbconv", 14, c, 14, c, 3, 1, 6.0, skip=True)


def test_luts_predictors_and_stray_files_are_listed_with_counts(tmp_path):
    lut = LUT.create(tmp_path / "host_t_fp32.csv", META)
    lut.append(Row(_spec(16), "ok", summarize([1.0, 1.1, 1.2])))
    lut.append(Row(_spec(24), "failed", error="run: boom"))
    (tmp_path / "whatever-name.json").write_text(
        json.dumps(
            {
                "format": "latbench-predictor/2",
                "device": "host",
                "space": "t",
                "precision": "fp32",
                "calibration": {"networks": 116},
                "lut": {"settings": identity_of(META)},
                "predictors": {"scaled": {}},
            }
        )
    )
    (tmp_path / "README.md").write_text("not a table")
    (tmp_path / "notes.json").write_text("[1, 2]")
    (tmp_path / "other.csv").write_text("a,b\n1,2\n")
    entries = {e.file: e for e in inventory(tmp_path)}
    assert set(entries) == {"host_t_fp32.csv", "whatever-name.json", "other.csv"}
    t = entries["host_t_fp32.csv"]
    assert (t.kind, t.device, t.space, t.precision, t.rows, t.ok, t.failed) == (
        "lut",
        "host",
        "t",
        "fp32",
        2,
        1,
        1,
    )
    assert t.runtime == "ai-edge-litert 2.3.0" and t.last_measured.startswith("20")
    p = entries["whatever-name.json"]
    assert p.kind == "predictor" and p.rows == 116 and p.identity == t.identity
    assert entries["other.csv"].kind == "unreadable"


def test_identity_changes_with_the_settings_only():
    other_space = {**META, "space": "zoo", "created": "later"}
    other_runtime = {**META, "fingerprint": {**META["fingerprint"], "runtime_version": "2.4"}}
    assert identity_of(META) == identity_of(other_space)
    assert identity_of(META) != identity_of(other_runtime)


def test_identity_is_the_one_predictor_files_are_bound_to():
    from latbench.predictors import lut_identity

    assert lut_identity(LUT(meta=META)).startswith(identity_of(META) + "-")


def test_the_keras_references_table_is_listed_as_refs_not_unreadable(tmp_path):
    """The file `validate --keras-refs` writes (host_keras_fp32.refs.csv) is latbench's own."""
    (tmp_path / "host_keras_fp32.refs.csv").write_text(
        '# fingerprint: {"device": "host"}\n# precision: "fp32"\n# space: "keras"\n'
        "name,zoo,status,median_ms,p10_ms,p90_ms,runs\n"
        "MobileNetV2,mobilenet_v2_x1,ok,3.384,3.3,3.5,400\n"
    )
    (entry,) = inventory(tmp_path)
    assert (entry.kind, entry.device, entry.rows) == ("refs", "host", 1)


def test_an_int8_file_holding_fp32_rows_is_flagged_and_refused(tmp_path):
    import pytest

    from latbench.errors import InputError

    lut = LUT.create(tmp_path / "host_t_int8.csv", {**META, "precision": "int8"})
    lut.append(Row(_spec(16), "ok", summarize([1.0, 1.1, 1.2])))  # an fp32 layer
    good = LUT.create(tmp_path / "host_t_fp32.csv", META)
    good.append(Row(_spec(16), "ok", summarize([1.0, 1.1, 1.2])))
    entries = {e.file: e for e in inventory(tmp_path)}
    assert "holds fp32 rows" in entries["host_t_int8.csv"].note
    assert entries["host_t_fp32.csv"].note == ""
    with pytest.raises(
        InputError, match="row 1 holds a layer of precision fp32, but the LUT is int8"
    ):
        LUT.load(tmp_path / "host_t_int8.csv")
