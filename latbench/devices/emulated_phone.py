"""A loopback Android phone that speaks the real ADB wire protocol over TCP.

Why: latbench's ADB code (adb_transport.py, adb.py) must be exercised end to
end without a phone. This server plays adbd's side of the protocol that
`adb-shell` (and Google's `adb` client) speak: 24-byte little-endian message
headers (command, arg0, arg1, length, byte-sum checksum, command ^ 0xffffffff),
CNXN, AUTH with a real RSA check (TOKEN -> SIGNATURE verified against accepted
keys, else RSAPUBLICKEY, accepted like a user tapping "Allow"), OPEN / OKAY /
WRTE / CLSE streams with per-WRTE flow control, the `shell:` service and the
`sync:` service (STAT, LIST, SEND, RECV, DATA, DONE, OKAY, FAIL, QUIT).

Shell commands run against a sandbox directory (device paths map below it)
through a small allow-list interpreter, not a real shell. `benchmark_model`
is a stand-in that times the model with the LiteRT interpreter in a child
process and prints the real tool's output format.

It behaves like a phone where that changes latbench's numbers or errors:
- clocks (`Clocks`): an idle big core runs slow and ramps up over a few hundred
  ms of load, falls back when idle, and throttles (scaling_max_freq drops,
  `dumpsys thermalservice` reports MODERATE) after sustained load, cooling when
  idle. The stand-in reports times at the modelled clock: it times each
  invocation with the thread-CPU clock (load on this machine does not leak in)
  and divides by the clock's fraction of its maximum;
- a modern adbd's feature list (shell_v2, stat_v2), so Google's adb speaks
  shell protocol v2 (separate stderr, exit codes) and sync STA2/LST2;
- delegates: XNNPACK takes the whole graph, the "GPU"/"NNAPI" stand-ins leave
  some op types on the CPU and say so ("Replacing N out of M node(s)").
Faults (`Faults`) are injected to test error paths: a key refused by silence
(a real phone never closes the socket, the host times out), a link dropped
mid-push, a Wi-Fi roam (unreachable for a while) or a black-holed link, a hung
benchmark process that keeps running (and keeps the core busy) after the
host hangs up until something kills it, garbage output, an over-temperature
battery, Android 11+ wireless debugging (TLS only), no thermal service.

Demo:  python -m latbench.devices.emulated_phone --port 5555 --sandbox /tmp/phone
"""

from __future__ import annotations

import argparse
import base64
import fnmatch
import hashlib
import os
import re
import posixpath
import secrets
import shlex
import socket
import struct
import subprocess
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

# -- wire format -------------------------------------------------------------

A_CNXN, A_AUTH, A_OPEN, A_OKAY, A_WRTE, A_CLSE = (b"CNXN", b"AUTH", b"OPEN", b"OKAY", b"WRTE", b"CLSE")
A_STLS = b"STLS"
# What this adbd implements of a modern adbd's feature list (adb reads it from the CNXN banner).
FEATURES = ("shell_v2", "stat_v2", "fixed_push_mkdir")
# shell protocol v2 packet ids: 1 byte id, 4 byte little-endian length, payload
V2_STDIN, V2_STDOUT, V2_STDERR, V2_EXIT, V2_CLOSE_STDIN = 0, 1, 2, 3, 4
AUTH_TOKEN, AUTH_SIGNATURE, AUTH_RSAPUBLICKEY = 1, 2, 3
VERSION = 0x01000000
MAX_DATA = 256 * 1024
HEADER = struct.Struct("<6I")
STANDIN_MARKER = b"latbench-emulated-benchmark_model"


def _cmd_int(cmd: bytes) -> int:
    return struct.unpack("<I", cmd)[0]


def pack_message(cmd: bytes, arg0: int, arg1: int, data: bytes = b"") -> bytes:
    c = _cmd_int(cmd)
    return HEADER.pack(c, arg0, arg1, len(data), sum(data) & 0xFFFFFFFF, c ^ 0xFFFFFFFF) + data


# `svc power stayon X` writes Settings.Global.STAY_ON_WHILE_PLUGGED_IN as a bitmask of the
# plug types that keep the screen on (BatteryManager: AC 1, USB 2, wireless 4).
STAYON_BITS = {"false": 0, "ac": 1, "usb": 2, "wireless": 4, "true": 7}


class LinkClosed(Exception):
    """The host went away (or we dropped it on purpose)."""


def _recv_exact(sock: socket.socket, n: int) -> bytes:
    buf = bytearray()
    while len(buf) < n:
        chunk = sock.recv(n - len(buf))
        if not chunk:
            raise LinkClosed("peer closed")
        buf += chunk
    return bytes(buf)


def read_message(sock: socket.socket) -> tuple[bytes, int, int, bytes]:
    c, a0, a1, n, check, magic = HEADER.unpack(_recv_exact(sock, HEADER.size))
    if magic != c ^ 0xFFFFFFFF:
        raise LinkClosed(f"bad magic in header {c:#x}")
    data = _recv_exact(sock, n) if n else b""
    if check and (sum(data) & 0xFFFFFFFF) != check:  # v2 hosts may send 0 = unchecked
        raise LinkClosed("bad checksum")
    return struct.pack("<I", c), a0, a1, data


# -- RSA: Android's public key format and the token signature ------------------

def decode_adb_public_key(text: bytes | str) -> tuple[int, int]:
    """(n, e) from an adbkey.pub line: base64 of {len, n0inv, n[len], rr[len], e} + ' user@host'."""
    if isinstance(text, str):
        text = text.encode()
    blob = base64.b64decode(text.strip().split(b"\0")[0].split()[0])
    words = struct.unpack_from("<I", blob, 0)[0]
    n = int.from_bytes(blob[8:8 + 4 * words], "little")
    e = struct.unpack_from("<I", blob, 8 + 8 * words)[0]
    return n, e


