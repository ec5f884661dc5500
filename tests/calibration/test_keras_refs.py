"""Keras reference networks (keras_refs.py): the table, and failures kept as rows."""

from latbench.calibration.keras_refs import COLUMNS, KERAS_REFS, measure_refs
from latbench.nets import zoo
from latbench.records import read


def test_every_reference_has_a_zoo_twin_latbench_can_predict():
    assert set(KERAS_REFS) == {
        "MobileNetV2",
        "MobileNetV3Large",
        "MobileNetV3Small",
        "EfficientNetB0",
    }
    for ref in KERAS_REFS.values():
        assert zoo.get(ref.zoo).resolution == 224


def test_a_reference_that_fails_to_convert_is_a_failed_row_and_the_rest_go_on(
    tmp_path, monkeypatch
):
    import latbench.calibration.keras_refs as kr

    def boom(name, precision):
        raise RuntimeError(f"converter broke on {name}")

    monkeypatch.setattr(kr, "_convert", boom)
    path = tmp_path / "host_keras_fp32.refs.csv"
    rows = measure_refs(
        device=None,
        path=path,
        precision="fp32",
        meta={"fingerprint": {"device": "host"}, "converter": "c", "precision": "fp32"},
    )
    assert {r["status"] for r in rows.values()} == {"failed"} and len(rows) == 4
    _, on_disk = read(path, COLUMNS)
    assert "convert: RuntimeError: converter broke on MobileNetV2" in on_disk[0]["error"]
