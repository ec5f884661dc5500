"""How latbench talks to a phone: adb-shell over TCP or USB, or the `adb` server.

Why two routes: adb-shell speaks the ADB protocol itself (no Android SDK
needed, and it is what the emulated phone is tested against), but over USB it
cannot share the phone with a running `adb` server (libusb reports the
interface busy). The server route shells out to Debian's `adb` client instead.

Every call has a timeout. Link failures raise TransportError (the caller
reconnects and retries, with back-off sized for a Wi-Fi roam or a USB
re-enumeration); a command that outlives its timeout raises CommandTimeout,
however the route reports it (adb-shell's TCP timeout, libusb's
LIBUSB_ERROR_TIMEOUT inside UsbReadFailedError, the adb client's own); a key
the phone did not accept raises AuthRefused, and only when the phone was
really asked (our public key was sent and no answer came): a handshake that
never got that far is a link problem, not a refused key.

Route policy (`route_for`): when an `adb` server runs, it owns every USB phone,
so USB goes through it; otherwise adb-shell talks USB itself. latbench never
starts a server. Everything sent to the
device shell is quoted with shlex.quote by the caller's helpers (`sh_join`).
"""

from __future__ import annotations

import abc
import os
import shlex
import shutil
import stat
import subprocess
from dataclasses import dataclass
from pathlib import Path

DEFAULT_KEY = Path("~/.android/adbkey")
RC_MARK = "__LATBENCH_RC="


class TransportError(Exception):
    """The link to the phone failed (dropped, reset, unreachable): reconnect and retry."""


class CommandTimeout(TransportError):
    """A device command did not finish in time; the link is in an unknown state."""


class AuthRefused(TransportError):
    """The phone did not accept our key (prompt declined or not answered)."""


class UsbBusy(TransportError):
    """libusb says the interface is claimed: almost always by a running `adb` server."""


class PairingNeeded(TransportError):
    """Android 11+ wireless debugging: the phone speaks TLS only (after `adb pair`)."""


USB_BUSY_HELP = (
    "the phone's USB interface is busy: a running `adb` server holds it. Either stop the server "
    '(`adb kill-server`) and retry, or set `transport = "server"` in the device profile\'s '
    "[options] so latbench goes through that server instead."
)
PAIRING_HELP = (
    "the phone asked for TLS: this is Android 11+ *wireless debugging*, which needs `adb pair` "
    "and Google's adb. Either pair and connect with adb (`adb pair IP:PAIR_PORT CODE`, then "
    '`adb connect IP:PORT`) and set `transport = "server"` and `serial = "IP:PORT"` in the '
    'profile\'s [options], or plug in USB once, run `adb tcpip 5555`, and set `host = "IP"` '
    "(port 5555), which needs no pairing."
)
LINK_HELP = (
    "no answer from the phone while connecting (Wi-Fi roamed or dropped, phone asleep, USB "
    "re-enumerating, wrong address?)"
)
AUTH_HELP = (
    "the phone refused latbench's ADB key. Unlock the phone, accept the 'Allow USB debugging?' "
    "prompt (tick 'Always allow from this computer'), then retry; if no prompt appears, revoke "
    "USB debugging authorizations in Developer options and reconnect the cable."
)


def sh_join(argv: list[str]) -> str:
    """One shell line with every word quoted: paths and args can never be split or expanded."""
    return " ".join(shlex.quote(str(a)) for a in argv)


@dataclass
class ShellResult:
    output: str
    rc: int | None  # None where the route cannot report it


def ensure_adb_key(path: str | Path | None = None) -> Path:
    """The private key adb uses (~/.android/adbkey), created with mode 0600 when missing."""
    p = Path(path or DEFAULT_KEY).expanduser()
    if not p.exists():
        from adb_shell.auth.keygen import keygen

        p.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        old = os.umask(0o077)
        try:
            keygen(str(p))
        finally:
            os.umask(old)
    os.chmod(p, 0o600)
    return p


class Transport(abc.ABC):
    """The few operations latbench needs from a phone."""

    name = "transport"

    @abc.abstractmethod
    def connect(self) -> None: ...

    @abc.abstractmethod
    def shell(self, command: str, timeout_s: float) -> ShellResult:
        """Run a pre-quoted shell line; output is stdout and stderr together."""

    @abc.abstractmethod
    def push(self, local: Path, remote: str, mode: int, timeout_s: float) -> None: ...

    @abc.abstractmethod
    def remote_size(self, remote: str, timeout_s: float) -> int | None:
        """Size of a regular file on the phone, None if it is not there."""

    def close(self) -> None:
        pass

    def describe(self) -> str:
        return self.name


