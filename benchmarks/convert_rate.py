"""Naive vs batched conversion rate, measured in the same run on the same layers.

naive:   tf.lite.TFLiteConverter.from_keras_model, one model per call
batched: latbench.build.convert.convert_layers_batch (N layers per converter call, then split)

usage: python benchmarks/convert_rate.py [N_LAYERS] [BATCH]
"""

import random
import sys
import time

import tensorflow as tf

from latbench.build.builder import layer_model
from latbench.build.convert import convert_layers_batch
from latbench.nets.spaces import get_space

n = int(sys.argv[1]) if len(sys.argv) > 1 else 48
batch = int(sys.argv[2]) if len(sys.argv) > 2 else 48
specs = get_space("mnasnet").enumerate_specs()
random.Random(0).shuffle(specs)
specs = specs[:n]
convert_layers_batch(specs[:2])  # warm up TensorFlow in both paths

t = time.perf_counter()
for s in specs:
    tf.lite.TFLiteConverter.from_keras_model(layer_model(s)).convert()
naive = (time.perf_counter() - t) / n

t = time.perf_counter()
for i in range(0, n, batch):
    convert_layers_batch(specs[i : i + batch])
batched = (time.perf_counter() - t) / n
print(f"layers={n} batch={batch}")
print(f"naive   {naive:.3f} s/layer  ({1 / naive:.2f} layers/s)")
print(f"batched {batched:.3f} s/layer  ({1 / batched:.2f} layers/s)")
print(f"speed-up {naive / batched:.2f}x")
