"""Proxy accuracy: train each sampled network briefly on a small dataset.

The proxy network is the searched network with the same per-block choices,
transformed the same way for every network (MobileNetV2 included):
  - input at the dataset's resolution, class count and channels;
  - proxy strides: a stride-2 stage (stem or block) that would shrink the map
    below `min_map` x `min_map` runs at stride 1 instead. At 28x28 the stem and
    the first two stride-2 blocks keep their stride (28 -> 14 -> 7 -> 4) and the
    last stages run at 4x4, so a 5x5 kernel sees more than a 3x3 one in every
    block; the skeleton's 32x downsampling would leave 1x1 maps there;
  - proxy width: every layer's real filter count times `width`, rounded to a
    multiple of 4 (not 8), so filter choices that differ in the real network
    still differ in the proxy (at x0.35 with multiples of 8 they collapsed).
Training is one traced step per network with a fused Adam kernel (tracing
dominates the cost on a small CPU). After training, batch-norm statistics are
re-estimated over training images and the held-out split is scored in
inference mode, so an image's score never depends on its batch.

The trainer is an evaluator like a user's (`ProxyTrainer`, evaluator.py's
interface), so the default path exercises that interface; `ProxyEvaluator` is it
behind the cache. An accuracy source is used in three steps (`AccuracySource`):
`lookup` in the cache, `train` (the expensive part, which may run in another
process or on another machine), `record` in the cache. The cache is JSON keyed by
the proxy network's digest, the recipe (its thread count included), the dataset's
content, and the TensorFlow and Keras versions, so no network is ever trained twice
under the same conditions.
"""

from __future__ import annotations

import hashlib
import math
from dataclasses import replace
from pathlib import Path

import numpy as np

from latbench.errors import InputError
from latbench.nets.arch import Arch, make_divisible
from latbench.proxy.data import Dataset
from latbench.proxy.evaluator import (  # noqa: F401 - the accuracy interface, re-exported
    AccuracyResult,
    AccuracySource,
    CachedEvaluator,
    Network,
    default_cache_dir,
    evaluate,
    use_threads,
)
from latbench.proxy.recipe import ProxyRecipe

TRAINER_VERSION = 3  # bump when training or evaluation changes: old cache entries then miss


def proxy_arch(arch: Arch, recipe: ProxyRecipe, classes: int, channels: int) -> Arch:
    """The network as it is trained: same blocks, proxy input, strides, width and head."""
    hw = recipe.resolution

    def pf(f: int) -> int:  # the real network's filters -> proxy filters
        return make_divisible(f * recipe.width, 4)

    def stride(s: int) -> int:
        nonlocal hw
        if s > 1 and math.ceil(hw / s) < recipe.min_map:
            s = 1
        hw = math.ceil(hw / s)
        return s

    stem = replace(
        arch.stem, filters=pf(arch.filters(arch.stem.filters)), stride=stride(arch.stem.stride)
    )
    blocks, prev = [], stem.filters
    for b in arch.blocks:
        out = pf(arch.filters(b.out_filters))
        blocks.append(replace(b, stride=stride(b.stride), in_filters=prev, out_filters=out))
        prev = out
    h = arch.head
    head = replace(
        h,
        filters=pf(arch.filters(h.filters) if h.scale else h.filters),
        hidden=pf(h.hidden) if h.hidden else 0,
        scale=False,
    )
    return replace(
        arch,
        resolution=recipe.resolution,
        width=1.0,
        classes=classes,
        channels=channels,
        stem=stem,
        blocks=tuple(blocks),
        head=head,
        dropout=0.0,
    )


def _framework_versions() -> str:
    import keras
    import tensorflow as tf

    return f"tf-{tf.__version__}|keras-{keras.__version__}"


