"""The phone's shell: an allow-list interpreter for the command lines latbench sends.

Not a real shell: `;`, `&&`, `||`, `2>/dev/null`, `2>&1` and globs, and the
commands latbench uses (getprop, cat, grep, ls, mkdir, rm, chmod, stat, dumpsys,
svc, settings, sha256sum, sleep, pkill, taskset), run against the sandbox.
Running the pushed benchmark_model starts the stand-in (benchmark.py) in a
child process; a hung one keeps running (and keeps the core busy) after the
host hangs up, until something kills it. Faults played here: hung or garbled
benchmark runs, unreadable sysfs files, no thermal service (Android 9 and older);
the stand-in gets the delegate faults in its environment.
"""

from __future__ import annotations

import fnmatch
import hashlib
import os
import posixpath
import re
import selectors
import shlex
import socket
import subprocess
import sys
import time
from typing import Callable

from latbench.devices.emulated.benchmark import standin_header
from latbench.devices.emulated.state import WRITABLE_ROOT, PhoneState
from latbench.procs import popen_tied

# `svc power stayon X` writes Settings.Global.STAY_ON_WHILE_PLUGGED_IN as a bitmask of the
# plug types that keep the screen on (BatteryManager: AC 1, USB 2, wireless 4).
STAYON_BITS = {"false": 0, "ac": 1, "usb": 2, "wireless": 4, "true": 7}
# task profiles the stand-in's `settaskprofile` knows (names as in AOSP's task_profiles.json)
TASK_PROFILES = ("MaxPerformance", "HighPerformance", "ProcessCapacityMax", "CPUSET_SP_TOP_APP")


# -- the shell ----------------------------------------------------------------


