"""Baseline predictors: the plain LUT sum and a ridge regression on chosen features.

The LUT sum needs no fitting and is biased by design (layers timed in
isolation). The ridge regression is kept as a baseline (FLOPs-linear uses it
on MACs alone); it fits absolute error without constraints and extrapolates
badly to networks unlike its calibration set, which is why the calibrated
default is ScaledLutPredictor (scaled.py).
"""

from __future__ import annotations

from typing import Sequence

import numpy as np

from latbench.errors import InputError
from latbench.predictors.base import NotFitted, Predictor
from latbench.predictors.features import FEATURES


def ridge(Z: np.ndarray, y: np.ndarray, alpha: float) -> tuple[np.ndarray, float]:
    """(coef, intercept) minimising ||y - Z coef - intercept||^2 + alpha ||coef||^2: what
    scikit-learn's Ridge computes (centred data, its "cholesky" solver: the primal normal
    equations, or the dual ones when there are more features than rows), in numpy alone,
    without its per-call checks (a fit is cross-validated many times per calibration)."""
    z0, y0 = Z.mean(axis=0), y.mean()
    Zc, yc = Z - z0, y - y0
    n, p = Zc.shape
    if p > n:
        K = Zc @ Zc.T
        K[np.diag_indices(n)] += alpha
        coef = Zc.T @ np.linalg.solve(K, yc)
    else:
        A = Zc.T @ Zc
        A[np.diag_indices(p)] += alpha
        coef = np.linalg.solve(A, Zc.T @ yc)
    return coef, float(y0 - z0 @ coef)


class LutSumPredictor(Predictor):
    """Sum of isolated-layer LUT medians."""

    kind = "lut"

    def fit(self, X: np.ndarray, y: np.ndarray) -> "LutSumPredictor":
        return self

    def predict(self, X: np.ndarray) -> np.ndarray:
        # lut_ms is the first column of every feature schema (features.Schema), layers or ops
        return np.asarray(X, float)[:, 0]

    def to_dict(self) -> dict:
        return {"kind": self.kind}

    @classmethod
    def from_dict(cls, d: dict) -> "LutSumPredictor":
        return cls()


class RatioPredictor(Predictor):
    """One scale on the LUT sum, s >= 0, fitted on relative error: in-network time as a fixed
    multiple of the isolated sum. The least a calibration can learn (one number), so it is the
    candidate after the plain sum when few measurements or a calibration set unlike the
    models predicted cannot support an overhead term."""

    kind = "ratio"

    def fit(self, X: np.ndarray, y: np.ndarray) -> "RatioPredictor":
        r = np.asarray(X, float)[:, 0] / np.asarray(y, float)  # minimise sum((s r - 1)^2)
        denom = float(r @ r)
        self.scale_ = max(0.0, float(r.sum()) / denom) if denom > 0 else 1.0
        return self

    def predict(self, X: np.ndarray) -> np.ndarray:
        if not hasattr(self, "scale_"):
            raise NotFitted(self.kind)
        return self.scale_ * np.asarray(X, float)[:, 0]

    def free_parameters(self) -> int:
        return 1

    def to_dict(self) -> dict:
        if not hasattr(self, "scale_"):
            raise NotFitted(self.kind)
        return {"kind": self.kind, "scale": self.scale_}

    @classmethod
    def from_dict(cls, d: dict) -> "RatioPredictor":
        try:
            scale = float(d["scale"])
        except (KeyError, TypeError, ValueError) as exc:
            raise InputError(f"malformed ratio predictor: {exc}", "predictor.scale") from None
        if not (np.isfinite(scale) and 0 <= scale <= 1e6):
            raise InputError(f"scale must be finite, 0..1e6, got {scale}", "predictor.scale")
        p = cls()
        p.scale_ = scale
        return p


class LinearPredictor(Predictor):
    """Ridge regression on standardised chosen features (FLOPs baseline: ("macs_m",))."""

    kind = "linear"

    def __init__(self, features: Sequence[str] = FEATURES, alpha: float = 1e-3):
        self.features = tuple(features)
        self.alpha = alpha
        unknown = set(self.features) - set(FEATURES)
        if unknown:
            raise InputError(f"unknown feature(s) {sorted(unknown)}", "predictor.features")

    def _cols(self, X: np.ndarray) -> np.ndarray:
        return np.asarray(X, float)[:, [FEATURES.index(f) for f in self.features]]

    def fit(self, X: np.ndarray, y: np.ndarray) -> "LinearPredictor":
        Z = self._cols(X)
        self.mean_ = Z.mean(axis=0)
        self.scale_ = np.where(Z.std(axis=0) > 0, Z.std(axis=0), 1.0)
        self.coef_, self.intercept_ = ridge(
            (Z - self.mean_) / self.scale_, np.asarray(y, float), self.alpha
        )
        return self

    def predict(self, X: np.ndarray) -> np.ndarray:
        if not hasattr(self, "coef_"):
            raise NotFitted(self.kind)
        return ((self._cols(X) - self.mean_) / self.scale_) @ self.coef_ + self.intercept_

    def free_parameters(self) -> int:
        return len(self.features) + 1  # and the intercept; alpha is too small to hold any

    def to_dict(self) -> dict:
        if not hasattr(self, "coef_"):
            raise NotFitted(self.kind)
        return {
            "kind": self.kind,
            "features": list(self.features),
            "alpha": self.alpha,
            "mean": self.mean_.tolist(),
            "scale": self.scale_.tolist(),
            "coef": self.coef_.tolist(),
            "intercept": self.intercept_,
        }

    @classmethod
    def from_dict(cls, d: dict) -> "LinearPredictor":
        try:
            p = cls(d["features"], float(d["alpha"]))
            p.mean_ = np.asarray(d["mean"], dtype=float)
            p.scale_ = np.asarray(d["scale"], dtype=float)
            p.coef_ = np.asarray(d["coef"], dtype=float)
            p.intercept_ = float(d["intercept"])
        except (KeyError, TypeError, ValueError) as exc:
            raise InputError(f"malformed linear predictor: {exc}", "predictor") from None
        if not (len(p.mean_) == len(p.scale_) == len(p.coef_) == len(p.features)):
            raise InputError("malformed linear predictor: coefficient lengths differ", "predictor")
        values = np.concatenate([p.mean_, p.scale_, p.coef_, [p.intercept_, p.alpha]])
        if not np.all(np.isfinite(values)) or np.any(np.abs(values) > 1e12):
            raise InputError("numbers must be finite and within +-1e12", "predictor")
        if np.any(p.scale_ <= 0) or p.alpha < 0:
            raise InputError(f"scale must be > 0 and alpha >= 0, got {p.scale_.tolist()}, "
                             f"{p.alpha}", "predictor.scale")  # fmt: skip
        return p