def verify_token_signature(pubkey: tuple[int, int], token: bytes, signature: bytes) -> bool:
    """adbd's check: PKCS#1 v1.5 over the raw 20-byte token used as a SHA-1 digest."""
    from cryptography.exceptions import InvalidSignature
    from cryptography.hazmat.primitives import hashes
    from cryptography.hazmat.primitives.asymmetric import padding, rsa, utils

    n, e = pubkey
    key = rsa.RSAPublicNumbers(e, n).public_key()
    try:
        key.verify(signature, token, padding.PKCS1v15(), utils.Prehashed(hashes.SHA1()))
        return True
    except (InvalidSignature, ValueError):
        return False


# -- faults --------------------------------------------------------------------

@dataclass
class Faults:
    """Switches for error-path tests. Counters say how many times a fault still fires (-1: always)."""

    refuse_auth: bool = False  # never accept a key: the "Allow USB debugging?" prompt is declined
    drop_push_after_bytes: int = 4096  # where a push is cut
    drop_push: int = 0  # how many pushes to cut mid-way
    hang_benchmark: int = 0  # how many benchmark_model runs never finish
    garbage_benchmark: int = 0  # how many benchmark_model runs print garbage
    hang_after_runs: int = -1  # the benchmark_model run after this many started ones hangs (once)
    hot_until: float = 0.0  # time.monotonic() until which the battery reads hot
    hot_temp_c: float = 48.0
    blackhole_until: float = 0.0  # time.monotonic() until which a new link gets no answer at all
    tls_only: bool = False  # Android 11+ wireless debugging: answers CNXN with STLS
    no_thermalservice: bool = False  # Android 9 and older: `dumpsys thermalservice` does not exist
    unreadable_sysfs: tuple[str, ...] = ()  # file names (e.g. "scaling_cur_freq") the shell user may not read
    gpu_unavailable: bool = False  # the GPU / NNAPI delegate cannot be created at all
    delegate_refuses: tuple[str, ...] = ("MEAN", "HARD_SWISH", "MUL")  # op types gpu/nnapi leave on the CPU

    def take(self, name: str) -> bool:
        left = getattr(self, name)
        if left == 0:
            return False
        if left > 0:
            setattr(self, name, left - 1)
        return True


@dataclass
class Clocks:
    """How the timed core's clock behaves (relative to its maximum, 1.0).

    Busy time ramps it from `idle` to 1 over `ramp_s`; idle time brings it back
    over `decay_s`. Heat is busy seconds minus `cool_rate` x idle seconds; past
    `throttle_after_s` the maximum drops to `throttled` until it cools below.
    Defaults are of the order seen on phone big cores (schedutil ramps in
    ~0.1-0.5 s; sustained single-core load throttles in minutes).
    """

    idle: float = 0.35
    ramp_s: float = 0.4
    decay_s: float = 0.2
    throttle_after_s: float = 120.0
    throttled: float = 0.6
    cool_rate: float = 2.0
    max_khz: int = 2850000


class _ClockState:
    """Warmth (0..1) and heat of the phone's timed cores, shared by every benchmark process.

    Only a process's time after it is ready to run counts as load: this machine
    needs far longer to start the Python stand-in than a phone needs to start
    benchmark_model, and that start-up must not warm the modelled core.
    """

    def __init__(self, c: Clocks):
        self.c = c
        self.warm, self.heat, self.t = 0.0, 0.0, time.monotonic()
        self.busy = 0
        self.lock = threading.Lock()

    def _idle_to(self, now: float) -> None:
        if not self.busy:
            dt = max(0.0, now - self.t)
            self.warm = max(0.0, self.warm - dt / self.c.decay_s) if self.c.decay_s > 0 else 0.0
            self.heat = max(0.0, self.heat - dt * self.c.cool_rate)
        self.t = now

    def start(self) -> str:
        """Mark one more process busy; the env value its stand-in computes its clock from."""
        with self.lock:
            self._idle_to(time.monotonic())
            self.busy += 1
            c = self.c
            return ",".join(map(repr, (self.warm, self.heat, c.ramp_s, c.idle, c.throttle_after_s, c.throttled)))

    def stop(self, busy_s: float) -> None:
        """A process ended after busy_s seconds of load."""
        with self.lock:
            self.warm = min(1.0, self.warm + busy_s / self.c.ramp_s) if self.c.ramp_s > 0 else 1.0
            self.heat += busy_s
            self.busy = max(0, self.busy - 1)
            self.t = time.monotonic()

    def now(self) -> tuple[float, float, bool]:
        """(clock fraction now, cap fraction now, throttled?)."""
        with self.lock:
            self._idle_to(time.monotonic())
            throttled = self.heat >= self.c.throttle_after_s
            cap = self.c.throttled if throttled else 1.0
            clock = self.c.idle + (1 - self.c.idle) * self.warm if self.busy else self.c.idle
            return min(clock, cap), cap, throttled

    def status(self) -> int:
        """Android thermal status: 0 none, 1 light, 2 moderate, 3 severe."""
        with self.lock:
            self._idle_to(time.monotonic())
            h, lim = self.heat, self.c.throttle_after_s
        if h >= 1.5 * lim:
            return 3
        if h >= lim:
            return 2
        return 1 if h >= 0.5 * lim else 0


def clock_at(env: str, since_ready_s: float) -> float:
    """The stand-in's clock fraction since_ready_s after it became ready, from _ClockState.start()."""
    warm, heat, ramp_s, idle, after, throttled = map(float, env.split(","))
    w = min(1.0, warm + since_ready_s / ramp_s) if ramp_s > 0 else 1.0
    cap = throttled if heat + since_ready_s >= after else 1.0
    return min(cap, idle + (1 - idle) * w)


