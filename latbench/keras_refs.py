"""Keras' own reference networks, converted and timed end to end: an independent check.

The zoo networks are latbench's own re-implementations (arch.json -> build.py).
`tf.keras.applications` builds the published networks with its own code
(weights=None: latency does not depend on the values), so timing them on the
device and comparing with latbench's prediction for the zoo equivalent checks
the whole chain - LUT, builder, predictor - against code latbench did not
write. Differences that are not latbench's: Keras' EfficientNet-B0 keeps its
input Rescaling/Normalization layers; MobileNetV3 is built with
include_preprocessing=False. Timings go to a resumable table
(`DEVICE_keras_PRECISION.refs.csv`), so a re-run measures nothing again.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Callable

from . import records
from .cache import cache_dir, content_hash
from .devices import Device
from .fileio import write_atomic

COLUMNS = ["name", "zoo", "status", "median_ms", "p10_ms", "p90_ms", "runs", "error",
           "measured_at"]


@dataclass(frozen=True)
class KerasRef:
    zoo: str  # the zoo network latbench predicts in its place
    build: Callable  # tf -> keras.Model


KERAS_REFS: dict[str, KerasRef] = {
    "MobileNetV2": KerasRef("mobilenet_v2_x1", lambda tf: tf.keras.applications.MobileNetV2(
        weights=None)),
    "MobileNetV3Large": KerasRef("mobilenet_v3_large", lambda tf: tf.keras.applications
                                 .MobileNetV3Large(weights=None, include_preprocessing=False)),
    "MobileNetV3Small": KerasRef("mobilenet_v3_small", lambda tf: tf.keras.applications
                                 .MobileNetV3Small(weights=None, include_preprocessing=False)),
    "EfficientNetB0": KerasRef("efficientnet_b0", lambda tf: tf.keras.applications.EfficientNetB0(
        weights=None)),
}


def refs_path(lut_dir: Path, device: str, precision: str) -> Path:
    return Path(lut_dir) / f"{device}_keras_{precision}.refs.csv"


def _convert(name: str, precision: str) -> Path:
    p = cache_dir() / "keras" / f"{content_hash('keras-app:' + name + precision)}.tflite"
    if not p.exists():
        import tensorflow as tf

        from .convert import convert_model

        write_atomic(p, convert_model(KERAS_REFS[name].build(tf), precision))
    return p


def measure_refs(device: Device, path: Path, precision: str, meta: dict) -> dict[str, dict]:
    """Convert and time every reference not yet in `path`; name -> row."""
    from .devices import ModelRunError

    records.open_for_append(path, meta, COLUMNS)
    _, rows = records.read(path, COLUMNS)
    done = {r["name"]: r for r in rows}
    for name, ref in KERAS_REFS.items():
        if name in done:
            continue
        try:
            m = device.measure(_convert(name, precision))
            vals = ["ok", f"{m.median_ms:.6g}", f"{m.p10_ms:.6g}", f"{m.p90_ms:.6g}", str(m.runs), ""]
        except ModelRunError as exc:
            vals = ["failed", "", "", "", "", str(exc)[:300]]
        row = [name, ref.zoo, *vals, datetime.now(timezone.utc).isoformat(timespec="seconds")]
        records.append(path, row)
        done[name] = dict(zip(COLUMNS, row))
    return done
