"""matplotlib for files only: every PNG latbench writes gets pyplot from here (Agg backend,
so no display is needed and none is touched)."""

from __future__ import annotations


def pyplot():
    """matplotlib.pyplot on the Agg backend (imported on first use: matplotlib is slow to load)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt
