"""Training a network on the proxy task, from scratch or from a parent's weights.

The one training loop of latbench: the search's proxy accuracy
(`search.accuracy.ProxyEvaluator`), NetAdapt's fine-tuning and compound
scaling's candidates all go through `build`, `fit`, `recalibrate_bn` and
`accuracy` here. NetAdapt and compound scaling train proxy networks whose weights must outlive
one call: a NetAdapt proposal starts from the current network's weights,
truncated to its smaller shapes (`inherit`), is fine-tuned briefly, and the
chosen one carries its weights into the next step. Weights travel as plain
numpy arrays keyed by layer name and are saved with `np.savez` and read back
with `allow_pickle=False`, so a checkpoint cannot run code.

The network is built by `build.apply_layer` with the same layer names as every
other latbench model (`lNN_op`), so two networks that differ only in channel
counts share every name.
"""

from __future__ import annotations

from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from latbench.errors import InputError
from latbench.nets.arch import Arch

Weights = dict[str, list[np.ndarray]]  # layer name -> that layer's variables, in Keras order
BN_IMAGES = 2000  # training images used to re-estimate batch-norm statistics
EVAL_BATCH = 500


@dataclass(frozen=True)
class TrainSettings:
    """One training run: epochs over the proxy training images, Adam."""

    epochs: float = 1.0  # may be fractional: 0.5 = half the images once
    batch: int = 64
    lr: float = 3e-3
    bn_momentum: float = 0.9
    seed: int = 0


def build(arch: Arch):
    """The Keras network of `arch` (logits out), named like every latbench model."""
    import keras

    from latbench.build.builder import apply_layer

    x_in = keras.Input((arch.resolution, arch.resolution, arch.channels))
    x = x_in
    for i, spec in enumerate(arch.layers()):
        x = apply_layer(x, spec, f"l{i:02d}_{spec.op}")
    return keras.Model(x_in, keras.layers.Flatten()(x), name=arch.name)


def get_weights(model) -> Weights:
    return {
        layer.name: [np.asarray(w) for w in layer.get_weights()]
        for layer in model.layers
        if layer.get_weights()
    }


def inherit(model, parent: Weights) -> int:
    """Copy `parent` into `model`, each array cut to the model's shape (NetAdapt's truncation).

    Returns how many layers received weights. A layer the parent lacks keeps
    its fresh initialisation; a parent array smaller than the model's along
    some axis is an error (inheritance only shrinks).
    """
    n = 0
    for layer in model.layers:
        src = parent.get(layer.name)
        if src is None or not layer.get_weights():
            continue
        dst = layer.get_weights()
        if len(src) != len(dst):
            raise InputError(
                f"layer {layer.name}: parent has {len(src)} weight arrays, the network {len(dst)}"
            )
        new = []
        for s, d in zip(src, dst):
            if s.ndim != d.ndim or any(a < b for a, b in zip(s.shape, d.shape)):
                raise InputError(f"layer {layer.name}: cannot truncate {s.shape} to {d.shape}")
            new.append(s[tuple(slice(0, b) for b in d.shape)])
        layer.set_weights(new)
        n += 1
    return n


@contextmanager
def lean_graphs():
    """Skip Grappler while tracing train steps (saves seconds per network on a small CPU)."""
    import tensorflow as tf

    old = tf.config.optimizer.get_experimental_options()
    tf.config.optimizer.set_experimental_options({"disable_meta_optimizer": True})
    try:
        yield
    finally:
        tf.config.optimizer.set_experimental_options(
            {"disable_meta_optimizer": bool(old.get("disable_meta_optimizer", False))}
        )


