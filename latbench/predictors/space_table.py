"""A search space's additive terms as feature tables, for vectorised prediction.

Because features are sums over layers, a network of a space is a sum of terms
the space names (`SearchSpace.additive_terms`: e.g. MnasNet's stem, each
block's first layer given the previous width, its repeated layer times the
repeats, the head given the last width; FBNet's one term per position). Each
term's variants are tabulated once per LUT; predicting a batch of token
sequences is then a few numpy gathers. A layer the device failed to run is NaN
in the tables, so every network holding it predicts NaN ("cannot run here")
instead of crashing.
"""

from __future__ import annotations

import numpy as np

from latbench.nets.spaces import SearchSpace
from latbench.predictors.features import FEATURES, LayerTable, MissingKeys, layer_features


class SpaceTable:
    """Feature tables of one space's additive terms on one LUT (see the module docstring)."""

    def __init__(self, space: SearchSpace, table: LayerTable):
        self.space = space
        self.terms = space.additive_terms(table.precision)
        specs = {s.key: s for t in self.terms for v in t.variants for s in v}
        missing = sorted(k for k in specs if k not in table.lut.rows)
        if missing:
            raise MissingKeys(missing, table.device, table.precision)
        failed = {k for k in specs if table.lut.rows[k].status != "ok"}
        self.failed_keys = sorted(failed)
        nan = np.full(len(FEATURES), np.nan)

        def row(s):
            return nan if s.key in failed else layer_features(s, table.layer_ms(s))

        zero = np.zeros(len(FEATURES))
        self.tables = [
            np.stack([sum((row(s) for s in v), zero) for v in t.variants]) for t in self.terms
        ]

    def features(self, tokens: np.ndarray) -> np.ndarray:
        """(N, F) features of N token sequences; rows of unrunnable networks are NaN."""
        t = np.asarray(tokens, dtype=np.int64).reshape(len(tokens), self.space.num_tokens)
        f = np.zeros((len(t), len(FEATURES)))
        for term, tab in zip(self.terms, self.tables):
            rows = tab[term.index(t)]
            if term.count is None:
                f += rows
            else:
                n = term.count(t)[:, None]
                # a failed layer (NaN) only counts where the term is used (count > 0)
                f += np.where(n > 0, n * rows, 0.0)
        return f
