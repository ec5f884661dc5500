"""Crash-safe file writes shared by every artifact latbench produces.

Files are created with the permissions the user's umask allows (0644 under
the usual umask 022), like any other tool's output, so LUTs and predictors
can be shared; a temp file's private 0600 mode is never left on a result.
File names that come from user data go through `safe_name` first.

Appends never leave part of a row: a short write is continued, and a write that fails
(a full disk, a file-size limit, a read-only file system) is undone by truncating the file
back to where the row began, then reported as one line (`WriteFailed`, exit 1) saying that
nothing measured before it was lost. Appends do not follow a symlink: an artifact that is a
link is refused, so a folder handed over by someone else cannot make latbench write outside it.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import os
import re
import sys
import tempfile
import threading
from pathlib import Path
from typing import Iterator

from latbench.errors import InputError, LatbenchError

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


class WriteFailed(LatbenchError):
    """The file system refused a write (full, read-only, over a size limit)."""

    hint = "free space (or fix the folder), then run the same command again to resume"


# What the file system says when it will not take a write: full (or over quota), read-only,
# or over a file-size limit.
WRITE_ERRNOS = frozenset({errno.ENOSPC, errno.EDQUOT, errno.EROFS, errno.EFBIG})


def write_failure(exc: BaseException) -> WriteFailed | None:
    """A WriteFailed for an OSError that says the file system refused a write (a writer that
    does not go through this module: a library saving its own file, a folder made on a
    read-only disk), naming its file; None for any other error."""
    if not isinstance(exc, OSError) or exc.errno not in WRITE_ERRNOS:
        return None
    where = exc.filename if exc.filename is not None else "a file"
    return _failed(Path(str(where)), exc, "files written before it are kept")


def _failed(path: Path, exc: OSError, what: str) -> WriteFailed:
    return WriteFailed(f"cannot write {path}: {exc.strerror or exc}; {what}")


def write_atomic(path: Path, data: bytes) -> None:
    """Write via a temp file, fsync and rename, so a kill never leaves half a file.

    The rename replaces a symlink at `path` itself, never the file it points to. A file that
    is rewritten (a LUT upgraded to new columns, merged, or cut) keeps its permission bits and
    its group, as an edit in place would; a new file follows the umask."""
    path = Path(path)
    tmp = None
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".tmp-")
        _take_mode_and_group(fd, path)
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except OSError as exc:
        if tmp:
            Path(tmp).unlink(missing_ok=True)
        raise _failed(path, exc, "the file as it was before is unchanged") from None
    except BaseException:
        if tmp:
            Path(tmp).unlink(missing_ok=True)
        raise


def _take_mode_and_group(fd: int, path: Path) -> None:
    """Give the temp file `fd` the mode and group of the regular file it will replace (if any,
    and as far as this process may: a group it does not belong to is left as created)."""
    import stat

    try:
        old = os.lstat(path)
    except FileNotFoundError:
        old = None
    if old is None or not stat.S_ISREG(old.st_mode):
        os.fchmod(fd, 0o666 & ~current_umask())
        return
    os.fchmod(fd, stat.S_IMODE(old.st_mode))
    if os.fstat(fd).st_gid != old.st_gid:
        with contextlib.suppress(PermissionError):
            os.fchown(fd, -1, old.st_gid)


def open_append(path: Path, flags: int = os.O_WRONLY | os.O_APPEND | os.O_CREAT) -> int:
    """An O_APPEND descriptor that does not follow a symlink (InputError naming the link)."""
    try:
        return os.open(path, flags | os.O_NOFOLLOW, 0o666)
    except OSError as exc:
        if Path(path).is_symlink():
            raise InputError(
                f"{path} is a symbolic link; latbench appends only to regular files in "
                f"the folder it was given (replace the link with the file itself)"
            ) from None
        raise _failed(Path(path), exc, "nothing was written") from None


def append_line(path: Path, line: str) -> None:
    """Append one line durably (O_APPEND + fsync): a kill loses at most this line, and a failed
    write leaves none of it (the file is truncated back to where the line began)."""
    data = memoryview(line.encode())
    fd = open_append(path)
    try:
        start = os.fstat(fd).st_size
        try:
            while data:
                data = data[os.write(fd, data) :]  # a short write is continued
            os.fsync(fd)
        except OSError as exc:
            os.ftruncate(fd, start)
            raise _failed(
                Path(path), exc, "this row was not written and every row before it is kept"
            ) from None
    finally:
        os.close(fd)


def cut_torn_tail(path: Path) -> bool:
    """Cut a partial last line (left by a kill) in place, keeping the file's mode, owner and
    inode; True if there was one. Only the bytes after the last newline are removed."""
    fd = open_append(path, os.O_RDWR)
    try:
        size = os.fstat(fd).st_size
        if size == 0:
            return False
        keep = size
        with open(fd, "rb", closefd=False) as f:
            while keep > 0:
                step = min(keep, 65536)
                f.seek(keep - step)
                chunk = f.read(step)
                if keep == size and chunk.endswith(b"\n"):
                    return False
                nl = chunk.rfind(b"\n")
                if nl >= 0:
                    keep = keep - step + nl + 1
                    break
                keep -= step
        os.ftruncate(fd, keep)
        os.fsync(fd)
        return True
    finally:
        os.close(fd)


class Locked(LatbenchError):
    """Another latbench process is writing the same artifact."""

    hint = "wait for it to finish (or stop it), then run the same command again"


@contextlib.contextmanager
def hold_lock(path: Path, what: str = "") -> Iterator[None]:
    """Hold the advisory write lock of an artifact (a file or a run folder) while writing it.

    The lock is `fcntl.flock` on a sidecar `.NAME.lock` beside the artifact (inside a folder
    for a folder), which records who holds it: a second writer gets one line naming the
    holder's pid, command and start time, instead of doubled rows. The kernel drops the lock
    when its holder dies, however it dies, so a stale lock file never blocks anyone."""
    path = Path(path)
    lock = path / ".lock" if path.is_dir() else path.with_name(f".{path.name}.lock")
    lock.parent.mkdir(parents=True, exist_ok=True)
    try:
        fd = os.open(lock, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW, 0o666)
    except OSError as exc:
        raise _failed(lock, exc, "nothing was written") from None
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.pread(fd, 4096, 0).decode(errors="replace").strip() or "another process"
            raise Locked(f"{what or path} is being written by {holder}") from None
        me = f"pid {os.getpid()} ({' '.join(sys.argv)[:200]}) since {_now()}"
        try:
            os.ftruncate(fd, 0)
            os.pwrite(fd, me.encode(), 0)
        except OSError as exc:  # a full disk: refuse now, before any work that could not be kept
            raise _failed(lock, exc, "nothing was written") from None
        yield
    finally:
        os.close(fd)  # releases the lock


def _now() -> str:
    from datetime import datetime, timezone

    return datetime.now(timezone.utc).isoformat(timespec="seconds")
