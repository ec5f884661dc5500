"""A search space's per-block feature vectors, for vectorised prediction.

Because features are sums over layers, a network of the MnasNet-style space is
stem + head[last width] + sum over blocks of (first layer[block, previous
width, own choice] + (layers - 1) * repeated layer[block, own choice]). The
tables are built once per LUT; predicting a batch of token sequences is then a
few numpy gathers. A layer the device failed to run is NaN in the tables, so
every network holding it predicts NaN ("cannot run here") instead of crashing.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np

from ..space import DEPTH_DELTAS, TOKENS_PER_BLOCK, SearchSpace
from .features import FEATURES, LayerTable, MissingKeys


class SpaceTable:
    """Per-block feature tables of one space on one LUT (see the module docstring)."""

    def __init__(self, space: SearchSpace, table: LayerTable):
        self.space = space
        nb = space.num_blocks
        sizes = space.vocab_sizes[:TOKENS_PER_BLOCK]
        self.block_sizes = sizes
        n_own = int(np.prod(sizes[:5]))  # op, kernel, se, skip, filters
        nf = len(FEATURES)
        nwidth = sizes[4]
        self.first = np.zeros((nb, nwidth, n_own, nf))
        self.repeat = np.zeros((nb, n_own, nf))
        self.head = np.zeros((nwidth, nf))
        self.stem = np.zeros(nf)
        deepest = DEPTH_DELTAS.index(max(DEPTH_DELTAS))
        archs_idx = []
        for b in range(nb):
            for prev in range(nwidth if b > 0 else 1):
                for own in range(n_own):
                    choice = list(np.unravel_index(own, sizes[:5]))
                    t = [1] * space.num_tokens
                    if b > 0:
                        t[(b - 1) * TOKENS_PER_BLOCK + 4] = prev
                    t[b * TOKENS_PER_BLOCK:(b + 1) * TOKENS_PER_BLOCK] = [*map(int, choice), deepest]
                    archs_idx.append((b, prev, own, space.decode(t)))
        missing = table.missing([a for *_, a in archs_idx])
        if missing:
            raise MissingKeys(missing, table.device, table.precision)
        self.failed_keys = table.failed([a for *_, a in archs_idx])
        for b, prev, own, a in archs_idx:
            rows = table.layer_breakdown(a, failed_as_nan=True)
            start = 1 + sum(blk.repeats for blk in a.blocks[:b])
            self.first[b, prev, own] = rows[start]
            self.repeat[b, own] = rows[start + 1]
            if b == 0:
                self.stem = rows[0]
            if b == nb - 1:
                self.head[choice_width(own, sizes)] = rows[start + a.blocks[b].repeats:].sum(axis=0)
        self.base_layers = np.array([blk[1] for blk in space.skeleton])

    def features(self, tokens: np.ndarray) -> np.ndarray:
        """(N, F) features of N token sequences; rows of unrunnable networks are NaN."""
        t = np.asarray(tokens, dtype=np.int64).reshape(len(tokens), self.space.num_blocks,
                                                       TOKENS_PER_BLOCK)
        s = self.block_sizes
        own = np.ravel_multi_index(tuple(t[:, :, i] for i in range(5)), s[:5])  # (N, B)
        width = t[:, :, 4]
        prev = np.concatenate([np.zeros((len(t), 1), np.int64), width[:, :-1]], axis=1)
        layers = np.maximum(1, self.base_layers[None, :] + np.asarray(DEPTH_DELTAS)[t[:, :, 5]])
        b_idx = np.arange(self.space.num_blocks)[None, :]
        f = self.first[b_idx, prev, own].sum(axis=1)
        extra = (layers - 1)[:, :, None]
        # a failed repeated layer (NaN) only counts when the block repeats it
        f += np.where(extra > 0, extra * self.repeat[b_idx, own], 0.0).sum(axis=1)
        return f + self.stem + self.head[width[:, -1]]


def choice_width(own: int, sizes: Sequence[int]) -> int:
    return int(np.unravel_index(own, sizes[:5])[4])
