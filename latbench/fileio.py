"""Crash-safe file writes shared by every artifact latbench produces.

Files are created with the permissions the user's umask allows (0644 under
the usual umask 022), like any other tool's output, so LUTs and predictors
can be shared; a temp file's private 0600 mode is never left on a result.
File names that come from user data go through `safe_name` first.
"""

from __future__ import annotations

import os
import re
import tempfile
import threading
from pathlib import Path

from latbench.errors import InputError

# The alphabet of names that become parts of file names (networks, devices, spaces).
SAFE_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._+-]{0,99}")
SAFE_NAME_DOC = "1-100 characters from A-Z a-z 0-9 . _ + -, starting with a letter or digit"

_umask_lock = threading.Lock()


def current_umask() -> int:
    """The process umask (read by setting and restoring it, under a lock)."""
    with _umask_lock:
        mask = os.umask(0o022)
        os.umask(mask)
    return mask


def safe_name(name: str, what: str = "name") -> str:
    """`name` if it can be part of a file name in a folder the user gave, else InputError."""
    if not isinstance(name, str) or not SAFE_NAME.fullmatch(name) or ".." in name:
        raise InputError(f"{name!r} cannot be part of a file name: use {SAFE_NAME_DOC}", what)
    return name


def write_atomic(path: Path, data: bytes) -> None:
    """Write via a temp file, fsync and rename, so a kill never leaves half a file."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".tmp-")
    try:
        os.fchmod(fd, 0o666 & ~current_umask())
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def append_line(path: Path, line: str) -> None:
    """Append one line durably (O_APPEND + fsync): a kill loses at most this line."""
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o666)
    try:
        os.write(fd, line.encode())
        os.fsync(fd)
    finally:
        os.close(fd)
