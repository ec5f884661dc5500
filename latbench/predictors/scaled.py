"""The calibrated default: per-kind scale factors on LUT time plus a per-layer overhead.

    predicted = sum over kinds k of a_k * (LUT ms of the network's k-layers)
                + b * (number of layers)

0.5 s <= a_k <= 2 s, where s is the best single scale for all kinds (no kind
of layer speeds up or slows down more than 2x relative to the rest of the
network; s itself is free, as a few-shot target may be much slower than the
prior device); optional memory terms (ms per MB of weights or activations)
>= 0; b bounded below (the
overhead may be negative, as isolated timing counts one invocation per layer,
but never removes more than half of the average layer), fitted with
scipy.optimize.lsq_linear on rows weighted by 1/measured, i.e. on relative
error, which is what validate judges. The plain LUT sum is the point a_k = 1,
b = 0 of this family; if the fit is not better than it on the calibration
networks, the LUT sum (times the best global scale) is kept instead, so the
predictor is never worse than the LUT sum where it was calibrated.

Few measurements (few-shot calibration on another device's LUT) are handled
by shrinkage: first one global scale and overhead are fitted, then the
per-kind factors are pulled toward that global scale with a ridge penalty
chosen by cross-validation (or fixed strong when there are too few networks
to cross-validate). The calibration range (LUT ms, layer count, each kind's
share) is stored, and check_range() names what lies outside it (predict warns).
Outside it the fit extrapolates, so predictions fall back to a guard: the
ratio prediction / LUT sum is clipped to the range of measured / LUT-sum
ratios seen on the calibration networks (a network never gets a correction
larger or smaller than any calibration network needed).
"""

from __future__ import annotations

from typing import Sequence

import numpy as np

from latbench.errors import InputError
from latbench.predictors.base import NotFitted, Predictor
from latbench.predictors.boxls import box_lstsq, box_qp
from latbench.predictors.features import KINDS, LAYERS, SCHEMAS, Schema

RIDGE_GRID = (1e-4, 1e-3, 1e-2, 1e-1, 1.0, 10.0)
SCALE_BOUNDS = (0.5, 2.0)  # a kind's scale, relative to the network-wide one
MIN_CV = 8  # fewer networks than this: no per-kind factors beyond the shrunk global one


def _cols(X: np.ndarray, names: Sequence[str], schema: Schema = LAYERS) -> np.ndarray:
    return schema.cols(X, names)


def schema_named(name: str) -> Schema:
    """The feature schema a predictor file names (features.SCHEMAS), or an InputError."""
    if name not in SCHEMAS:
        raise InputError(f"unknown features {name!r}; known: {', '.join(SCHEMAS)}", "predictor")
    return SCHEMAS[name]


# Bounds on what a predictor file may hold: a measured network is at most this many times
# its LUT sum (or that many times less), and no fitted coefficient is this large.
MAX_RATIO = 1e3
MAX_COEF = 1e6


def overhead_floor(X: np.ndarray, schema: Schema = LAYERS) -> float:
    """The lowest per-layer overhead allowed: minus half the cheapest network's average layer
    (per operator, for the operator schema)."""
    per_layer = _cols(X, ["lut_ms"], schema)[:, 0] / _cols(X, ["layers"], schema)[:, 0]
    return -0.5 * float(per_layer.min())


def global_fit(
    X: np.ndarray, y: np.ndarray, lo_b: float, overhead: bool = True, schema: Schema = LAYERS
):
    """(s, b): one scale on the LUT sum plus a per-layer (per-operator) overhead b >= lo_b,
    on relative error; b = 0 with fewer than 3 networks (or overhead=False)."""
    s, b = global_fits(X, y, np.ones((1, len(y)), bool), lo_b, overhead, schema)[0]
    return float(s), float(b)


