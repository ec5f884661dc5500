"""Append-only CSV tables with a metadata header: LUTs and whole-network measurements.

`# key: json` lines, then a CSV header and rows. Created atomically, appended
one fsynced row at a time; a row torn by a kill is ignored on read and cut off
before the next append, so resuming never glues two rows together.
"""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path
from typing import Any, Collection, Sequence

from latbench.errors import InputError
from latbench.fileio import (
    MAX_LINE_BYTES,
    MAX_TABLE_BYTES,
    append_line,
    cut_torn_tail,
    parse_json,
    read_text,
    write_atomic,
)

# Metadata that must match for two sets of measurements to be comparable.
IDENTITY_KEYS = ("fingerprint", "converter", "precision")


def differences(a: dict[str, Any], b: dict[str, Any], keys: Sequence[str] = IDENTITY_KEYS) -> list:
    """(dotted key, value in a, value in b) for every setting that differs, nested dicts
    compared key by key (a fingerprint differs in `cpus`, not as a whole)."""
    out = []
    for k in keys:
        x, y = a.get(k), b.get(k)
        if isinstance(x, dict) and isinstance(y, dict):
            out += [(f"{k}.{sub}", x.get(sub), y.get(sub)) for sub in sorted(set(x) | set(y))
                    if x.get(sub) != y.get(sub)]  # fmt: skip
        elif x != y:
            out.append((k, x, y))
    return out


def check_compatible(
    file_meta: dict[str, Any], meta: dict[str, Any], source: object, what: str = "this device"
) -> None:
    """Refuse to mix measurements taken under other settings, naming the settings that differ;
    never advise deleting measured data."""
    diffs = differences(file_meta, meta)
    if diffs:
        lines = [f"  {k}: {source} has {x!r}, {what} has {y!r}" for k, x, y in diffs]
        raise InputError(
            f"{source} was measured under other settings and is not mixed in:\n"
            + "\n".join(lines)
            + "\nKeep them apart: move one of them to another folder, or use another --lut-dir."
        )


def open_for_append(
    path: Path, meta: dict[str, Any], columns: Sequence[str], optional: Collection[str] = ()
) -> None:
    """Make `path` ready for appends: check an existing table's settings, or create it.

    A table written before its `optional` columns existed is rewritten once
    (atomically) with them, empty, so new rows and old ones share one header.
    """
    path = Path(path)
    if path.exists():
        old_meta, rows = read(path, columns, optional)
        check_compatible(old_meta, meta, path)
        drop_torn_tail(path)
        header = next(csv.reader([_header_line(path)]), [])
        if header != list(columns):
            create(path, old_meta, columns, [[r.get(c) or "" for c in columns] for r in rows])
    else:
        create(path, meta, columns)


def _header_line(path: Path) -> str:
    for line in read_text(path, limit=MAX_TABLE_BYTES).split("\n"):
        if not line.startswith("# "):
            return line
    return ""


def _render(meta: dict[str, Any], columns: Sequence[str], rows: Sequence[Sequence[Any]]) -> bytes:
    buf = io.StringIO()
    for k, v in meta.items():
        buf.write(f"# {k}: {json.dumps(v, sort_keys=True)}\n")
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(columns)
    w.writerows(rows)
    return buf.getvalue().encode()


def create(
    path: Path, meta: dict[str, Any], columns: Sequence[str], rows: Sequence[Sequence[Any]] = ()
) -> None:
    """Write a whole table atomically (new file, or a rewrite after a merge)."""
    write_atomic(Path(path), _render(meta, columns, rows))


def parse_header(lines: Sequence[str], source: object = None) -> tuple[dict[str, Any], int]:
    """The `# key: json` lines at the top: (meta, index of the first other line).

    With a `source`, a line that is not JSON (or not within `parse_json`'s limits) is an
    InputError naming it; without one (a lenient reader such as `lut list`), its raw text
    is kept.
    """
    meta: dict[str, Any] = {}
    i = 0
    while i < len(lines) and lines[i].startswith("# "):
        k, _, v = lines[i][2:].partition(": ")
        try:
            meta[k] = parse_json(v, f"metadata line {i + 1}")
        except InputError as exc:
            if source is not None:
                raise InputError(f"{source}: bad {exc}"[:400]) from None
            meta[k] = v
        i += 1
    return meta, i


def read(
    path: Path, columns: Sequence[str], optional: Collection[str] = ()
) -> tuple[dict[str, Any], list[dict[str, str]]]:
    """(meta, rows as dicts); the columns must be `columns` in order, where a file from before
    some `optional` columns were added may lack them (they read as "")."""
    path = Path(path)
    lines = read_text(path, limit=MAX_TABLE_BYTES).split("\n")
    meta, i = parse_header(lines, path)
    body = lines[i:]
    header = (parse_csv([body[0]], path, i) or [[]])[0] if body else []
    lacking = set(columns) - set(header)
    if header != [c for c in columns if c in header] or not lacking <= set(optional):
        raise InputError(f"{path}: not a latbench table (expected columns {list(columns)})")
    complete = body[1:-1]  # the last piece is "" after a final newline, else a torn row
    rows = []
    for n, values in enumerate(parse_csv(complete, path, i + 1), start=1):
        if len(values) > len(header):
            raise InputError(f"{path}: row {n} has {len(values)} fields, the header {len(header)}")
        rows.append(dict(zip(header, values + [""] * (len(header) - len(values)))))
    for r in rows:
        for c in lacking:
            r[c] = ""
    return meta, rows


def parse_csv(lines: Sequence[str], source: object, first_line: int = 0) -> list[list[str]]:
    """CSV records of `lines` (quoted fields may span lines); a line over MAX_LINE_BYTES or
    a quote left open is an InputError naming the file and line (before any large field is
    parsed: a line over the limit is refused as it is met)."""
    for n, line in enumerate(lines):
        if len(line) > MAX_LINE_BYTES:
            raise InputError(
                f"{source}: line {first_line + n + 1} is {len(line)} characters long, over the "
                f"{MAX_LINE_BYTES}-character limit of a table line"
            )
    reader = csv.reader(io.StringIO("\n".join(lines), newline=""), strict=True)
    try:
        return [r for r in reader if r]
    except csv.Error as exc:
        raise InputError(f"{source}: line {first_line + reader.line_num}: {exc}") from None


def drop_torn_tail(path: Path) -> None:
    """Cut a partial last row (left by a kill) so appends start on a fresh line."""
    cut_torn_tail(Path(path))


def append(path: Path, values: Sequence[Any]) -> None:
    buf = io.StringIO()
    csv.writer(buf, lineterminator="\n").writerow(values)
    append_line(Path(path), buf.getvalue())
