"""The search controller: an LSTM policy over the space's tokens, trained with PPO.

At each step the LSTM reads the previous token (a start token first) and a
per-position softmax picks the next one, as in MnasNet. Training is PPO on a
batch of sampled networks: advantage = reward - moving-average baseline, the
clipped ratio objective on whole-sequence log-probabilities, plus an entropy
bonus that keeps the policy exploring. Weights are initialised and tokens
drawn from one seeded numpy Generator, so a seed fixes every sampled token.
State is saved as .npz (allow_pickle=False) plus JSON: loading cannot run code.
"""

from __future__ import annotations

import io
import json
import os
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Sequence

import numpy as np

from latbench.fileio import load_json, read_npz, write_atomic
from latbench.search.controllers import Controller

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
import tensorflow as tf


@dataclass(frozen=True)
class PPOConfig:
    hidden: int = 64
    embed: int = 32
    lr: float = 3e-3
    clip: float = 0.2
    entropy: float = 1e-3  # coefficient of the entropy bonus (per sequence, summed over tokens)
    epochs: int = 4  # gradient steps per batch
    baseline_decay: float = 0.95
    max_grad_norm: float = 5.0


class PPOController(Controller):
    kind = "ppo"

    def __init__(self, vocab_sizes: Sequence[int], seed: int = 0, config: PPOConfig = PPOConfig()):
        self.vocab_sizes = [int(n) for n in vocab_sizes]
        self.cfg = config
        self.rng = np.random.default_rng(seed)
        self.offsets = np.concatenate([[0], np.cumsum(self.vocab_sizes)]).astype(int)
        total, H, E = int(self.offsets[-1]), config.hidden, config.embed

        def glorot(shape: tuple[int, int], scale: float = 1.0) -> np.ndarray:
            lim = scale * np.sqrt(6.0 / sum(shape))
            return self.rng.uniform(-lim, lim, shape).astype(np.float32)

        b = np.zeros(4 * H, np.float32)
        b[H : 2 * H] = 1.0  # forget-gate bias: remember by default
        init = {
            "embed": glorot((total + 1, E)),  # last row: the start token
            "lstm_w": glorot((E + H, 4 * H)),
            "lstm_b": b,
            "out_w": glorot((H, total), 0.1),  # small: start close to uniform
            "out_b": np.zeros(total, np.float32),
        }
        self.weights = {k: tf.Variable(v, name=k) for k, v in init.items()}
        # one graph per controller: the 42-step unrolled LSTM is too slow op by op
        self._ppo_step = tf.function(self._ppo_step_impl, autograph=False, reduce_retracing=True)
        self.adam_m = {k: tf.Variable(np.zeros_like(v)) for k, v in init.items()}
        self.adam_v = {k: tf.Variable(np.zeros_like(v)) for k, v in init.items()}
        self.step = 0
        self.baseline: float | None = None
        self.updates = 0

    # -- the policy ---------------------------------------------------------
    def _cell(self, x, h, c):
        z = tf.matmul(tf.concat([x, h], 1), self.weights["lstm_w"]) + self.weights["lstm_b"]
        i, f, g, o = tf.split(z, 4, axis=1)
        c = tf.sigmoid(f) * c + tf.sigmoid(i) * tf.tanh(g)
        return tf.sigmoid(o) * tf.tanh(c), c

    def _logits(self, h, t: int):
        lo, hi = int(self.offsets[t]), int(self.offsets[t + 1])
        return tf.matmul(h, self.weights["out_w"][:, lo:hi]) + self.weights["out_b"][lo:hi]

    def _start(self, n: int):
        H = self.cfg.hidden
        x = tf.gather(self.weights["embed"], tf.fill(tf.stack([n]), int(self.offsets[-1])))
        return x, tf.zeros(tf.stack([n, H])), tf.zeros(tf.stack([n, H]))

    def sample(self, n: int) -> tuple[list[list[int]], np.ndarray]:
        """n token sequences and their log-probabilities under the current policy."""
        x, h, c = self._start(n)
        toks = np.zeros((n, len(self.vocab_sizes)), int)
        logp = np.zeros(n)
        for t in range(len(self.vocab_sizes)):
            h, c = self._cell(x, h, c)
            lp = tf.nn.log_softmax(self._logits(h, t)).numpy().astype(np.float64)
            p = np.exp(lp)
            p /= p.sum(1, keepdims=True)
            for j in range(n):
                toks[j, t] = int(self.rng.choice(len(p[j]), p=p[j]))
            logp += lp[np.arange(n), toks[:, t]]
            x = tf.gather(self.weights["embed"], toks[:, t] + int(self.offsets[t]))
        return toks.tolist(), logp

    def _forward(self, tokens: np.ndarray):
        """Teacher-forced (log-prob, entropy) of each sequence, as tensors."""
        n = tokens.shape[0]
        if n is None:  # a retrace relaxed the batch size (a partial last batch)
            n = tf.shape(tokens)[0]
        x, h, c = self._start(n)
        logp = tf.zeros([n])
        ent = tf.zeros([n])
        for t in range(len(self.vocab_sizes)):
            h, c = self._cell(x, h, c)
            lp = tf.nn.log_softmax(self._logits(h, t))
            a = tokens[:, t]
            if not isinstance(a, np.ndarray):
                a = tf.cast(a, tf.int32)
            logp += tf.gather(lp, a, batch_dims=1)
            ent += -tf.reduce_sum(tf.exp(lp) * lp, 1)
            x = tf.gather(self.weights["embed"], a + int(self.offsets[t]))
        return logp, ent

    def log_prob(self, tokens: Sequence[Sequence[int]]) -> np.ndarray:
        return self._forward(np.asarray(tokens, int))[0].numpy().astype(np.float64)

    # -- PPO ------------------------------------------------------------------
    def update(
        self, tokens: Sequence[Sequence[int]], old_logp: np.ndarray, rewards: Sequence[float]
    ) -> dict[str, float]:
        """One PPO update on a batch; returns the loss terms of its last epoch for logging
        (loss, pg, entropy, ratio_max, clip_frac: the share of clipped ratios)."""
        cfg = self.cfg
        r = np.asarray(rewards, np.float64)
        if self.baseline is None:
            self.baseline = float(r.mean())
        adv = tf.constant(r - self.baseline, tf.float32)
        old = tf.constant(np.asarray(old_logp), tf.float32)
        toks = tf.constant(np.asarray(tokens, np.int32))
        stats: dict[str, float] = {}
        for _ in range(cfg.epochs):
            self.step += 1
            out = self._ppo_step(toks, old, adv, tf.constant(self._lr(), tf.float32))
            stats = {
                k: float(v)
                for k, v in zip(("loss", "pg", "entropy", "ratio_max", "clip_frac"), out)
            }
        stats["baseline"] = self.baseline
        stats["advantage_mean"] = float(np.mean(r - self.baseline))
        self.baseline = cfg.baseline_decay * self.baseline + (1 - cfg.baseline_decay) * float(
            r.mean()
        )
        self.updates += 1
        return stats

    _B1, _B2, _EPS = 0.9, 0.999, 1e-8

    def _lr(self) -> float:
        """Adam's bias-corrected step size at self.step (kept outside the graph)."""
        return self.cfg.lr * np.sqrt(1 - self._B2**self.step) / (1 - self._B1**self.step)

    def _ppo_step_impl(self, toks, old, adv, lr):
        cfg = self.cfg
        names = list(self.weights)
        with tf.GradientTape() as tape:
            logp, ent = self._forward(toks)
            ratio = tf.exp(logp - old)
            clipped = tf.clip_by_value(ratio, 1 - cfg.clip, 1 + cfg.clip)
            pg = -tf.reduce_mean(tf.minimum(ratio * adv, clipped * adv))
            loss = pg - cfg.entropy * tf.reduce_mean(ent)
        grads = tape.gradient(loss, [self.weights[k] for k in names])
        grads, _ = tf.clip_by_global_norm(grads, cfg.max_grad_norm)
        for k, g in zip(names, grads):
            g = tf.convert_to_tensor(g)
            m, v = self.adam_m[k], self.adam_v[k]
            m.assign(self._B1 * m + (1 - self._B1) * g)
            v.assign(self._B2 * v + (1 - self._B2) * tf.square(g))
            self.weights[k].assign_sub(lr * m / (tf.sqrt(v) + self._EPS))
        clip_frac = tf.reduce_mean(tf.cast(tf.abs(ratio - 1) > cfg.clip, tf.float32))
        return loss, pg, tf.reduce_mean(ent), tf.reduce_max(ratio), clip_frac

    # -- state ----------------------------------------------------------------
    def save(self, path: str | Path) -> None:
        """`path`.npz (weights, Adam moments) + `path`.json (step, baseline, RNG)."""
        path = Path(path)
        arrays = {f"w_{k}": v.numpy() for k, v in self.weights.items()}
        arrays.update({f"m_{k}": v.numpy() for k, v in self.adam_m.items()})
        arrays.update({f"v_{k}": v.numpy() for k, v in self.adam_v.items()})
        buf = io.BytesIO()
        np.savez(buf, **arrays)
        write_atomic(path.with_suffix(".npz"), buf.getvalue())
        state = {
            "kind": self.kind,
            "vocab_sizes": self.vocab_sizes,
            "config": asdict(self.cfg),
            "step": self.step,
            "baseline": self.baseline,
            "updates": self.updates,
            "rng": self.rng.bit_generator.state,
        }
        write_atomic(path.with_suffix(".json"), json.dumps(state).encode())

    def restore(self, path: str | Path) -> None:
        path = Path(path)
        state = load_json(path.with_suffix(".json"), "controller checkpoint", allow_nan=True)
        if state["vocab_sizes"] != self.vocab_sizes:
            raise ValueError("checkpoint is for another search space")
        z = read_npz(path.with_suffix(".npz"), "controller checkpoint")
        for k in self.weights:
            self.weights[k].assign(z[f"w_{k}"])
            self.adam_m[k].assign(z[f"m_{k}"])
            self.adam_v[k].assign(z[f"v_{k}"])
        self.step, self.baseline, self.updates = state["step"], state["baseline"], state["updates"]
        self.rng.bit_generator.state = state["rng"]
