"""Errors a user can cause, and the exit codes they map to.

InputError is bad input (exit 2, like click's usage errors); LatbenchError is
a failure of the job itself (exit 1).
"""

from __future__ import annotations


class LatbenchError(Exception):
    """A failure that is not the user's fault in the command line: exit 1."""

    exit_code = 1


class InputError(LatbenchError):
    """Malformed input (arch.json, block string, device name, LUT): exit 2."""

    exit_code = 2

    def __init__(self, message: str, field: str | None = None):
        self.field = field
        super().__init__(f"{field}: {message}" if field else message)
