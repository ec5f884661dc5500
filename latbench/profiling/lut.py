"""The latency lookup table: one CSV row per LayerSpec key, with a metadata header.

The table is generic in what a row describes: `LUT.item_type` is a frozen dataclass with a
`key` property and a `precision` field whose fields are the row's descriptive columns
(`LayerSpec` here; `build/tflite_ops.OpSpec` for the operator LUT, `profiling/oplut.py`).

File layout: `# key: value` comment lines (device fingerprint, runtime and
converter versions, threads, CPU set, delegate, precision, dates) followed by
a CSV table. The file is created atomically and then appended one flushed,
fsynced row at a time, so a Ctrl-C or `kill -9` loses at most the row in
flight; a torn last line is ignored on load and the next run resumes. A LUT
whose settings differ from the device's is refused, never mixed in.
"""

from __future__ import annotations

import hashlib
import json
import math
import threading
from dataclasses import dataclass, field, fields
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, ClassVar, Iterable

from latbench import records
from latbench.devices.measure import Measurement
from latbench.errors import InputError
from latbench.fileio import parse_json, read_bytes
from latbench.nets.arch import LayerSpec


def item_columns(cls: type) -> list[str]:
    """The row columns of an item type: its dataclass fields, less those marked
    `metadata={"column": False}` (where an item comes from, not what it is)."""
    return [f.name for f in fields(cls) if f.metadata.get("column", True)]


SPEC_COLUMNS = item_columns(LayerSpec)
STAT_COLUMNS = ["median_ms", "p10_ms", "p90_ms", "std_ms", "mean_ms", "runs", "ci_rel"]
# Added after the first release (older files load with these empty and are rewritten with
# them on resume): groups, a LayerSpec field (FBNet's grouped convs; empty = 1); stat: which
# statistic median_ms is ("median" of single timed runs on the host, "median_of_means" of
# several benchmark_model invocations on a phone; empty in older files = "median"); min_ms:
# the fastest single run; device_state: JSON of the phone's state around the row (thermal
# status, clocks, battery, flags such as "throttled" or "partial_delegate"), "" where none.
ADDED_SPEC_FIELDS = ("groups",)
ADDED_COLUMNS = ["stat", "min_ms", "device_state"]
COLUMNS = ["key", *SPEC_COLUMNS, "status", *STAT_COLUMNS, "error", "measured_at", *ADDED_COLUMNS]
OPTIONAL_COLUMNS = {*ADDED_SPEC_FIELDS, *ADDED_COLUMNS}


def lut_path(lut_dir: Path, device: str, space: str, precision: str) -> Path:
    """LUTDIR/DEVICE_SPACE_PRECISION.csv; each part is checked, so it cannot leave LUTDIR."""
    from latbench.fileio import safe_name

    parts = [
        safe_name(device, "device"),
        safe_name(space, "space"),
        safe_name(precision, "precision"),
    ]
    return Path(lut_dir) / ("_".join(parts) + ".csv")


@dataclass
class Row:
    spec: Any  # a LayerSpec, or the item type of the LUT it belongs to
    status: str  # ok | failed
    measurement: Measurement | None = None
    error: str = ""
    measured_at: str = ""

    def to_csv(self) -> list[str]:
        s = self.spec
        m = self.measurement
        stats = (
            ["" for _ in STAT_COLUMNS]
            if m is None
            else [
                f"{m.median_ms:.6g}",
                f"{m.p10_ms:.6g}",
                f"{m.p90_ms:.6g}",
                f"{m.std_ms:.6g}",
                f"{m.mean_ms:.6g}",
                str(m.runs),
                f"{m.ci_rel:.4g}",
            ]
        )
        spec_vals = [str(getattr(s, c)) for c in item_columns(type(s))]
        added = ["", "", ""]
        if m is not None:
            mn = m.extra.get("min_ms")
            st = m.extra.get("state")
            added = [
                str(m.extra.get("stat", "median")),
                f"{mn:.6g}" if isinstance(mn, (int, float)) else "",
                json.dumps(st, sort_keys=True, separators=(",", ":")) if st else "",
            ]
        return [
            s.key,
            *spec_vals,
            self.status,
            *stats,
            self.error.replace("\n", " "),
            self.measured_at,
            *added,
        ]

    @property
    def flags(self) -> list[str]:
        """Warnings recorded with the row ("throttled", "partial_delegate"); [] for none."""
        st = self.measurement.extra.get("state") if self.measurement else None
        return list(st.get("flags", [])) if isinstance(st, dict) else []


def _parse_spec(rec: dict[str, str], cls: type = LayerSpec) -> Any:
    kinds = {f.name: f.type for f in fields(cls)}
    vals: dict[str, Any] = {}
    for c in item_columns(cls):
        if c in ADDED_SPEC_FIELDS and not rec.get(c):
            continue  # a LUT from before the field: its default
        raw = rec[c]
        t = kinds[c]
        if t in ("int", int):
            vals[c] = int(raw)
        elif t in ("float", float):
            vals[c] = float(raw)
        elif t in ("bool", bool):
            if raw not in ("True", "False"):
                raise ValueError(f"{c}={raw!r} is not True/False")
            vals[c] = raw == "True"
        else:
            vals[c] = raw
    return cls(**vals)


