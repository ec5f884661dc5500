"""Proxy accuracy: train each sampled network briefly on a small dataset.

The proxy network is the searched network with the same per-block choices at
the dataset's resolution, class count and channels, and a proxy width
multiplier (applied to the head too, for every network alike), so that
MobileNetV2 and a sampled network get exactly the same recipe. Training is
one traced step per network with a fused Adam kernel: tracing dominates the
cost on a small CPU, so the step is kept as lean as possible. Results are
cached as JSON keyed by the proxy network's digest, the recipe and the
dataset, so no network is ever trained twice.
"""

from __future__ import annotations

import hashlib
import json
import os
import time
from contextlib import contextmanager
from dataclasses import asdict, dataclass, replace
from pathlib import Path

import numpy as np

from ..arch import Arch
from ..errors import InputError
from .data import Dataset


TRAINER_VERSION = 2  # bump when training or evaluation changes: old cache entries then miss


@dataclass(frozen=True)
class ProxyRecipe:
    """How every network is trained for the search (same for baselines)."""

    resolution: int = 28
    width: float = 0.35
    train_images: int = 3000
    val_images: int = 2000
    epochs: int = 2
    batch: int = 64
    lr: float = 3e-3
    bn_momentum: float = 0.9  # few steps: BN statistics must settle fast
    seed: int = 0

    def key(self) -> str:
        return json.dumps(asdict(self), sort_keys=True)


def proxy_arch(arch: Arch, recipe: ProxyRecipe, classes: int, channels: int) -> Arch:
    """The network as it is trained: same blocks, proxy input, width and head.

    For a search-space network this equals decoding its tokens through
    `space.with_input(recipe.resolution, classes, channels)` at the proxy width.
    """
    return replace(arch, resolution=recipe.resolution, classes=classes, channels=channels,
                   width=arch.width * recipe.width, head=replace(arch.head, scale=True),
                   dropout=0.0)


@dataclass(frozen=True)
class AccuracyResult:
    accuracy: float
    train_s: float
    params: int
    cached: bool = False


def default_cache_dir() -> Path:
    root = os.environ.get("LATBENCH_CACHE") or Path.home() / ".cache" / "latbench"
    return Path(root) / "accuracy"


@contextmanager
def _lean_graphs():
    """Skip Grappler while tracing train steps (saves seconds per network), then restore."""
    import tensorflow as tf

    old = tf.config.optimizer.get_experimental_options()
    tf.config.optimizer.set_experimental_options({"disable_meta_optimizer": True})
    try:
        yield
    finally:
        tf.config.optimizer.set_experimental_options(
            {"disable_meta_optimizer": bool(old.get("disable_meta_optimizer", False))})


