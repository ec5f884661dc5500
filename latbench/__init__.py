"""latbench: measured-latency, platform-aware NAS for mobile CNNs.

Python API (imports stay light until called): latbench.predict(net, device=...)
and latbench.Predictor(device=...); see latbench/api.py.
"""

from latbench._version import __version__

__all__ = ["Predictor", "__version__", "predict"]


def predict(
    net, device: str = "host", precision: str = "fp32", space: str | None = None, lut_dir="lut"
) -> float:
    """Predicted latency (ms) of one network (arch.json path, Arch, dict or tokens)."""
    from latbench.api import predict as _predict

    return _predict(net, device, precision, space, lut_dir)


def __getattr__(name: str):
    if name == "Predictor":
        from latbench.api import Predictor

        return Predictor
    raise AttributeError(f"module 'latbench' has no attribute {name!r}")
