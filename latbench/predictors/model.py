"""What the rest of latbench uses: a device's LUT plus its predictor, loaded and checked.

load_predictor() finds `{device}_{space}_{precision}.predictor.json` in the LUT
directory, loads the LUT it names (the device's own, or the prior device's for
a few-shot predictor), refuses it if that LUT changed since, and returns a
LatencyModel; with no predictor file it falls back to the plain LUT sum of the
device's own LUT. predict, validate, the search and the Python API all go
through here, so they evaluate the same file.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Sequence

import numpy as np

from latbench.errors import InputError
from latbench.nets.arch import Arch, LayerSpec
from latbench.nets.spaces import SearchSpace
from latbench.predictors.base import Predictor
from latbench.predictors.features import LayerTable
from latbench.predictors.files import (
    check_against,
    file_sha256,
    load_predictors,
    method_in_use,
    predictor_path,
    read_doc,
)
from latbench.predictors.linear import LutSumPredictor
from latbench.predictors.space_table import SpaceTable
from latbench.profiling.lut import LUT, find_luts, load_luts


def lut_identity(lut: LUT) -> str:
    """Settings (protocol included) and every row's value, as one short hash."""
    return f"{lut.settings_identity()}-{lut.content_hash()}"


class LatencyModel:
    """predict(archs) and predict_tokens(space, tokens), in ms, for one device."""

    def __init__(
        self,
        table: LayerTable,
        predictor: Predictor,
        name: str,
        device: str | None = None,
        path: Path | None = None,
        doc: dict[str, Any] | None = None,
        fitted: dict[str, Predictor] | None = None,
        reason: str = "",
    ):
        self.table = table
        self.reason = reason  # why this predictor is the one in use (predict prints it)
        self.predictor = predictor
        self.fitted = fitted or {name: predictor}  # every predictor of the file, by name
        self.name = name  # which predictor is in use: "scaled", "lut", ...
        self.device = device or table.device
        self.path = path
        self.doc = doc
        self._spaces: dict[SearchSpace, SpaceTable] = {}

    def predict(self, archs: Sequence[Arch]) -> np.ndarray:
        return self.predictor.predict(self.table.features(archs))

    def breakdown(self, arch: Arch) -> list[tuple[LayerSpec, float]]:
        """Each layer's LUT time (uncalibrated), in network order."""
        return [(s, self.table.layer_ms(s)) for s in arch.layers(self.table.precision)]

    def out_of_range(self, archs: Sequence[Arch]) -> list[list[str]]:
        """Per network, what lies outside the range the predictor was calibrated on."""
        check = getattr(self.predictor, "check_range", None)
        if check is None:
            return [[] for _ in archs]
        return check(self.table.features(archs))

    def space_table(self, space: SearchSpace) -> SpaceTable:
        if space not in self._spaces:
            self._spaces[space] = SpaceTable(space, self.table)
        return self._spaces[space]

    def predict_tokens(self, space: SearchSpace, tokens: np.ndarray) -> np.ndarray:
        """Vectorised over an (N, tokens) matrix; NaN for networks that cannot run."""
        return self.predictor.predict(self.space_table(space).features(tokens))

    def identity(self) -> dict[str, Any]:
        """What a search records: predictor, its file's hash, and the LUT it runs on."""
        return {
            "predictor": self.name,
            "device": self.device,
            "lut_device": self.table.device,
            "lut_precision": self.table.precision,
            "lut": lut_identity(self.table.lut),
            "predictor_sha": file_sha256(self.path)[:16] if self.path else None,
        }


def lut_spaces(lut_dir: Path, device: str, precision: str) -> list[str]:
    """The search spaces (known ones) whose LUTs the device has: each file's header `space`."""
    from latbench import records
    from latbench.nets.spaces import SPACES

    out = []
    for p in find_luts(lut_dir, device, precision):
        try:
            with open(p, errors="replace") as f:
                meta, _ = records.parse_header([ln.rstrip("\n") for _, ln in zip(range(64), f)])
        except OSError:
            continue
        if meta.get("space") in SPACES and meta["space"] not in out:
            out.append(meta["space"])
    return out


def resolve_space(
    space: str | None,
    *,
    lut_dir: Path,
    device: str,
    precision: str,
    token_lengths: Sequence[int] = (),
    where: str = "--space",
) -> str:
    """The space asked for, else the one the device's LUT headers name (narrowed to those
    taking `token_lengths` tokens), else the only space taking them; InputError naming the
    candidates when that leaves none or several."""
    from latbench.nets.spaces import SPACES, get_space

    if space is not None:
        get_space(space)
        return space
    lengths = set(token_lengths)

    def fits(name: str) -> bool:
        return all(SPACES[name].num_tokens == n for n in lengths)

    named = lut_spaces(lut_dir, device, precision)
    cands = [s for s in named if fits(s)]
    if len(cands) == 1:
        return cands[0]
    told = f"networks of {'/'.join(map(str, sorted(lengths)))} tokens" if lengths else ""
    if cands:
        raise InputError(
            f"the {device} {precision} LUTs are of {' and '.join(cands)}"
            + (f", and {told} fit each" if told else "")
            + ": give --space",
            where,
        )
    fitting = [s for s in SPACES if fits(s)] if lengths else []
    if len(fitting) == 1 and not named:
        return fitting[0]
    luts = f"the {device} {precision} LUTs in {lut_dir}/ name " + (
        " and ".join(named) if named else "no space"
    )
    if fitting:
        raise InputError(
            f"{told} fit the {' or '.join(fitting)} space, but {luts}: give --space "
            f"{fitting[0]} (and the prior's LUT of that space)",
            where,
        )
    raise InputError(
        f"cannot tell the search space: {told + ' fit no space; ' if told else ''}{luts}; "
        f"give --space NAME (one of {', '.join(SPACES)})",
        where,
    )