class Shell:
    """An allow-list interpreter for `sh -c`: `;`, `&&`, `||`, `2>/dev/null`, `2>&1`, globs."""

    def __init__(
        self,
        phone: PhoneState,
        conn: socket.socket,
        emit: Callable[[int, bytes], None] | None = None,
    ):
        self.phone, self.conn = phone, conn
        # where output goes as it is produced (fd, bytes); None: collected and returned by run()
        self.emit = emit
        self.err_fd = 2  # where the command being run sends stderr (1: 2>&1, 0: 2>/dev/null)
        self.rc = 0
        self.line = ""
        self.killed = False  # a pkill -f matched this shell's own command line
        phone.shells_started += 1
        self.pid = 20000 + phone.shells_started  # what `$$` expands to

    def run(self, line: str) -> list[tuple[int, bytes]]:
        """Run a line; its output as (fd, bytes) chunks in order (fd 1 stdout, 2 stderr).

        With `emit`, each chunk goes there as soon as it exists (a benchmark's log line by
        line, as adbd streams it) and the list returned is empty."""
        self.phone.log.append(line)
        self.line = line  # `sh -c LINE`: what pkill -f sees as this shell's command line
        self.killed = False
        try:
            lex = shlex.shlex(line, posix=True, punctuation_chars=";&|<>")
            lex.wordchars += "$?%:,@+^{}[]#!="
            lex.commenters = ""
            lex.whitespace_split = False
            tokens = list(lex)
        except ValueError as exc:
            self.rc = 2
            return [(2, f"/system/bin/sh: syntax error: {exc}\n".encode())]
        out: list[tuple[int, bytes]] = []
        if self.emit is None:
            self.emit = lambda fd, b: out.append((fd, b))
        cmd: list[str] = []
        op = ";"
        for tok in tokens + [";"]:
            if tok in (";", "&&", "||"):
                if cmd and (
                    op == ";" or (op == "&&" and self.rc == 0) or (op == "||" and self.rc != 0)
                ):
                    if _peer_gone(self.conn):
                        # the host hung up: the shell gets SIGHUP (what it started may live on)
                        break
                    for fd, b in self._simple(cmd):
                        if fd and b:
                            self.emit(fd, b)
                    if self.killed:  # SIGTERM: nothing after it runs, no exit-code marker
                        self.rc = 143
                        break
                cmd, op = [], tok
            else:
                cmd.append(tok)
        return out

    def _simple(self, argv: list[str]) -> list[tuple[int, bytes]]:
        err_fd = 2
        clean: list[str] = []
        i = 0
        while i < len(argv):
            if argv[i] == "2" and i + 2 < len(argv) and argv[i + 1] in (">", ">&"):
                # 2>/dev/null | 2>&1
                err_fd = 0 if argv[i + 1] == ">" and argv[i + 2] == "/dev/null" else 1
                i += 3
                continue
            if argv[i] in (">", ">>", "<", "|"):
                self.rc = 2
                return [
                    (
                        2,
                        b"/system/bin/sh: redirection/pipes are not supported by the "
                        b"emulated shell\n",
                    )
                ]
            clean.append(argv[i].replace("$?", str(self.rc)).replace("$$", str(self.pid)))
            i += 1
        if not clean:
            return []
        self.err_fd = err_fd
        out, err, self.rc = self._exec(clean)
        return [(1, out)] + ([(err_fd, err)] if err_fd else [])

    def _glob(self, args: list[str]) -> list[str]:
        res = []
        for a in args:
            if any(ch in a for ch in "*?[") and a.startswith("/"):
                parent, pat = posixpath.split(a)
                parents = self._glob([parent]) if any(ch in parent for ch in "*?[") else [parent]
                hits = []
                for par in parents:
                    try:
                        names = sorted(os.listdir(self.phone.host_path(par)))
                    except (OSError, PermissionError):
                        continue
                    hits += [posixpath.join(par, n) for n in names if fnmatch.fnmatch(n, pat)]
                res += hits or [a]
            else:
                res.append(a)
        return res

    def _read(self, path: str) -> str:
        if path in self.phone.virtual_files:
            return self.phone.virtual_files[path]()
        return self.phone.host_path(path).read_text()

    def _exec(self, argv: list[str]) -> tuple[bytes, bytes, int]:
        name, args = argv[0], self._glob(argv[1:])
        ph = self.phone
        if name in ("true", ":"):
            return b"", b"", 0
        if name == "false":
            return b"", b"", 1
        if name == "echo":
            return (" ".join(args) + "\n").encode(), b"", 0
        if name == "getprop":
            if args:
                return (ph.props.get(args[0], "") + "\n").encode(), b"", 0
            return "".join(f"[{k}]: [{v}]\n" for k, v in sorted(ph.props.items())).encode(), b"", 0
        if name in ("cat", "grep"):
            return self._cat_grep(name, args)
        if name == "ls":
            return self._ls([a for a in args if not a.startswith("-")])
        if name in ("mkdir", "rm", "chmod"):
            return self._fs(name, args)
        if name == "stat":
            return self._stat(args)
        if name == "dumpsys":
            return self._dumpsys(args)
        if name == "svc":
            if args[:2] == ["power", "stayon"] and len(args) == 3 and args[2] in STAYON_BITS:
                ph.stayon = args[2]  # Android keeps it as a bitmask in a global setting
                ph.stay_on_while_plugged_in = STAYON_BITS[args[2]]
                return b"", b"", 0
            return b"", b"usage: svc power stayon [true|false|usb|ac|wireless]\n", 1
        if name == "settings":
            if args == ["get", "global", "low_power"]:
                return b"0\n", b"", 0
            if args == ["get", "global", "stay_on_while_plugged_in"]:
                return f"{ph.stay_on_while_plugged_in}\n".encode(), b"", 0
            if (
                args[:3] == ["put", "global", "stay_on_while_plugged_in"]
                and len(args) == 4
                and args[3].isdigit()
            ):
                ph.stay_on_while_plugged_in = int(args[3])
                ph.stayon = {v: k for k, v in STAYON_BITS.items()}.get(int(args[3]), args[3])
                return b"", b"", 0
            return (
                b"",
                (
                    b"settings: only 'get global low_power' and get/put global "
                    b"stay_on_while_plugged_in are emulated\n"
                ),
                1,
            )
        if name == "sha256sum":
            out, err, rc = [], [], 0
            for a in args:
                try:
                    out.append(f"{hashlib.sha256(ph.host_path(a).read_bytes()).hexdigest()}  {a}\n")
                except (OSError, PermissionError):
                    err.append(f"sha256sum: {a}: No such file or directory\n")
                    rc = 1
            return "".join(out).encode(), "".join(err).encode(), rc
        if name == "sleep":
            secs = float(args[0]) if args else 0
            self._wait(time.monotonic() + secs)
            return b"", b"", 0
        if name == "pkill":  # toybox: pkill [-f] PATTERN; exit 1 when nothing matched
            pats = [a for a in args if not a.startswith("-")]
            if len(pats) != 1:
                return b"", b"pkill: need one pattern\n", 2
            with ph.lock:
                hits = [
                    p
                    for p, cmdline in ph.children.items()
                    if _pattern_in(
                        pats[0], cmdline if "-f" in args else cmdline.split()[0].rsplit("/", 1)[-1]
                    )
                ]
            for p in hits:
                p.kill()
                p.wait()
            ph.reap()
            # the `sh -c LINE` running this pkill is a process too, and its command line
            # holds the pattern unless the pattern is written so that it cannot match itself
            if "-f" in args and _pattern_in(pats[0], f"sh -c {self.line}"):
                self.killed = True
            return b"", b"", 0 if hits else 1
        if name == "base64":  # toybox base64 FILE
            import base64

            try:
                data = ph.host_path(args[-1]).read_bytes() if args else b""
            except (OSError, PermissionError):
                return (
                    b"",
                    f"base64: {args[-1] if args else ''}: No such file or directory\n".encode(),
                    1,
                )
            return base64.encodebytes(data), b"", 0
        if name == "taskset":
            return self._taskset(args)
        if name == "input":  # input keyevent KEYCODE_WAKEUP | 224 | KEYCODE_POWER | 26
            if args[:1] == ["keyevent"] and len(args) == 2:
                if args[1] in ("KEYCODE_WAKEUP", "224"):
                    ph.screen_on = True
                elif args[1] in ("KEYCODE_POWER", "26"):
                    ph.screen_on = not ph.screen_on
                return b"", b"", 0
            return b"", b"usage: input [<source>] keyevent <key code number or name>\n", 1
        if name == "settaskprofile" and not ph.faults.no_settaskprofile:
            # settaskprofile PID PROFILE...: the task profiles of libprocessgroup
            if len(args) < 2 or not args[0].isdigit():
                return b"", b"usage: settaskprofile <tid> <profile>...\n", 1
            if any(a not in TASK_PROFILES for a in args[1:]):
                return b"", f"settaskprofile: unknown profile {args[1]}\n".encode(), 1
            ph.task_profiles[int(args[0])] = args[-1]
            return b"", b"", 0
        if "/" in name:
            return self._program(name, args, cpus=None)
        return b"", f"/system/bin/sh: {name}: inaccessible or not found\n".encode(), 127

    def _dumpsys(self, args: list[str]) -> tuple[bytes, bytes, int]:
        ph = self.phone
        if args[:1] == ["battery"]:
            t = int(round(ph.battery_milli_c() / 100))
            text = (
                "Current Battery Service state:\n  AC powered: false\n  USB powered: true\n"
                "  Wireless powered: false\n  Max charging current: 500000\n  status: 2\n"
                "  health: 2\n  present: true\n  level: 87\n  scale: 100\n  voltage: 4215\n"
                f"  temperature: {t}\n  technology: Li-ion\n"
            )
            return text.encode(), b"", 0
        if args[:1] == ["power"]:
            # PowerManagerService.dumpInternal's lines latbench reads, among others it prints
            on = ph.screen_on
            text = (
                "POWER MANAGER (dumpsys power)\n\nPower Manager State:\n  mDirty=0x0\n"
                f"  mWakefulness={'Awake' if on else 'Asleep'}\n  mWakefulnessChanging=false\n"
                f"  mIsPowered=true\n  mPlugType=2\n  mStayOn={str(ph.stayon != 'false').lower()}\n"
                f"  mProximityPositive=false\n  mBootCompleted=true\n  mSystemReady=true\n"
                f"  mHalAutoSuspendModeEnabled={str(not on).lower()}\n"
                f"  mHalInteractiveModeEnabled={str(on).lower()}\n"
                f"  mWakeLockSummary=0x{'23' if on else '0'}\n"
                f"\nDisplay Power: state={'ON' if on else 'OFF'}\n"
            )
            return text.encode(), b"", 0
        if args[:1] == ["thermalservice"] and not ph.faults.no_thermalservice:
            st = ph.clocks.status()
            temps = [
                ("battery", 2, ph.battery_milli_c() / 1000),
                ("cpu-big", 0, 36.0 + 10 * st),
                ("skin", 3, 33.0),
            ]
            rows = "".join(
                f"\tTemperature{{mValue={v:.1f}, mType={ty}, mName={n}, "
                f"mStatus={st if ty == 0 else 0}}}\n"
                for n, ty, v in temps
            )
            text = (
                "IsStatusOverride: false\nThermalEventListeners:\n\tcallbacks: 1\n"
                f"\tkilled: false\nThermal Status: {st}\nCached temperatures:\n{rows}"
                "HAL Ready: true\nHAL connection:\n\tThermalHAL 2.0 connected: yes\n"
                f"Current temperatures from HAL:\n{rows}"
            )
            return text.encode(), b"", 0
        return b"", f"Can't find service: {' '.join(args)}\n".encode(), 0

    def _cat_grep(self, name: str, args: list[str]) -> tuple[bytes, bytes, int]:
        flags = {a for a in args if a.startswith("-")}
        files = [a for a in args if not a.startswith("-")]
        if name == "grep":
            if not files:
                return b"", b"grep: no pattern\n", 2
            files = files[1:]  # the pattern: only '.' (non-empty lines) is needed here
        out, err, rc = [], [], 0
        for f in files:
            if posixpath.basename(f) in self.phone.faults.unreadable_sysfs:
                if "-s" not in flags:
                    err.append(f"{name}: {f}: Permission denied\n")
                rc = 2
                continue
            try:
                text = self._read(f)
            except (OSError, PermissionError):
                if "-s" not in flags:
                    err.append(f"{name}: {f}: No such file or directory\n")
                rc = 1
                continue
            if name == "cat":
                out.append(text)
            else:
                pre = f"{f}:" if ("-H" in flags or len(files) > 1) else ""
                out += [f"{pre}{ln}\n" for ln in text.splitlines() if ln]
        return "".join(out).encode(), "".join(err).encode(), rc

    def _ls(self, args: list[str]) -> tuple[bytes, bytes, int]:
        out, err, rc = [], [], 0
        for a in args or [WRITABLE_ROOT]:
            try:
                p = self.phone.host_path(a)
                if not p.exists():
                    raise FileNotFoundError(a)
                out += [n + "\n" for n in sorted(os.listdir(p))] if p.is_dir() else [a + "\n"]
            except (OSError, PermissionError):
                err.append(f"ls: {a}: No such file or directory\n")
                rc = 1
        return "".join(out).encode(), "".join(err).encode(), rc

    def _fs(self, name: str, args: list[str]) -> tuple[bytes, bytes, int]:
        ph = self.phone
        paths = [a for a in args if not a.startswith("-")]
        if name == "chmod":
            mode, paths = paths[0], paths[1:]
        for a in paths:
            if not ph.writable(a):
                return b"", f"{name}: {a}: Permission denied\n".encode(), 1
            p = ph.host_path(a)
            try:
                if name == "mkdir":
                    p.mkdir(parents="-p" in args, exist_ok="-p" in args)
                elif name == "rm":
                    if p.is_dir():
                        import shutil

                        shutil.rmtree(p)
                    else:
                        p.unlink(missing_ok="-f" in args or "-rf" in args)
                else:
                    os.chmod(p, int(mode, 8))
            except (OSError, ValueError) as exc:
                return b"", f"{name}: {a}: {exc.__class__.__name__}\n".encode(), 1
        return b"", b"", 0

    def _stat(self, args: list[str]) -> tuple[bytes, bytes, int]:
        if len(args) != 3 or args[0] != "-c":
            return b"", b"stat: only 'stat -c FORMAT PATH' is emulated\n", 1
        try:
            s = self.phone.host_path(args[2]).stat()
        except (OSError, PermissionError):
            return b"", f"stat: '{args[2]}': No such file or directory\n".encode(), 1
        text = args[1].replace("%s", str(s.st_size)).replace("%a", format(s.st_mode & 0o777, "o"))
        return (text + "\n").encode(), b"", 0

    def _taskset(self, args: list[str]) -> tuple[bytes, bytes, int]:
        if len(args) < 2:
            return b"", b"usage: taskset [-p] [mask] [PID | cmd [args...]]\n", 1
        try:
            mask = int(args[0], 16)
        except ValueError:
            return b"", f"taskset: bad mask '{args[0]}'\n".encode(), 1
        cpus = {c for c in self.phone.phone_cpus() if mask >> c & 1}
        if not cpus:  # a mask naming only CPUs the phone does not have
            return b"", b"taskset: sched_setaffinity: Invalid argument\n", 1
        return self._program(args[1], args[2:], cpus={self.phone.host_cpu(c) for c in cpus})

    def _wait(self, deadline: float) -> bool:
        """Sleep until deadline; False if the host hung up or the phone stops first."""
        while time.monotonic() < deadline:
            if self.phone.stopped.is_set() or _peer_gone(self.conn):
                return False
            time.sleep(0.05)
        return True

    def _program(
        self, path: str, args: list[str], cpus: set[int] | None
    ) -> tuple[bytes, bytes, int]:
        ph = self.phone
        try:
            p = ph.host_path(path)
        except PermissionError:
            return b"", f"/system/bin/sh: {path}: Permission denied\n".encode(), 126
        if not p.is_file():
            return b"", f"/system/bin/sh: {path}: not found\n".encode(), 127
        if not os.access(p, os.X_OK):
            return b"", f"/system/bin/sh: {path}: can't execute: Permission denied\n".encode(), 126
        header = standin_header(p.read_bytes()[:4096])
        if header is None:
            return (
                b"",
                (
                    f"/system/bin/sh: {path}: can't execute: this emulated phone runs only "
                    "latbench's benchmark_model stand-in\n"
                ).encode(),
                126,
            )
        graph = next((a.split("=", 1)[1] for a in args if a.startswith("--graph=")), None)
        ph.runs_started += graph is not None  # a timing run, not `--help`
        if graph is not None and ph.runs_started == ph.faults.screen_off_after_runs + 1:
            ph.screen_on = False  # the episode starts with this run
        hang = ph.faults.take("hang_benchmark") or (
            graph is not None and ph.runs_started == ph.faults.hang_after_runs + 1
        )
        if (
            graph is not None
            and ph.faults.hang_graph
            and graph.endswith("/" + ph.faults.hang_graph)
        ):
            ph.faults.hang_graph, hang = "", True  # once
        argv = []
        for a in args:  # device paths in flags -> sandbox paths
            for flag in ("--graph=", "--result_file_path=", "--delegate_serialize_dir="):
                if a.startswith(flag):
                    try:
                        a = flag + str(ph.host_path(a.split("=", 1)[1]))
                    except PermissionError:
                        pass
            argv.append(a)
        ph.reap()
        with ph.lock:
            # a stale (hung) benchmark on the core halves our share of it
            share = 1 + len(ph.children)
            (ph.sandbox / ".standin").mkdir(exist_ok=True)
            env = dict(
                os.environ,
                LATBENCH_EMU_CPUS=",".join(map(str, sorted(cpus or ()))),
                LATBENCH_EMU_CLOCK=ph.clocks.start(),
                LATBENCH_EMU_SHARE=str(share),
                LATBENCH_EMU_READY=str(ph.sandbox / ".standin"),
                LATBENCH_EMU_REFUSES=",".join(ph.faults.delegate_refuses),
                LATBENCH_EMU_NO_DELEGATE="1" if ph.faults.gpu_unavailable else "",
                LATBENCH_EMU_GPU_API=ph.faults.gpu_api,
                LATBENCH_EMU_SCREEN="1" if ph.screen_on else repr(ph.faults.screen_off_clock),
            )
            cmd = [
                sys.executable,
                "-m",
                "latbench.devices.emulated",
                "--benchmark-model",
                f"--standin-kind={header['kind']}",
                f"--standin-result-file={header['result_file']}",
                *(["--hang"] if hang else []),
                *argv,
            ]
            # stdout and stderr apart, as on a phone: the tool logs on stderr; the phone's
            # processes end with the phone (this process)
            proc = popen_tied(
                cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, cwd=ph.sandbox
            )
            ph.children[proc] = " ".join([path, *args])
        garbage = ph.faults.take("garbage_benchmark")
        # stream both pipes as the tool writes them (stderr routed as the line said)
        sel = selectors.DefaultSelector()
        sel.register(proc.stdout, selectors.EVENT_READ, 1)
        sel.register(proc.stderr, selectors.EVENT_READ, self.err_fd)
        while sel.get_map():
            if ph.stopped.is_set() or _peer_gone(self.conn):
                # The host hung up: like a real phone, the process runs on (and keeps the
                # core busy)
                sel.close()
                return b"", b"", 129
            for key, _ in sel.select(timeout=0.1):
                chunk = os.read(key.fileobj.fileno(), 65536)
                if not chunk:
                    sel.unregister(key.fileobj)
                elif key.data and not garbage:
                    self.emit(key.data, chunk)
        sel.close()
        while proc.poll() is None:
            if ph.stopped.is_set() or _peer_gone(self.conn):
                return b"", b"", 129
            time.sleep(0.02)
        with ph.lock:
            if ph.children.pop(proc, None) is not None:
                ph.ended(proc)
        out = err = b""
        if garbage:
            out, err = b"", b"\x1b[0m\xff\xfe<<<garbled>>> c0unt=?? avg=NaN\nSegmentation fault\n"
        return out, err, proc.returncode if proc.returncode >= 0 else 128 - proc.returncode


def _pattern_in(pattern: str, text: str) -> bool:
    """pkill's extended-regex match, falling back to a plain substring for odd patterns."""
    try:
        return re.search(pattern, text) is not None
    except re.error:
        return pattern in text


def _peer_gone(sock: socket.socket) -> bool:
    try:
        sock.setblocking(False)
        try:
            data = sock.recv(1, socket.MSG_PEEK)
            return data == b""
        except BlockingIOError:
            return False
        finally:
            sock.setblocking(True)
    except OSError:
        return True
