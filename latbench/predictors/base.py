"""The predictor interface: a scikit-learn-style estimator on feature matrices.

Settings go to the constructor, learned state ends in `_` and first appears in
fit(), fit() returns self, predicting before fitting raises NotFitted. A
predictor serialises to and from a plain dict (JSON), never to pickle.
"""

from __future__ import annotations

from abc import ABC, abstractmethod

import numpy as np

from latbench.errors import InputError


class NotFitted(InputError):
    def __init__(self, kind: str):
        super().__init__(f"the {kind} predictor is not fitted; run latbench calibrate first")


class Predictor(ABC):
    """fit(X, y) / predict(X) on (N, len(FEATURES)) feature matrices, latencies in ms."""

    kind: str = ""
    # True when the fit's own cross-validation shrinks it toward a prior with few parameters:
    # free_parameters() then counts what may move, not what the data pinned down, so it does
    # not bar the method from being the default (calibration.calibrate.judge_predictors)
    shrunk: bool = False

    @abstractmethod
    def fit(self, X: np.ndarray, y: np.ndarray) -> "Predictor":
        """Learn from measured whole networks; returns self."""

    @abstractmethod
    def predict(self, X: np.ndarray) -> np.ndarray:
        """Predicted latency (ms) per row; NaN where the features are NaN."""

    def fit_many(self, X: np.ndarray, y: np.ndarray, masks: np.ndarray) -> list["Predictor"]:
        """One fitted copy per row of `masks` (F, N), each fitted on the networks that row
        selects, as fit(X[mask], y[mask]) would; cross-validation asks for all at once, which
        a predictor may answer faster than fold by fold (scaled, stagewise)."""
        import copy

        return [copy.deepcopy(self).fit(X[m], y[m]) for m in np.asarray(masks, bool)]

    def free_parameters(self) -> int:
        """How many numbers the fit chose freely (those held at a prior by shrinkage do not
        count): calibrate warns when the measurements are too few for them."""
        return 0

    @abstractmethod
    def to_dict(self) -> dict:
        """Settings and learned state as JSON-able data (with "kind")."""

    @classmethod
    @abstractmethod
    def from_dict(cls, d: dict) -> "Predictor":
        """Inverse of to_dict; malformed input is an InputError naming the field."""