def calibrated_spaces(lut_dir: Path, device: str, precision: str) -> list[str]:
    """The spaces the device has a predictor file for in lut_dir (exact file names)."""
    from latbench.nets.spaces import SPACES

    return [s for s in SPACES if predictor_path(lut_dir, device, s, precision).exists()]


def space_for(
    space: str | None, lut_dir: Path, device: str, precision: str, fallback: str | None = None
) -> str:
    """`space`, else the only space the device has a predictor file for, else the one its
    LUTs name (resolve_space), else `fallback` when given (a plain LUT sum needs no space);
    what predict, validate and latbench.Predictor use."""
    if space is None:
        have = calibrated_spaces(lut_dir, device, precision)
        if len(have) == 1:
            return have[0]
        if len(have) > 1:
            raise InputError(
                f"{device} has {precision} predictors for {' and '.join(have)} in {lut_dir}/: "
                f"give --space",
                "--space",
            )
    try:
        return resolve_space(space, lut_dir=lut_dir, device=device, precision=precision)
    except InputError:
        if space is not None or fallback is None:
            raise
        return fallback


def no_lut_error(
    device: str, precision: str, lut_dir: Path, device_arg: str | None = None
) -> InputError:
    """The error for a device with no LUT in lut_dir, with the commands that make one;
    device_arg: what --device takes for it (a profile file's path, where it was given so)."""
    arg = device_arg or device
    return InputError(
        f"no {precision} LUT for device {device!r} in {lut_dir}/; measure the "
        f"layers of your networks with: latbench profile --device {arg} "
        f"--arch ARCH.json --lut-dir {lut_dir} --precision {precision} (or "
        f"latbench predict ARCH.json --device {arg} --profile-missing --lut-dir {lut_dir}), "
        f"or a whole space: latbench profile --device {arg} --space mnasnet "
        f"--lut-dir {lut_dir} --precision {precision}"
    )


def load_table(device: str, precision: str = "fp32", lut_dir: Path = Path("lut")) -> LayerTable:
    paths = find_luts(lut_dir, device, precision)
    if not paths:
        from latbench.devices import known_profiles, load_profile
        from latbench.fileio import SAFE_NAME

        named = SAFE_NAME.fullmatch(device) and any(Path(lut_dir).glob(f"{device}_*"))
        if device not in known_profiles() and not named:
            load_profile(device)  # a typo: "unknown device 'hots'; known profiles: ..."
        raise no_lut_error(device, precision, lut_dir)
    lut = load_luts(paths)
    if lut.meta.get("precision") != precision:
        raise InputError(
            f"LUT {paths[0]} holds {lut.meta.get('precision')} measurements, not {precision}"
        )
    return LayerTable(lut, device, precision)


def load_predictor_file(
    path: Path, lut_dir: Path = Path("lut"), method: str | None = None
) -> LatencyModel:
    """A predictor file and the LUT it names, checked against each other.

    The predictor in use is `method` when given, else the file's default: calibrate's
    choice (its `selection`), or the LUT sum when validate found that choice worse than the
    LUT sum on held-out networks (its `verdict`)."""
    path = Path(path)
    doc = read_doc(path)
    rec = doc["lut"]
    table = load_table(rec["device"], rec.get("precision", doc["precision"]), lut_dir)
    check_against(doc, table.lut, path)
    fitted = load_predictors(doc, path)
    name, reason = method_in_use(doc, fitted, path, method)
    return LatencyModel(table, fitted[name], name, doc["device"], path, doc, fitted, reason)


def load_predictor(
    device_name: str,
    precision: str = "fp32",
    lut_dir: Path = Path("lut"),
    space: str = "mnasnet",
    require_calibrated: bool = False,
    method: str | None = None,
) -> LatencyModel:
    """The device's calibrated predictor (`method`: one of its file's methods by name), or
    the plain sum of its own LUT."""
    ppath = predictor_path(lut_dir, device_name, space, precision)
    if ppath.exists():
        model = load_predictor_file(ppath, lut_dir, method)
        doc = model.doc or {}
        if (doc.get("device"), doc.get("space"), doc.get("precision")) != (
            device_name,
            space,
            precision,
        ):
            raise InputError(
                f"{ppath} holds a predictor for {doc.get('device')} "
                f"{doc.get('space')} {doc.get('precision')}, not its file name's"
            )
        return model
    if require_calibrated:
        raise InputError(
            f"no calibrated predictor at {ppath}; run: latbench calibrate "
            f"--device {device_name} --space {space} --precision {precision}"
        )
    if method not in (None, "lut"):
        raise InputError(
            f"no calibrated predictor at {ppath}, so no {method!r}: only the LUT sum (lut)",
            "--predictor-method",
        )
    return LatencyModel(
        load_table(device_name, precision, lut_dir),
        LutSumPredictor(),
        "lut",
        reason="no calibrated predictor file: the plain sum of the LUT",
    )
