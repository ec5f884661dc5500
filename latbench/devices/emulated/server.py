"""The loopback adbd: the TCP server, one session per host connection, and the sync service.

Why: latbench's ADB code (adb_transport.py, adb.py) must be exercised end to
end without a phone. This server plays adbd's side of the protocol that
`adb-shell` (and Google's `adb` client) speak: CNXN, AUTH with a real RSA
check (TOKEN -> SIGNATURE verified against accepted keys, else RSAPUBLICKEY,
accepted like a user tapping "Allow"), OPEN / OKAY / WRTE / CLSE streams with
per-WRTE flow control, the `shell:` service (shell protocol v2 when asked: separate
stderr, exit codes) and the `sync:` service (STAT, STA2, LIST, LST2, SEND, RECV,
DATA, DONE, OKAY, FAIL, QUIT).

The link faults (`Faults`) are played here: a key refused by silence (a real
phone never closes the socket, the host times out), a link dropped mid-push, a
Wi-Fi roam (unreachable for a while) or a black-holed link, Android 11+
wireless debugging (TLS only).
"""

from __future__ import annotations

import os
import secrets
import socket
import struct
import threading
import time
from dataclasses import dataclass
from pathlib import Path

from latbench.devices.emulated.protocol import (
    A_AUTH,
    A_CLSE,
    A_CNXN,
    A_OKAY,
    A_OPEN,
    A_STLS,
    A_WRTE,
    AUTH_RSAPUBLICKEY,
    AUTH_SIGNATURE,
    AUTH_TOKEN,
    FEATURES,
    MAX_DATA,
    V2_EXIT,
    VERSION,
    LinkClosed,
    decode_adb_public_key,
    pack_message,
    read_message,
    verify_token_signature,
)
from latbench.devices.emulated.shell import Shell
from latbench.devices.emulated.state import Clocks, Faults, PhoneState


@dataclass
class _Stream:
    local_id: int
    remote_id: int


class EmulatedPhone(PhoneState):
    """The loopback adbd. start() serves on 127.0.0.1 in background threads."""

    def __init__(
        self,
        sandbox: str | Path,
        port: int = 0,
        host: str = "127.0.0.1",
        faults: Faults | None = None,
        auto_accept: bool = True,
        serial: str = "emulated-0001",
        clocks: Clocks | None = None,
        layout: str | None = None,
        host_cpus: list[int] | None = None,
    ):
        self.host, self.port = host, port
        self._srv: socket.socket | None = None
        self._conns: set[socket.socket] = set()
        super().__init__(
            sandbox,
            faults=faults,
            auto_accept=auto_accept,
            serial=serial,
            clocks=clocks,
            layout=layout,
            host_cpus=host_cpus,
        )

    # ---- lifecycle
    def start(self) -> "EmulatedPhone":
        srv = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        srv.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        srv.bind((self.host, self.port))
        srv.listen(8)
        self.port = srv.getsockname()[1]
        self._srv = srv
        threading.Thread(
            target=self._accept_loop, args=(srv,), name="emulated-phone", daemon=True
        ).start()
        return self

    @property
    def address(self) -> str:
        return f"{self.host}:{self.port}"

    def stop(self) -> None:
        self.stopped.set()
        if self._srv is not None:
            try:
                self._srv.close()
            except OSError:
                pass
        with self.lock:
            for c in list(self._conns):
                _hard_close(c)
            for p in list(self.children):
                p.kill()
        self.reap()

    def roam(self, seconds: float) -> None:
        """A Wi-Fi roam / USB re-enumeration: links drop, the phone is unreachable for a while."""
        srv, self._srv = self._srv, None
        if srv is not None:
            srv.close()
        self.drop_connections()

        def back() -> None:
            if not self.stopped.is_set():
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
        with self.lock:
            for c in list(self._conns):
                _hard_close(c)

    # ---- connections
    def _accept_loop(self, srv: socket.socket) -> None:
        while not self.stopped.is_set():
            try:
                conn, _ = srv.accept()
            except OSError:
                return
            conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            with self.lock:
                self._conns.add(conn)
            threading.Thread(target=self._serve, args=(conn,), daemon=True).start()

    def _serve(self, conn: socket.socket) -> None:
        try:
            _Session(self, conn).run()
        except (LinkClosed, OSError):
            pass
        finally:
            with self.lock:
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
        return (
            f"device::ro.product.name={p['ro.product.name']};"
            f"ro.product.model={p['ro.product.model']};"
            f"ro.product.device={p['ro.product.device']};"
            f"features={','.join(FEATURES)}"
        ).encode() + b"\0"

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
            if not ph.faults.refuse_auth and any(
                verify_token_signature(k, self.token, data) for k in ph.accepted_keys()
            ):
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
            with ph.lock:
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
            v2 = "v2" in opts  # shell protocol v2: framed stdout / stderr, then the exit code

            def emit(fd: int, b: bytes) -> None:  # as produced, as adbd forwards a pipe
                self.write(st, struct.pack("<BI", fd, len(b)) + b if v2 else b)

            sh = Shell(self.phone, self.conn, emit)
            sh.run(command)
            if v2:
                self.write(st, struct.pack("<BI", V2_EXIT, 1) + bytes([sh.rc & 0xFF]))
            self.send(A_CLSE, st.local_id, st.remote_id)
        elif service == "sync:":
            self.send(A_OKAY, st.local_id, st.remote_id)
            _Sync(self, st).run()
        else:
            self.send(A_CLSE, 0, remote_id)  # unknown service: refused

    def write(self, st: _Stream, data: bytes) -> None:
        """Send data in WRTE packets, each acknowledged with OKAY before the next."""
        for i in range(0, len(data), MAX_DATA):
            self.send(A_WRTE, st.local_id, st.remote_id, data[i : i + MAX_DATA])
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
            vals = (
                0,
                s.st_dev,
                s.st_ino,
                s.st_mode,
                s.st_nlink,
                2000,
                2000,
                s.st_size,
                int(s.st_atime),
                int(s.st_mtime),
                int(s.st_ctime),
            )
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
        if not ph.writable(path):
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
            chunk = data[i : i + 64 * 1024]
            self._reply(b"DATA", len(chunk), data=chunk)
        self._reply(b"DONE", 0)


class _StreamDone(Exception):
    pass
