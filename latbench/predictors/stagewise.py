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
from latbench.predictors.boxls import box_ridge
from latbench.predictors.features import LAYERS, Schema
from latbench.predictors.scaled import (
    MAX_COEF,
    CalibrationRange,
    fold_masks,
    global_fits,
    overhead_floor,
    schema_named,
    shared_folds,
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

    def _priors(
        self, X: np.ndarray, y: np.ndarray, masks: np.ndarray, lo_b: np.ndarray
    ) -> np.ndarray:
        """The global fit on the networks of each row of `masks`, as coefficient vectors."""
        sb = global_fits(X, y, masks, lo_b, schema=self.schema)
        NK, NH = self._sizes
        out = np.zeros((len(masks), len(columns(self.schema))))
        out[:, :NK] = sb[:, :1]
        out[:, NK + NH] = sb[:, 1]
        return out

    def _problems(
        self,
        D: np.ndarray,
        y: np.ndarray,
        masks: np.ndarray,
        priors: np.ndarray,
        lams: np.ndarray,
        lo_b: np.ndarray,
    ) -> tuple[np.ndarray, ...]:
        """The penalised relative-error fits on the networks of each row of `masks` (F, n),
        toward its row of `priors`, for each of its L pairs of strengths `lams` (F, L, 2):
        box_ridge's (A, b, pen, prior, lo, hi) (predictors/boxls.py). A column of an infinite strength
        is held at the prior (lo = hi), and so is one no network of the fold uses (its
        penalty alone decides it: the prior, which lies within its bounds)."""
        NK, NH = self._sizes
        m = np.asarray(masks, float)
        A = m[:, :, None] * (D / y[:, None])  # a fold's rows; the others zero
        cnt = m.sum(axis=1)
        s = priors[:, 0]
        # penalty weights: a scale's relative deviation, an overhead's share of a prediction
        w = np.empty((len(m), D.shape[1]))
        with np.errstate(divide="ignore"):
            w[:, : NK + NH] = 1.0 / s[:, None]  # s = 0 (LUT time explains nothing): held
        w[:, -2] = (m @ (D[:, -2] / y)) / cnt
        w[:, -1] = (m @ (1.0 / y)) / cnt
        strength = np.asarray(lams, float)[..., _groups(self.schema)]  # (F, L, p)
        free = np.isfinite(strength) & np.isfinite(w)[:, None, :]
        w2 = np.where(np.isfinite(w), w, 0.0) ** 2
        pen = np.where(free, strength, 0.0) * w2[:, None, :]
        base = np.concatenate(
            [
                np.repeat(KIND_FLOOR * s[:, None], NK, axis=1),
                np.repeat(HW_FLOOR * s[:, None], NH, axis=1),
                np.asarray(lo_b, float)[:, None],
                np.zeros((len(m), 1)),
            ],
            axis=1,
        )
        unused = ~np.any(A != 0, axis=1)[:, None, :] & (pen > 0)
        held = ~free | unused
        lo = np.where(held, priors[:, None], base[:, None])
        hi = np.where(held, priors[:, None], np.inf)
        return A, m, pen, priors, lo, hi

    @staticmethod
    def _pick(err: np.ndarray, pairs: list[tuple[float, float]]) -> tuple[float, float]:
        """The strengths with the lowest out-of-sample error `err` (pairs, networks), the
        stiffest within SE_FACTOR standard errors winning."""
        n = err.shape[1]
        mean = err.mean(axis=1)
        best = int(np.argmin(mean))
        se = float(err[best].std(ddof=1) / np.sqrt(n))

        def stiffness(lam):  # larger = simpler; the grid's order, infinity stiffest
            return sum(GRID.index(v) for v in lam)

        within = [i for i in range(len(pairs)) if mean[i] <= mean[best] + SE_FACTOR * se]
        pick = max(within, key=lambda i: (stiffness(pairs[i]), -mean[i]))
        return pairs[pick]

    def _strengths(self, X, y, D, masks, lo_b) -> list[tuple[float, float]]:
        """Each mask's strengths: given, infinite below MIN_NETS networks, else chosen out of
        sample; every fold of every mask solved at once, folds that recur (the same networks
        and floor, as in nested leave-one-out) solved once."""
        pairs = [(a, b) for a in GRID for b in GRID]
        lams: list = [None] * len(masks)
        todo = []
        for i, m in enumerate(masks):
            if self.ridge != "auto":
                lams[i] = tuple(self.ridge)
            elif m.sum() < MIN_NETS:
                lams[i] = (math.inf, math.inf)
            else:
                todo.append(i)
        folds = lambda m: fold_masks(m, m.sum() if m.sum() <= LOO_MAX else FOLDS)  # noqa: E731
        IM, ilo, plan = shared_folds(masks, lo_b, todo, folds)
        if plan:
            priors = self._priors(X, y, IM, ilo)
            L = np.broadcast_to(np.array(pairs), (len(IM), len(pairs), 2))
            A, b, pen, pr, lo, hi = self._problems(D, y, IM, priors, L, ilo)
            # one kinds' strength at a time, each started from the last one's solutions
            W, prev, step = np.empty(pen.shape), None, len(GRID)
            for j in range(0, len(pairs), step):
                s = slice(j, j + step)
                W[:, s] = prev = box_ridge(A, b, pen[:, s], pr, lo[:, s], hi[:, s], prev)
            for i, keys in plan:
                err = [
                    np.abs(W[k] @ D[te].T - y[te]) / y[te]
                    for k in keys
                    for te in [masks[i] & ~IM[k]]
                ]
                lams[i] = self._pick(np.concatenate(err, axis=1), pairs)
        return lams

    def fit_many(
        self, X: np.ndarray, y: np.ndarray, masks: np.ndarray
    ) -> list["StagewisePredictor"]:
        """fit() on the networks of each row of `masks`, all solved together (base.Predictor)."""
        X, y = np.asarray(X, float), np.asarray(y, float)
        masks = np.asarray(masks, bool)
        if len(y) == 0 or np.any(~np.isfinite(y)) or np.any(y <= 0) or not masks.any(axis=1).all():
            raise InputError("calibration latencies must be positive numbers", "measurements")
        D = _design(X, self.schema)
        lo_b = np.array([overhead_floor(X[m], self.schema) for m in masks])
        lams = self._strengths(X, y, D, masks, lo_b)
        priors = self._priors(X, y, masks, lo_b)
        C = box_ridge(*self._problems(D, y, masks, priors, np.array(lams)[:, None, :], lo_b))[:, 0]
        out = []
        for i, m in enumerate(masks):
            p = StagewisePredictor(self.ridge, self.schema)
            p.coef_, p.prior_ = C[i], priors[i]
            p.ridge_ = [float(v) for v in lams[i]]
            used = np.any(D[m] != 0, axis=0)
            free = np.array([math.isfinite(lams[i][g]) for g in _groups(self.schema)]) & used
            # + the global fit's s and b0 where no free column takes their place
            p.free_ = (
                int(free.sum())
                + int(not math.isfinite(lams[i][0]))
                + int(not math.isfinite(lams[i][1]))
            )
            p.remember_range(X[m], y[m])
            p.n_train_ = int(m.sum())
            out.append(p)
        return out

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
