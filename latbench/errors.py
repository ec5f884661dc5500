"""Errors a user can cause or meet, and the exit codes they map to.

InputError is bad input (exit 2, like click's usage errors); LatbenchError is
a failure of the job itself (exit 1). Device failures (devices/base.py:
ModelRunError, DeviceLost) are LatbenchErrors too, so whatever reaches the
command line ends as one line with a hint, never a traceback.
"""

from __future__ import annotations


class LatbenchError(Exception):
    """A failure that is not the user's fault in the command line: exit 1."""

    exit_code = 1
    hint = ""  # what to do next (e.g. how to resume), shown after the message


class InputError(LatbenchError):
    """Malformed input (arch.json, block string, device name, LUT): exit 2."""

    exit_code = 2

    def __init__(self, message: str, field: str | None = None):
        self.field = field
        super().__init__(f"{field}: {message}" if field else message)


def one_line(exc: BaseException, limit: int = 400) -> str:
    """The error message folded into one line (device output can span many)."""
    text = " ".join(str(exc).split())
    return text if len(text) <= limit else text[: limit - 3] + "..."


class Interrupted(LatbenchError):
    """Ctrl-C (SIGINT): the job stopped where it was; every finished row is on disk."""

    exit_code = 130