def _with_rc(command: str) -> str:
    # The shell: service (v1) does not report exit codes: print it ourselves.
    return f"{command}; echo {RC_MARK}$?"


def _split_rc(text: str) -> ShellResult:
    idx = text.rfind(RC_MARK)
    if idx < 0:
        return ShellResult(text, None)
    tail = text[idx + len(RC_MARK) :].strip().split()
    rc = int(tail[0]) if tail and tail[0].lstrip("-").isdigit() else None
    return ShellResult(text[:idx], rc)


class AdbShellTransport(Transport):
    """adb-shell's AdbDeviceTcp (host:port) or AdbDeviceUsb (serial), key from an adbkey file."""

    def __init__(
        self,
        *,
        host: str | None = None,
        port: int = 5555,
        serial: str | None = None,
        key_path: str | Path | None = None,
        connect_timeout_s: float = 10.0,
        auth_timeout_s: float = 30.0,
    ):
        self.host, self.port, self.serial = host, port, serial
        self.key_path = key_path
        self.connect_timeout_s = connect_timeout_s
        self.auth_timeout_s = auth_timeout_s
        self._dev = None
        self._asked = False  # our public key was sent: the phone shows the prompt
        self.name = f"tcp {host}:{port}" if host else f"usb {serial or '(first)'}"

    def connect(self) -> None:
        from adb_shell.auth.sign_pythonrsa import PythonRSASigner
        from adb_shell.exceptions import DeviceAuthError

        self.close()
        key = ensure_adb_key(self.key_path)
        signer = PythonRSASigner.FromRSAKeyPath(str(key))
        try:
            if self.host:
                from adb_shell.adb_device import AdbDevice

                dev = AdbDevice(
                    _eof_aware_tcp(self.host, self.port),
                    default_transport_timeout_s=self.connect_timeout_s,
                )
            else:
                from adb_shell.adb_device import AdbDeviceUsb

                dev = AdbDeviceUsb(
                    serial=self.serial, default_transport_timeout_s=self.connect_timeout_s
                )
            self._asked = False

            def asked(_dev: object) -> None:
                self._asked = True

            dev.connect(
                rsa_keys=[signer],
                auth_timeout_s=self.auth_timeout_s,
                transport_timeout_s=self.connect_timeout_s,
                read_timeout_s=self.connect_timeout_s,
                auth_callback=asked,
            )
        except DeviceAuthError as exc:
            raise AuthRefused(f"{self.name}: {AUTH_HELP} ({exc})") from None
        except Exception as exc:  # noqa: BLE001 - adb-shell and libusb raise many kinds
            raise self._classify(exc, "connect") from None
        self._dev = dev

    def _classify(self, exc: Exception, what: str) -> TransportError:
        text = f"{exc.__class__.__name__}: {exc}"
        if "Busy" in text or "BUSY" in text:
            return UsbBusy(f"{self.name}: {USB_BUSY_HELP} ({text})")
        if "Access" in exc.__class__.__name__ or "LIBUSB_ERROR_ACCESS" in text:
            return TransportError(
                f"{self.name}: no permission to open the USB device ({text}); install "
                "udev rules for Android (Debian: android-sdk-platform-tools-common) "
                'and add yourself to the plugdev group, or use transport = "server"'
            )
        if "STLS" in text:
            return PairingNeeded(f"{self.name}: {PAIRING_HELP}")
        if (
            what == "connect"
            and self._asked
            and (_is_timeout(exc) or isinstance(exc, ConnectionError))
        ):
            return AuthRefused(
                f"{self.name}: our key was offered and the phone did not accept it within "
                f"{self.auth_timeout_s:g} s; {AUTH_HELP} ({text})"
            )
        if what == "connect" and (_is_timeout(exc) or isinstance(exc, OSError)):
            return TransportError(f"{self.name}: {LINK_HELP} ({text})")
        if "UsbDeviceNotFound" in text:
            return TransportError(
                f"{self.name}: no phone found on USB ({text}); is USB debugging on?"
            )
        return TransportError(f"{self.name}: {what} failed: {text}")

    def _need(self):
        if self._dev is None:
            raise TransportError(f"{self.name}: not connected")
        return self._dev

    def shell(self, command: str, timeout_s: float) -> ShellResult:
        dev = self._need()
        try:
            out = dev.shell(
                _with_rc(command),
                transport_timeout_s=timeout_s,
                read_timeout_s=timeout_s,
                timeout_s=timeout_s,
                decode=False,
            )
        except Exception as exc:  # noqa: BLE001 - classified below: adb-shell raises many kinds
            self.close()
            if _is_timeout(exc):
                raise CommandTimeout(
                    f"{self.name}: command did not finish within {timeout_s:g} s"
                ) from None
            raise self._classify(exc, "shell") from None
        return _split_rc(out.decode("utf-8", "replace"))

    def push(self, local: Path, remote: str, mode: int, timeout_s: float) -> None:
        dev = self._need()
        try:
            dev.push(
                str(local),
                remote,
                st_mode=stat.S_IFREG | mode,
                transport_timeout_s=min(timeout_s, 10.0),
                read_timeout_s=timeout_s,
            )
        except Exception as exc:  # noqa: BLE001 - classified below: adb-shell raises many kinds
            self.close()
            if exc.__class__.__name__ in ("PushFailedError", "AdbCommandFailureException"):
                raise PushRefused(
                    f"{self.name}: the phone refused the push to {remote}: {exc}"
                ) from None
            raise self._classify(exc, f"push of {local.name}") from None

    def remote_size(self, remote: str, timeout_s: float) -> int | None:
        dev = self._need()
        try:
            mode, size, _ = dev.stat(
                remote, transport_timeout_s=min(timeout_s, 10.0), read_timeout_s=timeout_s
            )
        except Exception as exc:  # noqa: BLE001 - classified below: adb-shell raises many kinds
            self.close()
            raise self._classify(exc, "stat") from None
        return size if stat.S_ISREG(mode) else None

    def close(self) -> None:
        if self._dev is not None:
            try:
                self._dev.close()
            except Exception:  # noqa: BLE001 - closing a dead link may fail any way it likes
                pass
            self._dev = None