MAX_MS = 1e6  # no layer takes 16 minutes: a larger number is damage, not a measurement
MIN_MS = 1e-6  # nor under a nanosecond (the timers' resolution is a microsecond)


def _ms(rec: dict[str, str], col: str) -> float:
    """A timing column, checked: finite, >= 0 (the median >= MIN_MS) and below MAX_MS."""
    if col == "ci_rel":  # a relative width, not a time
        v = float(rec[col])
        if not (math.isfinite(v) and v >= 0):
            raise ValueError(f"ci_rel must be a finite number >= 0, got {rec[col]!r}")
        return v
    return checked_ms(rec[col], col, MIN_MS if col == "median_ms" else 0.0)


def checked_ms(raw: str, col: str, low: float = MIN_MS) -> float:
    """A time in ms read from a file: finite and in [low, MAX_MS), else ValueError naming
    the column (every latency latbench reads passes here)."""
    v = float(raw)
    if not (math.isfinite(v) and low <= v < MAX_MS):
        raise ValueError(f"{col} must be a finite time in [{low:g}, {MAX_MS:g}) ms, got {raw!r}")
    return v


@dataclass
class LUT:
    """Rows by key, plus the metadata they were measured under."""

    item_type: ClassVar[type] = LayerSpec  # what a row describes (its columns)
    columns: ClassVar[list[str]] = COLUMNS
    optional: ClassVar[set[str]] = OPTIONAL_COLUMNS
    unit: ClassVar[str] = "layer"

    meta: dict[str, Any]
    rows: dict[str, Row] = field(default_factory=dict)
    path: Path | None = None
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False, compare=False)

    def ok(self) -> dict[str, Row]:
        return {k: r for k, r in self.rows.items() if r.status == "ok"}

    def failed(self) -> dict[str, Row]:
        return {k: r for k, r in self.rows.items() if r.status != "ok"}

    def median(self, key: str) -> float:
        return self.rows[key].measurement.median_ms  # type: ignore[union-attr]

    def settings_identity(self) -> str:
        """Hash of what the rows were measured under: device fingerprint, converter,
        precision and the measurement protocol (a LUT timed with other warm-up or run
        counts is another LUT)."""
        ident = {k: self.meta.get(k) for k in (*records.IDENTITY_KEYS, "protocol")}
        return hashlib.sha256(json.dumps(ident, sort_keys=True).encode()).hexdigest()[:16]

    def content(self, keys: Iterable[str] | None = None) -> dict[str, str]:
        """key -> "median_ms" (or "failed") for the given keys (default: every row).

        What a predictor is bound to: a re-profiled or edited row changes its
        entry. Values are the CSV's own 6-digit text, so a load/save round trip
        does not change them.
        """
        out = {}
        for k in sorted(self.rows if keys is None else keys):
            r = self.rows.get(k)
            if r is None:
                out[k] = "missing"
            elif r.status != "ok" or r.measurement is None:
                out[k] = "failed"
            else:
                out[k] = f"{r.measurement.median_ms:.6g}"
        return out

    def content_hash(self, keys: Iterable[str] | None = None) -> str:
        """sha256 of content(keys) (16 hex digits)."""
        return content_hash(self.content(keys))

    def check_compatible(self, meta: dict[str, Any], what: str = "this device") -> None:
        records.check_compatible(self.meta, meta, self.path or "LUT", what)

    # ---- files -----------------------------------------------------------

    @classmethod
    def create(cls, path: Path, meta: dict[str, Any]) -> "LUT":
        """A new, empty LUT file: header plus column names, written atomically."""
        records.create(path, meta, cls.columns)
        return cls(meta=dict(meta), path=Path(path))

    @classmethod
    def load(cls, path: Path) -> "LUT":
        path = Path(path)
        meta, recs = records.read(path, cls.columns, cls.optional)
        lut = cls(meta=meta, path=path)
        first_ok: dict[str, int] = {}
        for n, rec in enumerate(recs):
            try:
                spec = _parse_spec(rec, cls.item_type)
                m = None
                if rec["status"] not in ("ok", "failed"):
                    raise ValueError(f"status must be ok or failed, got {rec['status']!r}")
                if rec["status"] == "ok":
                    extra: dict[str, Any] = {"stat": rec["stat"] or "median"}
                    if rec["min_ms"]:
                        extra["min_ms"] = _ms(rec, "min_ms")
                    if rec["device_state"]:
                        extra["state"] = parse_json(rec["device_state"], "device_state")
                    m = Measurement(
                        **{c: _ms(rec, c) for c in STAT_COLUMNS if c != "runs"},
                        runs=int(rec["runs"]),
                        extra=extra,
                    )
                    if m.runs < 1:
                        raise ValueError(f"runs must be >= 1, got {m.runs}")
            except (ValueError, TypeError, KeyError, InputError) as exc:
                raise InputError(f"{path}: row {n + 1} is malformed: {exc}") from None
            if meta.get("precision") and spec.precision != meta["precision"]:
                raise InputError(
                    f"{path}: row {n + 1} holds a layer of precision {spec.precision}, but the "
                    f"LUT is {meta['precision']} (rows of one precision per file)"
                )
            if spec.key != rec["key"]:
                raise InputError(
                    f"{path}: row {n + 1} key {rec['key']!r} does not match its "
                    f"fields ({spec.key!r})"
                )
            if rec["status"] == "ok":  # a failed row may be measured again later; ok rows once
                if spec.key in first_ok:
                    raise InputError(
                        f"{path}: rows {first_ok[spec.key] + 1} and {n + 1} both measure "
                        f"{spec.key} (two writers?); keep the one you trust and remove the other"
                    )
                first_ok[spec.key] = n
            elif spec.key in first_ok:
                continue  # a failed retry never hides a measured row
            lut.rows[spec.key] = Row(spec, rec["status"], m, rec["error"], rec["measured_at"])
        return lut

    @classmethod
    def open(cls, path: Path, meta: dict[str, Any]) -> "LUT":
        """Resume an existing LUT (after checking its settings) or start a new one."""
        records.open_for_append(path, meta, cls.columns, cls.optional)
        return cls.load(path)

    def append(self, row: Row) -> None:
        """Add one row to memory and to disk, durably, before the next is measured."""
        if not row.measured_at:
            row.measured_at = datetime.now(timezone.utc).isoformat(timespec="seconds")
        with self._lock:  # several phones of a --split run share one LUT
            self.rows[row.spec.key] = row
            if self.path is not None:
                records.append(self.path, row.to_csv())

    def save(self, path: Path | None = None) -> None:
        """Rewrite the whole file atomically (used after merging or dropping rows)."""
        records.create(
            Path(path or self.path),
            self.meta,
            self.columns,
            [r.to_csv() for r in self.rows.values()],
        )

    def to_frame(self):
        """The table as a pandas DataFrame (ok and failed rows)."""
        import pandas as pd

        recs = []
        for r in self.rows.values():
            d = {"key": r.spec.key, **r.spec.to_dict(), "status": r.status, "error": r.error}
            d.update(
                {c: getattr(r.measurement, c) if r.measurement else None for c in STAT_COLUMNS}
            )
            if hasattr(r.spec, "macs"):
                d["macs"] = r.spec.macs()
            recs.append(d)
        return pd.DataFrame.from_records(recs)


