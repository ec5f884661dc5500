"""samples.csv: the search's append-only record of completed children.

One CSV row per completed sample, written with `fileio.append_line` (fsynced,
O_APPEND). Fields are quoted by the csv module, so a value may hold commas or
quotes; newlines are folded to " | " before writing, so one row is always one
physical line and a row torn by a kill is exactly the last, unterminated line.
Reading parses whole CSV records (never split lines by hand) and ignores a
torn last record; the writer (a resuming search, `repair=True`) cuts it off the
file so the next append starts cleanly. Any other malformed row is refused with
its line number and the file is left exactly as it is: a reader never deletes
measured data to make a file readable.
"""

from __future__ import annotations

import csv
import io
import json
import math
from pathlib import Path

from latbench.errors import InputError
from latbench.fileio import MAX_TABLE_BYTES, append_line, cut_torn_tail, read_bytes, write_atomic

COLUMNS = [
    "sample",
    "batch",
    "digest",
    "tokens",
    "arch",
    "accuracy",
    "pred_ms",
    "meas_ms",
    "lat_ms",
    "reward",
    "train_s",
    "wall_s",
    "cached",
    "error",
    "fidelity",
    "metrics",
    "cpu_s",
]
FLOAT_COLUMNS = (
    "accuracy", "pred_ms", "meas_ms", "lat_ms", "reward", "train_s", "wall_s", "cpu_s",
)  # fmt: skip
# Columns added later, with the value a file written before them means: a resumed old run
# keeps appending in its own header's columns.
OPTIONAL = {"fidelity": "1.0", "metrics": "{}", "cpu_s": ""}


# What a number of a row may be (written from finite values only: a missing one is "").
_RANGES = {"accuracy": (0.0, 1.0), "reward": (-1e9, 1e9), "fidelity": (0.0, 1.0)}


def one_line(text: str) -> str:
    """Fold a (possibly multi-line) message into one line."""
    return " | ".join(part.strip() for part in str(text).splitlines() if part.strip())


def _fmt(x: float) -> str:
    return (
        "" if not math.isfinite(x) else repr(float(x))
    )  # exact: a resume must see the same rewards


def render(row: dict, columns: list[str] = COLUMNS) -> str:
    """One row as one CSV line (newline-terminated), in `columns` (a file's header)."""
    out = {k: row.get(k, "") for k in COLUMNS}
    out["tokens"] = "-".join(map(str, row["tokens"]))
    for k in FLOAT_COLUMNS:  # an optional number a caller left out is written as missing
        out[k] = _fmt(row[k] if k not in OPTIONAL else row.get(k, math.nan))
    out["cached"] = "1" if row["cached"] else "0"
    out["error"] = one_line(row.get("error", ""))
    out["arch"] = one_line(row.get("arch", ""))
    out["fidelity"] = repr(float(row.get("fidelity", 1.0)))
    out["metrics"] = json.dumps(row.get("metrics") or {}, sort_keys=True)
    buf = io.StringIO()
    csv.DictWriter(buf, columns, lineterminator="\n", extrasaction="ignore").writerow(out)
    return buf.getvalue()


def _header() -> str:
    return ",".join(COLUMNS) + "\n"


def parse(rec: dict) -> dict:
    """A CSV record (strings) -> a row with typed fields; ValueError/KeyError when malformed."""
    rec = {**rec, **{k: v for k, v in OPTIONAL.items() if rec.get(k, "") == ""}}
    if set(rec) != set(COLUMNS) or None in rec.values():
        raise ValueError("wrong number of fields")
    metrics = json.loads(rec["metrics"])
    if not isinstance(metrics, dict) or not all(
        isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)
        for v in metrics.values()
    ):
        raise ValueError(f"metrics must be a JSON object of finite numbers, got {rec['metrics']!r}")

    def f(k: str) -> float:  # "" is a sample without that number (a failure): NaN
        if rec[k] == "":
            return float("nan")
        v = float(rec[k])
        lo, hi = _RANGES.get(k, (0.0, 1e9))
        if not (math.isfinite(v) and lo <= v <= hi):
            raise ValueError(f"{k} must be a number in [{lo:g}, {hi:g}], got {rec[k]!r}")
        return v

    return {
        **rec,
        "sample": int(rec["sample"]),
        "batch": int(rec["batch"]),
        "tokens": [int(t) for t in rec["tokens"].split("-")],
        **{k: f(k) for k in FLOAT_COLUMNS},
        "cached": rec["cached"] == "1",
        "fidelity": f("fidelity"),
        "metrics": metrics,
    }


def _malformed(path: Path, n: int, why: object) -> InputError:
    return InputError(
        f"{path}: line {n} is malformed ({why}); the file was not changed: fix or remove "
        f"that line (rows after it are kept), then run the command again"
    )


def read(path: Path, repair: bool = False) -> list[dict]:
    """Completed rows in order. A torn last line (no newline: a kill mid-write) is ignored,
    and with `repair` cut off the file; a malformed row is an InputError naming its line, and
    the file is not touched. Only the bytes up to the last newline are decoded and parsed (a
    kill may have cut a character in half after it), so nothing complete is ever taken for
    the torn tail: an unclosed quote makes its row malformed instead of swallowing the rest.
    Records are parsed by the csv module, so files whose quoted fields span lines (written
    before newlines were folded) still read."""
    path = Path(path)
    if not path.exists():
        return []
    data = read_bytes(path, limit=MAX_TABLE_BYTES)
    cut = data.rfind(b"\n") + 1
    complete, tail = data[:cut], data[cut:]
    try:
        text = complete.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = complete[: exc.start].count(b"\n") + 1
        raise _malformed(path, line, "not UTF-8") from None
    reader = csv.reader(io.StringIO(text, newline=""))
    rows: list[dict] = []
    header: list[str] | None = None
    start = 1
    try:
        for values in reader:
            if header is None:
                header = values
                if not set(COLUMNS) - set(OPTIONAL) <= set(header) <= set(COLUMNS):
                    raise InputError(
                        f"{path}: line 1 is not the samples.csv header; the file was not changed"
                    )
            else:
                try:
                    if len(values) != len(header):
                        raise ValueError(f"{len(values)} fields, expected {len(header)}")
                    rows.append(parse(dict(zip(header, values))))
                except (ValueError, KeyError) as exc:
                    raise _malformed(path, start, exc) from None
            start = reader.line_num + 1
    except csv.Error as exc:
        raise _malformed(path, start, exc) from None
    if tail and repair:
        cut_torn_tail(path)
    return rows


def header(path: Path) -> list[str]:
    """The columns of an existing file (its first line)."""
    with open(path, encoding="utf-8", newline="") as fh:
        return next(csv.reader([fh.readline()]), COLUMNS)


def append(path: Path, row: dict) -> None:
    """Append one completed row (creating the file with its header; an older file keeps its
    own columns)."""
    path = Path(path)
    if not path.exists():
        write_atomic(path, _header().encode())
        columns = COLUMNS
    else:
        columns = header(path)
    append_line(path, render(row, columns))
