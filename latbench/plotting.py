"""matplotlib for files only: every PNG latbench writes gets pyplot from here (Agg backend,
so no display is needed and none is touched) and is saved by `save_figure` (crash-safe, one
line on a full disk or a read-only folder, like every other artifact)."""

from __future__ import annotations


def pyplot():
    """matplotlib.pyplot on the Agg backend (imported on first use: matplotlib is slow to load)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def save_figure(fig, path, dpi: int = 110) -> None:
    """Render `fig` to PNG in memory, close it, and write it with `fileio.write_atomic`: a
    kill, a full disk or a read-only folder never leaves half a picture, and a failure is one
    line (WriteFailed) naming the file, with the old picture (if any) unchanged."""
    import io
    from pathlib import Path

    from latbench.fileio import write_atomic

    buf = io.BytesIO()
    try:
        fig.savefig(buf, format="png", dpi=dpi)
    finally:
        pyplot().close(fig)
    write_atomic(Path(path), buf.getvalue())
