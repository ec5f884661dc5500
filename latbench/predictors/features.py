"""Per-network feature vectors from a LUT: the input every predictor takes.

Every feature is a sum over the network's layers (LUT latency in total, by
layer kind and by feature-map size, MACs, parameters, activation bytes, layer
count), so a network's
vector is the sum of its layers' vectors: the LUT sum is one column, a
calibrated predictor corrects the isolated-layer bias per kind without leaving
the LUT's key space, and a search space can be tabulated per block
(space_table.py).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import numpy as np

from latbench.errors import InputError, LatbenchError
from latbench.nets.arch import Arch, LayerSpec
from latbench.profiling.lut import LUT

# The LUT latency split by layer kind: the kinds partition the layers, so the
# kind columns add up to lut_ms. Kinds separate what runs on different kernels
# (full conv, depthwise-separable, inverted residuals with a narrow (e <= 4) or
# wide (e > 4) expansion, each with or without SE): their in-network slowdown,
# and their speed ratio across precisions or devices, differ.
KINDS = (
    "conv",
    "conv_se",
    "dconv",
    "dconv_se",
    "mbconv_lo",
    "mbconv_lo_se",
    "mbconv_hi",
    "mbconv_hi_se",
    "other",
)
KIND_FEATURES = tuple(f"lut_ms_{k}" for k in KINDS)
# The LUT latency split by the layer's input feature-map size, to the nearest power of two
# in log scale (224 -> 256, 112 -> 128, ..., 7 -> 8; 32 -> 32 on CIFAR): in a space these are
# its stages (resolutions), whatever the space, so a device whose speed relative to the
# prior depends on the stage can be fitted per bucket (predictors/stagewise.py). Sizes
# beyond 256 share the last bucket. The buckets partition the layers like the kinds do.
HW_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128, 256)
HW_FEATURES = tuple(f"lut_ms_hw{b}" for b in HW_BUCKETS)
# What the baselines see (the features before the size buckets were added; regression's set)
BASE_FEATURES = ("lut_ms", *KIND_FEATURES, "macs_m", "params_m", "act_mb", "layers")
FEATURES = (*BASE_FEATURES, *HW_FEATURES)


@dataclass(frozen=True)
class Schema:
    """The columns of a feature matrix, as the LUT-scaling predictors read them.

    Two granularities share one predictor family (scaled.py, stagewise.py): latbench's layers
    (LAYERS, the columns above) and TFLite operators (OPS, predictors/op_features.py). Each
    has `lut_ms` (the plain sum), one `lut_ms_KIND` column per kind (they partition
    lut_ms), size-bucket columns (they partition it too) and `layers`: how many units
    (layers or operators) the network has. Predictor files name their schema (`features`).
    """

    name: str
    features: tuple[str, ...]
    kinds: tuple[str, ...]
    buckets: tuple[str, ...]

    def __post_init__(self) -> None:
        need = {"lut_ms", "layers", *self.kind_features, *self.buckets}
        if self.features[0] != "lut_ms" or not need <= set(self.features):
            raise ValueError(f"schema {self.name}: lut_ms first, and {sorted(need)} present")

    @property
    def kind_features(self) -> tuple[str, ...]:
        return tuple(f"lut_ms_{k}" for k in self.kinds)

    def cols(self, X: np.ndarray, names: Sequence[str]) -> np.ndarray:
        return np.asarray(X, float)[:, [self.features.index(n) for n in names]]


LAYERS = Schema("layers", FEATURES, KINDS, HW_FEATURES)

# TFLite operators by the kernel family they run on (any builtin not named: "other"): their
# in-network slowdown and their speed ratio across devices differ, as the layer kinds' do.
OP_KINDS: dict[str, tuple[str, ...]] = {
    "conv": ("CONV_2D", "TRANSPOSE_CONV", "CONV_3D"),
    "dwconv": ("DEPTHWISE_CONV_2D",),
    "fc": ("FULLY_CONNECTED", "BATCH_MATMUL"),
    "pool": ("AVERAGE_POOL_2D", "MAX_POOL_2D", "MEAN", "SUM", "REDUCE_MAX", "REDUCE_MIN"),
    "elementwise": ("ADD", "SUB", "MUL", "DIV", "MAXIMUM", "MINIMUM", "SQUARED_DIFFERENCE",
                    "HARD_SWISH", "LOGISTIC", "RELU", "RELU6", "RELU_N1_TO_1", "LEAKY_RELU",
                    "TANH", "PRELU", "RSQRT", "SQRT", "EXP", "SOFTMAX", "GELU"),
    "memory": ("RESHAPE", "SQUEEZE", "EXPAND_DIMS", "CONCATENATION", "PAD", "PADV2",
               "TRANSPOSE", "STRIDED_SLICE", "SLICE", "SPLIT", "SPLIT_V", "GATHER", "PACK",
               "UNPACK", "QUANTIZE", "DEQUANTIZE", "RESIZE_BILINEAR", "RESIZE_NEAREST_NEIGHBOR",
               "DEPTH_TO_SPACE", "SPACE_TO_DEPTH", "BROADCAST_TO", "TILE"),
}  # fmt: skip
OP_KIND_NAMES = (*OP_KINDS, "other")
OP_FEATURES = (
    "lut_ms", *(f"lut_ms_{k}" for k in OP_KIND_NAMES), "layers", *HW_FEATURES
)  # fmt: skip
OPS = Schema("ops", OP_FEATURES, OP_KIND_NAMES, HW_FEATURES)
SCHEMAS = {s.name: s for s in (LAYERS, OPS)}


def op_kind(op: str) -> str:
    """The OP_KINDS group of a builtin operator name ("other" when none names it)."""
    return next((k for k, ops in OP_KINDS.items() if op in ops), "other")


def layer_kind(spec: LayerSpec) -> str:
    """Which scale factor a layer's LUT time gets (see KINDS)."""
    if spec.op in ("pool", "fc"):
        return "other"
    if spec.op == "conv":
        base = "conv"
    elif not spec.has_expand_conv:  # MobileNetV2's e1: depthwise-separable
        base = "dconv"
    else:
        base = "mbconv_hi" if spec.expand > 4 else "mbconv_lo"
    return f"{base}_se" if spec.se else base


