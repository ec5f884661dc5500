"""One network's latency as a picture: per-layer LUT bars, predicted and measured totals.

Written by `latbench predict --png FILE` (with --compare, the measured
end-to-end median is drawn beside the prediction). matplotlib is imported
only here, inside the function.
"""

from __future__ import annotations

import io
from pathlib import Path
from typing import Sequence

from latbench.fileio import write_atomic
from latbench.nets.arch import LayerSpec


def _short(spec: LayerSpec) -> str:
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
    rows: Sequence[tuple[LayerSpec, float]],
    predicted_ms: float,
    predictor: str,
    measured_ms: float | None = None,
) -> None:
    """Horizontal bars (one per layer, in network order) and a totals panel."""
    from latbench.plotting import pyplot

    plt = pyplot()

    n = len(rows)
    fig, (ax, ax2) = plt.subplots(
        1, 2, figsize=(10, 1.2 + 0.22 * n), gridspec_kw={"width_ratios": [3, 1]}
    )
    ys = list(range(n))[::-1]
    ax.barh(ys, [ms for _, ms in rows], color="tab:blue")
    ax.set_yticks(ys, [f"{i:2d} {_short(s)}" for i, (s, _) in enumerate(rows)], fontsize=7)
    ax.set_xlabel("isolated-layer latency, LUT median (ms)")
    ax.set_xlim(0, max(ms for _, ms in rows) * 1.1 if rows else 1)
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
