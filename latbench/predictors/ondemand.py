"""A latency model that grows its LUT: layers it has never seen are profiled when asked.

`predict --profile-missing`, NetAdapt and compound scaling all ask for networks
whose layers (new filter counts, new resolutions) the space LUT does not hold.
`OnDemandLatency` looks every layer up; the missing ones are measured on the
device in one batch (the same `profile` path as `latbench profile --arch`,
appended to `LUTDIR/DEVICE_ondemand_PRECISION.csv`, resumable like any LUT),
then the device's predictor is reloaded so it sees the new rows.
"""

from __future__ import annotations

from pathlib import Path
from typing import Sequence

import numpy as np

from latbench.nets.arch import Arch, LayerSpec, unique_specs

ONDEMAND_LUT = "ondemand"  # the space name of the LUT file that on-demand rows go to


def measure_layers(
    device,
    specs: Sequence[LayerSpec],
    lut_name: str,
    precision: str,
    lut_dir: Path,
    progress: bool = True,
) -> None:
    """Profile `specs` into LUTDIR/DEVICE_LUTNAME_PRECISION.csv, reusing rows the device's
    other LUT files hold; a profile stopped by the device is a LatbenchError saying how to
    resume (every row measured so far is kept)."""
    from latbench.errors import LatbenchError
    from latbench.profiling.layers import profile as run_profile

    summ = run_profile([device], specs, lut_name, precision, lut_dir, progress=progress, reuse=True)
    if summ and summ[0].stopped:
        exc = LatbenchError(f"profiling stopped: {summ[0].stopped}")
        exc.hint = (
            "the layers measured so far are in the LUT; reconnect the device and run "
            "the same command again to resume"
        )
        raise exc


class OnDemandLatency:
    """predict(archs) in ms on one device, profiling missing layers first.

    The device is opened lazily (only when something is missing or measured)
    and closed by `close()` / the context manager.
    """

    def __init__(
        self,
        device: str,
        precision: str = "fp32",
        lut_dir: Path = Path("lut"),
        progress: bool = True,
        log=print,
        space: str = "mnasnet",
    ):
        from latbench.devices import load_profile

        self.profile_ = load_profile(device)  # unknown device: InputError listing the known ones
        # a profile given by its path (`--device dev.toml`): its name names the LUT files
        self.device_name = self.profile_.name
        self.precision = precision
        self.lut_dir = Path(lut_dir)
        self.progress = progress
        self.log = log
        self.space = space  # whose calibrated predictor file applies (if any)
        self._device = None
        self._model = None
        self.profiled = 0  # layers measured on demand by this object

    # -- the device ----------------------------------------------------------
    def device(self):
        if self._device is None:
            from latbench.devices import open_device

            self._device = open_device(self.profile_)
            self._device.__enter__()
        return self._device

    def close(self) -> None:
        if self._device is not None:
            self._device.__exit__(None, None, None)
            self._device = None

    def __enter__(self) -> "OnDemandLatency":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    # -- the model -----------------------------------------------------------
    def model(self):
        """The device's latency model (calibrated regression, else the LUT sum)."""
        if self._model is None:
            from latbench.predictors import load_predictor
            from latbench.profiling.lut import find_luts

            if not find_luts(self.lut_dir, self.device_name, self.precision):
                return None  # no LUT at all yet: the first batch of layers starts one
            self._model = load_predictor(self.device_name, self.precision, self.lut_dir, self.space)
        return self._model

    def missing(self, archs: Sequence[Arch]) -> list[str]:
        model = self.model()
        if model is None:
            return sorted({s.key for s in unique_specs(archs, self.precision)})
        return model.table.missing(archs)

    def ensure(self, archs: Sequence[Arch]) -> int:
        """Profile every layer of `archs` the LUT lacks; returns how many were measured."""
        missing = set(self.missing(archs))
        if not missing:
            return 0
        specs = [s for s in unique_specs(archs, self.precision) if s.key in missing]
        self.log(
            f"profiling {len(specs)} new layer(s) on {self.device_name} "
            f"(-> {self.lut_dir}/{self.device_name}_{ONDEMAND_LUT}_{self.precision}.csv)"
        )
        measure_layers(
            self.device(), specs, ONDEMAND_LUT, self.precision, self.lut_dir, self.progress
        )
        self._model = None  # reload: the table now holds the new rows
        self.profiled += len(specs)
        return len(specs)

    def predict(self, archs: Sequence[Arch]) -> np.ndarray:
        """Predicted latency (ms) of each network, measuring unseen layers first."""
        archs = list(archs)
        if not archs:
            return np.zeros(0)
        self.ensure(archs)
        return np.asarray(self.model().predict(archs), dtype=float)

    def predictor_name(self) -> str:
        model = self.model()
        return model.name if model is not None else "lut"

    def measure(self, arch: Arch) -> float:
        """The whole network timed end to end on the device (median ms)."""
        from latbench.profiling.networks import measure_arch

        return float(measure_arch(self.device(), arch, self.precision).median_ms)
