"""Latency predictors: features from a LUT, estimators on them, their files, the facade.

features.py     per-network feature vectors from LUT rows (LayerTable)
space_table.py  the same, vectorised over a search space's token matrices
base.py         the Predictor interface (fit / predict / to_dict / from_dict)
linear.py       LUT sum and ridge-regression baselines
scaled.py       the calibrated default: constrained per-kind scales + overhead
stagewise.py    per-stage (feature-map size) scales and overheads shrunk toward scaled's
                global fit, for few-shot transfer
files.py        predictor files (JSON, provenance, refusal of stale ones), the
                name -> class table PREDICTORS
model.py        LatencyModel and load_predictor: what predict/validate/search use
"""

from latbench.predictors.base import NotFitted, Predictor
from latbench.predictors.features import (
    BASE_FEATURES,
    FEATURES,
    HW_BUCKETS,
    KINDS,
    FailedLayers,
    LayerTable,
    MissingKeys,
    layer_features,
)
from latbench.predictors.files import DEFAULT, PREDICTORS, predictor_path, save_predictors
from latbench.predictors.linear import LinearPredictor, LutSumPredictor
from latbench.predictors.model import (
    LatencyModel,
    load_predictor,
    load_predictor_file,
    load_table,
    lut_identity,
)
from latbench.predictors.scaled import ScaledLutPredictor
from latbench.predictors.space_table import SpaceTable
from latbench.predictors.stagewise import StagewisePredictor

__all__ = [
    "BASE_FEATURES",
    "DEFAULT",
    "FEATURES",
    "HW_BUCKETS",
    "KINDS",
    "PREDICTORS",
    "FailedLayers",
    "LatencyModel",
    "LayerTable",
    "LinearPredictor",
    "LutSumPredictor",
    "MissingKeys",
    "NotFitted",
    "Predictor",
    "ScaledLutPredictor",
    "SpaceTable",
    "StagewisePredictor",
    "layer_features",
    "load_predictor",
    "load_predictor_file",
    "load_table",
    "lut_identity",
    "predictor_path",
    "save_predictors",
]
