"""The Python API: predicted latency for notebooks and other NAS code bases.

    import latbench
    latbench.predict("arch.json", device="host")          # ms, one network
    p = latbench.Predictor(device="host")                 # load once, predict many
    p.predict(["a.json", arch, "0-1-0-0-1-1-...", ...])   # paths, Arch, dicts, tokens
    p.predict_tokens(token_matrix)                        # vectorised over a search space

    # few-shot: fit on networks timed elsewhere, features from the host LUT; no file written
    p = latbench.Predictor.fit([("0-1-...", 12.3), ...], prior="host", precision="int8")
    p.save("phone.predictor.json"); latbench.Predictor.load("phone.predictor.json")

It loads exactly what `latbench predict` and `latbench search` load (the
device's predictor file, checked against its LUT), so numbers agree with the
command line.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Sequence, Union

import numpy as np

from latbench.errors import InputError
from latbench.nets.arch import Arch
from latbench.nets.load import arch_from_dict, load_arch

NetworkLike = Union[str, Path, Arch, dict, Sequence[int]]
PRECISIONS = ("fp32", "int8")


class Predictor:
    """One device's latency predictor, loaded once (see the module docstring)."""

    def __init__(
        self,
        device: str = "host",
        precision: str = "fp32",
        space: str | None = None,
        lut_dir: str | Path = "lut",
        method: str | None = None,
    ):
        """The device's predictor file in lut_dir (space: the one it has a file for, else
        the one its LUT names; give it only to choose among several)."""
        from latbench.nets.spaces import get_space
        from latbench.predictors import load_predictor
        from latbench.predictors.model import space_for

        if precision not in PRECISIONS:
            raise InputError(f"must be one of {PRECISIONS}, got {precision!r}", "precision")
        self.device, self.precision = device, precision
        space = space_for(space, Path(lut_dir), device, precision, fallback="mnasnet")
        self.space = get_space(space)
        self.model = load_predictor(device, precision, Path(lut_dir), space, method=method)
        self._fit = None

    @classmethod
    def _wrap(cls, model, space: str, precision: str, fit=None) -> "Predictor":
        from latbench.nets.spaces import get_space

        self = cls.__new__(cls)
        self.device, self.precision = model.device, precision
        self.space = get_space(space)
        self.model, self._fit = model, fit
        return self

    @classmethod
    def fit(
        cls,
        measurements,
        prior: str = "host",
        space: str | None = None,
        precision: str = "fp32",
        prior_precision: str | None = None,
        device: str | None = None,
        lut_dir: str | Path = "lut",
    ) -> "Predictor":
        """Fit on whole networks timed on the target device, features from `prior`'s LUT
        (of `prior_precision`, default `precision`), in memory: nothing is written.

        `measurements`: a `network,latency_ms` CSV path, a DataFrame with those columns, or
        a list of (network, ms); a network is tokens, an arch.json path, an Arch or a dict.
        The space comes from the prior's LUT (give `space` only to choose). The default
        predictor is the method with the lowest out-of-sample error on the measurements
        (`provenance["selection"]`); `save` writes the file predict and search load.
        Exactly what `latbench calibrate --measurements` runs."""
        from latbench.calibration.calibrate import fit_measurements
        from latbench.predictors import LatencyModel

        if precision not in PRECISIONS:
            raise InputError(f"must be one of {PRECISIONS}, got {precision!r}", "precision")
        f = fit_measurements(
            measurements,
            prior=prior,
            space=space,
            precision=precision,
            prior_precision=prior_precision,
            device=device,
            lut_dir=Path(lut_dir),
        )
        doc = {"calibration": f.calibration, "selection": f.selection, "default": f.default}
        model = LatencyModel(
            f.table,
            f.fitted[f.default],
            f.default,
            f.device,
            doc=doc,
            fitted=f.fitted,
            reason=f.selection["reason"],
        )
        return cls._wrap(model, f.space, precision, f)

    def save(self, path: str | Path) -> Path:
        """Write the fitted predictors as a predictor file (`latbench predict --predictor`)."""
        if self._fit is None:
            raise InputError(
                f"this predictor was loaded from {self.model.path or 'its LUT'}; only one made "
                f"by Predictor.fit is saved (copy the file instead)",
                "save",
            )
        return self._fit.save(Path(path))

    @classmethod
    def load(
        cls, path: str | Path, lut_dir: str | Path = "lut", method: str | None = None
    ) -> "Predictor":
        """A predictor file anywhere (its device, space and precision are in it), checked
        against the LUT it names in lut_dir."""
        from latbench.predictors import load_predictor_file

        model = load_predictor_file(Path(path), Path(lut_dir), method)
        doc = model.doc or {}
        return cls._wrap(model, doc["space"], doc["precision"])

    def methods(self) -> dict[str, float]:
        """Out-of-sample MAPE (%) of every method on the calibration networks (calibrate's
        judgement); {} when there were too few networks to judge."""
        return dict(((self.model.doc or {}).get("selection") or {}).get("mape") or {})

    @property
    def kind(self) -> str:
        """Which predictor answers: the file's default (calibrate's choice: "scaled", "lut",
        ...), the method asked for, or "lut" (plain LUT sum) with no predictor file."""
        return self.model.name

    @property
    def reason(self) -> str:
        """Why that predictor answers (calibrate's judgement, validate's verdict, or asked)."""
        return self.model.reason

    @property
    def provenance(self) -> dict[str, Any]:
        """The predictor file's path, calibration and LUT identity (what a paper should cite)."""
        doc = self.model.doc or {}
        return {
            "file": str(self.model.path) if self.model.path else None,
            "calibration": {k: v for k, v in doc.get("calibration", {}).items() if k != "digests"},
            **self.model.identity(),
        }

    def to_arch(self, net: NetworkLike) -> Arch:
        """A path to arch.json, an Arch, an arch dict, or the space's tokens ("0-1-..." or ints)."""
        if isinstance(net, Arch):
            return net
        if isinstance(net, dict):
            return arch_from_dict(net)
        if isinstance(net, Path) or (isinstance(net, str) and net.endswith(".json")):
            return load_arch(Path(net))
        if isinstance(net, str):
            try:
                net = [int(t) for t in net.replace(",", "-").split("-") if t.strip()]
            except ValueError:
                raise InputError(
                    f"{net!r} is neither an arch.json path nor tokens", "network"
                ) from None
        from latbench.nets.spaces import check_token_count

        tokens = [int(t) for t in net]
        check_token_count(self.space, tokens, "tokens")
        self.space.check_tokens(tokens, "tokens")  # names the bad position, not numpy's error
        return self.space.decode(tokens)

    def predict(self, nets: NetworkLike | Sequence[NetworkLike]) -> float | np.ndarray:
        """Latency in ms: a float for one network, an array for a list of them."""
        one = isinstance(nets, (str, Path, Arch, dict)) or (
            len(nets) > 0 and all(isinstance(t, (int, np.integer)) for t in nets)
        )
        archs = [self.to_arch(nets)] if one else [self.to_arch(n) for n in nets]
        out = self.model.predict(archs)
        return float(out[0]) if one else out

    def predict_tokens(self, tokens: np.ndarray) -> np.ndarray:
        """Vectorised over an (N, tokens) matrix of the space; NaN where a layer failed."""
        t = np.asarray(tokens)
        self.space.check_token_matrix(t)  # names the bad row, not numpy's indexing error
        return self.model.predict_tokens(self.space, t)

    def breakdown(self, net: NetworkLike) -> list[tuple[str, float]]:
        """(layer key, LUT ms) per layer, in network order (uncalibrated)."""
        return [(s.key, ms) for s, ms in self.model.breakdown(self.to_arch(net))]

    def __repr__(self) -> str:
        return (
            f"latbench.Predictor(device={self.device!r}, precision={self.precision!r}, "
            f"space={self.space.name!r}, kind={self.kind!r})"
        )


