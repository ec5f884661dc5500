"""Options every command shares, declared once: device, precision, space, LUT folder, JSON,
progress, worker counts and the proxy recipe; plus JSON output and the measurement line.

Each option is a decorator (or a factory of one, where commands differ in a parameter name
or a default), so every command says the same thing the same way. Defaults that belong to a
configuration come from its dataclass (`ProxyRecipe`), never from a copy.
"""

from __future__ import annotations

import json
import math
from dataclasses import fields, replace
from pathlib import Path
from typing import Callable

import click

from latbench.proxy.recipe import ProxyRecipe

PRECISIONS = click.Choice(["fp32", "int8"])
PRECISION_HELP = "Numeric precision of the converted models (int8: full-integer quantized)."
DEVICE_HELP = "Device profile name (device_profiles/NAME.toml; `latbench devices` lists phones)."
LUT_DIR_HELP = "Folder of LUT and predictor files."
NO_PROGRESS_HELP = "No progress bars (they are shown only on a terminal anyway)."
JSON_HELP = "Machine-readable output on stdout (errors too)."
SPACE_HELP = "Search space (`latbench space --space NAME` describes one; tiny for a quick trial)."

Decorator = Callable[[Callable], Callable]


def space_choice() -> click.Choice:
    from latbench.nets.spaces import SPACES  # light: arch dataclasses only

    return click.Choice(list(SPACES))


def device_option(
    param: str = "device_name", multiple: bool = False, help_extra: str = ""
) -> Decorator:
    """--device NAME (default host); `multiple`: repeat it for several devices."""
    default = ("host",) if multiple else "host"
    return click.option(
        "--device",
        param,
        multiple=multiple,
        default=default,
        show_default=True,
        help=DEVICE_HELP + (" " + help_extra if help_extra else ""),
    )


def precision_option(f: Callable) -> Callable:
    return click.option(
        "--precision", type=PRECISIONS, default="fp32", show_default=True, help=PRECISION_HELP
    )(f)


def space_option(help_extra: str = "", default: str | None = "mnasnet") -> Decorator:
    """--space NAME, checked against the table of spaces."""
    return click.option(
        "--space",
        "space_name",
        type=space_choice(),
        default=default,
        show_default=default is not None,
        help=SPACE_HELP + (" " + help_extra if help_extra else ""),
    )


def lut_dir_option(f: Callable | None = None, *, help_extra: str = ""):
    """--lut-dir DIR (default lut); usable bare (`@lut_dir_option`) or with extra help."""

    def deco(g: Callable) -> Callable:
        return click.option(
            "--lut-dir",
            type=click.Path(file_okay=False, path_type=Path),
            default=Path("lut"),
            show_default=True,
            help=LUT_DIR_HELP + (" " + help_extra if help_extra else ""),
        )(g)

    return deco(f) if f is not None else deco


def predictor_method_option(f: Callable) -> Callable:
    """--predictor-method NAME: one method of the predictor file instead of its default."""
    return click.option(
        "--predictor-method",
        default=None,
        metavar="NAME",
        help="Use this method of the device's predictor file (lut: the plain LUT sum, scaled, "
        "regression, flops) instead of its default (calibrate's choice, or the LUT sum after "
        "validate found that choice worse).",
    )(f)


def model_files_option(help: str) -> Callable:
    """--model MODEL (repeatable): models a user brings, as profile and calibrate --ops take them."""
    return click.option(
        "--model",
        "model_files",
        multiple=True,
        type=click.Path(path_type=Path),
        metavar="MODEL",
        help=help,
    )


def model_input_options(f: Callable) -> Callable:
    """--input-shape and --signature: how to read a model a user brings (build/models.py)."""
    f = click.option(
        "--signature",
        metavar="NAME",
        help="A SavedModel / .tflite MODEL: the signature to use (default serving_default).",
    )(f)
    return click.option(
        "--input-shape",
        metavar="DIMS",
        help="A Keras or SavedModel MODEL: fix its input's dynamic dimensions, e.g. 1,224,224,3.",
    )(f)