# -- the phone -----------------------------------------------------------------

PROPS = {
    "ro.product.manufacturer": "latbench",
    "ro.product.brand": "latbench",
    "ro.product.model": "latbench emulated phone",
    "ro.product.device": "emulated",
    "ro.product.name": "latbench_emulated",
    "ro.product.cpu.abi": "x86_64",
    "ro.hardware": "emulated",
    "ro.board.platform": "loopback",
    "ro.soc.manufacturer": "latbench",
    "ro.build.version.release": "14",
    "ro.build.version.sdk": "34",
    "ro.build.id": "LATBENCH.EMU",
    "ro.build.fingerprint": "latbench/latbench_emulated/emulated:14/LATBENCH.EMU/1:userdebug/test-keys",
    "ro.serialno": "emulated-0001",
}

WRITABLE_ROOT = "/data/local/tmp"


@dataclass
class _Stream:
    local_id: int
    remote_id: int


class EmulatedPhone:
    """The loopback adbd. start() serves on 127.0.0.1 in background threads."""

    def __init__(self, sandbox: str | Path, port: int = 0, host: str = "127.0.0.1",
                 faults: Faults | None = None, auto_accept: bool = True,
                 serial: str = "emulated-0001", clocks: Clocks | None = None):
        self.sandbox = Path(sandbox).resolve()
        self.host, self.port = host, port
        self.faults = faults or Faults()
        self.clocks = _ClockState(clocks or Clocks())
        self.runs_started = 0  # benchmark_model invocations
        self.stayon = "false"  # svc power stayon
        self.stay_on_while_plugged_in = 0  # the global setting behind it (a bitmask)
        self.auto_accept = auto_accept
        self.props = dict(PROPS, **{"ro.serialno": serial, "ro.soc.model": _host_cpu_model()})
        self.serial = serial
        self.keys_file = self.sandbox / "data" / "misc" / "adb" / "adb_keys"
        self._stop = threading.Event()
        self._srv: socket.socket | None = None
        self._conns: set[socket.socket] = set()
        self._children: dict[subprocess.Popen, str] = {}  # process -> its device command line
        self._lock = threading.Lock()
        self.log: list[str] = []  # shell commands received, for tests and the curious
        self.pushes: list[str] = []  # device paths of completed pushes
        self._virtual: dict[str, Callable[[], str]] = {}
        self._make_sysfs()

    # ---- lifecycle
    def start(self) -> "EmulatedPhone":
        srv = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        srv.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        srv.bind((self.host, self.port))
        srv.listen(8)
        self.port = srv.getsockname()[1]
        self._srv = srv
        threading.Thread(target=self._accept_loop, args=(srv,), name="emulated-phone", daemon=True).start()
        return self

    @property
    def address(self) -> str:
        return f"{self.host}:{self.port}"

    def stop(self) -> None:
        self._stop.set()
        if self._srv is not None:
            try:
                self._srv.close()
            except OSError:
                pass
        with self._lock:
            for c in list(self._conns):
                _hard_close(c)
            for p in list(self._children):
                p.kill()
        self._reap()

    def stale_processes(self) -> list[str]:
        """Device command lines of benchmark processes still running (hung ones survive hang-ups)."""
        self._reap()
        with self._lock:
            return list(self._children.values())

    def _reap(self) -> None:
        with self._lock:
            for p in [p for p in self._children if p.poll() is not None]:
                del self._children[p]
                self._ended(p)

    def _ended(self, proc: subprocess.Popen) -> None:
        """Account a finished benchmark process's load (from the time it said it was ready)."""
        ready = self.sandbox / ".standin" / f"ready-{proc.pid}"
        try:
            busy = max(0.0, time.monotonic() - float(ready.read_text()))
            ready.unlink()
        except (OSError, ValueError):
            busy = 0.0
        self.clocks.stop(busy)

    def roam(self, seconds: float) -> None:
        """A Wi-Fi roam / USB re-enumeration: links drop and the phone is unreachable for a while."""
        srv, self._srv = self._srv, None
        if srv is not None:
            srv.close()
        self.drop_connections()

        def back() -> None:
            if not self._stop.is_set():
                self.start()

        t = threading.Timer(seconds, back)
        t.daemon = True
        t.start()

    def __enter__(self) -> "EmulatedPhone":
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def drop_connections(self) -> None:
        """Cut every open link, as when a USB cable is pulled."""
        with self._lock:
            for c in list(self._conns):
                _hard_close(c)

    # ---- device filesystem
    def _make_sysfs(self) -> None:
        tmp = self.sandbox / WRITABLE_ROOT.lstrip("/")
        tmp.mkdir(parents=True, exist_ok=True)
        self.keys_file.parent.mkdir(parents=True, exist_ok=True)
        self.keys_file.touch()
        zones = [("battery", self._battery_milli_c),
                 ("cpu-big", lambda: 36000 + (self._hot() * 20000) + 10000 * self.clocks.status()),
                 ("skin", lambda: 33000)]
        for i, (kind, fn) in enumerate(zones):
            base = f"/sys/class/thermal/thermal_zone{i}"
            d = self.sandbox / base.lstrip("/")
            d.mkdir(parents=True, exist_ok=True)
            (d / "type").write_text(kind + "\n")
            (d / "temp").write_text("0\n")
            self._virtual[f"{base}/temp"] = (lambda f=fn: f"{int(f())}\n")
        ck = self.clocks
        for c in sorted(os.sched_getaffinity(0)):
            base = f"/sys/devices/system/cpu/cpu{c}/cpufreq"
            d = self.sandbox / base.lstrip("/")
            d.mkdir(parents=True, exist_ok=True)
            files = {"scaling_governor": lambda: "schedutil\n",
                     "cpuinfo_max_freq": lambda: f"{ck.c.max_khz}\n",
                     "scaling_max_freq": lambda: f"{int(ck.c.max_khz * ck.now()[1])}\n",
                     "scaling_cur_freq": lambda: f"{int(ck.c.max_khz * ck.now()[0])}\n"}
            for name, fn in files.items():
                (d / name).write_text("0\n")
                self._virtual[f"{base}/{name}"] = fn

    def _hot(self) -> bool:
        return time.monotonic() < self.faults.hot_until

    def _battery_milli_c(self) -> float:
        return (self.faults.hot_temp_c if self._hot() else 30.1) * 1000

    def host_path(self, device_path: str) -> Path:
        """Map an absolute device path into the sandbox; refuses escapes."""
        if not device_path.startswith("/"):
            device_path = posixpath.join(WRITABLE_ROOT, device_path)
        norm = posixpath.normpath(device_path)
        p = (self.sandbox / norm.lstrip("/")).resolve()
        if p != self.sandbox and self.sandbox not in p.parents:
            raise PermissionError(device_path)
        return p

    def _writable(self, device_path: str) -> bool:
        norm = posixpath.normpath(device_path)
        return norm == WRITABLE_ROOT or norm.startswith(WRITABLE_ROOT + "/")

    def _accepted_keys(self) -> list[tuple[int, int]]:
        keys = []
        for line in self.keys_file.read_bytes().splitlines():
            if line.strip():
                try:
                    keys.append(decode_adb_public_key(line))
                except (ValueError, struct.error):
                    continue
        return keys

    # ---- connections
    def _accept_loop(self, srv: socket.socket) -> None:
        while not self._stop.is_set():
            try:
                conn, _ = srv.accept()
            except OSError:
                return
            conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            with self._lock:
                self._conns.add(conn)
            threading.Thread(target=self._serve, args=(conn,), daemon=True).start()

    def _serve(self, conn: socket.socket) -> None:
        try:
            _Session(self, conn).run()
        except (LinkClosed, OSError):
            pass
        finally:
            with self._lock:
                self._conns.discard(conn)
            _hard_close(conn)


