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
import math
import os
import re
import stat
import sys
import tempfile
import threading
from pathlib import Path
from typing import Any, Iterator

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


# ---- reading ------------------------------------------------------------------------------
# Every file latbench reads (arch.json, LUTs and other tables, predictor files, measurements,
# device profiles, run folders, NetAdapt state) goes through `read_bytes`: only a regular file
# is read (a FIFO, a device such as /dev/zero or a folder is refused without blocking), and
# never more than the limit of its kind. Text must be UTF-8; JSON is parsed strictly
# (`parse_json`). Each refusal is an InputError naming the file and what is wrong.
MiB = 1 << 20
MAX_TABLE_BYTES = 64 * MiB  # CSV: LUTs, network tables, samples.csv, --measurements
MAX_DOC_BYTES = 16 * MiB  # JSON and TOML documents (a predictor file holds its LUT's rows)
MAX_ARRAY_BYTES = 1024 * MiB  # .npz weights and controller checkpoints
MAX_LINE_BYTES = 128 * 1024  # one line of a CSV table (the csv module's own field limit)
MAX_JSON_DEPTH = 64  # nesting of lists and objects
MAX_INT_DIGITS = 40  # an integer in a JSON/TOML file (a 128-bit RNG state has 39 digits)


def read_bytes(path: Path, what: str = "", limit: int = MAX_DOC_BYTES, head: bool = False) -> bytes:
    """The bytes of a regular file of at most `limit` bytes, else InputError naming it
    (`head`: its first `limit` bytes, however large it is).

    Opened with O_NONBLOCK (a FIFO does not block the open) and checked with fstat on the
    open descriptor, so what is read is what was checked. A symbolic link to a regular file
    is read (arch.json may be a link); one to anything else is refused like its target."""
    path = Path(path)
    name = f"{what} {path}" if what else str(path)
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
    except OSError as exc:
        raise InputError(f"cannot read {name}: {exc.strerror or exc}") from None
    try:
        st = os.fstat(fd)
        if stat.S_ISDIR(st.st_mode):
            raise InputError(f"{name} is a folder, not a file")
        if not stat.S_ISREG(st.st_mode):
            kind = "a FIFO" if stat.S_ISFIFO(st.st_mode) else "not a regular file"
            raise InputError(f"{name} is {kind}; latbench reads only regular files")
        if st.st_size > limit and not head:
            raise InputError(f"{name} is {_size(st.st_size)}, over the {_size(limit)} limit")
        chunks, size = [], 0
        while True:
            chunk = os.read(fd, min(1 << 20, limit + 1 - size))
            if not chunk:
                break
            chunks.append(chunk)
            size += len(chunk)
            if size > limit and head:
                return b"".join(chunks)[:limit]
            if size > limit:  # grew while being read
                raise InputError(f"{name} is over the {_size(limit)} limit")
        return b"".join(chunks)
    except OSError as exc:
        raise InputError(f"cannot read {name}: {exc.strerror or exc}") from None
    finally:
        os.close(fd)


def _size(n: int) -> str:
    return f"{n / MiB:.0f} MiB" if n >= MiB else f"{n} bytes"


def decode_text(data: bytes, name: object) -> str:
    """`data` as strict UTF-8; InputError naming the file and the first bad byte's offset."""
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = data.count(b"\n", 0, exc.start) + 1
        raise InputError(
            f"{name} is not UTF-8 text: byte 0x{data[exc.start]:02x} at offset {exc.start} "
            f"(line {line})"
        ) from None


def read_text(path: Path, what: str = "", limit: int = MAX_DOC_BYTES) -> str:
    """A regular UTF-8 text file of at most `limit` bytes (`read_bytes`, `decode_text`)."""
    return decode_text(read_bytes(path, what, limit), f"{what} {path}" if what else path)


class _Refused(Exception):
    pass


def _refuse_constant(s: str) -> Any:
    raise _Refused(f"{s} is not a number latbench accepts (NaN and infinities are refused)")


def _checked_float(s: str) -> float:
    v = float(s)
    if not math.isfinite(v):
        raise _Refused(f"{s[:40]} is not a finite number")
    return v


def _checked_int(s: str) -> int:
    if len(s.lstrip("-")) > MAX_INT_DIGITS:
        raise _Refused(f"an integer of {len(s.lstrip('-'))} digits (at most {MAX_INT_DIGITS})")
    return int(s)


def _unique_keys(pairs: list) -> dict:
    d = dict(pairs)
    if len(d) < len(pairs):
        seen: set = set()
        dup = next(k for k, _ in pairs if k in seen or seen.add(k))
        raise _Refused(f"key {dup!r} appears twice in one object")
    return d


