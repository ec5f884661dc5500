"""What the stand-in benchmark_model prints for `--enable_op_profiling=true` (classic tool).

The real tool's ProfileSummarizer prints, after the timings, "Operator-wise Profiling Info for
Regular Benchmark Runs:" and StatsCalculator tables ("Run Order", "Top by Computation Time",
"Summary by node type"): tab-separated columns [node type] [first] [avg ms] [%] [cdf%]
[mem KB] [times called] [Name]. A node the interpreter runs is named by its output tensors and
node index (`[a, b]:3`, type = the builtin name); with XNNPACK the delegate kernel is one node
(`TfLiteXNNPackDelegate`) and the operators XNNPACK ran inside it follow as
`Delegate/NAME:i` rows, their type NAME (DELEGATE_PROFILED_OPERATOR_INVOKE_EVENT), in run
order.

LiteRT's Python interpreter has no profiler, so each operator's in-network time is measured
here as the difference between the graph cut after it and the graph cut before it
(`build/tflite_ops.prefix_model`), each timed on the thread-CPU clock: a real marginal cost
inside the network (clipped at 0 where noise makes it negative), not a per-kernel timer. The
XNNPACK operator names come from a small table in the style of XNNPACK's
`xnn_operator_type_to_string`; latbench reads delegate rows by their order, not their names.
"""

from __future__ import annotations

import time
from pathlib import Path

REPEATS = 60  # invocations per prefix (the median is taken)
_XNN = {
    "CONV_2D": "Convolution (NHWC, {t}) IGEMM",
    "DEPTHWISE_CONV_2D": "Convolution (NHWC, {t}) DWConv",
    "FULLY_CONNECTED": "Fully Connected (NC, {t}) GEMM",
    "ADD": "Add (ND, {t})",
    "MUL": "Multiply (ND, {t})",
    "MEAN": "Mean (ND, {t})",
    "AVERAGE_POOL_2D": "Average Pooling (NHWC, {t})",
    "MAX_POOL_2D": "Max Pooling (NHWC, {t})",
    "HARD_SWISH": "HardSwish (NC, {t})",
    "LOGISTIC": "Sigmoid (NC, {t})",
    "SOFTMAX": "SoftMax (NC, {t})",
    "RESHAPE": "Copy (NC, X32)",
    "CONCATENATION": "Concatenate (ND, X32)",
    "PAD": "Constant Pad (ND, X32)",
    "QUANTIZE": "Convert (NC, F32, QS8)",
    "DEQUANTIZE": "Convert (NC, QS8, F32)",
}


def _median_us(data: bytes, threads: int) -> float:
    import numpy as np

    from latbench.devices.litert import interpreter_class

    Interpreter, _, _ = interpreter_class()
    it = Interpreter(model_content=data, num_threads=threads if threads > 0 else None)
    it.allocate_tensors()
    for d in it.get_input_details():
        it.set_tensor(d["index"], np.zeros(d["shape"], d["dtype"]))
    for _ in range(5):
        it.invoke()
    ts = []
    for _ in range(REPEATS):
        t = time.thread_time_ns()
        it.invoke()
        ts.append(time.thread_time_ns() - t)
    return float(np.median(ts)) / 1e3


def _row(
    node_type: str, first: float, avg: float, pct: float, cdf: float, n: int, name: str
) -> str:
    return (f"\t{node_type:>36}\t{first:9.3f}\t{avg:9.3f}\t{pct:7.3f}%\t{cdf:7.3f}%\t"
            f"{0.0:10.3f}\t{n:14d}\t{name}")  # fmt: skip


def _header(first_col: str = "[node type]") -> str:
    return (f"\t{first_col:>36}\t{'[first]':>9}\t{'[avg ms]':>9}\t{'[%]':>8}\t{'[cdf%]':>8}\t"
            f"{'[mem KB]':>10}\t{'[times called]':>14}\t[Name]")  # fmt: skip