class ProxyTrainer:
    """latbench's proxy training as an `Evaluator`: the network at the proxy's input, strides
    and width (`network`), trained from scratch on one dataset with one recipe (`__call__`).

    Its version names everything the result depends on besides the network: the recipe
    (thread count included), the dataset's content, TensorFlow's and Keras' versions and
    TRAINER_VERSION."""

    name = "latbench.proxy"

    def __init__(self, dataset: Dataset, recipe: ProxyRecipe = ProxyRecipe()):
        self.recipe = recipe
        self.seed = recipe.seed
        self.dataset_name = dataset.name
        self.classes = dataset.classes
        self.channels = dataset.shape[2]
        need = recipe.train_images + recipe.val_images
        if len(dataset.x_train) < need:
            if len(dataset.x_train) < 2 * self.classes:
                raise InputError(
                    f"dataset {dataset.name} has only {len(dataset.x_train)} training "
                    f"images; the proxy needs at least a few per class",
                    "--dataset",
                )
        n_val = min(recipe.val_images, max(1, len(dataset.x_train) // 5))
        order = np.random.default_rng(recipe.seed).permutation(len(dataset.x_train))
        val, train = order[:n_val], order[n_val:][: recipe.train_images]
        # the dataset's identity is its content: the exact images and labels the proxy sees
        h = hashlib.sha256()
        for a in (
            dataset.x_train[train],
            dataset.y_train[train],
            dataset.x_train[val],
            dataset.y_train[val],
        ):
            h.update(str((a.shape, a.dtype.str)).encode())
            h.update(np.ascontiguousarray(a).tobytes())
        self.data_digest = h.hexdigest()[:20]
        self.frameworks = _framework_versions()
        self.version = (
            f"{recipe.key()}|{self.dataset_name}|data-{self.data_digest}|{self.frameworks}"
            f"|trainer-{TRAINER_VERSION}"
        )
        # held out from the training split, so the official test split stays untouched
        self.x_train, self.y_train = self._prep(dataset.x_train[train]), dataset.y_train[train]
        self.x_val, self.y_val = self._prep(dataset.x_train[val]), dataset.y_train[val]

    def _prep(self, x: np.ndarray) -> np.ndarray:
        x = x.astype(np.float32) / 255.0
        r = self.recipe.resolution
        if x.shape[1:3] != (r, r):
            import tensorflow as tf

            x = tf.image.resize(x, (r, r)).numpy()
        return x

    def network(self, arch: Arch) -> Arch:
        return proxy_arch(arch, self.recipe, self.classes, self.channels)

    def __call__(self, net: Network) -> float:
        """Train `net.model` for the recipe's epochs times `net.fidelity`; held-out accuracy."""
        from latbench.proxy import train

        rc = self.recipe
        model = net.model
        loss = train.fit(
            model,
            self.x_train,
            self.y_train,
            train.TrainSettings(
                epochs=rc.epochs * net.fidelity,
                batch=rc.batch,
                lr=rc.lr,
                bn_momentum=rc.bn_momentum,
                seed=net.seed,  # the recipe's (compare --retrain-seeds: each seed's)
            ),
        )
        if not np.isfinite(loss):
            return 0.0  # diverged: as bad as chance, never NaN
        # batch-norm statistics re-estimated with the trained weights, then inference mode:
        # after ~100 steps the running averages are still far from settled
        train.recalibrate_bn(model, self.x_train)
        return train.accuracy(model, self.x_val, self.y_val)


class ProxyEvaluator(CachedEvaluator):
    """The proxy trainer behind the accuracy cache: the search's default accuracy source."""

    def __init__(
        self, dataset: Dataset, recipe: ProxyRecipe = ProxyRecipe(), cache_dir: Path | None = None
    ):
        use_threads(recipe.threads)  # before the first TensorFlow op (a resize, a build)
        trainer = ProxyTrainer(dataset, recipe)
        super().__init__(trainer, cache_dir, threads=recipe.threads)
        self.recipe = recipe
        for k in ("dataset_name", "classes", "channels", "data_digest", "frameworks"):
            setattr(self, k, getattr(trainer, k))
        self.x_train, self.y_train = trainer.x_train, trainer.y_train
        self.x_val, self.y_val = trainer.x_val, trainer.y_val

    def proxy(self, arch: Arch) -> Arch:
        return self.evaluator.network(arch)
