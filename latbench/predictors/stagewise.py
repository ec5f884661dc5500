"""Per-stage scales shrunk toward one global scale: a few measurements learn where a device differs.

    predicted = sum over kinds k of a_k * (LUT ms of the network's k-layers)
              + sum over size buckets h of d_h * (LUT ms of its layers of input size ~h)
              + b * (number of layers) + c

A device's speed relative to the prior LUT's depends mostly on the stage (feature-map size
and width) and somewhat on the op, so the effective scale of a layer is a_k + d_h: its
kind's scale plus its size bucket's correction (features.HW_BUCKETS, from each layer's
`in_hw`: the stages of any space, nothing space-specific here). b is a per-layer overhead
(kept above the same floor as `scaled`: on the LUT's own device isolated timings
over-count per-layer cost, so b may be slightly negative there), c >= 0 a per-network
overhead (a phone's fixed cost per invocation).

Everything is shrunk toward the global fit of `scaled` (one scale s and a per-layer
overhead b0, predictors/scaled.py: `global_fit`): a_k toward s, d_h and c toward 0, b toward
b0, each penalty on the relative effect of the deviation, fitted on relative error by
non-negative least squares (bounds: a_k >= 0.5 s, d_h >= -0.4 s, so a layer's scale stays
>= 0.1 s). The strengths, one for the kinds and one for the stage terms (d_h, b, c), are
chosen on the k measurements alone: leave-one-out (10-fold beyond 20 networks) over a grid
that includes infinity (terms held at the prior), the stiffest pair within SE_FACTOR
standard errors of the lowest error winning. With fewer than MIN_NETS networks both are
infinite: the prediction is the global fit, which is what `scaled` gives with so few
networks. Predictions keep `scaled`'s guard: their ratio to the LUT sum stays within the
calibration networks' ratios.

The same estimator runs on TFLite operators (`schema=OPS`, features.py): kinds are then
operator families (conv, depthwise, fully connected, pooling, elementwise, memory, other),
the buckets the operator's input feature-map size, b a per-operator overhead; the file
records `features: "ops"`. That is the operator-level predictor (predictors/opmodel.py).
"""

from __future__ import annotations

import math
from typing import Sequence

import numpy as np

from latbench.errors import InputError
from latbench.predictors.base import Predictor
from latbench.predictors.features import LAYERS, Schema
from latbench.predictors.scaled import (
    MAX_COEF,
    CalibrationRange,
    global_fit,
    overhead_floor,
    schema_named,
)

GRID = (1e-4, 1e-3, 1e-2, 1e-1, 1.0, 10.0, math.inf)  # penalty strengths tried (inf: held at prior)
MIN_NETS = 5  # fewer networks: the global fit only
LOO_MAX = 20  # up to this many networks: leave-one-out; more: FOLDS folds
FOLDS = 10
SE_FACTOR = 0.5  # prefer stiffer strengths within this many standard errors of the best
KIND_FLOOR = 0.5  # a_k >= KIND_FLOOR * s
HW_FLOOR = -0.4  # d_h >= HW_FLOOR * s


def columns(schema: Schema = LAYERS) -> tuple[str, ...]:
    """The design's columns: kind LUT ms, bucket LUT ms, the unit count, the network."""
    return (*schema.kind_features, *schema.buckets, "layers", "network")


def _design(X: np.ndarray, schema: Schema = LAYERS) -> np.ndarray:
    D = schema.cols(X, columns(schema)[:-1])
    return np.hstack([D, np.ones((len(D), 1))])


def _groups(schema: Schema = LAYERS) -> np.ndarray:
    """0: kind scales (the kinds' strength), 1: stage terms, per column."""
    return np.array([0] * len(schema.kinds) + [1] * (len(schema.buckets) + 2))


