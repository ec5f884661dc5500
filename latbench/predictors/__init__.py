"""Latency predictors: features from a LUT, estimators on them, their files, the facade.

    features.py     per-network feature vectors from LUT rows (LayerTable)
    space_table.py  the same, vectorised over a search space's token matrices
    base.py         the Predictor interface (fit / predict / to_dict / from_dict)
    linear.py       LUT sum and ridge-regression baselines
    scaled.py       the calibrated default: constrained per-kind scales + overhead
    files.py        predictor files (JSON, provenance, refusal of stale ones), the
                    name -> class table PREDICTORS
    model.py        LatencyModel and load_predictor: what predict/validate/search use
"""

from .base import NotFitted, Predictor
from .features import FEATURES, KINDS, FailedLayers, LayerTable, MissingKeys, layer_features
from .files import DEFAULT, PREDICTORS, predictor_path, save_predictors
from .linear import LinearPredictor, LutSumPredictor
from .model import LatencyModel, load_predictor, load_predictor_file, load_table, lut_identity
from .scaled import ScaledLutPredictor
from .space_table import SpaceTable

__all__ = ["DEFAULT", "FEATURES", "KINDS", "PREDICTORS", "FailedLayers", "LatencyModel",
           "LayerTable", "LinearPredictor", "LutSumPredictor", "MissingKeys", "NotFitted",
           "Predictor", "ScaledLutPredictor", "SpaceTable", "layer_features", "load_predictor",
           "load_predictor_file", "load_table", "lut_identity", "predictor_path",
           "save_predictors"]
