"""One network's latency as a picture: per-unit LUT bars, predicted and measured totals.

Written by `latbench predict --png FILE`, for an arch.json (one bar per layer) and for any
model (one bar per TFLite operator, with its calibrated share beside its isolated time);
with --compare, the measured end-to-end median is drawn beside the prediction. matplotlib
is imported only here, inside the function.
"""

from __future__ import annotations

import io
from pathlib import Path
from typing import Sequence

from latbench.fileio import write_atomic
from latbench.nets.arch import LayerSpec


def layer_label(spec: LayerSpec) -> str:
    """A compact layer label: op, input size, kernel/stride/expansion, SE."""
    label = f"{spec.op} {spec.in_hw}x{spec.in_hw}x{spec.cin}>{spec.cout}"
    if spec.op in ("conv", "mbconv"):
        label += f" k{spec.kernel}s{spec.stride}"
    if spec.op == "mbconv":
        label += f" e{spec.expand:g}" + (" se" if spec.se else "")
    return label


def breakdown_png(
    path: Path,
    title: str,
    rows: Sequence[tuple[str, float]],
    predicted_ms: float,
    predictor: str,
    measured_ms: float | None = None,
    unit: str = "layer",
    predicted: Sequence[float] | None = None,
) -> None:
    """Horizontal bars (one per `unit`, in network order, labelled) and a totals panel;
    `predicted`: each unit's share of the prediction, drawn beside its isolated time."""
    from latbench.plotting import pyplot

    plt = pyplot()

    n = len(rows)
    per_row = 0.22 if n <= 80 else 0.11
    fig, (ax, ax2) = plt.subplots(
        1, 2, figsize=(10, 1.2 + per_row * n), gridspec_kw={"width_ratios": [3, 1]}
    )
    ys = list(range(n))[::-1]
    h = 0.8 if predicted is None else 0.4
    ax.barh(ys, [ms for _, ms in rows], height=h, color="tab:blue", label="isolated (LUT)")
    if predicted is not None:
        ax.barh([y - h for y in ys], predicted, height=h, color="tab:orange",
                label=f"share of the prediction [{predictor}]")  # fmt: skip
        ax.legend(loc="lower right", fontsize=7)
    ax.set_yticks(ys, [f"{i:2d} {label}" for i, (label, _) in enumerate(rows)],
                  fontsize=7 if n <= 80 else 4)  # fmt: skip
    ax.set_xlabel(f"isolated-{unit} latency, LUT median (ms)")
    top = max([ms for _, ms in rows] + list(predicted or []), default=1.0)
    ax.set_xlim(0, top * 1.1)
    ax.grid(axis="x", alpha=0.3)
    names = ["LUT sum", f"predicted\n[{predictor}]"]
    vals = [sum(ms for _, ms in rows), predicted_ms]
    colors = ["tab:blue", "tab:orange"]
    if measured_ms is not None:
        names.append("measured\nend to end")
        vals.append(measured_ms)
        colors.append("tab:green")
    ax2.bar(range(len(vals)), vals, color=colors)
    ax2.set_xticks(range(len(vals)), names, fontsize=8)
    ax2.set_ylim(0, max(vals) * 1.15)
    for i, v in enumerate(vals):
        ax2.text(i, v, f"{v:.3g}", ha="center", va="bottom", fontsize=8)
    ax2.set_ylabel("whole network (ms)")
    fig.suptitle(title)
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=100)
    plt.close(fig)
    write_atomic(Path(path), buf.getvalue())
