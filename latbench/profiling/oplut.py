"""The operator LUT: one row per TFLite operator key, for any model a user brings.

`latbench profile --model MODEL...` prepares each model (`build/models.prepare_model`: a
.tflite as it is, Keras and SavedModel inputs converted), decomposes it into its operators in
a worker process (`build/tflite_ops.decompose_files`), and times each distinct operator once
as a single-operator model (`build/tflite_ops.extract_op`, cached under the conversion cache
by the hash of its key). Rows are deduplicated across models.

The file is LUTDIR/DEVICE_PRECISION.ops.csv (not matched by `find_luts`' layer pattern, and
its header says `table: "ops"`), with the layer LUT's header, fingerprint check, lock,
resume and crash-safe appends: the loop is `profiling/layers.profile` with the `OPS` table,
not a copy of it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

from latbench.build.tflite_ops import Decomposition, OpSpec, op_path
from latbench.errors import InputError
from latbench.profiling.layers import Summary, Table, profile
from latbench.profiling.lut import ADDED_COLUMNS, LUT, STAT_COLUMNS, item_columns

OP_COLUMNS = [
    "key", *item_columns(OpSpec), "status", *STAT_COLUMNS, "error", "measured_at", *ADDED_COLUMNS
]  # fmt: skip


class OpLUT(LUT):
    """A LUT whose rows are TFLite operators (`OpSpec`) rather than latbench layers."""

    item_type = OpSpec
    columns = OP_COLUMNS
    optional = frozenset()
    unit = "op"


def op_lut_path(lut_dir: Path, device: str, _label: str, precision: str) -> Path:
    """LUTDIR/DEVICE_PRECISION.ops.csv; each part is checked, so it cannot leave LUTDIR."""
    from latbench.fileio import safe_name

    return Path(lut_dir) / (
        f"{safe_name(device, 'device')}_{safe_name(precision, 'precision')}.ops.csv"
    )


def _extract_worker(specs: list[OpSpec], batch_size: int) -> list:
    from latbench.profiling.opinputs import extract_to_cache

    return extract_to_cache(specs)


def _extracted(path: Path) -> bool:
    """A single-operator model is ready when its network inputs are beside it (an operator
    cached before they were saved is extracted again; one whose source model the built-in
    kernels cannot run is extracted again and timed on random inputs)."""
    from latbench.build.tflite_ops import inputs_path

    return path.exists() and inputs_path(path).exists()


OPS = Table(OpLUT, op_lut_path, op_path, _extract_worker, "ops", _extracted)


@dataclass
class ModelOps:
    """One model given to `profile --model`: its cached .tflite and its operators."""

    name: str
    source: str
    tflite: Path
    decomposition: Decomposition
    extra: dict[str, Any] = field(default_factory=dict)
    path: Path | None = None  # the .tflite to time whole (ModelFile-like: with `name`)

    @property
    def ops(self) -> list[OpSpec]:
        return self.decomposition.ops

    def refused_line(self) -> str:
        r = self.decomposition.refused
        return ", ".join(f"{n} ({why})" for n, why in sorted(r.items()))

    def to_dict(self) -> dict[str, Any]:
        return {
            "model": self.source,
            "name": self.name,
            "tflite": str(self.tflite),
            "ops": len(self.ops),
            "distinct_ops": len({o.key for o in self.ops}),
            "refused": self.decomposition.refused,
            "precision": self.decomposition.precision,
            "subgraphs": self.decomposition.subgraphs,
        }


def prepare_models(
    paths: Sequence[Path],
    precision: str,
    input_shape: Sequence[int] | None = None,
    signature: str | None = None,
) -> list[ModelOps]:
    """Every model ready and decomposed, or an InputError naming the first that is not
    (nothing is measured before every model given has been read)."""
    from latbench.build.models import model_kind, prepare_model
    from latbench.nets.load import load_arch

    prepared = []
    for p in map(Path, paths):
        if model_kind(p) == "arch":  # latbench's own network, built and converted as profile does
            prepared.append(arch_models([load_arch(p)], precision, sources=[str(p)])[0])
        else:
            m = prepare_model(p, precision, input_shape, signature)
            prepared.append((m.name, m.source, m.path, dict(m.extra)))
    return decomposed_models(prepared, precision)


def arch_models(
    archs: Sequence, precision: str, workers: int = 1, progress: bool = False,
    sources: Sequence[str] | None = None,
) -> list[tuple[str, str, Path, dict]]:  # fmt: skip
    """(name, source, .tflite, extra) of latbench networks, converted (cached) in workers."""
    from latbench.profiling.networks import convert_archs

    out = []
    for i, (a, (tfl, err)) in enumerate(
        zip(archs, convert_archs(archs, precision, workers, progress))
    ):
        src = sources[i] if sources else f"arch:{a.name}"
        if tfl is None:
            raise InputError(f"{src}: cannot convert {a.name}: {err}", "MODEL")
        out.append((a.name, src, Path(tfl), {}))
    return out


def decomposed_models(
    prepared: Sequence[tuple[str, str, Path, dict]], precision: str
) -> list[ModelOps]:
    """Each prepared model's operators (decomposed in a worker), or the first refusal."""
    from latbench.build.tflite_ops import decompose_files

    found = decompose_files([p for _, _, p, _ in prepared])
    out = []
    for (name, source, path, extra), d in zip(prepared, found):
        if isinstance(d, str):
            raise InputError(f"{source}: {d}", "MODEL")
        if d.precision != precision:
            raise InputError(
                f"{source} holds {d.precision} operators; profile it with --precision "
                f"{d.precision} (an operator LUT holds one precision)",
                "--precision",
            )
        out.append(ModelOps(name, source, path, d, extra, path))
    return out


def models_of_archs(
    archs: Sequence, precision: str, workers: int = 2, progress: bool = True
) -> list[ModelOps]:
    """latbench networks as ModelOps: converted in `workers` processes, then decomposed."""
    return decomposed_models(arch_models(archs, precision, workers, progress), precision)


def unique_ops(models: Sequence[ModelOps]) -> list[OpSpec]:
    """Each operator key once, in order of first appearance across the models."""
    seen: dict[str, OpSpec] = {}
    for m in models:
        for o in m.ops:
            seen.setdefault(o.key, o)
    return list(seen.values())


def profile_ops(
    devices,
    models: Sequence[ModelOps],
    precision: str,
    lut_dir: Path,
    workers: int = 2,
    retry_failed: bool = False,
    progress: bool = True,
    split: bool = False,
    limit: int | None = None,
) -> list[Summary]:
    """Time every distinct operator of `models` on each device into its operator LUT."""
    specs = unique_ops(models)
    if limit:
        specs = specs[:limit]
    return profile(
        devices, specs, "ops", precision, lut_dir, workers=workers, retry_failed=retry_failed,
        progress=progress, split=split, reuse=False, table=OPS,
    )  # fmt: skip


def load_op_lut(lut_dir: Path, device: str, precision: str) -> OpLUT:
    """The device's operator LUT, or an InputError with the command that makes it."""
    path = op_lut_path(lut_dir, device, "", precision)
    if not path.exists():
        raise InputError(
            f"no operator LUT {path}; make it with: latbench profile --model MODEL "
            f"--device {device} --precision {precision} --lut-dir {lut_dir}",
            "--lut-dir",
        )
    return OpLUT.load(path)