def predict(
    net: NetworkLike,
    device: str = "host",
    precision: str = "fp32",
    space: str | None = None,
    lut_dir: str | Path = "lut",
) -> float:
    """Predicted latency (ms) of one network on a device; see Predictor to predict many."""
    return Predictor(device, precision, space, lut_dir).predict(net)


def measure(
    model: Any,
    device: str = "host",
    precision: str = "fp32",
    bursts: int = 3,
    input_shape: Sequence[int] | None = None,
    signature: str | None = None,
    lut_dir: str | Path = "lut",
    progress: bool = False,
):
    """Time a model end to end on a device, exactly as `latbench measure` does; returns its
    `Measurement` (median_ms, p10/p90, runs, the CI over bursts, the conditions in `extra`).

    `model`: an arch.json path or dict / Arch, a .tflite / .keras / .h5 path or SavedModel
    folder, the bytes of a .tflite, or an in-memory Keras model (converted here, with the
    project's recipe, at `precision`).
    """
    import tempfile

    from latbench.build.models import ModelFile, keras_tflite, prepare_model
    from latbench.devices import load_profile, open_device
    from latbench.profiling.sentinel import measure_watched

    if precision not in PRECISIONS:
        raise InputError(f"{precision!r} is not one of {PRECISIONS}", "precision")
    shape = tuple(int(d) for d in input_shape) if input_shape is not None else None
    if isinstance(model, (bytes, bytearray)):
        with tempfile.TemporaryDirectory() as tmp:
            path = Path(tmp) / "model.tflite"
            path.write_bytes(bytes(model))
            target: Any = prepare_model(path, precision, shape, signature)
    elif isinstance(model, Arch) or isinstance(model, dict):
        target = model if isinstance(model, Arch) else arch_from_dict(model)
    elif isinstance(model, (str, Path)):
        p = Path(model)
        target = (
            load_arch(p) if p.suffix == ".json" else prepare_model(p, precision, shape, signature)
        )
    elif hasattr(model, "inputs") and hasattr(model, "to_json"):  # a Keras model
        res = keras_tflite(model, precision, shape)
        target = ModelFile(
            Path(res["path"]), res["name"], "keras", "in memory", precision, res["inputs"],
            res["extra"],
        )  # fmt: skip
    else:
        raise InputError(
            f"cannot measure a {type(model).__name__}: give a path, .tflite bytes, an Arch or "
            f"a Keras model",
            "model",
        )
    with open_device(load_profile(device)) as dev:
        return measure_watched(dev, target, precision, Path(lut_dir), progress, bursts)
