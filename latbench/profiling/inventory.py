"""What a LUT folder holds: `latbench lut list`.

Reads every file generically, by its own header, never by a naming scheme:
a measurement table is any `*.csv` that starts with latbench's `# key: json`
metadata lines (LUTs, calibration and validation network files), a predictor
is any `*.json` with a `format` starting "latbench-predictor". So the listing
keeps working when file names change. Nothing is executed or unpickled.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from latbench.errors import InputError, one_line
from latbench.fileio import MAX_TABLE_BYTES, load_json, read_text
from latbench.records import parse_csv, parse_header


@dataclass
class Entry:
    """One file of the folder, as `lut list` shows it."""

    file: str
    kind: str  # lut | oplut | networks | refs | sentinel | predictor | unreadable
    device: str = ""
    space: str = ""
    precision: str = ""
    rows: int = 0
    ok: int = 0
    failed: int = 0
    created: str = ""
    last_measured: str = ""
    identity: str = ""  # hash of the settings that must match (fingerprint, converter, precision)
    runtime: str = ""
    converter: str = ""
    note: str = ""
    extra: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def identity_of(meta: dict[str, Any]) -> str:
    """The LUT settings a predictor file is bound to (`LUT.settings_identity`: fingerprint,
    converter, precision, protocol)."""
    from latbench.profiling.lut import LUT

    return LUT(meta=meta).settings_identity()


def _read_table(path: Path) -> Entry:
    lines = read_text(path, limit=MAX_TABLE_BYTES).split("\n")
    meta, i = parse_header(lines)  # lenient: a file we cannot parse is still listed
    if not meta or i >= len(lines):
        return Entry(path.name, "unreadable", note="no latbench header")
    for k in ("fingerprint", "space", "precision", "created", "converter"):
        if k not in meta:
            continue
        if isinstance(meta[k], dict) != (k == "fingerprint"):
            note = f"its {k} header is not what latbench writes: {str(meta[k])[:80]!r}"
            return Entry(path.name, "unreadable", note=note)
    body = [ln for ln in lines[i:] if ln]
    records = parse_csv(body, path, i)
    cols = records[0] if records else []
    rows = [dict(zip(cols, r)) for r in records[1:]]
    kind = (
        "sentinel"  # the sentinel's readings (profiling/sentinel.py)
        if {"what", "context"} <= set(cols)
        else "oplut"  # operators of any model (profiling/oplut.py)
        if "key" in cols and meta.get("table") == "ops"
        else "lut"
        if "key" in cols
        else "networks"
        if "digest" in cols
        else "refs"  # Keras' own networks timed by validate --keras-refs
        if {"name", "zoo"} <= set(cols)
        else "unreadable"
    )
    note = ""
    if kind == "lut":  # rows of another precision than the header's or the file name's
        named = path.stem.rsplit("_", 1)[-1]
        held = sorted({r.get("precision") or "" for r in rows} - {""})
        said = {str(meta.get("precision", named)), named}
        if held and (set(held) != said or len(said) > 1):
            note = (
                f"holds {'/'.join(held)} rows, but its name says {named} and its header "
                f"{meta.get('precision')}: predict refuses it"
            )
    fp = meta.get("fingerprint") or {}
    ok = sum(1 for r in rows if r.get("status", "ok") == "ok")
    dates = sorted(r.get("measured_at") or "" for r in rows)
    return Entry(
        file=path.name,
        kind=kind,
        device=str(fp.get("device") or fp.get("name") or ""),
        space=str(meta.get("space", "")),
        precision=str(meta.get("precision", "")),
        rows=len(rows),
        ok=ok,
        failed=len(rows) - ok,
        created=str(meta.get("created", "")),
        last_measured=dates[-1] if dates else "",
        identity=identity_of(meta),
        runtime=" ".join(str(fp[k]) for k in ("runtime", "runtime_version") if fp.get(k)),
        converter=str(meta.get("converter", "")),
        note=note,
    )


def _read_predictor(path: Path) -> Entry | None:
    try:
        doc = load_json(path)
    except InputError as exc:
        if path.name.endswith(".predictor.json"):
            return Entry(path.name, "unreadable", note=one_line(exc))
        return None
    if not isinstance(doc, dict) or not str(doc.get("format", "")).startswith("latbench-predictor"):
        return None
    kinds = doc.get("predictors")
    cal = doc.get("calibration") if isinstance(doc.get("calibration"), dict) else {}
    lut = doc.get("lut") if isinstance(doc.get("lut"), dict) else {}
    return Entry(
        file=path.name,
        kind="predictor",
        device=str(doc.get("device") or ""),
        space=str(doc.get("space") or ""),
        precision=str(doc.get("precision") or ""),
        rows=int(cal.get("networks") or 0),
        identity=str(lut.get("settings") or ""),
        created=str(doc.get("created") or ""),
        extra={
            "format": doc.get("format"),
            "predictors": sorted(kinds) if isinstance(kinds, dict) else kinds,
        },
    )


def inventory(lut_dir: Path) -> list[Entry]:
    """Every latbench file in `lut_dir`, sorted by device, precision, kind and name."""
    out: list[Entry] = []
    for p in sorted(Path(lut_dir).glob("*")):
        if not p.is_file() or p.name.startswith("."):
            continue
        if p.suffix == ".csv":
            try:
                out.append(_read_table(p))
            except InputError as exc:
                out.append(Entry(p.name, "unreadable", note=one_line(exc)))
        elif p.suffix == ".json":
            e = _read_predictor(p)
            if e is not None:
                out.append(e)
    order = {"lut": 0, "oplut": 1, "networks": 2, "refs": 3, "sentinel": 4, "predictor": 5,
             "unreadable": 6}  # fmt: skip
    return sorted(out, key=lambda e: (e.device, e.precision, order[e.kind], e.file))
