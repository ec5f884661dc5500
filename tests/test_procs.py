"""Children die with their parent: a `kill -9` of latbench leaves no worker running."""

import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest


def _children(pid: int) -> set[int]:
    """Every live descendant of `pid`, from /proc."""
    kids: dict[int, list[int]] = {}
    for d in Path("/proc").iterdir():
        if d.name.isdigit():
            try:
                stat = (d / "stat").read_text()
            except OSError:
                continue
            fields = stat.rpartition(")")[2].split()
            kids.setdefault(int(fields[1]), []).append(int(d.name))
    out, todo = set(), [pid]
    while todo:
        for k in kids.get(todo.pop(), []):
            out.add(k)
            todo.append(k)
    return out


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()[0]
    except OSError:
        return False
    return state not in ("Z", "X")  # a zombie has ended; only its entry waits to be reaped


def _cmdline(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()
    except OSError:
        return ""


def _gone_within(pids: set[int], seconds: float) -> set[int]:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        left = {p for p in pids if _alive(p)}
        if not left:
            return set()
        time.sleep(0.1)
    return {p for p in pids if _alive(p)}


def _kill_all(pids):
    for p in pids:
        try:
            os.kill(p, signal.SIGKILL)
        except OSError:
            pass


_PARENT = textwrap.dedent(
    """
    import os, sys, threading, time
    from concurrent.futures import ProcessPoolExecutor
    import multiprocessing as mp
    from latbench.procs import pool_initializer, popen_tied

    SLEEPER = [sys.executable, "-c",
               "from latbench.procs import die_with_parent_from_env as d; d(); "
               "import time; time.sleep(600)"]
    procs = [popen_tied(SLEEPER)]  # from the main thread: parent-death signal and pipe
    t = threading.Thread(target=lambda: procs.append(popen_tied(SLEEPER)))
    t.start(); t.join()  # from a thread that has ended: the pipe alone must keep it tied
    pool = ProcessPoolExecutor(2, mp_context=mp.get_context("spawn"),
                               initializer=pool_initializer, initargs=(os.getpid(),))
    futs = [pool.submit(time.sleep, 600) for _ in range(2)]
    time.sleep(3)
    print("ready", *[p.pid for p in procs], flush=True)
    time.sleep(600)
    """
)


def test_children_of_every_kind_die_when_their_parent_is_killed():
    parent = subprocess.Popen([sys.executable, "-c", _PARENT], stdout=subprocess.PIPE, text=True)
    kids: set[int] = set()
    try:
        line = parent.stdout.readline().split()
        assert line[:1] == ["ready"], line
        thread_child = int(line[2])
        kids = _children(parent.pid)
        assert len(kids) >= 4, kids  # two sleepers, two pool workers (and the tracker)
        time.sleep(1.5)  # the thread that started one sleeper has ended: it must still live
        assert _alive(thread_child)
        parent.kill()
        parent.wait()
        left = _gone_within(kids, 5)
        assert not left, f"still running after their parent was killed: {sorted(left)}"
    finally:
        parent.kill()
        _kill_all(kids | _children(parent.pid))


def test_a_child_started_without_a_tie_is_left_alone():
    """`die_with_parent_from_env` does nothing when nobody asked for a tie (run by hand)."""
    r = subprocess.run(
        [sys.executable, "-c",
         "from latbench.procs import die_with_parent_from_env as d; d(); print('ran')"],
        capture_output=True, text=True, timeout=60,
        env={k: v for k, v in os.environ.items() if k != "LATBENCH_PARENT"},
    )  # fmt: skip
    assert r.stdout.strip() == "ran"


@pytest.mark.slow
def test_kill_9_of_profile_takes_its_conversion_workers_and_timing_worker_with_it(
    tmp_path, monkeypatch
):
    """The issue's case: after `kill -9` of `latbench profile`, no worker may stay alive."""

    # Timing overlaps the conversion of the tiny space's 213 layers: a layer already in the
    # cache is timed (after the sentinel) while the others convert, so the kill lands while
    # both are busy. Two layers are converted here first, so that timing need not wait for
    # the first batch of conversions.
    from latbench.build.convert import convert_layers
    from latbench.nets.spaces import get_space

    env = dict(os.environ, LATBENCH_CACHE=str(tmp_path / "cache"))
    monkeypatch.setenv("LATBENCH_CACHE", env["LATBENCH_CACHE"])
    list(convert_layers(sorted(get_space("tiny").enumerate_specs(), key=lambda s: s.key)[:2]))
    prof = subprocess.Popen(
        [sys.executable, "-m", "latbench.commands.main", "profile", "--space", "tiny",
         "--lut-dir", str(tmp_path / "lut"), "--no-progress", "--workers", "2"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env,
    )  # fmt: skip
    seen: set[int] = set()
    cmd: dict[int, str] = {}  # each child's command line, read when first seen
    try:
        deadline = time.monotonic() + 300
        while time.monotonic() < deadline and prof.poll() is None:
            for p in _children(prof.pid) - seen:
                seen.add(p)
                cmd[p] = _cmdline(p)
            alive = {p for p in seen if _cmdline(p)}
            if any("host_worker" in cmd[p] for p in alive) and any(
                "spawn_main" in cmd[p] for p in alive
            ):
                break  # timing and converting at once: conversion workers and timer both up
            time.sleep(0.05)
        assert prof.poll() is None, "profile ended before its workers could be seen"
        kinds = " ".join(cmd.values())
        assert "spawn_main" in kinds and "host_worker" in kinds, kinds
        prof.kill()
        prof.wait()
        left = _gone_within(seen, 10)
        assert not left, f"orphans of profile still running: {sorted(left)}"
    finally:
        prof.kill()
        _kill_all(seen | _children(prof.pid))