def content_hash(content: dict[str, str]) -> str:
    """The hash of LUT.content(): equal iff every listed row has the same value."""
    return hashlib.sha256(json.dumps(content, sort_keys=True).encode()).hexdigest()[:16]


def load_luts(paths: Iterable[Path]) -> LUT:
    """Merge several compatible LUT files (e.g. space + zoo) into one table."""
    merged: LUT | None = None
    first: Path | None = None
    for p in paths:
        lut = LUT.load(p)
        if merged is None:
            merged, first = LUT(meta=dict(lut.meta), path=None), Path(p)
        else:  # neither file is "the wrong one": name both
            lut.check_compatible(merged.meta, what=str(first))
        for k, r in lut.rows.items():
            if r.status == "ok" or k not in merged.rows:
                merged.rows[k] = r
    if merged is None:
        raise InputError("no LUT files given")
    return merged


def find_luts(lut_dir: Path, device: str, precision: str) -> list[Path]:
    """The device's layer LUT files: `DEVICE_*_PRECISION.csv` whose header names DEVICE as its
    device. A glob alone would also take a device named `DEVICE_x`'s files. Operator LUTs
    (header `table: "ops"`) are not layer LUTs and are left out."""
    from latbench.fileio import SAFE_NAME

    out: list[Path] = []
    if not SAFE_NAME.fullmatch(device) or not SAFE_NAME.fullmatch(precision):
        return out  # a profile given by its path (`--device dev.toml`) names no file here
    for p in sorted(Path(lut_dir).glob(f"{device}_*_{precision}.csv")):
        try:
            data = read_bytes(p, limit=1 << 20, head=True)  # never blocks on a FIFO
        except InputError:
            out.append(p)  # its loader names the problem
            continue
        head = data.decode(errors="replace").split("\n")[:64]
        meta, _ = records.parse_header(head)
        fp = meta.get("fingerprint")
        if meta.get("table") == "ops":
            continue
        if not isinstance(fp, dict) or fp.get("device", device) == device:
            out.append(p)  # a file without a fingerprint is kept: its loader names the problem
    return out