def fit(model, x: np.ndarray, y: np.ndarray, settings: TrainSettings) -> float:
    """Train in place with Adam for `settings.epochs`; returns the last batch's loss.

    One traced step per network with a fused Adam kernel: on a small CPU,
    tracing dominates a short training, so the step is kept lean.
    """
    import keras
    import tensorflow as tf

    for layer in model.layers:
        if isinstance(layer, keras.layers.BatchNormalization):
            layer.momentum = settings.bn_momentum
    tvars = [v.value for v in model.trainable_variables]
    slots = [(tf.Variable(tf.zeros_like(v)), tf.Variable(tf.zeros_like(v))) for v in tvars]
    it = tf.Variable(0.0)

    def step(xb, yb):
        with tf.GradientTape() as tape:
            logits = model(xb, training=True)
            loss = tf.reduce_mean(tf.nn.sparse_softmax_cross_entropy_with_logits(yb, logits))
        grads = tape.gradient(loss, tvars)
        it.assign_add(1.0)
        b1p, b2p = tf.pow(0.9, it), tf.pow(0.999, it)
        for v, (m, s), g in zip(tvars, slots, grads):
            tf.raw_ops.ResourceApplyAdam(
                var=v.handle,
                m=m.handle,
                v=s.handle,
                beta1_power=b1p,
                beta2_power=b2p,
                lr=settings.lr,
                beta1=0.9,
                beta2=0.999,
                epsilon=1e-7,
                grad=g,
            )
        return loss

    rng = np.random.default_rng(settings.seed)
    n = len(x)
    bs = min(settings.batch, n)
    per_epoch = n // bs  # every epoch: a fresh permutation, full batches only
    full, frac = int(settings.epochs), settings.epochs - int(settings.epochs)
    schedule = [per_epoch] * full + ([max(1, round(frac * per_epoch))] if frac > 1e-9 else [])
    loss = float("nan")
    with lean_graphs():
        train_step = tf.function(step, autograph=False)
        for batches in schedule:
            order = rng.permutation(n)
            for i in range(0, batches * bs, bs):
                idx = order[i : i + bs]
                loss = train_step(tf.constant(x[idx]), tf.constant(y[idx].astype(np.int32)))
    return float(loss)


def recalibrate_bn(model, x: np.ndarray, n: int = BN_IMAGES) -> None:
    """Re-estimate every BatchNorm's moving statistics with the trained weights.

    A cumulative mean over the first `n` training images (momentum k/(k+1) at
    the k-th batch): after a short training the moving averages still trail the
    weights, and inference-mode accuracy would measure their lag, not the network.
    """
    import keras

    bns = [la for la in model.layers if isinstance(la, keras.layers.BatchNormalization)]
    for k, i in enumerate(range(0, min(len(x), n), EVAL_BATCH)):
        for bn in bns:
            bn.momentum = k / (k + 1)
        model(x[i : i + EVAL_BATCH], training=True)


def accuracy(model, x: np.ndarray, y: np.ndarray) -> float:
    """Top-1 accuracy in inference mode (BN moving statistics)."""
    correct = 0
    for i in range(0, len(x), EVAL_BATCH):
        logits = model(x[i : i + EVAL_BATCH], training=False)
        correct += int(np.sum(np.argmax(np.asarray(logits), 1) == y[i : i + EVAL_BATCH]))
    return correct / max(1, len(x))


def save_weights(path: Path, weights: Weights) -> None:
    """One .npz: arrays named `layer/index` (no pickle)."""
    import io

    from latbench.fileio import write_atomic

    buf = io.BytesIO()
    np.savez(buf, **{f"{name}/{i}": w for name, ws in weights.items() for i, w in enumerate(ws)})
    write_atomic(Path(path), buf.getvalue())


def load_weights(path: Path) -> Weights:
    out: dict[str, dict[int, np.ndarray]] = {}
    from latbench.fileio import read_npz

    arrays = read_npz(Path(path), "weights")
    try:
        for k, a in arrays.items():
            name, _, i = k.rpartition("/")
            out.setdefault(name, {})[int(i)] = a
    except ValueError as exc:
        raise InputError(f"cannot read weights {path}: {exc}") from None
    return {name: [d[i] for i in sorted(d)] for name, d in out.items()}