def global_fits(
    X: np.ndarray,
    y: np.ndarray,
    masks: np.ndarray,
    lo_b,
    overhead: bool = True,
    schema: Schema = LAYERS,
) -> np.ndarray:
    """global_fit on the networks of each row of `masks` (F, n), with its floor of `lo_b` (one
    for all, or one per row): an (F, 2) array of (s, b)."""
    masks = np.asarray(masks, bool)
    lut = _cols(X, ["lut_ms"], schema)[:, 0] / y
    out = np.zeros((len(masks), 2))
    m = masks.astype(float)
    out[:, 0] = (m @ lut) / (m @ lut**2)
    big = masks.sum(axis=1) >= 3
    if overhead and big.any():
        A = np.stack([lut, _cols(X, ["layers"], schema)[:, 0] / y], axis=1)
        As = np.where(masks[big][:, :, None], A[None], 0.0)
        lo = np.zeros((len(masks), 2))
        lo[:, 1] = lo_b
        out[big] = box_lstsq(As, m[big], lo[big], np.array([np.inf, np.inf]))
    return out


def fold_masks(mask: np.ndarray, k_max: int) -> list[np.ndarray]:
    """The training networks of each fold of a cross-validation within `mask`: min(n, k_max)
    folds assigned round-robin in the networks' order (leave-one-out when n <= k_max)."""
    idx = np.flatnonzero(mask)
    fold = np.arange(len(idx)) % min(len(idx), k_max)
    out = []
    for f in range(fold.max() + 1):
        m = mask.copy()
        m[idx[fold == f]] = False
        out.append(m)
    return out


def shared_folds(
    masks: np.ndarray, lo_b: np.ndarray, todo: Sequence[int], folds
) -> tuple[np.ndarray, np.ndarray, list[tuple[int, list[int]]]]:
    """The cross-validation folds of the masks in `todo` (`folds(mask)`: their training
    networks), each distinct (networks, floor) once, as nested leave-one-out repeats them:
    (their masks, their floors, per mask in todo its folds' rows)."""
    index: dict[tuple[bytes, float], int] = {}
    inner: list[np.ndarray] = []
    floors: list[float] = []
    plan = []
    for i in todo:
        rows = []
        for m in folds(masks[i]):
            key = (m.tobytes(), float(lo_b[i]))
            if key not in index:
                index[key] = len(inner)
                inner.append(m)
                floors.append(float(lo_b[i]))
            rows.append(index[key])
        plan.append((i, rows))
    return np.array(inner), np.array(floors), plan