def _hard_close(sock: socket.socket) -> None:
    try:
        sock.shutdown(socket.SHUT_RDWR)
    except OSError:
        pass
    try:
        sock.close()
    except OSError:
        pass


class _Session:
    """One host connection: handshake, then one stream at a time (as adb-shell uses it)."""

    def __init__(self, phone: EmulatedPhone, conn: socket.socket):
        self.phone, self.conn = phone, conn
        self.authed = False
        self.token = b""
        self.next_id = 1

    def send(self, cmd: bytes, a0: int, a1: int, data: bytes = b"") -> None:
        self.conn.sendall(pack_message(cmd, a0, a1, data))

    def banner(self) -> bytes:
        p = self.phone.props
        return (f"device::ro.product.name={p['ro.product.name']};ro.product.model={p['ro.product.model']};"
                f"ro.product.device={p['ro.product.device']};features={','.join(FEATURES)}").encode() + b"\0"

    def run(self) -> None:
        while True:
            cmd, a0, a1, data = read_message(self.conn)
            if cmd == A_CNXN:
                if time.monotonic() < self.phone.faults.blackhole_until:
                    self._silent()  # a half-dead Wi-Fi link: the bytes go nowhere
                if self.phone.faults.tls_only:
                    self.send(A_STLS, VERSION, 0)  # wireless debugging: TLS after `adb pair` only
                    self._silent()
                self.token = secrets.token_bytes(20)
                self.send(A_AUTH, AUTH_TOKEN, 0, self.token)
            elif cmd == A_AUTH:
                self._auth(a0, data)
            elif not self.authed:
                raise LinkClosed("command before auth")
            elif cmd == A_OPEN:
                self._open(a0, data.rstrip(b"\0").decode("utf-8", "replace"))
            # OKAY / WRTE / CLSE for streams already finished are ignored, as adbd does.

    def _auth(self, kind: int, data: bytes) -> None:
        ph = self.phone
        if kind == AUTH_SIGNATURE:
            if not ph.faults.refuse_auth and any(verify_token_signature(k, self.token, data)
                                                 for k in ph._accepted_keys()):
                self.authed = True
                self.send(A_CNXN, VERSION, MAX_DATA, self.banner())
            else:
                self.token = secrets.token_bytes(20)
                self.send(A_AUTH, AUTH_TOKEN, 0, self.token)
        elif kind == AUTH_RSAPUBLICKEY:
            if ph.faults.refuse_auth or not ph.auto_accept:
                self._silent()  # the prompt is declined or never answered: the host hears nothing
            key = data.rstrip(b"\0")
            decode_adb_public_key(key)  # must parse
            with ph._lock:
                with open(ph.keys_file, "ab") as f:
                    f.write(key + b"\n")
            self.authed = True
            self.send(A_CNXN, VERSION, MAX_DATA, self.banner())
        else:
            raise LinkClosed(f"unknown AUTH type {kind}")

    def _silent(self) -> None:
        """Read and ignore everything until the host gives up and closes the link."""
        while True:
            read_message(self.conn)

    def _open(self, remote_id: int, service: str) -> None:
        st = _Stream(self.next_id, remote_id)
        self.next_id += 1
        head, _, command = service.partition(":")
        opts = head.split(",")
        if opts[0] == "shell" and _ and not ("pty" in opts and not command):
            self.send(A_OKAY, st.local_id, st.remote_id)
            sh = _Shell(self.phone, self.conn)
            chunks = sh.run(command)
            if "v2" in opts:  # shell protocol v2: framed stdout / stderr, then the exit code
                data = b"".join(struct.pack("<BI", fd, len(b)) + b for fd, b in chunks if b)
                data += struct.pack("<BI", V2_EXIT, 1) + bytes([sh.rc & 0xFF])
            else:
                data = b"".join(b for _, b in chunks)
            self.write(st, data)
            self.send(A_CLSE, st.local_id, st.remote_id)
        elif service == "sync:":
            self.send(A_OKAY, st.local_id, st.remote_id)
            _Sync(self, st).run()
        else:
            self.send(A_CLSE, 0, remote_id)  # unknown service: refused

    def write(self, st: _Stream, data: bytes) -> None:
        """Send data in WRTE packets, each acknowledged with OKAY before the next."""
        for i in range(0, len(data), MAX_DATA):
            self.send(A_WRTE, st.local_id, st.remote_id, data[i:i + MAX_DATA])
            self.wait_okay(st)

    def wait_okay(self, st: _Stream) -> None:
        while True:
            cmd, a0, a1, _ = read_message(self.conn)
            if cmd == A_OKAY and a1 == st.local_id:
                return
            if cmd == A_CLSE and a1 == st.local_id:
                raise LinkClosed("stream closed by host")


