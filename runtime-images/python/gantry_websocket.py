"""A minimal RFC 6455 WebSocket client over a unix socket, for gantry's Python agent: the
upgrade with the container's token, text messages, ping/pong and the close handshake. Standard
library only (Python >= 3.9).
"""
from __future__ import annotations

import base64
import hashlib
import os
import socket
import struct
import threading
from typing import BinaryIO, Dict, List, Optional, Tuple
from urllib.parse import urlsplit

#: The largest message taken from the daemon.
MAX_INCOMING_MESSAGE_BYTES = 256 * 1024 * 1024



class ConnectionLost(Exception):
    """The connection ended without a close handshake (or could not be made)."""


class ProtocolError(Exception):
    """The daemon broke RFC 6455; ``code`` is the close code to answer with."""

    def __init__(self, code: int, reason: str) -> None:
        super().__init__(reason)
        self.code = code


def _mask(data: bytes, key: bytes) -> bytes:
    """XORs data with the 4-byte key repeated (as one big integer: fast for large payloads)."""
    n = len(data)
    if n == 0:
        return b""
    repeated = (key * (n // 4 + 1))[:n]
    return (int.from_bytes(data, "big") ^ int.from_bytes(repeated, "big")).to_bytes(n, "big")


class UnixWebSocket:
    """A minimal RFC 6455 client over a unix socket: text messages, ping/pong, close.

    ``recv`` runs in one thread; ``send_text`` and ``close`` may be called from any thread.
    """

    GUID = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"
    OP_CONTINUATION, OP_TEXT, OP_BINARY, OP_CLOSE, OP_PING, OP_PONG = 0x0, 0x1, 0x2, 0x8, 0x9, 0xA

    def __init__(self, sock: socket.socket, reader: BinaryIO) -> None:
        self._sock = sock
        self._reader = reader
        self._send_lock = threading.Lock()
        self.close_sent = False

    @classmethod
    def connect(cls, address: str, path: str, headers: Dict[str, str]) -> "UnixWebSocket":
        """Connects and upgrades; raises ConnectionLost if the daemon cannot be reached or refuses.

        ``address`` is a unix socket's path, or ``ws://HOST:PORT`` (a daemon across the network).
        """
        sock: Optional[socket.socket] = None
        try:
            if address.startswith("ws://"):
                parts = urlsplit(address)
                if not parts.hostname:
                    raise ConnectionLost(f"{address!r} names no host")
                host = parts.netloc
                sock = socket.create_connection((parts.hostname, parts.port or 80), timeout=30)
                sock.settimeout(None)
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            else:
                host = "localhost"
                sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
                sock.connect(address)
            key = base64.b64encode(os.urandom(16)).decode("ascii")
            request = [
                f"GET {path} HTTP/1.1",
                f"Host: {host}",
                "Upgrade: websocket",
                "Connection: Upgrade",
                f"Sec-WebSocket-Key: {key}",
                "Sec-WebSocket-Version: 13",
                *(f"{name}: {value}" for name, value in headers.items()),
            ]
            sock.sendall(("\r\n".join(request) + "\r\n\r\n").encode("latin-1"))
            reader = sock.makefile("rb")
            status, response = cls._read_http_head(reader)
            if status.split(" ")[1:2] != ["101"]:
                raise ConnectionLost(f"the daemon refused the WebSocket upgrade: {status!r}")
            accept = base64.b64encode(hashlib.sha1((key + cls.GUID).encode("ascii")).digest()).decode("ascii")
            if response.get("sec-websocket-accept") != accept:
                raise ConnectionLost("the daemon's Sec-WebSocket-Accept does not match the key")
            return cls(sock, reader)
        except OSError as exc:
            if sock is not None:
                sock.close()
            raise ConnectionLost(str(exc)) from exc
        except ConnectionLost:
            if sock is not None:
                sock.close()
            raise

    @staticmethod
    def _read_http_head(reader: BinaryIO) -> Tuple[str, Dict[str, str]]:
        """The status line and the headers (names in lower case) of an HTTP response."""
        lines: List[str] = []
        while True:
            line = reader.readline(64 * 1024)
            if not line.endswith(b"\n"):
                raise ConnectionLost("the connection ended during the WebSocket handshake")
            text = line.decode("latin-1").rstrip("\r\n")
            if not text:
                break
            lines.append(text)
        headers: Dict[str, str] = {}
        for line in lines[1:]:
            name, _, value = line.partition(":")
            headers[name.strip().lower()] = value.strip()
        return (lines[0] if lines else ""), headers

    def send_text(self, payload: bytes) -> None:
        """Sends one text message (UTF-8 bytes); dropped once a close frame was sent."""
        self._send_frame(self.OP_TEXT, payload)

    def close(self, code: int = 1000, reason: str = "") -> None:
        """Starts the closing handshake (once); ``recv`` returns None when the daemon answers."""
        self._send_frame(self.OP_CLOSE, struct.pack("!H", code) + reason.encode("utf-8")[:123])

    def shutdown(self) -> None:
        try:
            self._sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass

    def _send_frame(self, opcode: int, payload: bytes) -> None:
        n = len(payload)
        if n < 126:
            header = struct.pack("!BB", 0x80 | opcode, 0x80 | n)
        elif n < 1 << 16:
            header = struct.pack("!BBH", 0x80 | opcode, 0x80 | 126, n)
        else:
            header = struct.pack("!BBQ", 0x80 | opcode, 0x80 | 127, n)
        key = os.urandom(4)
        with self._send_lock:
            if self.close_sent:
                return
            if opcode == self.OP_CLOSE:
                self.close_sent = True
            self._sock.sendall(header + key)
            self._sock.sendall(_mask(payload, key))

    def recv(self) -> Optional[str]:
        """The next message as text; None once the closing handshake is done.

        Answers pings, joins continuation frames, answers a close frame with one of its own.
        Raises ConnectionLost if the connection ends first, ProtocolError on a broken frame.
        """
        fragments: List[bytes] = []
        size = 0
        while True:
            fin, opcode, payload = self._read_frame(MAX_INCOMING_MESSAGE_BYTES - size)
            if opcode == self.OP_PING:
                self._send_frame(self.OP_PONG, payload)
            elif opcode == self.OP_PONG:
                pass
            elif opcode == self.OP_CLOSE:
                self._send_frame(self.OP_CLOSE, payload[:2])
                return None
            elif opcode in (self.OP_TEXT, self.OP_BINARY, self.OP_CONTINUATION):
                if (opcode == self.OP_CONTINUATION) != bool(fragments):
                    raise ProtocolError(1002, "unexpected continuation frame" if not fragments else "expected a continuation frame")
                fragments.append(payload)
                size += len(payload)
                if fin:
                    try:
                        return b"".join(fragments).decode("utf-8")
                    except UnicodeDecodeError as exc:
                        raise ProtocolError(1007, "a message is not valid UTF-8") from exc
            else:
                raise ProtocolError(1002, f"unknown opcode {opcode}")

    def _read_frame(self, limit: int) -> Tuple[bool, int, bytes]:
        b0, b1 = self._read_exact(2)
        fin, opcode, masked, n = bool(b0 & 0x80), b0 & 0x0F, bool(b1 & 0x80), b1 & 0x7F
        if n == 126:
            (n,) = struct.unpack("!H", self._read_exact(2))
        elif n == 127:
            (n,) = struct.unpack("!Q", self._read_exact(8))
        if opcode >= 0x8 and (n > 125 or not fin):
            raise ProtocolError(1002, "a control frame is fragmented or too long")
        if n > limit:
            raise ProtocolError(1009, f"a message is over {MAX_INCOMING_MESSAGE_BYTES} bytes")
        key = self._read_exact(4) if masked else b""
        payload = self._read_exact(n)
        return fin, opcode, _mask(payload, key) if masked else payload

    def _read_exact(self, n: int) -> bytes:
        chunks: List[bytes] = []
        remaining = n
        while remaining > 0:
            try:
                chunk = self._reader.read(remaining)
            except OSError as exc:
                raise ConnectionLost(str(exc)) from exc
            if not chunk:
                raise ConnectionLost("the daemon closed the connection without a close frame")
            chunks.append(chunk)
            remaining -= len(chunk)
        return b"".join(chunks)