class CalibrationRange:
    """The calibration range and the ratio guard, shared by the LUT-scaling predictors.

    Needs `ratio_range_` and `range_` (set by `remember_range` in fit) and `coef_`; reads
    its feature matrices through `schema` (latbench's layers unless a subclass sets another)."""

    schema: Schema = LAYERS

    shrunk = True  # toward the global fit, by cross-validation (base.Predictor)

    def _check(self) -> None:
        if not hasattr(self, "coef_"):
            raise NotFitted(self.kind)

    def fit(self, X: np.ndarray, y: np.ndarray):
        """fit_many on every network, its learned state taken over."""
        (fitted,) = self.fit_many(X, y, np.ones((1, len(np.atleast_1d(y))), bool))
        self.__dict__.update({k: v for k, v in vars(fitted).items() if k.endswith("_")})
        return self

    def remember_range(self, X: np.ndarray, y: np.ndarray) -> None:
        ratio = y / _cols(X, ["lut_ms"], self.schema)[:, 0]
        self.ratio_range_ = [float(ratio.min()), float(ratio.max())]
        self.range_ = self._range(X)

    def check_loaded(self) -> None:
        """The calibration range a predictor file gave, checked: finite, ordered, in bounds
        (NaN fails every comparison)."""
        lo, hi = self.ratio_range_
        if not (1 / MAX_RATIO <= lo <= hi <= MAX_RATIO):
            raise InputError(f"must be {1 / MAX_RATIO:g} <= low <= high <= {MAX_RATIO:g}, got {[lo, hi]}",
                             "predictor.ratio_range")  # fmt: skip
        bad = [k for k, (a, b) in self.range_.items() if not (np.isfinite(a) and a <= b)]
        if bad or self.n_train_ < 1:
            raise InputError(f"range {bad} or n_train {self.n_train_} out of range", "predictor")

    def guard(self, raw: np.ndarray, X: np.ndarray) -> np.ndarray:
        """`raw`, its ratio to the LUT sum kept within the calibration networks' ratios."""
        lut = _cols(X, ["lut_ms"], self.schema)[:, 0]
        with np.errstate(invalid="ignore", divide="ignore"):
            ratio = np.clip(raw / lut, *self.ratio_range_)
        return np.where(lut > 0, lut * ratio, raw)

    def _summary(self, X: np.ndarray) -> dict[str, np.ndarray]:
        X = np.asarray(X, float)
        lut = _cols(X, ["lut_ms"], self.schema)[:, 0]
        out = {"lut_ms": lut, "layers": _cols(X, ["layers"], self.schema)[:, 0]}
        for k in self.schema.kinds:
            share = _cols(X, [f"lut_ms_{k}"], self.schema)[:, 0]
            out[f"share_{k}"] = share / np.where(lut > 0, lut, 1.0)
        return out

    def _range(self, X: np.ndarray) -> dict[str, list[float]]:
        return {k: [float(np.nanmin(v)), float(np.nanmax(v))] for k, v in self._summary(X).items()}

    def check_range(self, X: np.ndarray) -> list[list[str]]:
        """Per row, what lies outside the calibration range (empty list: inside).

        Totals get 10 % of slack, kind shares 5 points.
        """
        self._check()
        out: list[list[str]] = [[] for _ in range(len(X))]
        for name, v in self._summary(X).items():
            lo, hi = self.range_[name]
            slack = 0.05 if name.startswith("share_") else 0.1 * hi
            for i in np.flatnonzero((v < lo - slack) | (v > hi + slack)):
                out[i].append(f"{name} {v[i]:.3g} outside the calibrated [{lo:.3g}, {hi:.3g}]")
        return out


