"""What every command module shares: option help texts, the space choice, JSON output.

One place for these, so `cli.py`, `cli_predict.py`, `cli_tuning.py` and the
subsystem commands say the same thing the same way.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import click

PRECISIONS = click.Choice(["fp32", "int8"])
PRECISION_HELP = "Numeric precision of the converted models (int8: full-integer quantized)."
DEVICE_HELP = "Device profile name (device_profiles/NAME.toml; `latbench devices` lists phones)."
LUT_DIR_HELP = "Folder of LUT and predictor files."
NO_PROGRESS_HELP = "No progress bars (they are shown only on a terminal anyway)."
JSON_HELP = "Machine-readable output on stdout (errors too)."


def space_choice():
    from latbench.nets.spaces import SPACES  # light: arch dataclasses only

    return click.Choice(list(SPACES))


def precision_option(f):
    return click.option("--precision", type=PRECISIONS, default="fp32", show_default=True,
                        help=PRECISION_HELP)(f)


def lut_dir_option(f):
    return click.option("--lut-dir", type=click.Path(file_okay=False, path_type=Path),
                        default=Path("lut"), show_default=True, help=LUT_DIR_HELP)(f)


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


def measurement_line(m) -> str:
    """One Measurement as `measure` and `predict --compare` print it."""
    return (f"median {m.median_ms:.3f} ms  (p10 {m.p10_ms:.3f}, p90 {m.p90_ms:.3f}, "
            f"std {m.std_ms:.3f})  {m.runs} runs, 95 % CI of the median ±{100 * m.ci_rel:.1f} %")