def check_depth(doc: Any, name: object, limit: int = MAX_JSON_DEPTH) -> Any:
    """`doc` if its lists and dicts nest at most `limit` deep (checked without recursion)."""
    stack = [(doc, 1)]
    while stack:
        x, depth = stack.pop()
        if isinstance(x, (dict, list)):
            if depth > limit:
                raise InputError(f"{name} nests lists/objects deeper than {limit} levels")
            stack += [(v, depth + 1) for v in (x.values() if isinstance(x, dict) else x)]
    return doc


def parse_json(text: str | bytes, name: object, allow_nan: bool = False) -> Any:
    """Strict JSON: InputError naming `name` for a syntax error, NaN/Infinity (unless
    `allow_nan`), a number out of float range, an integer over MAX_INT_DIGITS digits, a key
    twice in one object, or nesting deeper than MAX_JSON_DEPTH."""
    import json

    try:
        doc = json.loads(
            text,
            parse_constant=float if allow_nan else _refuse_constant,
            parse_float=_checked_float,
            parse_int=_checked_int,
            object_pairs_hook=_unique_keys,
        )
    except json.JSONDecodeError as exc:
        raise InputError(
            f"{name} is not valid JSON: {exc.msg} at line {exc.lineno} column {exc.colno}"
        ) from None
    except _Refused as exc:
        raise InputError(f"{name}: {exc}") from None
    except RecursionError:
        raise InputError(
            f"{name} nests lists/objects deeper than {MAX_JSON_DEPTH} levels"
        ) from None
    except (ValueError, UnicodeDecodeError) as exc:  # bytes that are not UTF-8, a huge number
        raise InputError(f"{name} is not valid JSON: {exc}") from None
    return check_depth(doc, name)


def load_json(
    path: Path, what: str = "", limit: int = MAX_DOC_BYTES, allow_nan: bool = False
) -> Any:
    """A JSON document from a regular UTF-8 file (`read_text`, then `parse_json`)."""
    name = f"{what} {path}" if what else path
    return parse_json(read_text(path, what, limit), name, allow_nan)


def load_toml(path: Path, what: str = "", limit: int = MAX_DOC_BYTES) -> dict:
    """A TOML document, as strict as `parse_json` (no nan/inf, bounded integers and depth)."""
    import tomllib

    name = f"{what} {path}" if what else path
    text = read_text(path, what, limit)
    try:
        doc = tomllib.loads(text, parse_float=_checked_float)
    except tomllib.TOMLDecodeError as exc:
        raise InputError(f"{name} is not valid TOML: {exc}") from None
    except _Refused as exc:
        raise InputError(f"{name}: {exc}") from None
    except RecursionError:
        raise InputError(f"{name} nests arrays/tables too deep") from None
    except ValueError:  # an integer over Python's digit limit
        raise InputError(f"{name}: an integer of more than {MAX_INT_DIGITS} digits") from None
    check_depth(doc, name)
    stack = [doc]
    while stack:
        x = stack.pop()
        if isinstance(x, dict):
            stack += x.values()
        elif isinstance(x, list):
            stack += x
        elif isinstance(x, int) and not isinstance(x, bool) and abs(x) >= 10**MAX_INT_DIGITS:
            raise InputError(f"{name}: an integer of more than {MAX_INT_DIGITS} digits")
    return doc


def read_npz(path: Path, what: str = "") -> dict:
    """Arrays of an .npz file (no pickles) as a dict; InputError naming the file when it is
    not a regular file, too large, or not an npz archive."""
    import io
    import zipfile

    import numpy as np

    data = read_bytes(path, what, MAX_ARRAY_BYTES)
    name = f"{what} {path}" if what else path
    if not data.startswith(b"PK\x03\x04"):
        raise InputError(f"cannot read {name}: not an .npz archive (no zip header)")
    try:
        with zipfile.ZipFile(io.BytesIO(data)) as zf:
            bad = zf.testzip()  # numpy reads a member without reaching its CRC check
        if bad is not None:
            raise ValueError(f"member {bad} fails its CRC check (damaged bytes)")
        z = np.load(io.BytesIO(data), allow_pickle=False)
        if not isinstance(z, np.lib.npyio.NpzFile):
            raise ValueError("a single .npy array, not an archive")
        with z:
            return {k: z[k] for k in z.files}
    except (ValueError, OSError, EOFError, KeyError, zipfile.BadZipFile, TypeError) as exc:
        raise InputError(f"cannot read {name}: not a readable .npz archive: {exc}") from None
