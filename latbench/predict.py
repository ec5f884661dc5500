"""Latency predictors behind one interface: fit / predict on per-network features.

Every feature is a sum over the network's layers (LUT latency, latency by op
kind, MACs, parameters, activation bytes, layer count), so a network's feature
vector is the sum of its layers' vectors. That makes three things cheap:
- the LUT-sum predictor is one column of it;
- a linear regression on it (calibrated on whole networks measured end to end)
  corrects the isolated-layer bias per layer kind (each layer's fixed overhead,
  cache effects of big activations) without leaving the LUT's key space;
- for a search space, the vectors of its additive terms (the space says what
  they are) are tabulated once, so predicting a batch of token sequences is a
  few numpy gathers (see SpaceTable).

Predictor files are JSON (coefficients, scaler, the LUT identity they were
fitted against): loading one cannot run code.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import numpy as np

from . import records
from .arch import BOTTLENECK_OPS, Arch, LayerSpec
from .errors import InputError, LatbenchError
from .fileio import write_atomic
from .lut import LUT, find_luts, load_luts
from .spaces import SearchSpace

FEATURES = ("lut_ms", "lut_ms_conv", "lut_ms_mbconv", "lut_ms_se", "lut_ms_other",
            "macs_m", "params_m", "act_mb", "layers")
PREDICTOR_KINDS = ("flops", "lut", "regression")


def layer_features(spec: LayerSpec, lut_ms: float) -> np.ndarray:
    """The additive feature vector of one layer (see FEATURES)."""
    act = (spec.in_hw**2 * spec.cin + spec.out_hw**2 * spec.cout) * 4 / 1e6
    if spec.has_expand_conv:
        act += spec.in_hw**2 * spec.mid * 4 / 1e6
    return np.array([
        lut_ms,
        lut_ms if spec.op == "conv" else 0.0,
        lut_ms if spec.op in BOTTLENECK_OPS else 0.0,
        lut_ms if spec.se else 0.0,
        lut_ms if spec.op in ("pool", "fc") else 0.0,
        spec.macs() / 1e6,
        spec.params() / 1e6,
        act,
        1.0,
    ])


class MissingKeys(InputError):
    def __init__(self, keys: list[str], device: str, precision: str):
        self.keys = keys
        shown = "\n  ".join(keys[:20]) + (f"\n  ... and {len(keys) - 20} more" if len(keys) > 20 else "")
        super().__init__(
            f"{len(keys)} layer(s) missing from the {device} {precision} LUT:\n  {shown}\n"
            f"measure them with: latbench profile --device {device} --precision {precision} "
            f"--arch ARCH.json   (or add --profile-missing to predict)")


class FailedLayers(LatbenchError):
    """A network holds layers the device failed to run: it has no latency there."""

    def __init__(self, keys: list[str], device: str):
        self.keys = keys
        super().__init__(f"{len(keys)} layer(s) failed to run on {device} (status=failed in the "
                         f"LUT), so this network cannot run there: {', '.join(keys[:3])}")


@dataclass
class LayerTable:
    """LUT medians by key, and network features from them."""

    lut: LUT
    device: str
    precision: str

    def _keys(self, archs: Sequence[Arch], wanted) -> list[str]:
        seen: dict[str, None] = {}
        for a in archs:
            for s in a.layers(self.precision):
                if wanted(self.lut.rows.get(s.key)):
                    seen.setdefault(s.key)
        return list(seen)

    def missing(self, archs: Sequence[Arch]) -> list[str]:
        """Keys never measured: `latbench profile` can fill them in."""
        return self._keys(archs, lambda row: row is None)

    def failed(self, archs: Sequence[Arch]) -> list[str]:
        """Keys the device failed to run: no measurement will fill them in."""
        return self._keys(archs, lambda row: row is not None and row.status != "ok")

    def layer_ms(self, spec: LayerSpec) -> float:
        row = self.lut.rows.get(spec.key)
        if row is None:
            raise MissingKeys([spec.key], self.device, self.precision)
        if row.status != "ok":
            raise FailedLayers([spec.key], self.device)
        return row.measurement.median_ms  # type: ignore[union-attr]

    def features(self, archs: Sequence[Arch]) -> np.ndarray:
        """(N, F) feature matrix; every missing key is reported at once."""
        missing = self.missing(archs)
        if missing:
            raise MissingKeys(missing, self.device, self.precision)
        failed = self.failed(archs)
        if failed:
            raise FailedLayers(failed, self.device)
        return np.stack([self.layer_breakdown(a).sum(axis=0) for a in archs])

    def layer_breakdown(self, arch: Arch) -> np.ndarray:
        return np.stack([layer_features(s, self.layer_ms(s)) for s in arch.layers(self.precision)])


class SpaceTable:
    """Feature vectors of a search space's additive terms, for vectorised prediction.

    features(tokens) for an (N, num_tokens) token matrix is the sum over the
    space's terms of count(tokens) * table[term][index(tokens)]; each table row
    is the summed layer features of one variant (see spaces.base.Term).
    """

    def __init__(self, space: SearchSpace, table: LayerTable):
        self.space = space
        self.terms = space.additive_terms(table.precision)
        specs = {s.key: s for t in self.terms for v in t.variants for s in v}
        missing = sorted(k for k in specs if k not in table.lut.rows)
        if missing:
            raise MissingKeys(missing, table.device, table.precision)
        zero = np.zeros(len(FEATURES))
        self.tables = [np.stack([sum((layer_features(s, table.layer_ms(s)) for s in v), zero)
                                 for v in t.variants]) for t in self.terms]

    def features(self, tokens: np.ndarray) -> np.ndarray:
        t = np.asarray(tokens, dtype=np.int64).reshape(len(tokens), self.space.num_tokens)
        f = np.zeros((len(t), len(FEATURES)))
        for term, tab in zip(self.terms, self.tables):
            rows = tab[term.index(t)]
            f += rows if term.count is None else term.count(t)[:, None] * rows
        return f


# ---------------------------------------------------------------------------
# Predictors on feature matrices (scikit-learn style: parameters in __init__)
# ---------------------------------------------------------------------------


class LutSumPredictor:
    """Sum of isolated-layer LUT medians: no fitting, biased by design."""

    kind = "lut"

    def fit(self, X: np.ndarray, y: np.ndarray) -> "LutSumPredictor":
        return self

    def predict(self, X: np.ndarray) -> np.ndarray:
        return np.asarray(X)[:, FEATURES.index("lut_ms")]

    def to_dict(self) -> dict:
        return {"kind": self.kind}


class LinearPredictor:
    """Linear regression on chosen features (standardised, ridge-regularised).

    FLOPs baseline: features=("macs_m",). Calibrated LUT: all FEATURES.
    """

    def __init__(self, features: Sequence[str] = FEATURES, alpha: float = 1e-3,
                 kind: str = "regression"):
        self.features = tuple(features)
        self.alpha = alpha
        self.kind = kind
        self.mean_: np.ndarray | None = None
        self.scale_: np.ndarray | None = None
        self.coef_: np.ndarray | None = None
        self.intercept_: float = 0.0

    def _cols(self, X: np.ndarray) -> np.ndarray:
        return np.asarray(X)[:, [FEATURES.index(f) for f in self.features]]

    def fit(self, X: np.ndarray, y: np.ndarray) -> "LinearPredictor":
        from sklearn.linear_model import Ridge

        Z = self._cols(X)
        self.mean_ = Z.mean(axis=0)
        self.scale_ = np.where(Z.std(axis=0) > 0, Z.std(axis=0), 1.0)
        model = Ridge(alpha=self.alpha).fit((Z - self.mean_) / self.scale_, np.asarray(y))
        self.coef_ = np.asarray(model.coef_, dtype=float)
        self.intercept_ = float(model.intercept_)
        return self

    def predict(self, X: np.ndarray) -> np.ndarray:
        if self.coef_ is None:
            raise InputError("predictor is not fitted; run latbench calibrate first")
        return ((self._cols(X) - self.mean_) / self.scale_) @ self.coef_ + self.intercept_

    def to_dict(self) -> dict:
        return {"kind": self.kind, "features": list(self.features), "alpha": self.alpha,
                "mean": self.mean_.tolist(), "scale": self.scale_.tolist(),
                "coef": self.coef_.tolist(), "intercept": self.intercept_}

    @classmethod
    def from_dict(cls, d: dict) -> "LinearPredictor":
        try:
            p = cls(d["features"], float(d["alpha"]), d["kind"])
            unknown = set(p.features) - set(FEATURES)
            if unknown:
                raise InputError(f"unknown feature(s) {sorted(unknown)}", "predictor.features")
            p.mean_ = np.asarray(d["mean"], dtype=float)
            p.scale_ = np.asarray(d["scale"], dtype=float)
            p.coef_ = np.asarray(d["coef"], dtype=float)
            p.intercept_ = float(d["intercept"])
        except (KeyError, TypeError, ValueError) as exc:
            raise InputError(f"malformed predictor: {exc}") from None
        if not (len(p.mean_) == len(p.scale_) == len(p.coef_) == len(p.features)):
            raise InputError("malformed predictor: coefficient lengths differ")
        return p


def make_predictors() -> dict[str, object]:
    """The three predictors compared by validate, unfitted."""
    return {"flops": LinearPredictor(("macs_m",), kind="flops"), "lut": LutSumPredictor(),
            "regression": LinearPredictor(FEATURES)}


# ---------------------------------------------------------------------------
# On disk, and the object the rest of latbench uses
# ---------------------------------------------------------------------------


def lut_identity(lut: LUT) -> str:
    ident = {k: lut.meta.get(k) for k in records.IDENTITY_KEYS}
    return hashlib.sha256(json.dumps(ident, sort_keys=True).encode()).hexdigest()[:16]


def predictor_path(lut_dir: Path, device: str, precision: str) -> Path:
    return Path(lut_dir) / f"{device}_{precision}.predictor.json"


def save_predictors(path: Path, lut: LUT, fitted: dict[str, object], n_train: int) -> None:
    doc = {"format": "latbench-predictor/1", "lut_identity": lut_identity(lut),
           "device": lut.meta.get("fingerprint", {}).get("device"),
           "precision": lut.meta.get("precision"), "trained_on": n_train,
           "predictors": {k: p.to_dict() for k, p in fitted.items()}}
    write_atomic(path, (json.dumps(doc, indent=2) + "\n").encode())


def load_predictor_file(path: Path, lut: LUT) -> dict[str, object]:
    try:
        doc = json.loads(Path(path).read_text())
    except (OSError, json.JSONDecodeError) as exc:
        raise InputError(f"cannot read predictor {path}: {exc}") from None
    if not isinstance(doc, dict) or doc.get("format") != "latbench-predictor/1":
        raise InputError(f"{path} is not a latbench predictor file")
    if doc.get("lut_identity") != lut_identity(lut):
        raise InputError(f"{path} was fitted against another LUT (device, runtime, converter or "
                         f"precision differ); run latbench calibrate again")
    out: dict[str, object] = {}
    for k, d in doc.get("predictors", {}).items():
        out[k] = LutSumPredictor() if d.get("kind") == "lut" else LinearPredictor.from_dict(d)
    return out


class LatencyModel:
    """What callers use: predict(archs) and predict_tokens(tokens), in ms."""

    def __init__(self, table: LayerTable, predictor: object, name: str):
        self.table = table
        self.predictor = predictor
        self.name = name  # which predictor is in use: "regression" or "lut"
        self._spaces: dict[SearchSpace, SpaceTable] = {}

    def predict(self, archs: Sequence[Arch]) -> np.ndarray:
        return self.predictor.predict(self.table.features(archs))

    def breakdown(self, arch: Arch) -> list[tuple[LayerSpec, float]]:
        return [(s, self.table.layer_ms(s)) for s in arch.layers(self.table.precision)]

    def space_table(self, space: SearchSpace) -> SpaceTable:
        if space not in self._spaces:
            self._spaces[space] = SpaceTable(space, self.table)
        return self._spaces[space]

    def predict_tokens(self, space: SearchSpace, tokens: np.ndarray) -> np.ndarray:
        return self.predictor.predict(self.space_table(space).features(tokens))


def load_table(device: str, precision: str = "fp32", lut_dir: Path = Path("lut")) -> LayerTable:
    paths = find_luts(lut_dir, device, precision)
    if not paths:
        raise InputError(f"no {precision} LUT for device {device!r} in {lut_dir}/; measure the "
                         f"layers of your networks with: latbench profile --device {device} "
                         f"--arch ARCH.json --lut-dir {lut_dir} --precision {precision} (or "
                         f"latbench predict ARCH.json --profile-missing --lut-dir {lut_dir}), or "
                         f"a whole space: latbench profile --device {device} --space mnasnet "
                         f"--lut-dir {lut_dir} --precision {precision}")
    lut = load_luts(paths)
    if lut.meta.get("precision") != precision:
        raise InputError(f"LUT {paths[0]} holds {lut.meta.get('precision')} measurements, "
                         f"not {precision}")
    return LayerTable(lut, device, precision)


def load_predictor(device_name: str, precision: str = "fp32", lut_dir: Path = Path("lut"),
                   require_calibrated: bool = False) -> LatencyModel:
    """The device's LUT plus its calibrated regression (or the plain LUT sum)."""
    table = load_table(device_name, precision, lut_dir)
    ppath = predictor_path(lut_dir, device_name, precision)
    if ppath.exists():
        fitted = load_predictor_file(ppath, table.lut)
        if "regression" in fitted:
            return LatencyModel(table, fitted["regression"], "regression")
    if require_calibrated:
        raise InputError(f"no calibrated predictor at {ppath}; run: "
                         f"latbench calibrate --device {device_name} --precision {precision}")
    return LatencyModel(table, LutSumPredictor(), "lut")
