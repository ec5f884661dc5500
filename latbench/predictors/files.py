"""Predictor files: JSON, named per device, space and precision, bound to their data.

A file holds the fitted predictors (plain numbers, so loading one cannot run
code) and its provenance: the LUT it was fitted against (the device that LUT
was measured on, which for a few-shot predictor is the prior device; its
settings hash, protocol included; and the value of every row it held), and the
whole-network measurements it was calibrated on (file name and sha256).
Loading refuses a file whose LUT settings or rows changed since, naming what
changed; rows added to the LUT later (new layers) are fine.
"""

from __future__ import annotations

import hashlib
import json
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from latbench._version import __version__
from latbench.errors import InputError
from latbench.fileio import load_json, read_bytes, write_atomic
from latbench.predictors.base import Predictor
from latbench.predictors.linear import LinearPredictor, LutSumPredictor, RatioPredictor
from latbench.predictors.scaled import ScaledLutPredictor
from latbench.predictors.stagewise import StagewisePredictor
from latbench.profiling.lut import LUT, content_hash

FORMAT = "latbench-predictor/2"

# name -> class: what a file may contain (the "kind" field of each entry)
PREDICTORS: dict[str, type[Predictor]] = {
    "lut": LutSumPredictor,
    "linear": LinearPredictor,
    "ratio": RatioPredictor,
    "scaled": ScaledLutPredictor,
    "stagewise": StagewisePredictor,
}
DEFAULT = "scaled"


def predictor_path(lut_dir: Path, device: str, space: str, precision: str) -> Path:
    """`DEVICE_SPACE_PRECISION.predictor.json`, each part checked as every file name part is
    (fileio.safe_name: the alphabet of device profiles, `_` included). Looked up by this
    exact name, never by pattern, and its content is checked to name the same three."""
    from latbench.fileio import safe_name

    for field, v in (("device", device), ("space", space), ("precision", precision)):
        safe_name(v, field)
    return Path(lut_dir) / f"{device}_{space}_{precision}.predictor.json"


def file_sha256(path: Path) -> str:
    return hashlib.sha256(read_bytes(path)).hexdigest()


def lut_provenance(lut: LUT, device: str) -> dict[str, Any]:
    rows = lut.content()
    return {
        "device": device,
        "precision": lut.meta.get("precision"),
        "settings": lut.settings_identity(),
        "content_sha": content_hash(rows),
        "rows": rows,
    }


