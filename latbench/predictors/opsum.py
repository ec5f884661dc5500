"""Any model's latency as the sum of its operators' rows in the device's operator LUT.

Some fusions are the runtime's, not the converter's (build/tflite_ops.RUNTIME_FUSIONS):
XNNPACK folds a zero PAD of the spatial dimensions into the convolution that alone reads it,
and in an int8 model the MUL of a swish, x * sigmoid(x), into its LOGISTIC. Such an operator
counts 0 in the sum (it is listed, marked fused; its isolated row is still measured).

The first, uncalibrated operator-level predictor (issue 22, section 3): every operator of
subgraph 0 (`build/tflite_ops.decompose`) looked up by key in LUTDIR/DEVICE_PRECISION.ops.csv
(`profiling/oplut.py`), each occurrence counted, and the per-operator breakdown that shows
where the time goes. A model with operators that cannot be timed alone (custom, Flex,
control flow) has no operator sum: it is refused naming them (measure it whole instead).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from latbench.build.tflite_ops import OpSpec
from latbench.errors import InputError, LatbenchError
from latbench.profiling.oplut import ModelOps, OpLUT


class MissingOps(InputError):
    """Operators never measured on the device: `profile --model` (or --profile-missing)."""

    def __init__(self, keys: list[str], model: str, device: str, precision: str):
        self.keys = keys
        super().__init__(
            f"{len(keys)} operator(s) of {model} missing from the {device} {precision} operator "
            f"LUT (first: {keys[0]}); measure them with: latbench profile --model {model} "
            f"--device {device} --precision {precision}   (or add --profile-missing to predict)"
        )


class FailedOps(LatbenchError):
    """Operators the device failed to run alone: the model has no operator sum there."""

    def __init__(self, keys: list[str], device: str):
        self.keys = keys
        super().__init__(
            f"{len(keys)} operator(s) failed to run alone on {device} (status=failed in the "
            f"operator LUT): {keys[0]}"
        )


@dataclass
class OpPrediction:
    """The operator sum of one model and its per-operator breakdown (graph order)."""

    model: str
    device: str
    precision: str
    rows: list[tuple[OpSpec, float]]  # a fused operator's time is 0 (its kernel is the next's)
    fused: frozenset[int] = frozenset()  # positions in `rows` the delegate folds into the next

    @property
    def total_ms(self) -> float:
        return float(sum(ms for _, ms in self.rows))

    def by_op(self) -> list[tuple[str, int, float]]:
        """(operator name, count, ms) per operator type, most time first."""
        agg: dict[str, list[float]] = {}
        for s, ms in self.rows:
            agg.setdefault(s.op, []).append(ms)
        return sorted(((k, len(v), sum(v)) for k, v in agg.items()), key=lambda x: -x[2])

    def to_dict(self) -> dict[str, Any]:
        total = self.total_ms
        return {
            "model": self.model,
            "device": self.device,
            "precision": self.precision,
            "predictor": "lut",  # the plain operator sum
            "latency_ms": total,
            "operators": [
                {
                    "op": s.op,
                    "key": s.key,
                    "ms": ms,
                    "share": ms / total if total else 0.0,
                    **({"fused": True} if j in self.fused else {}),
                }
                for j, (s, ms) in enumerate(self.rows)
            ],
            "by_op": [{"op": k, "count": n, "ms": ms} for k, n, ms in self.by_op()],
        }


def missing_ops(model: ModelOps, lut: OpLUT) -> list[str]:
    """Keys of the model's operators the LUT has no row for (each once, in graph order)."""
    return list(dict.fromkeys(o.key for o in model.ops if o.key not in lut.rows))


def op_sum(model: ModelOps, lut: OpLUT, device: str) -> OpPrediction:
    """The model's operator sum, or a named error for what stands in its way."""
    precision = str(lut.meta.get("precision", ""))
    if model.decomposition.refused:
        raise InputError(
            f"{model.source} has operators that cannot be timed alone: {model.refused_line()}; "
            f"it has no operator sum (time it whole with: latbench measure {model.source})",
            "MODEL",
        )
    missing = missing_ops(model, lut)
    if missing:
        raise MissingOps(missing, model.source, device, precision)
    failed = list(dict.fromkeys(o.key for o in model.ops if lut.rows[o.key].status != "ok"))
    if failed:
        raise FailedOps(failed, device)
    fused = frozenset(j for j, o in enumerate(model.ops) if o.index in model.decomposition.fused)
    rows = [(o, 0.0 if j in fused else lut.median(o.key)) for j, o in enumerate(model.ops)]
    return OpPrediction(model.name, device, precision, rows, fused)