class StagewisePredictor(CalibrationRange, Predictor):
    """Kind scales + size-bucket corrections + overheads, shrunk to the global fit (docstring)."""

    kind = "stagewise"

    def __init__(self, ridge: str | Sequence[float] = "auto", schema: Schema = LAYERS):
        self.schema = schema
        self.ridge = ridge if isinstance(ridge, str) else tuple(float(r) for r in ridge)
        if self.ridge != "auto" and (
            not isinstance(self.ridge, tuple)
            or len(self.ridge) != 2
            or any(not r >= 0 for r in self.ridge)
        ):
            raise InputError(
                "ridge must be 'auto' or two strengths >= 0 (kinds, stages)", "predictor.ridge"
            )

    # -- fitting --------------------------------------------------------------
    @property
    def _sizes(self) -> tuple[int, int]:
        return len(self.schema.kinds), len(self.schema.buckets)

    def _prior(self, X: np.ndarray, y: np.ndarray, lo_b: float) -> np.ndarray:
        s, b = global_fit(X, y, lo_b, schema=self.schema)
        nk, nh = self._sizes
        return np.array([s] * nk + [0.0] * nh + [b, 0.0])

    def _solve(
        self,
        D: np.ndarray,
        y: np.ndarray,
        prior: np.ndarray,
        lam: tuple[float, float],
        lo_b: float,
    ) -> np.ndarray:
        """The penalised relative-error fit; columns of an infinite strength stay at prior."""
        from scipy.optimize import nnls

        s = prior[0]
        NK, NH = self._sizes
        group = _groups(self.schema)
        strength = np.array([lam[g] for g in group])
        free = np.isfinite(strength)
        if not free.any():
            return prior.copy()
        A = D / y[:, None]
        rhs = 1.0 - A[:, ~free] @ prior[~free]
        A = A[:, free]
        # penalty weights: a scale's relative deviation, an overhead's share of a prediction
        w = np.concatenate([np.full(NK + NH, 1.0 / s), [np.mean(D[:, -2] / y), np.mean(1.0 / y)]])[
            free
        ]
        P = np.diag(np.sqrt(strength[free]) * w)
        A = np.vstack([A, P])
        rhs = np.concatenate([rhs, P @ prior[free]])
        lo = np.concatenate([np.full(NK, KIND_FLOOR * s), np.full(NH, HW_FLOOR * s), [lo_b, 0.0]])
        lo = lo[free]
        phi, _ = nnls(A, rhs - A @ lo, maxiter=50 * A.shape[1])
        out = prior.copy()
        out[free] = lo + phi
        return out

    def _choose(self, X: np.ndarray, y: np.ndarray, lo_b: float) -> tuple[float, float]:
        """The strengths with the lowest out-of-sample error (stiffest within SE_FACTOR SE)."""
        n = len(y)
        k = n if n <= LOO_MAX else FOLDS
        fold = np.arange(n) % k
        D = _design(X, self.schema)
        pairs = [(a, b) for a in GRID for b in GRID]
        err = np.empty((len(pairs), n))
        for f in range(k):
            te = fold == f
            tr = ~te
            prior = self._prior(X[tr], y[tr], lo_b)
            for i, lam in enumerate(pairs):
                w = self._solve(D[tr], y[tr], prior, lam, lo_b)
                err[i, te] = np.abs(D[te] @ w - y[te]) / y[te]
        mean = err.mean(axis=1)
        best = int(np.argmin(mean))
        se = float(err[best].std(ddof=1) / np.sqrt(n))

        def stiffness(lam):  # larger = simpler; the grid's order, infinity stiffest
            return sum(GRID.index(v) for v in lam)

        within = [i for i in range(len(pairs)) if mean[i] <= mean[best] + SE_FACTOR * se]
        pick = max(within, key=lambda i: (stiffness(pairs[i]), -mean[i]))
        return pairs[pick]

    def fit(self, X: np.ndarray, y: np.ndarray) -> "StagewisePredictor":
        X, y = np.asarray(X, float), np.asarray(y, float)
        if len(y) == 0 or np.any(~np.isfinite(y)) or np.any(y <= 0):
            raise InputError("calibration latencies must be positive numbers", "measurements")
        lo_b = overhead_floor(X, self.schema)
        if self.ridge != "auto":
            lam = tuple(self.ridge)
        elif len(y) < MIN_NETS:
            lam = (math.inf, math.inf)
        else:
            lam = self._choose(X, y, lo_b)
        D = _design(X, self.schema)
        prior = self._prior(X, y, lo_b)
        self.coef_ = self._solve(D, y, prior, lam, lo_b)
        self.prior_ = prior
        self.ridge_ = [float(v) for v in lam]
        used = np.any(D != 0, axis=0)
        free = np.array([math.isfinite(lam[g]) for g in _groups(self.schema)]) & used
        # + the global fit's s and b0 where no free column takes their place
        self.free_ = (
            int(free.sum()) + int(not math.isfinite(lam[0])) + int(not math.isfinite(lam[1]))
        )
        self.remember_range(X, y)
        self.n_train_ = int(len(y))
        return self

    # -- prediction -----------------------------------------------------------

    def predict(self, X: np.ndarray) -> np.ndarray:
        """The fitted sum, its ratio to the LUT sum kept within the calibration's ratios."""
        self._check()
        return self.guard(_design(X, self.schema) @ self.coef_, X)

    def unit_ms(self, rows: np.ndarray) -> np.ndarray:
        """Each unit's (layer's or operator's) share of a prediction: its own feature row
        through the fitted coefficients, the per-network constant left out."""
        self._check()
        return _design(rows, self.schema)[:, :-1] @ self.coef_[:-1]

    def free_parameters(self) -> int:
        self._check()
        return self.free_

    # -- file -----------------------------------------------------------------
    def to_dict(self) -> dict:
        self._check()
        cols = columns(self.schema)
        return {
            "kind": self.kind,
            **({"features": self.schema.name} if self.schema is not LAYERS else {}),
            "ridge": self.ridge
            if self.ridge == "auto"
            else [v if math.isfinite(v) else "inf" for v in self.ridge],
            "ridge_chosen": [v if math.isfinite(v) else "inf" for v in self.ridge_],
            "coef": dict(zip(cols, map(float, self.coef_))),
            "prior": dict(zip(cols, map(float, self.prior_))),
            "free_parameters": self.free_,
            "ratio_range": self.ratio_range_,
            "n_train": self.n_train_,
            "range": self.range_,
        }

    @classmethod
    def from_dict(cls, d: dict) -> "StagewisePredictor":
        try:
            schema = schema_named(str(d.get("features", "layers")))
            ridge = d["ridge"] if isinstance(d["ridge"], str) else [float(v) for v in d["ridge"]]
            p = cls(ridge, schema)
            cols = columns(schema)
            p.coef_ = np.array([float(d["coef"][c]) for c in cols])
            p.prior_ = np.array([float(d["prior"][c]) for c in cols])
            p.ridge_ = [float(v) for v in d["ridge_chosen"]]
            p.free_ = int(d["free_parameters"])
            lo, hi = (float(v) for v in d["ratio_range"])
            p.ratio_range_ = [lo, hi]
            p.n_train_ = int(d["n_train"])
            p.range_ = {str(k): [float(v[0]), float(v[1])] for k, v in d["range"].items()}
        except (KeyError, TypeError, ValueError, IndexError) as exc:
            raise InputError(f"malformed stagewise predictor: {exc}", "predictor") from None
        if not np.all(np.isfinite(p.coef_)) or np.any(p.coef_[-1] < 0):
            raise InputError(
                "coefficients must be finite, the per-network overhead >= 0", "predictor.coef"
            )
        if np.any(np.abs(p.coef_) > MAX_COEF) or np.any(np.abs(p.prior_) > MAX_COEF):
            raise InputError(f"coefficients must be within +-{MAX_COEF:g}", "predictor.coef")
        p.check_loaded()
        return p
