"""The ADB wire protocol and its keys: what is on the wire, and adbd's RSA check.

Messages are 24-byte little-endian headers (command, arg0, arg1, length,
byte-sum checksum, command ^ 0xffffffff) followed by the payload. The module also
holds the commands, AUTH types, a modern adbd's feature list (shell_v2, stat_v2),
Android's adbkey.pub format and the check of a signed AUTH token.
"""

from __future__ import annotations

import base64
import socket
import struct

# -- wire format -------------------------------------------------------------

A_CNXN, A_AUTH, A_OPEN, A_OKAY, A_WRTE, A_CLSE = (
    b"CNXN",
    b"AUTH",
    b"OPEN",
    b"OKAY",
    b"WRTE",
    b"CLSE",
)
A_STLS = b"STLS"
# What this adbd implements of a modern adbd's feature list (adb reads it from the CNXN banner).
FEATURES = ("shell_v2", "stat_v2", "fixed_push_mkdir")
# shell protocol v2 packet ids: 1 byte id, 4 byte little-endian length, payload
V2_STDIN, V2_STDOUT, V2_STDERR, V2_EXIT, V2_CLOSE_STDIN = 0, 1, 2, 3, 4
AUTH_TOKEN, AUTH_SIGNATURE, AUTH_RSAPUBLICKEY = 1, 2, 3
VERSION = 0x01000000
MAX_DATA = 256 * 1024
HEADER = struct.Struct("<6I")


def _cmd_int(cmd: bytes) -> int:
    return struct.unpack("<I", cmd)[0]


def pack_message(cmd: bytes, arg0: int, arg1: int, data: bytes = b"") -> bytes:
    c = _cmd_int(cmd)
    return HEADER.pack(c, arg0, arg1, len(data), sum(data) & 0xFFFFFFFF, c ^ 0xFFFFFFFF) + data


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
    n = int.from_bytes(blob[8 : 8 + 4 * words], "little")
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