class _Sync:
    """The sync: service: a byte stream of 8-byte requests carried in WRTE packets."""

    def __init__(self, sess: _Session, st: _Stream):
        self.sess, self.st, self.buf = sess, st, bytearray()

    def _fill(self, n: int) -> bytes:
        while len(self.buf) < n:
            cmd, a0, a1, data = read_message(self.sess.conn)
            if cmd == A_WRTE:
                self.buf += data
                self.sess.send(A_OKAY, self.st.local_id, self.st.remote_id)
            elif cmd == A_CLSE:
                self.sess.send(A_CLSE, self.st.local_id, self.st.remote_id)
                raise _StreamDone
        out, self.buf = bytes(self.buf[:n]), self.buf[n:]
        return out

    def _reply(self, ident: bytes, *words: int, data: bytes = b"") -> None:
        self.sess.write(self.st, ident + struct.pack(f"<{len(words)}I", *words) + data)

    def run(self) -> None:
        try:
            while True:
                ident, n = struct.unpack("<4sI", self._fill(8))
                if ident == b"QUIT":
                    self.sess.send(A_CLSE, self.st.local_id, self.st.remote_id)
                    return
                if ident not in (b"STAT", b"STA2", b"LST2", b"LIST", b"SEND", b"RECV"):
                    self._reply(b"FAIL", len(b"unknown sync request"), data=b"unknown sync request")
                    continue
                arg = self._fill(n).decode("utf-8", "replace")
                if ident in (b"STA2", b"LST2"):
                    self._stat2(ident, arg)
                else:
                    getattr(self, "_" + ident.decode().lower())(arg)
        except _StreamDone:
            return

    def _stat(self, path: str) -> None:
        try:
            p = self.sess.phone.host_path(path)
            s = p.stat()
            mode = s.st_mode if not p.is_file() else (0o100000 | (s.st_mode & 0o777))
            self._reply(b"STAT", mode, s.st_size, int(s.st_mtime))
        except (OSError, PermissionError):
            self._reply(b"STAT", 0, 0, 0)

    def _stat2(self, ident: bytes, path: str) -> None:
        """stat_v2: id, errno, dev, ino, mode, nlink, uid, gid, size, atime, mtime, ctime."""
        try:
            p = self.sess.phone.host_path(path)
            s = p.stat() if ident == b"STA2" else p.lstat()
            vals = (0, s.st_dev, s.st_ino, s.st_mode, s.st_nlink, 2000, 2000, s.st_size,
                    int(s.st_atime), int(s.st_mtime), int(s.st_ctime))
        except (OSError, PermissionError):
            vals = (2,) + (0,) * 10  # ENOENT
        self.sess.write(self.st, ident + struct.pack("<IQQIIIIQqqq", *vals))

    def _list(self, path: str) -> None:
        try:
            p = self.sess.phone.host_path(path)
            for child in sorted(p.iterdir()):
                s, name = child.stat(), child.name.encode()
                self._reply(b"DENT", s.st_mode, s.st_size, int(s.st_mtime), len(name), data=name)
        except (OSError, PermissionError):
            pass
        self._reply(b"DONE", 0, 0, 0, 0)

    def _fail(self, msg: str) -> None:
        b = msg.encode()
        self._reply(b"FAIL", len(b), data=b)

    def _send(self, arg: str) -> None:
        path, _, mode_s = arg.rpartition(",")
        ph = self.sess.phone
        mode = int(mode_s) if mode_s.isdigit() else 0o644
        data = bytearray()
        cut = ph.faults.drop_push and ph.faults.take("drop_push")
        while True:
            ident, n = struct.unpack("<4sI", self._fill(8))
            if ident == b"DATA":
                data += self._fill(n)
                if cut and len(data) >= ph.faults.drop_push_after_bytes:
                    _hard_close(self.sess.conn)  # the cable is pulled mid-push
                    raise LinkClosed("fault: dropped mid-push")
            elif ident == b"DONE":
                break
            else:
                return self._fail(f"unexpected {ident!r} during SEND")
        if not ph._writable(path):
            return self._fail(f"couldn't create file: {path}: Read-only file system")
        try:
            target = ph.host_path(path)
            target.parent.mkdir(parents=True, exist_ok=True)
            tmp = target.with_name(target.name + ".sync-tmp")
            tmp.write_bytes(bytes(data))
            os.chmod(tmp, mode & 0o777)
            os.replace(tmp, target)
        except (OSError, PermissionError) as exc:
            return self._fail(f"couldn't create file: {exc}")
        ph.pushes.append(path)
        self._reply(b"OKAY", 0)

    def _recv(self, path: str) -> None:
        try:
            data = self.sess.phone.host_path(path).read_bytes()
        except (OSError, PermissionError):
            return self._fail(f"open failed: No such file or directory: {path}")
        for i in range(0, len(data), 64 * 1024):
            chunk = data[i:i + 64 * 1024]
            self._reply(b"DATA", len(chunk), data=chunk)
        self._reply(b"DONE", 0)


