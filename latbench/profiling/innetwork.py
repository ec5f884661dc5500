"""Each operator's in-network time on a phone, matched to the model's operators.

`benchmark_model --enable_op_profiling=true` (the classic tool, `Device.op_profile`) reports
per-operator times measured inside the whole network (devices/benchmark_output.
operator_profile). Interpreter nodes carry their node index, which is the operator's index in
subgraph 0; operators a delegate ran (XNNPACK) are reported from inside its kernel in run
order, under the delegate's own names: they are matched to the model's operators in graph
order when there are as many of them as operators left unmatched (XNNPACK turns each TFLite
operator into one of its own; a count that differs, as when it fuses or splits operators,
leaves them unmatched and says so). Beside the operator LUT's isolated times this shows
where the sum of parts and the whole disagree.
"""

from __future__ import annotations

from dataclasses import dataclass

from latbench.devices.benchmark_output import BenchmarkResult, OpProfileRow, operator_profile
from latbench.profiling.oplut import ModelOps


@dataclass
class InNetwork:
    """Per operator of the model (graph order): its in-network ms, None where unmatched."""

    ms: list[float | None]
    rows: list[OpProfileRow]
    note: str  # how the rows were matched, or why some were not
    whole_ms: float  # the run's own average inference time (profiler on)


def match_rows(model: ModelOps, rows: list[OpProfileRow]) -> tuple[list[float | None], str]:
    """The rows' times per operator of `model`, and how they were matched."""
    ms: list[float | None] = [None] * len(model.ops)
    at = {o.index: j for j, o in enumerate(model.ops)}
    for r in rows:
        if r.node is not None and not r.kernel and r.node in at:
            ms[at[r.node]] = r.avg_ms
    inner = [r for r in rows if r.delegated]
    fused = getattr(getattr(model, "decomposition", None), "fused", frozenset())
    # Which folded operators have no row of their own: all of them (the delegate removed each
    # node), only the PADs (XNNPACK's "fuse Constant Pad" is a graph rewrite; a swish MUL
    # folded at int8 may still print a row), or none; the first that matches one to one.
    pads = frozenset(o.index for o in model.ops if o.index in fused and o.op == "PAD")
    for absent in dict.fromkeys((frozenset(fused), pads, frozenset())):
        left = [j for j, v in enumerate(ms) if v is None and model.ops[j].index not in absent]
        if len(left) == len(inner):
            break
    if not inner:
        note = "interpreter nodes, by node index"
    elif len(inner) == len(left):
        for j, r in zip(left, inner):
            ms[j] = r.avg_ms
        # a folded operator without a row: its time is in the operator it was folded into
        ms = [0.0 if v is None and model.ops[j].index in absent else v for j, v in enumerate(ms)]
        note = f"{len(inner)} delegate operators, in graph order"
    else:
        note = (f"{len(inner)} delegate operators for {len(left)} TFLite operators (the delegate "
                f"fused or split some): not matched one to one")  # fmt: skip
    return ms, note


def in_network(model: ModelOps, result: BenchmarkResult) -> InNetwork:
    rows = operator_profile(result)
    ms, note = match_rows(model, rows)
    return InNetwork(ms, rows, note, result.inference_avg_us / 1e3)
