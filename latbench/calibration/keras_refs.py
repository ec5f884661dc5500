"""Keras' own reference networks, converted and timed end to end: an independent check.

The zoo networks are latbench's own re-implementations (arch.json -> build.py).
`tf.keras.applications` builds the published networks with its own code
(weights=None: latency does not depend on the values), so timing them on the
device and comparing with latbench's prediction for the zoo equivalent checks
the whole chain - LUT, builder, predictor - against code latbench did not
write. Differences that are not latbench's: Keras' EfficientNet-B0 keeps its
input Rescaling/Normalization layers; MobileNetV3 is built with
include_preprocessing=False; all at a fixed 224x224x3 input. Timings go to a resumable table
(`DEVICE_keras_PRECISION.refs.csv`), so a re-run measures nothing again; each
row also holds latbench's own zoo twin timed right after it, so builder
differences show without the machine's drift between runs.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Callable

from latbench import records
from latbench.build.cache import cache_dir, content_hash
from latbench.devices import Device
from latbench.fileio import write_atomic

SHAPE = (224, 224, 3)  # fixed: MobileNetV3's default (None, None, 3) does not run under XNNPACK
COLUMNS = [
    "name",
    "zoo",
    "status",
    "median_ms",
    "p10_ms",
    "p90_ms",
    "runs",
    "zoo_median_ms",
    "error",
    "measured_at",
]


@dataclass(frozen=True)
class KerasRef:
    zoo: str  # the zoo network latbench predicts in its place
    build: Callable  # tf -> keras.Model


KERAS_REFS: dict[str, KerasRef] = {
    "MobileNetV2": KerasRef(
        "mobilenet_v2_x1",
        lambda tf: tf.keras.applications.MobileNetV2(input_shape=SHAPE, weights=None),
    ),
    "MobileNetV3Large": KerasRef(
        "mobilenet_v3_large",
        lambda tf: tf.keras.applications.MobileNetV3Large(
            input_shape=SHAPE, weights=None, include_preprocessing=False
        ),
    ),
    "MobileNetV3Small": KerasRef(
        "mobilenet_v3_small",
        lambda tf: tf.keras.applications.MobileNetV3Small(
            input_shape=SHAPE, weights=None, include_preprocessing=False
        ),
    ),
    "EfficientNetB0": KerasRef(
        "efficientnet_b0",
        lambda tf: tf.keras.applications.EfficientNetB0(input_shape=SHAPE, weights=None),
    ),
}


def refs_path(lut_dir: Path, device: str, precision: str) -> Path:
    return Path(lut_dir) / f"{device}_keras_{precision}.refs.csv"


def _key(name: str, precision: str) -> str:
    return f"keras-app:{name}:{SHAPE}:batch1:{precision}"


def _convert(name: str, precision: str) -> Path:
    p = cache_dir() / "keras" / f"{content_hash(_key(name, precision))}.tflite"
    if not p.exists():
        import tensorflow as tf

        from latbench.build.convert import convert_model

        net = KERAS_REFS[name].build(tf)
        x = tf.keras.Input(SHAPE, batch_size=1)  # batch 1, like every latbench model
        write_atomic(p, convert_model(tf.keras.Model(x, net(x)), precision))
    return p


def measure_refs(device: Device, path: Path, precision: str, meta: dict) -> dict[str, dict]:
    """Convert and time every reference not yet measured in `path` (failed ones again); name -> row."""
    from latbench.devices import ModelRunError
    from latbench.nets import zoo
    from latbench.profiling.networks import measure_arch

    records.open_for_append(path, meta, COLUMNS)
    _, rows = records.read(path, COLUMNS)
    done = {r["name"]: r for r in rows}
    for name, ref in KERAS_REFS.items():
        if name in done and done[name]["status"] == "ok":
            continue
        try:
            model = _convert(name, precision)
        except Exception as exc:  # noqa: BLE001 - a converter failure is recorded, the others go on
            model, err = None, f"convert: {type(exc).__name__}: {str(exc)[:300]}"
        try:
            if model is None:
                raise ModelRunError(err)
            m = device.measure(model)
            # latbench's own twin, timed right after: builder differences without drift
            twin = measure_arch(device, zoo.get(ref.zoo), precision)
            vals = [
                "ok",
                f"{m.median_ms:.6g}",
                f"{m.p10_ms:.6g}",
                f"{m.p90_ms:.6g}",
                str(m.runs),
                f"{twin.median_ms:.6g}",
                "",
            ]
        except ModelRunError as exc:
            vals = ["failed", "", "", "", "", "", str(exc)[:300]]
        row = [name, ref.zoo, *vals, datetime.now(timezone.utc).isoformat(timespec="seconds")]
        records.append(path, row)
        done[name] = dict(zip(COLUMNS, row))
    return done
