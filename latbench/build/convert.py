"""Keras -> .tflite (fp32 or full-integer int8), batched and cached by content hash.

Layers are converted many at a time: one tf.function takes N inputs and
returns N outputs, the converter runs once, and `tflite_split` cuts the result
into one file per layer. Files are cached under a hash of the layer key, the
TensorFlow version and this module's recipe version, so a re-run converts
nothing and a TensorFlow upgrade converts everything again.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterator, Sequence

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import numpy as np
import tensorflow as tf
from absl import logging as absl_logging

from latbench.build.builder import arch_model, layer_model
from latbench.build.cache import arch_path, spec_path
from latbench.build.tflite_split import split_model
from latbench.fileio import write_atomic
from latbench.nets.arch import Arch, LayerSpec

REPRESENTATIVE_SAMPLES = 4
absl_logging.set_verbosity(absl_logging.ERROR)  # the converter's deprecation chatter


def _convert(
    fn: "tf.types.experimental.ConcreteFunction",
    precision: str,
    input_shapes: Sequence[tuple[int, ...]],
) -> bytes:
    conv = tf.lite.TFLiteConverter.from_concrete_functions([fn], None)
    if precision == "int8":
        rng = np.random.default_rng(0)

        def representative():
            for _ in range(REPRESENTATIVE_SAMPLES):
                yield [rng.standard_normal(s).astype(np.float32) for s in input_shapes]

        conv.optimizations = [tf.lite.Optimize.DEFAULT]
        conv.representative_dataset = representative
        conv.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
        conv.inference_input_type = tf.int8
        conv.inference_output_type = tf.int8
    elif precision != "fp32":
        raise ValueError(f"unknown precision {precision!r}")
    from latbench.quiet import filtered_stderr

    with filtered_stderr():  # the int8 calibrator's settings line and a UserWarning
        return conv.convert()


def convert_model(model: "tf.keras.Model", precision: str = "fp32") -> bytes:
    """One Keras model (batch 1) -> .tflite bytes."""
    shape = tuple(model.input.shape)
    fn = tf.function(lambda x: model(x, training=False), autograph=False).get_concrete_function(
        tf.TensorSpec(shape, tf.float32, name="x")
    )
    return _convert(fn, precision, [shape])


def convert_layers_batch(specs: Sequence[LayerSpec]) -> list[bytes]:
    """Many layers in one conversion, split back into one model per layer."""
    precision = specs[0].precision
    if any(s.precision != precision for s in specs):
        raise ValueError("a batch must share one precision")
    models = [layer_model(s, name=f"m{i}") for i, s in enumerate(specs)]
    shapes = [(1, s.in_hw, s.in_hw, s.cin) for s in specs]

    def run(*xs):
        return tuple(m(x, training=False) for m, x in zip(models, xs))

    fn = tf.function(run, autograph=False).get_concrete_function(
        *[tf.TensorSpec(sh, tf.float32, name=f"x{i}") for i, sh in enumerate(shapes)]
    )
    buf = _convert(fn, precision, shapes)
    return split_model(buf)


@dataclass(frozen=True)
class Converted:
    spec: LayerSpec
    path: Path | None
    error: str | None = None
    cached: bool = False


def convert_layers(
    specs: Sequence[LayerSpec], batch_size: int = 48, on_batch: Callable[[int], None] | None = None
) -> Iterator[Converted]:
    """Yield a .tflite path (or an error) per spec, converting what is not cached.

    A batch that fails to convert is retried one layer at a time, so one bad
    layer is recorded as failed and the rest go on.
    """
    todo = []
    for s in specs:
        p = spec_path(s)
        if p.exists():
            yield Converted(s, p, cached=True)
        else:
            todo.append(s)
    for i in range(0, len(todo), batch_size):
        batch = todo[i : i + batch_size]
        try:
            blobs = convert_layers_batch(batch)
        except Exception:  # noqa: BLE001 - the converter raises many kinds; find the culprit(s) one by one
            blobs = None
        for j, s in enumerate(batch):
            try:
                data = blobs[j] if blobs is not None else convert_model(layer_model(s), s.precision)
                p = spec_path(s)
                write_atomic(p, data)
                yield Converted(s, p)
            except Exception as exc:  # noqa: BLE001 - recorded as this layer's failure, the rest go on
                yield Converted(s, None, error=f"{type(exc).__name__}: {str(exc)[:300]}")
        if on_batch:
            on_batch(len(batch))


def convert_arch(arch: Arch, precision: str = "fp32") -> Path:
    """The whole network as .tflite, cached by the arch's content hash."""
    p = arch_path(arch, precision)
    if not p.exists():
        write_atomic(p, convert_model(arch_model(arch, precision), precision))
    return p


def convert_to_cache(
    specs: Sequence[LayerSpec], batch_size: int = 48
) -> list[tuple[str, str | None, str | None]]:
    """Worker entry point: (key, path or None, error or None) per spec."""
    return [
        (c.spec.key, str(c.path) if c.path else None, c.error)
        for c in convert_layers(specs, batch_size)
    ]