def save_predictors(
    path: Path,
    *,
    device: str,
    space: str,
    precision: str,
    lut: LUT,
    lut_device: str,
    fitted: dict[str, Predictor],
    calibration: dict[str, Any],
    default: str = DEFAULT,
    selection: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """Write the file atomically; returns the document.

    `selection` records why `default` is the default (calibrate's judgement). A file whose
    content would not change is left as it is, its `created` date included, so re-running
    calibrate on unchanged data gives the same bytes (and the same hash a search records)."""
    if default not in fitted:
        raise InputError(f"default predictor {default!r} was not fitted")
    doc = {
        "format": FORMAT,
        "device": device,
        "space": space,
        "precision": precision,
        "default": default,
        "selection": selection or {"method": "none", "default": default, "reason": "as asked"},
        "calibration": calibration,
        "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "latbench": __version__,
        "predictors": {k: p.to_dict() for k, p in fitted.items()},
        "lut": lut_provenance(lut, lut_device),
    }
    doc = json.loads(json.dumps(doc))  # as it will read back (tuples become lists)
    try:
        old = load_json(path)
    except InputError:
        old = None
    if isinstance(old, dict) and {**old, "created": doc["created"]} == doc:
        return old
    write_atomic(path, (json.dumps(doc, indent=1) + "\n").encode())
    return doc


def write_doc(path: Path, doc: dict[str, Any]) -> None:
    """Rewrite a predictor file read with `read_doc` (validate records its verdict)."""
    write_atomic(path, (json.dumps(doc, indent=1) + "\n").encode())


def read_doc(path: Path) -> dict[str, Any]:
    """The file's JSON, checked for shape (not yet against a LUT)."""
    doc = load_json(path, "predictor")
    if not isinstance(doc, dict) or doc.get("format") != FORMAT:
        raise InputError(
            f"{path} is not a {FORMAT} predictor file (an older one? run latbench calibrate again)"
        )
    for k in ("device", "space", "precision", "default", "predictors", "lut", "calibration"):
        if k not in doc:
            raise InputError(f"{path}: missing field {k!r}")
    lut = doc["lut"]
    if not isinstance(lut, dict) or not isinstance(lut.get("rows"), dict) or "device" not in lut:
        raise InputError(f"{path}: field 'lut' must hold device, settings, content_sha and rows")
    for k in ("device", "space", "precision", "default"):
        if not isinstance(doc[k], str):
            raise InputError(f"{path}: field {k!r} must be a string, got {doc[k]!r}")
    preds = doc["predictors"]
    if not isinstance(preds, dict) or not all(isinstance(v, dict) for v in preds.values()):
        raise InputError(
            f"{path}: field 'predictors' must map names to objects, got {str(preds)[:80]}"
        )
    if not isinstance(doc["calibration"], dict):
        raise InputError(f"{path}: field 'calibration' must be an object")
    if not all(isinstance(v, str) for v in lut["rows"].values()):
        raise InputError(f"{path}: field 'lut.rows' must map LUT keys to strings")
    return doc


def check_against(doc: dict[str, Any], lut: LUT, path: Path, fix: str = "") -> None:
    """Refuse a predictor whose LUT changed since it was fitted, saying how (`fix`: the
    command that refits it, when not calibrate's layer form)."""
    rec = doc["lut"]
    fix = fix or (
        f"refit it: latbench calibrate --device {doc['device']} --space {doc['space']} "
        f"--precision {doc['precision']} (measured networks are reused)"
    )
    if rec.get("settings") != lut.settings_identity():
        raise InputError(
            f"{path} was fitted against a LUT measured under other settings "
            f"(device fingerprint, runtime, converter, precision or protocol "
            f"differ from the {rec['device']} LUT now in place); {fix}"
        )
    stored: dict[str, str] = rec["rows"]
    if content_hash(stored) != rec.get("content_sha"):
        raise InputError(
            f"{path}: its LUT rows do not match its own content_sha (edited by hand?); {fix}"
        )
    now = lut.content(stored)
    changed = [k for k, v in stored.items() if now[k] != v]
    if changed:
        shown = "; ".join(f"{k}: {stored[k]} -> {now[k]}" for k in changed[:3])
        raise InputError(
            f"{path} is stale: {len(changed)} of the {len(stored)} {rec['device']} "
            f"LUT rows it was fitted on changed since ({shown}"
            f"{'; ...' if len(changed) > 3 else ''}); {fix}"
        )


def method_in_use(
    doc: dict[str, Any], fitted: dict[str, Predictor], path: Path, method: str | None
) -> tuple[str, str]:
    """(name, why) of the predictor to use: `method` when given (it must be in the file),
    else the file's default, for the reason validate's verdict or calibrate's selection gave."""
    if method is not None:
        if method not in fitted:
            raise InputError(
                f"{path} holds no predictor {method!r}; it holds: {', '.join(fitted)}",
                "--predictor-method",
            )
        return method, "asked for (--predictor-method)"
    verdict, selection = doc.get("verdict") or {}, doc.get("selection") or {}
    return doc["default"], (
        verdict.get("reason") or selection.get("reason") or "the file's default"
    )


def load_predictors(doc: dict[str, Any], path: Path) -> dict[str, Predictor]:
    out: dict[str, Predictor] = {}
    for name, d in doc["predictors"].items():
        kind = d.get("kind") if isinstance(d, dict) else None
        if kind not in PREDICTORS:
            raise InputError(
                f"{path}: predictor {name!r} has unknown kind {kind!r}; known: "
                f"{', '.join(PREDICTORS)}"
            )
        try:
            out[name] = PREDICTORS[kind].from_dict(d)
        except InputError as exc:
            raise InputError(f"{path}: predictor {name!r}: {exc}") from None
    if doc["default"] not in out:
        raise InputError(f"{path}: default predictor {doc['default']!r} is not in the file")
    return out
