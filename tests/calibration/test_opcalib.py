"""Whole models measured for the operator predictor: the sentinel's speed on each row, read back
as calibrate's networks are (scaled back when the machine was slower, left out when far
slower), files from before the column existed, and damaged speeds."""

import pytest

from latbench import records
from latbench.calibration.opcalib import MODEL_COLUMNS, MODEL_OPTIONAL, load_model_results
from latbench.errors import InputError
from latbench.profiling.sentinel import DRIFT_LIMIT, REFUSE_LIMIT

META = {"fingerprint": "f", "precision": "fp32", "space": "models"}


def _row(digest: str, ms: str, speed: str, p: int = 1) -> dict[str, str]:
    return {
        "digest": digest, "name": digest, "source": "file", "status": "ok", "median_ms": ms,
        "p10_ms": ms, "p90_ms": ms, "std_ms": "0", "runs": "10", "ci_rel": "0.01", "error": "",
        "measured_at": "2026-12-02T10:00:00+00:00", "pass": str(p), "speed": speed,
        "device_state": "",
    }  # fmt: skip


def _write(path, rows, columns=MODEL_COLUMNS):
    records.create(path, META, columns, [[r.get(c, "") for c in columns] for r in rows])


def test_a_model_timed_on_a_slower_machine_is_scaled_back_or_left_out(tmp_path):
    path = tmp_path / "host_ops_fp32.calib.csv"
    slow, far = 1 + 2 * DRIFT_LIMIT, 1 + 2 * REFUSE_LIMIT
    _write(path, [
        _row("steady", "2.0", "1.01"),
        _row("slow", "2.2", f"{slow}"),  # the same 2.0 ms, timed on a slower machine
        _row("mixed", "4.0", "", 1), _row("mixed", "9.0", f"{far}", 2),
        _row("gone", "3.0", f"{far}"),
    ])  # fmt: skip
    got = load_model_results(path)
    assert got["steady"].median_ms == 2.0 and got["steady"].corrected == 0
    assert got["slow"].median_ms == pytest.approx(2.2 / slow) and got["slow"].corrected == 1
    assert got["mixed"].median_ms == 4.0 and (got["mixed"].passes, got["mixed"].disturbed) == (1, 1)
    assert got["gone"].median_ms is None and got["gone"].disturbed == 1 and not got["gone"].error


def test_a_file_from_before_the_speed_column_is_read_and_a_damaged_speed_named(tmp_path):
    path = tmp_path / "old.calib.csv"
    old = [c for c in MODEL_COLUMNS if c not in MODEL_OPTIONAL]
    _write(path, [_row("a", "2.0", "")], old)
    assert load_model_results(path)["a"].median_ms == 2.0
    for bad in ("fast", "-1", "nan", "inf"):
        _write(path, [_row("a", "2.0", "1.0"), _row("b", "2.0", bad)])
        with pytest.raises(InputError, match=r"old.calib.csv: row 2 .*speed"):
            load_model_results(path)
