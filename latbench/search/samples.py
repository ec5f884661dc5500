"""samples.csv: the search's append-only record of completed children.

One CSV row per completed sample, written with `fileio.append_line` (fsynced,
O_APPEND). Fields are quoted by the csv module, so a value may hold commas or
quotes; newlines are folded to " | " before writing, so one row is always one
physical line and a row torn by a kill is exactly the last, unterminated line.
Reading parses whole CSV records (never split lines by hand), drops a torn
last record, and cuts it off the file so the next append starts cleanly.
"""

from __future__ import annotations

import csv
import io
import math
from pathlib import Path

from latbench.fileio import append_line, write_atomic

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
]
FLOAT_COLUMNS = ("accuracy", "pred_ms", "meas_ms", "lat_ms", "reward", "train_s", "wall_s")


def one_line(text: str) -> str:
    """Fold a (possibly multi-line) message into one line."""
    return " | ".join(part.strip() for part in str(text).splitlines() if part.strip())


def _fmt(x: float) -> str:
    return (
        "" if not math.isfinite(x) else repr(float(x))
    )  # exact: a resume must see the same rewards


def render(row: dict) -> str:
    """One row as one CSV line (newline-terminated)."""
    out = {k: row.get(k, "") for k in COLUMNS}
    out["tokens"] = "-".join(map(str, row["tokens"]))
    for k in FLOAT_COLUMNS:
        out[k] = _fmt(row[k])
    out["cached"] = "1" if row["cached"] else "0"
    out["error"] = one_line(row.get("error", ""))
    out["arch"] = one_line(row.get("arch", ""))
    buf = io.StringIO()
    csv.DictWriter(buf, COLUMNS, lineterminator="\n").writerow(out)
    return buf.getvalue()


def _header() -> str:
    return ",".join(COLUMNS) + "\n"


def parse(rec: dict) -> dict:
    """A CSV record (strings) -> a row with typed fields; ValueError/KeyError when malformed."""
    if set(rec) != set(COLUMNS) or None in rec.values():
        raise ValueError("wrong number of fields")

    def f(k: str) -> float:
        return float(rec[k]) if rec[k] != "" else float("nan")

    return {
        **rec,
        "sample": int(rec["sample"]),
        "batch": int(rec["batch"]),
        "tokens": [int(t) for t in rec["tokens"].split("-")],
        **{k: f(k) for k in FLOAT_COLUMNS},
        "cached": rec["cached"] == "1",
    }


def read(path: Path) -> list[dict]:
    """Completed rows in order; a torn or malformed tail is dropped (and cut off the file)."""
    path = Path(path)
    if not path.exists():
        return []
    text = path.read_text()
    records = list(csv.reader(io.StringIO(text, newline="")))
    if not records:
        return []
    complete = records[1:] if text.endswith("\n") else records[1:-1]
    rows = []
    for values in complete:
        try:
            rows.append(
                parse(dict(zip(records[0], values)) if len(values) == len(records[0]) else {})
            )
        except (ValueError, KeyError):
            break
    if len(rows) != len(records) - 1:  # something was dropped: keep exactly the good rows
        buf = io.StringIO()
        csv.writer(buf, lineterminator="\n").writerows(records[: len(rows) + 1])
        write_atomic(path, buf.getvalue().encode())
    return rows


def append(path: Path, row: dict) -> None:
    """Append one completed row (creating the file with its header)."""
    path = Path(path)
    if not path.exists():
        write_atomic(path, _header().encode())
    append_line(path, render(row))
