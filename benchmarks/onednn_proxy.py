"""Proxy-training time with TensorFlow's oneDNN kernels on or off (why quiet.py keeps them on).

Run twice per setting, interleaved, e.g.:
    for i in 1 2; do for v in 0 1; do TF_ENABLE_ONEDNN_OPTS=$v python benchmarks/onednn_proxy.py; done; done
Prints the setting and the training seconds of MobileNetV2 x1.0 under a small proxy recipe
(1000 images, 1 epoch), first (cold: graph tracing) and second (warm) evaluation, each with an
empty accuracy cache so both really train.
"""

import os
import tempfile

from latbench.nets import zoo
from latbench.proxy.accuracy import ProxyEvaluator
from latbench.proxy.data import load_dataset
from latbench.proxy.recipe import ProxyRecipe

ds = load_dataset("fashion_mnist", None, 28, 0)
recipe = ProxyRecipe(train_images=1000, epochs=1)
arch = zoo.get("mobilenet_v2_x1")
times = [
    ProxyEvaluator(ds, recipe, cache_dir=tempfile.mkdtemp()).evaluate(arch).train_s
    for _ in range(2)
]
print(os.environ.get("TF_ENABLE_ONEDNN_OPTS", "default"), " ".join(f"{t:.2f}" for t in times))