class _StreamDone(Exception):
    pass


# -- the shell ----------------------------------------------------------------

class _Shell:
    """An allow-list interpreter for `sh -c` lines: `;`, `&&`, `||`, `2>/dev/null`, `2>&1`, globs."""

    def __init__(self, phone: EmulatedPhone, conn: socket.socket):
        self.phone, self.conn = phone, conn
        self.rc = 0

    def run(self, line: str) -> list[tuple[int, bytes]]:
        """Run a line; its output as (fd, bytes) chunks in order (fd 1 stdout, 2 stderr)."""
        self.phone.log.append(line)
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
        cmd: list[str] = []
        op = ";"
        for tok in tokens + [";"]:
            if tok in (";", "&&", "||"):
                if cmd and (op == ";" or (op == "&&" and self.rc == 0) or (op == "||" and self.rc != 0)):
                    if _peer_gone(self.conn):
                        break  # the host hung up: the shell gets SIGHUP (what it started may live on)
                    out += self._simple(cmd)
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
                err_fd = 0 if argv[i + 1] == ">" and argv[i + 2] == "/dev/null" else 1  # 2>/dev/null | 2>&1
                i += 3
                continue
            if argv[i] in (">", ">>", "<", "|"):
                self.rc = 2
                return [(2, b"/system/bin/sh: redirection/pipes are not supported by the emulated shell\n")]
            clean.append(argv[i].replace("$?", str(self.rc)))
            i += 1
        if not clean:
            return []
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
        if path in self.phone._virtual:
            return self.phone._virtual[path]()
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
            if args[:3] == ["put", "global", "stay_on_while_plugged_in"] and len(args) == 4 \
                    and args[3].isdigit():
                ph.stay_on_while_plugged_in = int(args[3])
                ph.stayon = {v: k for k, v in STAYON_BITS.items()}.get(int(args[3]), args[3])
                return b"", b"", 0
            return b"", (b"settings: only 'get global low_power' and get/put global "
                         b"stay_on_while_plugged_in are emulated\n"), 1
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
            with ph._lock:
                hits = [p for p, cmdline in ph._children.items()
                        if _pattern_in(pats[0], cmdline if "-f" in args else cmdline.split()[0].rsplit("/", 1)[-1])]
            for p in hits:
                p.kill()
                p.wait()
            ph._reap()
            return b"", b"", 0 if hits else 1
        if name == "taskset":
            return self._taskset(args)
        if "/" in name:
            return self._program(name, args, cpus=None)
        return b"", f"/system/bin/sh: {name}: inaccessible or not found\n".encode(), 127

    def _dumpsys(self, args: list[str]) -> tuple[bytes, bytes, int]:
        ph = self.phone
        if args[:1] == ["battery"]:
            t = int(round(ph._battery_milli_c() / 100))
            text = ("Current Battery Service state:\n  AC powered: false\n  USB powered: true\n"
                    "  Wireless powered: false\n  Max charging current: 500000\n  status: 2\n  health: 2\n"
                    f"  present: true\n  level: 87\n  scale: 100\n  voltage: 4215\n  temperature: {t}\n"
                    "  technology: Li-ion\n")
            return text.encode(), b"", 0
        if args[:1] == ["thermalservice"] and not ph.faults.no_thermalservice:
            st = ph.clocks.status()
            temps = [("battery", 2, ph._battery_milli_c() / 1000), ("cpu-big", 0, 36.0 + 10 * st),
                     ("skin", 3, 33.0)]
            rows = "".join(f"\tTemperature{{mValue={v:.1f}, mType={ty}, mName={n}, mStatus={st if ty == 0 else 0}}}\n"
                           for n, ty, v in temps)
            text = (f"IsStatusOverride: false\nThermalEventListeners:\n\tcallbacks: 1\n\tkilled: false\n"
                    f"Thermal Status: {st}\nCached temperatures:\n{rows}HAL Ready: true\n"
                    f"HAL connection:\n\tThermalHAL 2.0 connected: yes\nCurrent temperatures from HAL:\n{rows}")
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
            if not ph._writable(a):
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
        cpus = {c for c in os.sched_getaffinity(0) if mask >> c & 1}
        if not cpus:
            return b"", b"taskset: sched_setaffinity: Invalid argument\n", 1
        return self._program(args[1], args[2:], cpus=cpus)

    def _wait(self, deadline: float) -> bool:
        """Sleep until deadline; False if the host hung up or the phone stops first."""
        while time.monotonic() < deadline:
            if self.phone._stop.is_set() or _peer_gone(self.conn):
                return False
            time.sleep(0.05)
        return True

    def _program(self, path: str, args: list[str], cpus: set[int] | None) -> tuple[bytes, bytes, int]:
        ph = self.phone
        try:
            p = ph.host_path(path)
        except PermissionError:
            return b"", f"/system/bin/sh: {path}: Permission denied\n".encode(), 126
        if not p.is_file():
            return b"", f"/system/bin/sh: {path}: not found\n".encode(), 127
        if not os.access(p, os.X_OK):
            return b"", f"/system/bin/sh: {path}: can't execute: Permission denied\n".encode(), 126
        if STANDIN_MARKER not in p.read_bytes()[:4096]:
            return b"", (f"/system/bin/sh: {path}: can't execute: this emulated phone runs only "
                         "latbench's benchmark_model stand-in\n").encode(), 126
        ph.runs_started += 1
        hang = ph.faults.take("hang_benchmark") or ph.runs_started == ph.faults.hang_after_runs + 1
        argv = []
        for a in args:  # device paths in flags -> sandbox paths
            if a.startswith("--graph="):
                try:
                    a = "--graph=" + str(ph.host_path(a.split("=", 1)[1]))
                except PermissionError:
                    pass
            argv.append(a)
        ph._reap()
        with ph._lock:
            share = 1 + len(ph._children)  # a stale (hung) benchmark on the core halves our share of it
            (ph.sandbox / ".standin").mkdir(exist_ok=True)
            env = dict(os.environ, LATBENCH_EMU_CPUS=",".join(map(str, sorted(cpus or ()))),
                       LATBENCH_EMU_CLOCK=ph.clocks.start(), LATBENCH_EMU_SHARE=str(share),
                       LATBENCH_EMU_READY=str(ph.sandbox / ".standin"),
                       LATBENCH_EMU_REFUSES=",".join(ph.faults.delegate_refuses),
                       LATBENCH_EMU_NO_DELEGATE="1" if ph.faults.gpu_unavailable else "")
            cmd = [sys.executable, "-m", "latbench.devices.emulated_phone", "--benchmark-model",
                   *(["--hang"] if hang else []), *argv]
            proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, env=env, cwd=ph.sandbox)
            ph._children[proc] = " ".join([path, *args])
        out = b""
        while True:
            try:
                out, _ = proc.communicate(timeout=0.1)
                break
            except subprocess.TimeoutExpired:
                if ph._stop.is_set() or _peer_gone(self.conn):
                    # The host hung up: like a real phone, the process runs on (and keeps the core busy)
                    return b"", b"", 129
        with ph._lock:
            if ph._children.pop(proc, None) is not None:
                ph._ended(proc)
        if ph.faults.take("garbage_benchmark"):
            out = b"\x1b[0m\xff\xfe<<<garbled>>> c0unt=?? avg=NaN\nSegmentation fault\n"
        return out, b"", proc.returncode if proc.returncode >= 0 else 128 - proc.returncode


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