def _is_timeout(exc: Exception) -> bool:
    """A timeout, however the route words it: adb-shell's TCP/ADB timeouts, socket timeouts, and
    libusb's LIBUSB_ERROR_TIMEOUT, which adb-shell's USB transport wraps in UsbReadFailedError /
    UsbWriteFailedError."""
    name = exc.__class__.__name__
    text = str(exc)
    return (
        "Timeout" in name
        or isinstance(exc, TimeoutError)
        or "LIBUSB_ERROR_TIMEOUT" in text
        or "timed out" in text.lower()
    )


def _eof_aware_tcp(host: str, port: int):
    """adb-shell's TCP transport, but a closed socket is an error at once.

    Stock TcpTransport returns b'' forever from a closed socket, so a dropped
    link looks like a slow phone until the read timeout; we want to know now.
    """
    from adb_shell.transport.tcp_transport import TcpTransport

    class EofAwareTcpTransport(TcpTransport):
        def bulk_read(self, numbytes, transport_timeout_s):
            data = super().bulk_read(numbytes, transport_timeout_s)
            if not data:
                raise ConnectionResetError(f"{host}:{port} closed the connection")
            return data

    return EofAwareTcpTransport(host, port)


class PushRefused(Exception):
    """The phone answered the push with FAIL (read-only path, full disk): not a link problem."""


def adb_binary() -> str | None:
    return shutil.which("adb")


