"""The operator-level predictor: any model's latency from its operators' LUT rows, calibrated.

The plain operator sum (opsum.py) counts each operator as timed alone; in a network the
runtime invokes it without a model's fixed cost around it, with warm caches, and with layout
operators that XNNPACK elides. The calibrated predictor is the layer predictor's family run
on operators (stagewise.py with the `OPS` schema, features.py): a scale per operator family
(conv, depthwise, fully connected, pooling, elementwise, memory, other) and per input size,
a per-operator overhead and a per-model one, every term shrunk toward one global scale on
the plain sum (strengths by leave-one-out), non-negative where it must be; the plain sum
(`lut`), one scale on it (`ratio`) and the global fit alone (`global`: scale, per-operator
and per-model overhead) are the candidates it is judged against, simplest first, on whole
models measured end to end (calibration/opcalib.py). A per-operator overhead fitted on the
calibration models extrapolates badly to models of many tiny operators (BENCHMARKS: +42 % on
MobileNetV3-Small), so the one-scale candidate wins wherever it is within one standard error.

Its file is `LUTDIR/DEVICE_ops_PRECISION.predictor.json`: the predictor file format
(files.py: plain numbers, provenance, refused when the operator LUT it was fitted on
changed), with `space: "ops"`. A few-shot file names another device's operator LUT.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from latbench.errors import InputError
from latbench.predictors.base import Predictor
from latbench.predictors.features import OP_FEATURES, OPS, hw_bucket, op_kind
from latbench.predictors.files import (
    check_against,
    load_predictors,
    method_in_use,
    predictor_path,
    read_doc,
)
from latbench.predictors.linear import LutSumPredictor, RatioPredictor
from latbench.predictors.opsum import OpPrediction
from latbench.predictors.stagewise import StagewisePredictor
from latbench.profiling.oplut import OpLUT, load_op_lut

OP_SPACE = "ops"  # the `space` of an operator predictor file (its name's middle part)
OP_DEFAULT = "opwise"
OP_SIMPLEST_FIRST = ("lut", "ratio", "global", OP_DEFAULT)


def make_op_predictors() -> dict[str, Predictor]:
    """What an operator predictor file holds, unfitted: the default and its baselines."""
    return {
        OP_DEFAULT: StagewisePredictor(schema=OPS),
        "lut": LutSumPredictor(),
        "ratio": RatioPredictor(),
        "global": StagewisePredictor((math.inf, math.inf), OPS),
    }


def op_predictor_path(lut_dir: Path, device: str, precision: str) -> Path:
    return predictor_path(lut_dir, device, OP_SPACE, precision)


def input_hw(inputs: str) -> int:
    """The spatial size of an operator's first non-constant 4-D input (1 for the others)."""
    for part in inputs.split(";"):
        if part.startswith("const:") or "[" not in part:
            continue
        dims = part[part.index("[") + 1 : -1].split(",")
        return int(dims[1]) if len(dims) == 4 and dims[1].isdigit() else 1
    return 1


def op_rows(pred: OpPrediction) -> np.ndarray:
    """(operators, OP_FEATURES): one additive feature row per operator, in graph order."""
    idx = {f: i for i, f in enumerate(OP_FEATURES)}
    out = np.zeros((len(pred.rows), len(OP_FEATURES)))
    for i, (spec, ms) in enumerate(pred.rows):
        out[i, idx["lut_ms"]] = ms
        out[i, idx[f"lut_ms_{op_kind(spec.op)}"]] = ms
        out[i, idx["layers"]] = 1.0
        out[i, idx[f"lut_ms_hw{hw_bucket(input_hw(spec.inputs))}"]] = ms
    return out


def op_features(preds: Sequence[OpPrediction]) -> np.ndarray:
    """(models, OP_FEATURES): each model's operator rows summed."""
    return np.stack([op_rows(p).sum(axis=0) for p in preds])


@dataclass
class OpModel:
    """An operator LUT and the predictor in use on it (`lut`: the plain sum)."""

    lut: OpLUT
    lut_device: str
    device: str  # whom it predicts for
    precision: str
    predictor: Predictor
    name: str
    reason: str
    path: Path | None = None
    doc: dict[str, Any] | None = None

    def predict(self, preds: Sequence[OpPrediction]) -> np.ndarray:
        return self.predictor.predict(op_features(preds))

    def breakdown(self, pred: OpPrediction) -> list[float]:
        """Each operator's predicted share of the total, in graph order: its own row through
        the fitted terms (the plain sum: its LUT time), scaled so the shares add up to the
        prediction (the per-model overhead and the ratio guard spread in proportion)."""
        total = float(self.predict([pred])[0])
        unit = getattr(self.predictor, "unit_ms", None)
        raw = np.array([ms for _, ms in pred.rows]) if unit is None else unit(op_rows(pred))
        raw = np.clip(raw, 0.0, None)
        s = float(raw.sum())
        return list(raw * (total / s)) if s > 0 else [0.0] * len(raw)

    def out_of_range(self, preds: Sequence[OpPrediction]) -> list[list[str]]:
        check = getattr(self.predictor, "check_range", None)
        return check(op_features(preds)) if check else [[] for _ in preds]


def load_op_model(
    device: str,
    precision: str,
    lut_dir: Path,
    predictor_file: Path | None = None,
    method: str | None = None,
) -> OpModel:
    """The operator predictor file given (or the device's, when it has one) on the operator
    LUT it names, checked against it; else the plain sum of the device's operator LUT."""
    path = predictor_file or op_predictor_path(lut_dir, device, precision)
    if predictor_file is None and not path.exists():
        if method not in (None, "lut"):
            raise InputError(
                f"no operator predictor at {path}, so no {method!r}: only the plain sum (lut); "
                f"fit one with: latbench calibrate --ops --model MODEL... --device {device}",
                "--predictor-method",
            )
        return OpModel(
            load_op_lut(lut_dir, device, precision), device, device, precision,
            LutSumPredictor(), "lut", "no operator predictor file: the plain operator sum",
        )  # fmt: skip
    doc = read_doc(path)
    if doc["space"] != OP_SPACE:
        raise InputError(
            f"{path} is a layer predictor (space {doc['space']}); a model file needs an "
            f"operator predictor (latbench calibrate --ops)",
            "--predictor",
        )
    rec = doc["lut"]
    lut_prec = str(rec.get("precision") or doc["precision"])
    lut = load_op_lut(lut_dir, str(rec["device"]), lut_prec)
    check_against(
        doc, lut, path,
        fix=f"refit it: latbench calibrate --ops --device {doc['device']} --precision "
        f"{doc['precision']} (measured models are reused)",
    )  # fmt: skip
    fitted = load_predictors(doc, path)
    name, reason = method_in_use(doc, fitted, path, method)
    return OpModel(
        lut, str(rec["device"]), doc["device"], doc["precision"], fitted[name], name, reason,
        path, doc,
    )  # fmt: skip
