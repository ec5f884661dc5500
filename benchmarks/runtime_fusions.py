"""Which operators the runtime folds into a neighbour's kernel: blocks timed whole against
their operator sums (the evidence for build/tflite_ops.RUNTIME_FUSIONS).

    .venv/bin/python benchmarks/runtime_fusions.py int8 none,sig,swish,gate,gate0 [REPEATS]

Each variant is 4 inverted-residual blocks at 56x56 (1x1 conv to 144 channels, depthwise 3x3,
1x1 conv back to 24, residual add) with, after the expansion conv:
  none   nothing;                      relu  a ReLU (the converter fuses it into the conv);
  sig    a sigmoid (LOGISTIC);          swish x * sigmoid(x) (LOGISTIC + MUL);
  gate   y * sigmoid(conv(x)): the same LOGISTIC + MUL, but the MUL's other input is not the
         LOGISTIC's input (no swish);   gate0 y * relu(conv(x)) (a MUL without LOGISTIC);
  se     swish and a squeeze-excite (MEAN, two 1x1 convs, sigmoid, broadcast MUL);
  avgpool / maxpool  a 3x3 stride-1 pool after the depthwise conv (NASNet's);
  prerelu a standalone RELU before the expansion conv, on the block input that the residual
         add also reads (NASNet's pattern: the converter cannot fuse it);
  fused / fused_swish  EfficientNetV2's fused-MBConv instead: 3x3 conv to 144 channels
         [swish], 1x1 conv back, residual add.
The operators are measured alone into a fresh operator LUT (OUT/lut_PRECISION), then every
variant is timed whole REPEATS times (default 3; each the fastest of 5 measurements,
variants interleaved). Printed per variant: whole ms, the plain operator sum (ms) without
and with the fusion rules, their ratios, and the per-operator sums. A rule holds where the
variant with the pattern times like the one without the folded operator (swish like sig)
while its plain sum counts the operator. Run it alone: it times.
"""

from __future__ import annotations

import shutil
import sys
from pathlib import Path


def block(variant: str, hw: int = 56, c: int = 144):
    import keras
    from keras import layers as L

    x = inp = keras.Input((hw, hw, 24), batch_size=1)
    for _ in range(4):
        if variant.startswith("fused"):  # EfficientNetV2's fused-MBConv: 3x3 conv, swish, 1x1
            y = L.Conv2D(c, 3, padding="same")(x)
            y = L.Activation("swish")(y) if variant == "fused_swish" else y
            x = L.Add()([x, L.Conv2D(24, 1)(y)])
            continue
        # prerelu: NASNet's ReLU on a tensor that is also read raw (no conv to fuse it into)
        y = L.Conv2D(c, 1)(L.Activation("relu")(x) if variant == "prerelu" else x)
        if variant in ("swish", "se"):
            y = L.Activation("swish")(y)
        elif variant == "relu":
            y = L.Activation("relu")(y)
        elif variant == "sig":
            y = L.Activation("sigmoid")(y)
        y = L.DepthwiseConv2D(3, padding="same")(y)
        if variant == "avgpool":  # NASNet's 3x3 average pool, stride 1
            y = L.AveragePooling2D(3, 1, padding="same")(y)
        elif variant == "maxpool":
            y = L.MaxPooling2D(3, 1, padding="same")(y)
        if variant == "gate":
            y = L.Multiply()([y, L.Activation("sigmoid")(L.Conv2D(c, 1)(x))])
        elif variant == "gate0":
            y = L.Multiply()([y, L.Activation("relu")(L.Conv2D(c, 1)(x))])
        elif variant == "se":
            s = L.GlobalAveragePooling2D(keepdims=True)(y)
            s = L.Conv2D(8, 1, activation="swish")(s)
            y = L.Multiply()([y, L.Conv2D(c, 1, activation="sigmoid")(s)])
        x = L.Add()([x, L.Conv2D(24, 1)(y)])
    return keras.Model(inp, x, name=f"blk_{variant}")


def main() -> None:
    from latbench.quiet import quiet_tensorflow

    quiet_tensorflow()
    from latbench.build.models import keras_tflite
    from latbench.devices import load_profile, open_device
    from latbench.predictors.opsum import op_sum
    from latbench.profiling.oplut import decomposed_models, load_op_lut, profile_ops

    prec, variants = sys.argv[1], sys.argv[2].split(",")
    repeats = int(sys.argv[3]) if len(sys.argv) > 3 else 3
    out = Path("runs/runtime-fusions")
    prepared = []
    for v in variants:
        m = block(v)
        prepared.append((m.name, v, Path(keras_tflite(m, prec)["path"]), {}))
    models = decomposed_models(prepared, prec)
    lut_dir = out / f"lut_{prec}"
    shutil.rmtree(lut_dir, ignore_errors=True)
    with open_device(load_profile("host")) as dev:
        profile_ops([dev], models, prec, lut_dir, progress=False)
        lut = load_op_lut(lut_dir, "host", prec)
        for rep in range(repeats):
            for m in models:
                whole = min(dev.measure(m.tflite).median_ms for _ in range(5))
                p = op_sum(m, lut, "host")
                plain = sum(lut.median(s.key) for s, _ in p.rows)
                agg: dict[str, float] = {}
                for s, _ in p.rows:
                    agg[s.op] = agg.get(s.op, 0.0) + lut.median(s.key)
                print(
                    f"{prec} pass {rep + 1} {m.name:10s} whole {whole:.3f} ms  plain sum "
                    f"{plain:.3f} (x{whole / plain:.2f})  with fusions {p.total_ms:.3f} "
                    f"(x{whole / p.total_ms:.2f})  fused {len(p.fused)}  "
                    + ", ".join(f"{k} {v:.3f}" for k, v in agg.items()),
                    flush=True,
                )


if __name__ == "__main__":
    main()