class ScaledLutPredictor(CalibrationRange, Predictor):
    """a_k >= 0 per layer kind on LUT time, plus a per-layer overhead b (module docstring)."""

    kind = "scaled"

    def __init__(
        self,
        kinds: Sequence[str] = KINDS,
        overhead: bool = True,
        ridge: float | str = "auto",
        memory: Sequence[str] = (),
    ):
        self.kinds = tuple(kinds)
        self.overhead = overhead
        self.ridge = ridge
        self.memory = tuple(memory)
        if set(self.kinds) != set(KINDS):
            raise InputError(f"kinds must be a permutation of {KINDS}", "predictor.kinds")
        if not set(self.memory) <= {"params_m", "act_mb", "macs_m"}:
            raise InputError(
                f"memory terms must be among params_m, act_mb, macs_m, got {list(self.memory)}",
                "predictor.memory",
            )

    # -- fitting --------------------------------------------------------------
    @property
    def columns(self) -> list[str]:
        """The design columns: LUT ms per kind, memory terms, then the layer count."""
        return (
            [f"lut_ms_{k}" for k in self.kinds]
            + list(self.memory)
            + (["layers"] if self.overhead else [])
        )

    def _design(self, X: np.ndarray) -> np.ndarray:
        return _cols(X, self.columns)

    def _vector(self, scale: float, overhead: float) -> np.ndarray:
        """Coefficients with every kind at `scale`, no memory term, the given overhead."""
        return np.array(
            [scale] * len(self.kinds)
            + [0.0] * len(self.memory)
            + ([overhead] if self.overhead else [])
        )

    def _normal(
        self,
        D: np.ndarray,
        y: np.ndarray,
        masks: np.ndarray,
        priors: np.ndarray,
        lams: np.ndarray,
        lo_b: np.ndarray,
    ) -> tuple[np.ndarray, ...]:
        """(H, g, lo, hi) of the penalised relative-error fits on the networks of each row of
        `masks` (F, n), toward its row of `priors` (F, p), for each of its strengths `lams`
        (F, L): stacked fold-major, the normal equations of rows D / y = 1 plus ridge rows
        sqrt(lam) * scale_j * (c_j - prior_j) that penalise each coefficient's relative
        effect on a prediction (predictors/boxls.py solves them). Bounds: kind scales within
        SCALE_BOUNDS times the global scale, memory terms >= 0, the overhead >= its floor."""
        nk, p = len(self.kinds), D.shape[1]
        A = D / y[:, None]
        m = np.asarray(masks, float)
        cnt = m.sum(axis=1)
        Hd = np.einsum("fn,ni,nj->fij", m, A, A)
        gd = m @ A
        lut = (m @ D[:, :nk].sum(axis=1)) / cnt
        scale = np.ones((len(m), p))
        scale[:, nk:] = (m @ D[:, nk:]) / cnt[:, None] / lut[:, None]
        lams = np.asarray(lams, float)
        pen = scale[:, None, :] ** 2 * lams[:, :, None]
        H = Hd[:, None] + pen[..., None] * np.eye(p)
        g = gd[:, None] + pen * priors[:, None]
        s = priors[:, :1]
        lo = np.where(np.arange(p) < nk, SCALE_BOUNDS[0] * s, 0.0)
        if self.overhead:
            lo[:, -1] = lo_b
        hi = np.where(np.arange(p) < nk, SCALE_BOUNDS[1] * s, np.inf)
        L = lams.shape[1]
        return (
            H.reshape(-1, p, p),
            g.reshape(-1, p),
            np.repeat(lo, L, axis=0),
            np.repeat(hi, L, axis=0),
        )

    def _priors(self, X, y, masks, lo_b) -> np.ndarray:
        """One scale for all kinds (+ overhead) on each mask's networks: what the fit shrinks to."""
        sb = global_fits(X, y, masks, lo_b, self.overhead)
        return np.stack([self._vector(s, b) for s, b in sb])

    def _ridges(self, X, y, D, masks, lo_b) -> list[float]:
        """Each mask's ridge strength: given, fixed strong below MIN_CV networks (too few for
        per-kind factors: effectively the global fit), else the RIDGE_GRID strength of the
        lowest cross-validated error; every fold of every mask solved at once, folds that
        recur (the same networks and floor, as in nested leave-one-out) solved once."""
        lams: list = [None] * len(masks)
        todo = []
        for i, m in enumerate(masks):
            if self.ridge != "auto":
                lams[i] = float(self.ridge)
            elif m.sum() < MIN_CV:
                lams[i] = 1e3
            else:
                todo.append(i)
        IM, ilo, plan = shared_folds(masks, lo_b, todo, lambda m: fold_masks(m, 10))
        if plan:
            G = np.broadcast_to(np.array(RIDGE_GRID), (len(IM), len(RIDGE_GRID)))
            priors = self._priors(X, y, IM, ilo)
            W = box_qp(*self._normal(D, y, IM, priors, G, ilo)).reshape(len(IM), len(G[0]), -1)
            for i, keys in plan:
                err = np.zeros(len(RIDGE_GRID))
                for k in keys:
                    te = masks[i] & ~IM[k]
                    err += (np.abs(W[k] @ D[te].T - y[te]) / y[te]).sum(axis=1)
                lams[i] = RIDGE_GRID[int(np.argmin(err))]
        return lams

    def fit_many(
        self, X: np.ndarray, y: np.ndarray, masks: np.ndarray
    ) -> list["ScaledLutPredictor"]:
        """fit() on the networks of each row of `masks`, all solved together (base.Predictor)."""
        X, y = np.asarray(X, float), np.asarray(y, float)
        masks = np.asarray(masks, bool)
        if len(y) == 0 or np.any(~np.isfinite(y)) or np.any(y <= 0) or not masks.any(axis=1).all():
            raise InputError("calibration latencies must be positive numbers", "measurements")
        D = self._design(X)
        lo_b = np.array([overhead_floor(X[m]) for m in masks])
        lams = self._ridges(X, y, D, masks, lo_b)
        priors = self._priors(X, y, masks, lo_b)
        C = box_qp(*self._normal(D, y, masks, priors, np.array(lams)[:, None], lo_b))
        lut_only = self._vector(1.0, 0.0)
        out = []
        for i, m in enumerate(masks):
            Dm, ym = D[m], y[m]

            def sq(v, Dm=Dm, ym=ym):
                return float(np.mean(((Dm @ v - ym) / ym) ** 2))

            p = ScaledLutPredictor(self.kinds, self.overhead, self.ridge, self.memory)
            w, p.fallback_ = C[i], ""
            if sq(w) > min(sq(lut_only), sq(priors[i])):
                w, p.fallback_ = (
                    (lut_only, "lut sum")
                    if sq(lut_only) <= sq(priors[i])
                    else (priors[i], "global scale")
                )
            p.coef_, p.ridge_ = w, lams[i]
            p.remember_range(X[m], ym)
            p.n_train_ = int(m.sum())
            out.append(p)
        return out

    # -- prediction -----------------------------------------------------------

    @property
    def scales_(self) -> np.ndarray:
        return self.coef_[: len(self.kinds)]

    @property
    def overhead_ms_(self) -> float:
        return float(self.coef_[-1]) if self.overhead else 0.0

    def predict(self, X: np.ndarray) -> np.ndarray:
        """The fitted sum, its ratio to the LUT sum kept within the calibration's ratios."""
        self._check()
        return self.guard(self._design(X) @ self.coef_, X)

    def free_parameters(self) -> int:
        """Coefficients fitted freely: the global scale and overhead when the per-kind
        factors were held at it (ridge >= 1e3 or a fallback), else every column."""
        self._check()
        if self.fallback_ or self.ridge_ >= 1e3:
            return 1 + int(self.overhead)
        return len(self.columns)

    # -- file -----------------------------------------------------------------
    def to_dict(self) -> dict:
        self._check()
        return {
            "kind": self.kind,
            "kinds": list(self.kinds),
            "overhead": self.overhead,
            "memory": list(self.memory),
            "ridge": self.ridge,
            "ridge_chosen": self.ridge_,
            "coef": dict(zip(self.columns, map(float, self.coef_))),
            "fallback": self.fallback_,
            "ratio_range": self.ratio_range_,
            "n_train": self.n_train_,
            "range": self.range_,
        }

    @classmethod
    def from_dict(cls, d: dict) -> "ScaledLutPredictor":
        try:
            p = cls(tuple(d["kinds"]), bool(d["overhead"]), d["ridge"], tuple(d["memory"]))
            coef = d["coef"]
            p.coef_ = np.array([float(coef[c]) for c in p.columns])
            p.ridge_ = float(d["ridge_chosen"])
            p.fallback_ = str(d["fallback"])
            lo, hi = (float(v) for v in d["ratio_range"])
            p.ratio_range_ = [lo, hi]
            p.n_train_ = int(d["n_train"])
            p.range_ = {str(k): [float(v[0]), float(v[1])] for k, v in d["range"].items()}
        except (KeyError, TypeError, ValueError, IndexError) as exc:
            raise InputError(f"malformed scaled predictor: {exc}", "predictor") from None
        if not np.all(np.isfinite(p.coef_)) or np.any(p.coef_[: len(p.kinds) + len(p.memory)] < 0):
            raise InputError(
                "coefficients must be finite, scale and memory terms >= 0", "predictor.coef"
            )
        if np.any(np.abs(p.coef_) > MAX_COEF) or not np.any(p.scales_ > 0):
            raise InputError(
                f"coefficients must be within +-{MAX_COEF:g} and some scale > 0, got "
                f"{[round(float(c), 6) for c in p.coef_]}",
                "predictor.coef",
            )
        p.check_loaded()
        if not (np.isfinite(p.ridge_) and p.ridge_ >= 0):
            raise InputError(f"ridge_chosen {p.ridge_} out of range", "predictor")
        return p