def _host_cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return "host " + line.split(":", 1)[1].strip()
    except OSError:
        pass
    return "host cpu"


# -- the benchmark_model stand-in ---------------------------------------------

def standin_script() -> bytes:
    """What latbench pushes as `benchmark_model` to the emulated phone (a marker, not a binary)."""
    return b"#!/system/bin/sh\n# " + STANDIN_MARKER + b": the emulated phone runs LiteRT in its place\nexit 1\n"


def _stats_line(us: list[int]) -> str:
    """tensorflow Stat<int64>::OutputToStream, reproduced from its documented output format."""
    n = len(us)
    if n == 0:
        return "count=0"
    if min(us) == max(us):
        return f"count={n} curr={us[-1]}" + ("(all same)" if n > 1 else "")
    avg = sum(us) / n
    var = sum(x * x for x in us) / n - avg * avg
    std = int(max(var, 0.0) ** 0.5)
    return f"count={n} first={us[0]} curr={us[-1]} min={min(us)} max={max(us)} avg={avg:g} std={std}"


def benchmark_main(argv: list[str]) -> int:
    """Time --graph with LiteRT like benchmark_model does, printing its log lines."""
    import numpy as np

    from latbench.devices.litert import interpreter_class

    hang = argv[:1] == ["--hang"]
    argv = argv[1:] if hang else argv
    flags: dict[str, str] = {}
    unconsumed = []
    known = {"graph", "num_threads", "warmup_runs", "num_runs", "min_secs", "max_secs", "warmup_min_secs",
             "use_xnnpack", "use_gpu", "use_nnapi", "enable_op_profiling"}
    for a in argv:
        k, _, v = a.lstrip("-").partition("=")
        (flags.__setitem__(k, v) if a.startswith("--") and k in known else unconsumed.append(a))
    log = lambda s: print(f"INFO: {s}", flush=True)  # noqa: E731
    cpus = os.environ.get("LATBENCH_EMU_CPUS", "")
    if cpus:
        os.sched_setaffinity(0, {int(c) for c in cpus.split(",")})
    log("STARTING!")
    def ready() -> float:
        t = time.monotonic()
        if os.environ.get("LATBENCH_EMU_READY"):
            Path(os.environ["LATBENCH_EMU_READY"], f"ready-{os.getpid()}").write_text(repr(t))
        return t

    if hang:  # a wedged driver / deadlocked run: never returns, holds its core
        ready()
        while True:
            time.sleep(3600)
    if unconsumed:
        print(f"WARN: Unconsumed cmdline flags: {' '.join(unconsumed)}", flush=True)
    graph = flags.get("graph", "")
    threads = int(flags.get("num_threads", "-1"))
    warm_n, num_n = int(flags.get("warmup_runs", "1")), int(flags.get("num_runs", "50"))
    warm_s, min_s = float(flags.get("warmup_min_secs", "0.5")), float(flags.get("min_secs", "1"))
    max_s = float(flags.get("max_secs", "150"))
    log(f"Num threads: [{threads}]")
    log(f"Graph: [{graph}]")
    on = lambda f: flags.get(f, "false").lower() in ("1", "true")  # noqa: E731
    delegate = "gpu" if on("use_gpu") else "nnapi" if on("use_nnapi") else "xnnpack" if on("use_xnnpack") else ""
    if delegate in ("gpu", "nnapi") and os.environ.get("LATBENCH_EMU_NO_DELEGATE"):
        print(f"ERROR: {delegate.upper()} delegate is not available on the latbench emulated phone.", flush=True)
        print(f"ERROR: Failed to apply {delegate.upper()} delegate.", flush=True)
        return 1
    if flags.get("enable_op_profiling", "false").lower() in ("1", "true"):
        print("WARN: the emulated stand-in cannot profile ops; no op tables will be printed.", flush=True)
    if not graph or not Path(graph).is_file():
        print(f"ERROR: Could not open '{graph}'.", flush=True)
        print("ERROR: Failed to load model", flush=True)
        return 1
    Interpreter, runtime, version = interpreter_class()
    t0 = time.perf_counter_ns()
    try:
        interp = Interpreter(model_path=graph, num_threads=threads if threads > 0 else None)
        interp.allocate_tensors()
    except Exception as exc:  # noqa: BLE001 - the real tool prints and exits too
        print(f"ERROR: Failed to construct interpreter: {exc}", flush=True)
        return 1
    init_us = (time.perf_counter_ns() - t0) // 1000
    if delegate:
        _announce_delegate(delegate, [o["op_name"] for o in interp._get_ops_details()], log)
    log(f"Loaded model {graph}")
    log(f"The input model file size (MB): {Path(graph).stat().st_size / 1e6:g}")
    log(f"Initialized session in {init_us / 1e3:g}ms.")
    rng = np.random.default_rng(0)
    for d in interp.get_input_details():
        if np.issubdtype(d["dtype"], np.integer):
            info = np.iinfo(d["dtype"])
            x = rng.integers(info.min, info.max, size=d["shape"], endpoint=True).astype(d["dtype"])
        else:
            x = rng.standard_normal(d["shape"]).astype(d["dtype"])
        interp.set_tensor(d["index"], x)

    clock_env = os.environ.get("LATBENCH_EMU_CLOCK", "")
    share = int(os.environ.get("LATBENCH_EMU_SHARE", "1") or 1)
    t_ready = ready()

    def phase(n: int, min_secs: float) -> list[int]:
        log(f"Running benchmark for at least {n} iterations and at least {min_secs:g} seconds "
            f"but terminate if exceeding {max_s:g} seconds.")
        us: list[int] = []
        start = time.perf_counter()
        while (len(us) < n or time.perf_counter() - start < min_secs) and time.perf_counter() - start <= max_s:
            t = time.thread_time_ns()
            interp.invoke()
            cpu_us = (time.thread_time_ns() - t) / 1000
            clock = clock_at(clock_env, time.monotonic() - t_ready) if clock_env else 1.0
            us.append(int(cpu_us * share / clock))
        log(_stats_line(us) + "\n")
        return us

    warm = phase(warm_n, warm_s)
    runs = phase(num_n, min_s)
    w_avg = sum(warm) / len(warm) if warm else 0
    r_avg = sum(runs) / len(runs) if runs else 0
    log(f"Inference timings in us: Init: {init_us}, First inference: {warm[0] if warm else 0}, "
        f"Warmup (avg): {w_avg:g}, Inference (avg): {r_avg:g}")
    return 0