def compare_lines(predicted: float, name: str, measured, lut_sum: float | None = None) -> None:
    """What `predict --compare` prints under the prediction: the measurement, its conditions
    warning, and the prediction's error (and the LUT sum's, for a layer-level prediction)."""
    med = measured.median_ms
    click.echo(f"measured end to end: {measurement_line(measured)}")
    if warning := conditions_warning(measured):
        click.echo(warning, err=True)
    tail = "" if lut_sum is None else f"   (LUT sum {100 * (lut_sum - med) / med:+.1f} %)"
    click.echo(
        f"predicted [{name}] {predicted:.3f} ms vs measured {med:.3f} ms: "
        f"{100 * (predicted - med) / med:+.1f} %{tail}"
    )


def json_option(f: Callable) -> Callable:
    return click.option("--json", "as_json", is_flag=True, help=JSON_HELP)(f)


def json_errors_option(f: Callable) -> Callable:
    """--json for commands whose results are JSON already: errors and Ctrl-C become JSON too."""
    return click.option(
        "--json",
        "as_json",
        is_flag=True,
        help="Errors and Ctrl-C as one JSON object on stdout too (results are JSON anyway).",
    )(f)


def no_progress_option(f: Callable) -> Callable:
    return click.option("--no-progress", is_flag=True, help=NO_PROGRESS_HELP)(f)


def converter_workers_option(f: Callable) -> Callable:
    """--workers N: processes that convert models to .tflite while the device times."""
    return click.option(
        "--workers",
        type=click.IntRange(1, 16),
        default=2,
        show_default=True,
        help="Conversion worker processes (timing stays in this process, one model at a time).",
    )(f)


def ray_options(f: Callable) -> Callable:
    """--ray-workers N / --ray-address A: fan work out over Ray (default: serial, no Ray)."""
    f = click.option(
        "--ray-address",
        default=None,
        help="Join an existing Ray cluster (e.g. auto, or HEAD:6379) instead of a local Ray.",
    )(f)
    return click.option(
        "--ray-workers",
        type=click.IntRange(1),
        default=None,
        help="Train each batch's children in parallel on a local Ray with N "
        "workers (started on demand; default: serial, no Ray).",
    )(f)


def evaluator_options(f: Callable) -> Callable:
    """--evaluator SPEC, --cpus-per-child N, --gpus-per-child N: the user's own evaluator and
    the resources each child's evaluation asks Ray for."""
    f = click.option(
        "--gpus-per-child",
        type=click.FloatRange(0),
        default=0,
        show_default=True,
        help="GPUs each child's evaluation asks Ray for (needs --ray-workers or --ray-address).",
    )(f)
    f = click.option(
        "--cpus-per-child",
        type=click.FloatRange(0, min_open=True),
        default=1,
        show_default=True,
        help="CPUs each child's evaluation asks Ray for.",
    )(f)
    return evaluator_option(f)


def evaluator_option(f: Callable) -> Callable:
    """--evaluator MODULE:FUNCTION (search, compare through the run, netadapt)."""
    return click.option(
        "--evaluator",
        default=None,
        metavar="MODULE:FUNCTION",
        help="Your own accuracy evaluator instead of the proxy trainer: a function of the "
        "sampled network (arch.json dict and a ready Keras model) returning an accuracy or "
        "a dict with 'accuracy' and extra metrics (docs/search.md). MODULE may be a "
        "FILE.py path.",
    )(f)


def dataset_options(f: Callable) -> Callable:
    """--dataset NAME and --data-dir DIR: the proxy task's images (search, netadapt, scale)."""
    f = click.option(
        "--data-dir", help="IDX folder for fashion_mnist, image folder, or tfds data_dir."
    )(f)
    return click.option(
        "--dataset",
        default="fashion_mnist",
        show_default=True,
        help="Proxy dataset: fashion_mnist, folder (with --data-dir), or a tensorflow-datasets "
        "name.",
    )(f)


# --proxy-NAME option -> (ProxyRecipe field, click type, help)
PROXY_OPTIONS: dict[str, tuple[str, object, str]] = {
    "resolution": (
        "resolution",
        click.IntRange(8),
        "Input size of the proxy training (images are resized to it).",
    ),
    "width": ("width", float, "Width multiplier of the proxy networks."),
    "min-map": (
        "min_map",
        click.IntRange(1),
        "Proxy strides: a stride-2 stage that would shrink the map below this runs at stride 1.",
    ),
    "train": ("train_images", click.IntRange(10), "Training images per proxy run."),
    "epochs": ("epochs", click.IntRange(1), "Epochs of proxy training per network."),
    "threads": (
        "threads",
        click.IntRange(0),
        "TensorFlow threads per trainer (0: TensorFlow's default pools). Part of the "
        "accuracy cache key: serial and Ray runs train with the same count.",
    ),
}