def print_op_profile(graph: Path, threads: int, xnnpack: bool, runs: int, out) -> None:
    """The operator tables for `graph`, as the classic tool prints them (module docstring)."""
    from latbench.build.tflite_ops import load_model, op_name, prefix_model

    model = load_model(graph.read_bytes())
    sg = model.subgraphs[0]
    ops = list(sg.operators or [])
    t = [_median_us(prefix_model(model, k), threads) for k in range(len(ops) + 1)]
    per_op = [max(0.0, t[k + 1] - t[k]) / 1e3 for k in range(len(ops))]  # ms
    names = [op_name(model, op)[0] for op in ops]
    tname = lambda i: sg.tensors[i].name.decode("utf-8", "replace")  # noqa: E731
    int8 = any(sg.tensors[int(i)].type == 9 for op in ops for i in op.inputs if i >= 0)
    total = sum(per_op) or 1.0
    rows = []  # (type, ms, name)
    if xnnpack:
        from latbench.build.tflite_ops import fused_ops

        outs = ", ".join(tname(int(i)) for i in sg.outputs)
        rows.append(("TfLiteXNNPackDelegate", sum(per_op), f"[{outs}]:{len(ops)}"))
        fused = fused_ops(model, "int8" if int8 else "fp32", rules=("pad-into-conv",))
        for i in sorted(fused):  # XNNPACK folds these PADs into the next convolution
            per_op[i + 1] += per_op[i]
        kept = [(n, ms) for i, (n, ms) in enumerate(zip(names, per_op)) if i not in fused]
        for i, (n, ms) in enumerate(kept):
            xnn = _XNN.get(n, n.replace("_", " ").title() + " (ND, {t})").format(
                t="QS8" if int8 else "F32"
            )
            rows.append((xnn, ms, f"Delegate/{xnn}:{i}"))
    else:
        for i, (n, ms, op) in enumerate(zip(names, per_op, ops)):
            rows.append((n, ms, f"[{', '.join(tname(int(j)) for j in op.outputs)}]:{i}"))
    bar = "=" * 30
    lines = ["Operator-wise Profiling Info for Regular Benchmark Runs:",
             f"{bar} Run Order {bar}", _header()]  # fmt: skip
    cdf = 0.0
    for typ, ms, name in rows:
        pct = 100 * ms / total if not name.startswith("[") or not xnnpack else 100.0
        cdf = min(100.0, cdf + (pct if not (xnnpack and name.startswith("[")) else 0.0))
        lines.append(_row(typ, ms, ms, pct, cdf, 1, name))
    lines += ["", f"{bar} Top by Computation Time {bar}",
              _header()]  # fmt: skip
    cdf = 0.0
    for typ, ms, name in sorted(rows, key=lambda r: -r[1])[:10]:
        pct = 100 * ms / total
        cdf = min(100.0, cdf + pct)
        lines.append(_row(typ, ms, ms, pct, cdf, 1, name))
    lines += ["", f"{bar} Summary by node type {bar}",
              f"\t{'[Node type]':>36}\t{'[count]':>9}\t{'[avg ms]':>9}\t{'[avg %]':>10}\t"
              f"{'[cdf %]':>10}\t{'[mem KB]':>10}\t{'[times called]':>14}"]  # fmt: skip
    by: dict[str, list[float]] = {}
    for typ, ms, _ in rows:
        by.setdefault(typ, []).append(ms)
    cdf = 0.0
    for typ, v in sorted(by.items(), key=lambda kv: -sum(kv[1])):
        pct = 100 * sum(v) / total
        cdf = min(100.0, cdf + pct)
        lines.append(f"\t{typ:>36}\t{len(v):9d}\t{sum(v):9.3f}\t{pct:9.3f}%\t{cdf:9.3f}%\t"
                     f"{0.0:10.3f}\t{len(v):14d}")  # fmt: skip
    lines += ["", f"Timings (microseconds): count={runs} first={t[-1]:.0f} curr={t[-1]:.0f} "
              f"min={t[-1]:.0f} max={t[-1]:.0f} avg={t[-1]:.0f} std=0", "Memory (bytes): count=0",
              f"{len(rows)} nodes observed", ""]  # fmt: skip
    out.info(lines[0])
    out.raw("\n".join(lines[1:]) + "\n")
