"""latbench: measured-latency, platform-aware NAS for mobile CNNs.

Python API (imports stay light until called): latbench.predict(net, device=...),
latbench.Predictor(device=...) and latbench.measure(model, device=...); see latbench/api.py.
"""

from latbench._version import __version__

__all__ = ["Predictor", "__version__", "measure", "predict"]


def predict(
    net, device: str = "host", precision: str = "fp32", space: str | None = None, lut_dir="lut"
) -> float:
    """Predicted latency (ms) of one network (arch.json path, Arch, dict or tokens)."""
    from latbench.api import predict as _predict

    return _predict(net, device, precision, space, lut_dir)


def measure(model, device: str = "host", precision: str = "fp32", **kw):
    """Time a model end to end on a device (arch.json, .tflite, Keras file or model, bytes);
    returns its Measurement. See latbench.api.measure."""
    from latbench.api import measure as _measure

    return _measure(model, device, precision, **kw)


def __getattr__(name: str):
    if name == "Predictor":
        from latbench.api import Predictor

        return Predictor
    raise AttributeError(f"module 'latbench' has no attribute {name!r}")