def proxy_options(
    defaults: ProxyRecipe,
    names: tuple[str, ...] = tuple(PROXY_OPTIONS),
    help_extra: dict[str, str] | None = None,
) -> Decorator:
    """--proxy-NAME options whose defaults are `defaults`' fields (a recipe, not a copy).

    The command receives them as `proxy_<field>` keyword arguments; `recipe_from` turns
    them back into a ProxyRecipe."""
    help_extra = help_extra or {}

    def deco(f: Callable) -> Callable:
        for name in reversed(names):
            field, kind, text = PROXY_OPTIONS[name]
            f = click.option(
                f"--proxy-{name}",
                f"proxy_{field}",
                type=kind,
                default=getattr(defaults, field),
                show_default=True,
                help=help_extra.get(name, text),
            )(f)
        return f

    return deco


def recipe_from(defaults: ProxyRecipe, kwargs: dict) -> ProxyRecipe:
    """`defaults` with every proxy_<field> keyword the command received (popped from kwargs)."""
    given = {
        f.name: kwargs.pop(f"proxy_{f.name}")
        for f in fields(ProxyRecipe)
        if f"proxy_{f.name}" in kwargs
    }
    return replace(defaults, **given)


def json_safe(x):
    """NaN and infinities (e.g. a rank correlation of two networks) become null: strict JSON."""
    if isinstance(x, float) and not math.isfinite(x):
        return None
    if isinstance(x, dict):
        return {k: json_safe(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [json_safe(v) for v in x]
    return x


def echo_json(doc) -> None:
    click.echo(json.dumps(json_safe(doc), indent=2, allow_nan=False))


def conditions_warning(m) -> str | None:
    """One line saying how a measurement's conditions were disturbed (None: quiet)."""
    from latbench.devices.hostload import elsewhere

    state = m.extra.get("state") or {}
    seen = []
    if "contended" in (m.extra.get("flags") or []):
        seen.append("timed under contention, twice (" + "; ".join(state.get("contended", [])) + ")")
    elif state.get("retimed"):
        seen.append("timed again after a contended first try")
    if note := elsewhere(state):
        seen.append(note)
    if "throttled" in (m.extra.get("flags") or []):
        seen.append("the device was throttled")
    seen += sentinel_notes(m.extra.get("sentinel") or {})
    if not seen:
        return None
    return "warning: " + "; ".join(seen) + ": this number may be too high"


def sentinel_notes(info: dict) -> list[str]:
    """What the sentinel readings around a measurement say (profiling/sentinel.measure_watched)."""
    from latbench.profiling.sentinel import DRIFT_LIMIT

    out = []
    if info.get("speed", 1.0) > 1 + DRIFT_LIMIT:
        out.append(
            f"the sentinel layer timed {100 * (info['speed'] - 1):.0f} % slower than when the "
            f"LUT was timed ({info['reference_ms']:.3f} ms then)"
        )
    if info.get("moved", 1.0) > 1 + DRIFT_LIMIT:
        out.append(f"the sentinel moved {100 * (info['moved'] - 1):.0f} % during the measurement")
    return out


def measurement_line(m) -> str:
    """One Measurement as `measure` and `predict --compare` print it: the interval is said to
    hold over time only when it was taken from several bursts."""
    n = m.extra.get("bursts", 1)
    basis = (
        f"over {n} bursts in {m.extra.get('span_s', 0):.0f} s" if n > 1 else "within one burst only"
    )
    mem = m.extra.get("memory") or {}
    tail = "".join(
        f"; {label} {mem[k]:.1f} MB"
        for k, label in (("peak_mb", "peak memory"), ("delta_mb", "memory delta"))
        if k in mem
    )
    return (
        f"median {m.median_ms:.3f} ms  (p10 {m.p10_ms:.3f}, p90 {m.p90_ms:.3f}, "
        f"std {m.std_ms:.3f})  {m.runs} runs, 95 % CI of the median ±{100 * m.ci_rel:.1f} % "
        f"({basis}){tail}"
    )
