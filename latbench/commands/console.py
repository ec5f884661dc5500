"""How latbench talks to a person: progress bars, notes, and errors (text or JSON).

One policy for every command: results go to stdout (as JSON with --json),
progress and notes to stderr. A progress bar appears only when stderr is a
terminal with a known width and neither --no-progress nor the group's --quiet
was given, so a log file, a pipe or an unsized pty never collects empty bars
or carriage-return updates.
"""

from __future__ import annotations

import json
import os
import sys

import click

from latbench.errors import LatbenchError, one_line


def quiet() -> bool:
    """True when `latbench --quiet` was given."""
    ctx = click.get_current_context(silent=True)
    while ctx is not None:
        if ctx.meta.get("latbench.quiet"):
            return True
        ctx = ctx.parent
    return False


def _terminal_columns() -> int:
    """Width of the terminal stderr is on; 0 when unknown (a pty nobody sized, e.g. `script`
    or a CI runner: tqdm would then draw empty bars, one blank line each)."""
    try:
        return os.get_terminal_size(sys.stderr.fileno()).columns
    except (OSError, ValueError, AttributeError):
        return 0


def progress_wanted(no_progress: bool = False) -> bool:
    """Show progress bars? Only on a terminal with a width, and not when asked to be quiet."""
    if no_progress or quiet():
        return False
    try:
        tty = sys.stderr.isatty()
    except (AttributeError, ValueError):
        return False
    return tty and _terminal_columns() > 0


def note(message: str) -> None:
    """Information for a person (stderr); silenced by --quiet."""
    if not quiet():
        click.echo(message, err=True)


def error_text(exc: BaseException) -> str:
    """`error: message -- hint`. Job failures are folded into one line; input errors keep
    their lines (a list of missing keys reads better as a list)."""
    if isinstance(exc, LatbenchError) and exc.exit_code == 1:
        text = one_line(exc)
    else:
        text = str(exc)
    hint = getattr(exc, "hint", "")
    return f"error: {text}" + (f" -- {hint}" if hint else "")


def error_json(exc: BaseException, exit_code: int) -> str:
    """The same error as one JSON object, for --json callers (printed on stdout)."""
    doc = {"error": str(exc), "kind": type(exc).__name__, "exit_code": exit_code}
    field = getattr(exc, "field", None)
    param = getattr(exc, "param", None)  # click's BadParameter: the option it was given to
    if not field and param is not None and getattr(param, "opts", None):
        field = max(param.opts, key=len)
    if field:
        doc["field"] = field
    if getattr(exc, "file", None):
        doc["file"] = exc.file
    if getattr(exc, "hint", ""):
        doc["hint"] = exc.hint
    return json.dumps(doc)