def hw_bucket(in_hw: int) -> int:
    """The HW_BUCKETS entry of a feature-map size (nearest power of two in log scale)."""
    e = int(np.clip(np.round(np.log2(max(int(in_hw), 1))), 0, len(HW_BUCKETS) - 1))
    return HW_BUCKETS[e]


def layer_features(spec: LayerSpec, lut_ms: float) -> np.ndarray:
    """The additive feature vector of one layer (see FEATURES)."""
    act = (spec.in_hw**2 * spec.cin + spec.out_hw**2 * spec.cout) * 4 / 1e6
    if spec.has_expand_conv:
        act += spec.in_hw**2 * spec.mid * 4 / 1e6
    kind, hw = layer_kind(spec), hw_bucket(spec.in_hw)
    return np.array(
        [
            lut_ms,
            *(lut_ms if kind == k else 0.0 for k in KINDS),
            spec.macs() / 1e6,
            spec.params() / 1e6,
            act,
            1.0,
            *(lut_ms if hw == b else 0.0 for b in HW_BUCKETS),
        ]
    )


class MissingKeys(InputError):
    """Layers never measured on the device: `latbench profile` can fill them in."""

    def __init__(self, keys: list[str], device: str, precision: str, device_arg: str = ""):
        """device_arg: what --device takes for the device (a profile file's path, where the
        user gave one), else its name."""
        self.keys = keys
        shown = "\n  ".join(keys[:20]) + (
            f"\n  ... and {len(keys) - 20} more" if len(keys) > 20 else ""
        )
        super().__init__(
            f"{len(keys)} layer(s) missing from the {device} {precision} LUT:\n  {shown}\n"
            f"measure them with: latbench profile --device {device_arg or device} "
            f"--precision {precision} "
            f"--arch ARCH.json   (or add --profile-missing to predict)"
        )


class FailedLayers(LatbenchError):
    """A network holds layers the device failed to run: it has no latency there."""

    def __init__(self, keys: list[str], device: str):
        self.keys = keys
        super().__init__(
            f"{len(keys)} layer(s) failed to run on {device} (status=failed in the "
            f"LUT), so this network cannot run there: {', '.join(keys[:3])}"
        )


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

    def keys(self, archs: Sequence[Arch]) -> list[str]:
        """Every distinct key the networks use."""
        return self._keys(archs, lambda row: True)

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

    def layer_breakdown(self, arch: Arch, failed_as_nan: bool = False) -> np.ndarray:
        """(layers, F): one feature row per layer; a failed layer is all-NaN if asked."""
        rows = []
        for s in arch.layers(self.precision):
            row = self.lut.rows.get(s.key)
            if failed_as_nan and row is not None and row.status != "ok":
                rows.append(np.full(len(FEATURES), np.nan))
            else:
                rows.append(layer_features(s, self.layer_ms(s)))
        return np.stack(rows)