def _announce_delegate(delegate: str, ops: list[str], log: Callable[[str], None]) -> None:
    """What the real tool logs when a delegate claims nodes (old and new wording differ; this is the new)."""
    refuses = set(filter(None, os.environ.get("LATBENCH_EMU_REFUSES", "").split(",")))
    if delegate == "xnnpack":
        refuses = set()
    names = {"xnnpack": "TfLiteXNNPackDelegate", "gpu": "TfLiteGpuDelegateV2", "nnapi": "TfLiteNnapiDelegate"}
    taken = [op not in refuses for op in ops]
    parts = sum(1 for i, t in enumerate(taken) if i == 0 or t != taken[i - 1])
    log("Created TensorFlow Lite XNNPACK delegate for CPU." if delegate == "xnnpack"
        else f"Created TensorFlow Lite delegate for {delegate.upper()}.")
    if any(taken):
        log(f"Replacing {sum(taken)} out of {len(ops)} node(s) with delegate ({names[delegate]}) node, "
            f"yielding {parts} partitions for the whole graph.")
    else:
        print(f"WARN: Though {delegate.upper()} delegate is explicitly applied, the model graph will not be "
              "executed by the delegate.", flush=True)


# -- entry point --------------------------------------------------------------

def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv[:1] == ["--benchmark-model"]:
        return benchmark_main(argv[1:])
    ap = argparse.ArgumentParser(prog="python -m latbench.devices.emulated_phone",
                                 description="A loopback ADB phone for latbench demos and tests.")
    ap.add_argument("--port", type=int, default=5555)
    ap.add_argument("--sandbox", required=True, help="directory that plays the phone's filesystem")
    ap.add_argument("--serial", default="emulated-0001")
    ap.add_argument("--refuse-auth", action="store_true", help="decline every key (fault test)")
    ap.add_argument("--hang-after-runs", type=int, default=-1, metavar="N",
                    help="the benchmark_model run after N started ones hangs, once (fault test)")
    ap.add_argument("--throttle-after-s", type=float, default=Clocks.throttle_after_s,
                    help="busy seconds before the modelled core throttles")
    a = ap.parse_args(argv)
    phone = EmulatedPhone(a.sandbox, port=a.port, serial=a.serial,
                          faults=Faults(refuse_auth=a.refuse_auth, hang_after_runs=a.hang_after_runs),
                          clocks=Clocks(throttle_after_s=a.throttle_after_s))
    phone.start()
    print(f"emulated phone {a.serial} listening on {phone.address} (sandbox {phone.sandbox}); Ctrl-C stops it",
          flush=True)
    try:
        while True:
            time.sleep(3600)
    except KeyboardInterrupt:
        phone.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
