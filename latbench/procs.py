"""Child processes die with their parent: no worker is left running after a `kill -9`.

A `kill -9` of latbench gives it no chance to stop what it started, and a child that waits on
a pipe its siblings also hold (a ProcessPoolExecutor worker) or that is busy converting or
timing never notices on its own: after `kill -9` of `profile`, a conversion worker stayed
alive at 1.5 GB indefinitely. Two mechanisms, both set up in the child:

- Linux's parent-death signal (`prctl(PR_SET_PDEATHSIG, SIGKILL)`): the kernel kills the child
  the moment its parent goes. The kernel ties it to the parent *thread* that started the
  child, so it is asked for only where that thread outlives the child (the main thread, or a
  thread that owns a pool until it shuts it down); a child started from a short-lived thread
  that is meant to outlive it relies on the second mechanism alone.
- A watcher thread, for other systems and for the thread case: it blocks reading a lifeline
  pipe whose only write end the parent process holds (end of file = the parent is gone; no
  wake-ups, so nothing disturbs a timing), or, where no pipe could be passed (a pool worker
  started by multiprocessing), checks once a second whether the parent pid changed.

Either way the child kills itself with SIGKILL, as its parent was killed.
"""

from __future__ import annotations

import os
import signal
import subprocess
import threading
import weakref
from typing import Any, Sequence

PARENT_ENV = "LATBENCH_PARENT"  # "pid[:lifeline fd[:pdeathsig]]", set by popen_tied
PR_SET_PDEATHSIG = 1


def set_parent_death_signal() -> bool:
    """Ask Linux to SIGKILL this process when the thread that started it ends; False where
    prctl is not available (not Linux, no libc)."""
    try:
        import ctypes

        libc = ctypes.CDLL(None, use_errno=True)
        return libc.prctl(PR_SET_PDEATHSIG, int(signal.SIGKILL), 0, 0, 0) == 0
    except (OSError, AttributeError):
        return False


def _die() -> None:
    os.kill(os.getpid(), signal.SIGKILL)


def die_with_parent(
    parent_pid: int, lifeline_fd: int | None = None, pdeathsig: bool = True
) -> None:
    """Call first thing in a child: from now on it ends when process `parent_pid` ends."""
    if pdeathsig:
        set_parent_death_signal()
    if os.getppid() != parent_pid:  # the parent died before the signal was asked for
        _die()
    if lifeline_fd is not None:

        def watch_pipe() -> None:
            try:
                while os.read(lifeline_fd, 1):
                    pass
            except OSError:
                pass
            _die()

        target = watch_pipe
    else:

        def watch_pid() -> None:
            stop = threading.Event()
            while not stop.wait(1.0):
                if os.getppid() != parent_pid:
                    _die()

        target = watch_pid
    threading.Thread(target=target, name="latbench-parent-watch", daemon=True).start()


def die_with_parent_from_env() -> None:
    """The child side of `popen_tied`: read PARENT_ENV (absent: started by hand, no tie)."""
    raw = os.environ.pop(PARENT_ENV, "")
    parts = raw.split(":")
    try:
        pid = int(parts[0])
        fd = int(parts[1]) if len(parts) > 1 and parts[1] else None
    except ValueError:
        return
    die_with_parent(pid, fd, pdeathsig=len(parts) > 2 and parts[2] == "1")


def popen_tied(
    cmd: Sequence[str], env: dict[str, str] | None = None, **kw: Any
) -> subprocess.Popen:
    """subprocess.Popen for a latbench child that calls `die_with_parent_from_env` first.

    The child gets the read end of a lifeline pipe; this process keeps the only write end
    (non-inheritable, so no other child holds it) until the Popen object is collected."""
    r, w = os.pipe()
    main = threading.current_thread() is threading.main_thread()
    env = dict(os.environ if env is None else env)
    env[PARENT_ENV] = f"{os.getpid()}:{r}:{int(main)}"
    try:
        proc = subprocess.Popen(cmd, env=env, pass_fds=(*kw.pop("pass_fds", ()), r), **kw)
    except BaseException:
        os.close(w)
        raise
    finally:
        os.close(r)
    weakref.finalize(proc, os.close, w)
    return proc


def pool_initializer(parent_pid: int, then: Any = None, *args: Any) -> None:
    """ProcessPoolExecutor initializer: die with the parent, then run `then(*args)`.

    Pass `initializer=pool_initializer, initargs=(os.getpid(), your_init, ...)`; the pool must
    be created, used and shut down by one thread (the parent-death signal follows it)."""
    die_with_parent(parent_pid)
    if then is not None:
        then(*args)