class ProxyEvaluator:
    """Trains proxy networks on one dataset with one recipe; caches by digest."""

    def __init__(self, dataset: Dataset, recipe: ProxyRecipe = ProxyRecipe(),
                 cache_dir: Path | None = None):
        self.recipe = recipe
        self.dataset_name = dataset.name
        self.classes = dataset.classes
        self.channels = dataset.shape[2]
        self.cache_dir = Path(cache_dir) if cache_dir else default_cache_dir()
        self.trained = 0  # networks actually trained by this evaluator (not cached)
        need = recipe.train_images + recipe.val_images
        if len(dataset.x_train) < need:
            if len(dataset.x_train) < 2 * self.classes:
                raise InputError(f"dataset {dataset.name} has only {len(dataset.x_train)} training "
                                 f"images; the proxy needs at least a few per class", "--dataset")
        n_val = min(recipe.val_images, max(1, len(dataset.x_train) // 5))
        order = np.random.default_rng(recipe.seed).permutation(len(dataset.x_train))
        val, train = order[:n_val], order[n_val:][:recipe.train_images]
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

    def cache_key(self, arch: Arch) -> str:
        p = proxy_arch(arch, self.recipe, self.classes, self.channels)
        text = (f"{p.digest()}|{self.recipe.key()}|{self.dataset_name}|{len(self.x_train)}"
                f"|trainer-{TRAINER_VERSION}")
        return hashlib.sha256(text.encode()).hexdigest()[:20]

    def cached(self, arch: Arch) -> AccuracyResult | None:
        path = self.cache_dir / f"{self.cache_key(arch)}.json"
        if not path.exists():
            return None
        try:
            d = json.loads(path.read_text())
            return AccuracyResult(float(d["accuracy"]), float(d["train_s"]), int(d["params"]), True)
        except (OSError, ValueError, KeyError):
            return None  # a torn cache file: train again

    def evaluate(self, arch: Arch) -> AccuracyResult:
        """Held-out accuracy of the proxy-trained network (cached)."""
        hit = self.cached(arch)
        if hit is not None:
            return hit
        t0 = time.monotonic()
        acc, params = self._train(proxy_arch(arch, self.recipe, self.classes, self.channels))
        res = AccuracyResult(acc, time.monotonic() - t0, params)
        self.cache_dir.mkdir(parents=True, exist_ok=True)
        path = self.cache_dir / f"{self.cache_key(arch)}.json"
        tmp = path.with_suffix(".tmp")
        tmp.write_text(json.dumps({**asdict(res), "arch": arch.name, "recipe": asdict(self.recipe),
                                   "dataset": self.dataset_name}))
        os.replace(tmp, path)
        self.trained += 1
        return res

    def _train(self, arch: Arch) -> tuple[float, int]:
        import keras
        import tensorflow as tf

        from ..build import apply_layer

        rc = self.recipe
        keras.backend.clear_session()
        keras.utils.set_random_seed(rc.seed)
        x_in = keras.Input((arch.resolution, arch.resolution, arch.channels))
        x = x_in
        for i, spec in enumerate(arch.layers()):
            x = apply_layer(x, spec, f"l{i:02d}_{spec.op}")
        model = keras.Model(x_in, keras.layers.Flatten()(x))
        for layer in model.layers:
            if isinstance(layer, keras.layers.BatchNormalization):
                layer.momentum = rc.bn_momentum
        tvars = [v.value for v in model.trainable_variables]
        slots = [(tf.Variable(tf.zeros_like(v)), tf.Variable(tf.zeros_like(v))) for v in tvars]
        it = tf.Variable(0.0)

        def step(xb, yb):
            with tf.GradientTape() as tape:
                logits = model(xb, training=True)
                loss = tf.reduce_mean(
                    tf.nn.sparse_softmax_cross_entropy_with_logits(yb, logits))
            grads = tape.gradient(loss, tvars)
            it.assign_add(1.0)
            b1p, b2p = tf.pow(0.9, it), tf.pow(0.999, it)
            for v, (m, s), g in zip(tvars, slots, grads):
                tf.raw_ops.ResourceApplyAdam(var=v.handle, m=m.handle, v=s.handle, beta1_power=b1p,
                                             beta2_power=b2p, lr=rc.lr, beta1=0.9, beta2=0.999,
                                             epsilon=1e-7, grad=g)
            return loss

        rng = np.random.default_rng(rc.seed)
        n = len(self.x_train)
        bs = min(rc.batch, n)
        with _lean_graphs():
            train_step = tf.function(step, autograph=False)
            for _ in range(rc.epochs):
                order = rng.permutation(n)
                for i in range(0, n - bs + 1, bs):
                    idx = order[i:i + bs]
                    loss = train_step(tf.constant(self.x_train[idx]),
                                      tf.constant(self.y_train[idx].astype(np.int32)))
            if not np.isfinite(float(loss)):
                return 0.0, model.count_params()  # diverged: as bad as chance, never NaN
            correct = 0
            for i in range(0, len(self.x_val), 500):
                # batch statistics, not the moving averages: after ~100 steps those are
                # still settling and would score every network near chance
                logits = model(self.x_val[i:i + 500], training=True)
                correct += int(np.sum(np.argmax(np.asarray(logits), 1) == self.y_val[i:i + 500]))
        params = model.count_params()
        keras.backend.clear_session()
        return correct / len(self.x_val), params