class AdbServerTransport(Transport):
    """Through the `adb` client and its server (`adb -s SERIAL shell/push`)."""

    def __init__(self, serial: str | None = None, adb: str | None = None):
        self.serial = serial
        self.adb = adb or adb_binary()
        self.name = f"adb-server {serial or '(only device)'}"

    def _run(self, args: list[str], timeout_s: float) -> subprocess.CompletedProcess:
        if not self.adb:
            raise TransportError("the `adb` client is not installed (Debian: apt install adb)")
        cmd = [self.adb] + (["-s", self.serial] if self.serial else []) + args
        try:
            return subprocess.run(cmd, capture_output=True, timeout=timeout_s)
        except subprocess.TimeoutExpired:
            raise CommandTimeout(
                f"{self.name}: `adb {args[0]}` did not finish within {timeout_s:g} s"
            ) from None

    def connect(self) -> None:
        r = self._run(["get-state"], 15.0)
        state = r.stdout.decode().strip()
        if r.returncode != 0 or state != "device":
            err = (r.stderr.decode() or state).strip()
            if "unauthorized" in err:
                raise AuthRefused(f"{self.name}: {AUTH_HELP}")
            raise TransportError(f"{self.name}: phone not available through the adb server: {err}")

    def shell(self, command: str, timeout_s: float) -> ShellResult:
        r = self._run(["shell", _with_rc(command)], timeout_s)
        text = (r.stdout + r.stderr).decode("utf-8", "replace")
        if r.returncode != 0 and RC_MARK not in text:
            raise TransportError(f"{self.name}: adb shell failed: {text.strip()[-300:]}")
        return _split_rc(text)

    def push(self, local: Path, remote: str, mode: int, timeout_s: float) -> None:
        r = self._run(["push", str(local), remote], timeout_s)
        if r.returncode != 0:
            text = (r.stdout + r.stderr).decode("utf-8", "replace").strip()
            if "Read-only" in text or "Permission denied" in text or "No space" in text:
                raise PushRefused(f"{self.name}: push to {remote} refused: {text[-300:]}")
            raise TransportError(f"{self.name}: push of {local.name} failed: {text[-300:]}")
        self.shell(sh_join(["chmod", format(mode, "o"), remote]), timeout_s)

    def remote_size(self, remote: str, timeout_s: float) -> int | None:
        r = self.shell(sh_join(["stat", "-c", "%s", remote]) + " 2>/dev/null", timeout_s)
        first = r.output.strip().split()
        return int(first[0]) if r.rc == 0 and first and first[0].isdigit() else None


def server_port() -> int:
    try:
        return int(os.environ.get("ANDROID_ADB_SERVER_PORT", "5037"))
    except ValueError:
        return 5037


def adb_server_running(timeout_s: float = 0.5) -> bool:
    """Is an `adb` server listening (it then holds every USB phone)? Asking never starts one."""
    import socket

    try:
        with socket.create_connection(("127.0.0.1", server_port()), timeout=timeout_s):
            return True
    except OSError:
        return False


def route_for(transport: str, has_host: bool) -> str:
    """The route a profile's `transport` resolves to now: "tcp", "usb" or "server".

    auto: tcp when a host is set; else the adb server when one runs (it owns USB phones), else
    adb-shell over USB. An explicit "usb" while a server runs is refused up front with what to do.
    """
    if transport == "tcp" or (transport == "auto" and has_host):
        return "tcp"
    if transport == "server":
        return "server"
    running = adb_server_running()
    if transport == "usb" and running:
        raise UsbBusy(
            f"usb: {USB_BUSY_HELP} (an adb server listens on port {server_port()}; "
            '`transport = "auto"` uses it)'
        )
    return "server" if running else "usb"


def list_server_devices(timeout_s: float = 15.0) -> list[tuple[str, str]]:
    """(serial, state) pairs from a running adb server; [] when adb is missing or no server runs
    (asking `adb devices` would start one, which would then hold every USB phone)."""
    adb = adb_binary()
    if not adb or not adb_server_running():
        return []
    try:
        r = subprocess.run([adb, "devices"], capture_output=True, timeout=timeout_s, text=True)
    except (subprocess.TimeoutExpired, OSError):
        return []
    out = []
    for line in r.stdout.splitlines()[1:]:
        parts = line.split()
        if len(parts) >= 2:
            out.append((parts[0], parts[1]))
    return out


def transport_for_serial(
    serial: str, adbkey: str | None = None, use_server: bool = True
) -> Transport:
    """A phone named the way `adb devices` names it: HOST:PORT over TCP; else through a running
    adb server (it owns USB phones); else USB through adb-shell."""
    host, _, port = serial.rpartition(":")
    if host and port.isdigit():
        return AdbShellTransport(
            host=host, port=int(port), key_path=adbkey, connect_timeout_s=5, auth_timeout_s=30
        )
    if use_server and adb_binary() is not None and adb_server_running():
        return AdbServerTransport(serial=serial)
    return AdbShellTransport(serial=serial, key_path=adbkey, connect_timeout_s=5, auth_timeout_s=30)
