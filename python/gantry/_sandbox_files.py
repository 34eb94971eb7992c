"""Files inside a sandbox: ``sb.open(path, mode)`` gives a ``SandboxFile``; ``sb.ls``, ``sb.mkdir``
and ``sb.rm`` (protocol/sandboxes.ts's files, entries and mkdir routes). The daemon reads and
writes them as the sandbox's own user, so a file that user may not write raises PermissionError.

A file is read whole when opened for reading; writes are kept here and sent on ``flush()`` and
``close()``: the whole file for ``w`` and ``r+`` modes, what was added for ``a`` modes. Text modes
are UTF-8 with no newline translation; ``seek``/``tell`` count bytes.
"""
from __future__ import annotations

import errno
import posixpath
from typing import Any, Dict, Iterator, List, Optional, Union
from urllib.parse import quote

from ._client import Client, error_from_api
from ._sandbox_args import absolute
from .exception import Error, InvalidError

#: As SANDBOX_LIMITS.fileBytes in protocol/sandboxes.ts.
FILE_BYTES = 256 * 1024 * 1024
_MODES = "r, rb, w, wb, a, ab, r+, w+, a+ (and their b variants: r+b, w+b, a+b)"


def as_os_error(err: Error, path: str) -> Exception:
    """The builtin error a local file operation would raise for the daemon's answer, by the errno
    the daemon sends with a file error (daemon/service/sandbox-files.ts fileError); anything else
    as it came."""
    kinds = {
        "ENOENT": FileNotFoundError,
        "EACCES": PermissionError,
        "EISDIR": IsADirectoryError,
        "ENOTDIR": NotADirectoryError,
        "EEXIST": FileExistsError,
    }
    name = getattr(err, "errno_name", None)
    if name not in kinds and err.code == "not_found":
        name = "ENOENT"  # a sandbox or exec that is not there
    if name not in kinds:
        return err
    return kinds[name](getattr(errno, name), str(err), path)


def _query(path: str) -> str:
    return f"path={quote(path, safe='')}"


def read_bytes(client: Client, base: str, path: str) -> bytes:
    try:
        with client.stream_bytes("GET", f"{base}/files?{_query(path)}") as stream:
            return b"".join(stream)
    except Error as err:
        raise as_os_error(err, path) from None


def write_bytes(client: Client, base: str, path: str, data: bytes, append: bool) -> None:
    if len(data) > FILE_BYTES:
        raise InvalidError(f"{path}: {len(data)} bytes to write at once; at most {FILE_BYTES} (256 MiB) are allowed")
    status, answer = client.send_stream("PUT", f"{base}/files?{_query(path)}&append={int(append)}", [data] if data else [], length=len(data))
    if not 200 <= status < 300:
        raise as_os_error(error_from_api(status, answer, client.target), path)


def _parse_mode(mode: Any) -> tuple:
    chars = mode if isinstance(mode, str) else ""
    kinds = [c for c in chars if c in "rwa"]
    if len(kinds) != 1 or len(set(chars)) != len(chars) or any(c not in "rwab+t" for c in chars) or ("b" in chars and "t" in chars):
        raise InvalidError(f"open: mode {mode!r} is not one gantry takes: {_MODES}")
    return kinds[0], "+" in chars, "b" not in chars


class SandboxFile:
    """A file in a sandbox, opened by ``sb.open(path, mode)``: ``read``, ``readline``,
    ``readlines``, iteration, ``write``, ``seek``/``tell``, ``flush``, ``close``; a context manager."""

    def __init__(self, client: Client, sandbox_id: str, path: str, mode: str = "r") -> None:
        self._client = client
        self._base = f"/v1/sandboxes/{sandbox_id}"
        self.path = absolute(path, "open")
        self.mode = mode
        kind, plus, self._text = _parse_mode(mode)
        self._readable = kind == "r" or plus
        self._writable = kind != "r" or plus
        self._append = kind == "a"
        self._data = bytearray()
        self._added = bytearray()  # "a" modes: written since the last flush
        self._dirty = False
        self.closed = False
        if kind == "r":
            self._data = bytearray(read_bytes(client, self._base, self.path))
        elif kind == "w":
            write_bytes(client, self._base, self.path, b"", append=False)  # made or emptied now, as open() does
        else:
            write_bytes(client, self._base, self.path, b"", append=True)  # made when missing, as open() does
            if plus:
                self._data = bytearray(read_bytes(client, self._base, self.path))
        self._pos = len(self._data) if self._append else 0

    # Reading.

    def _check(self, can: bool, what: str) -> None:
        if self.closed:
            raise ValueError(f"I/O operation on closed file {self.path}")
        if not can:
            raise OSError(errno.EBADF, f"{self.path} is not open for {what} (mode {self.mode!r})", self.path)

    def _out(self, raw: Union[bytes, bytearray]) -> Union[str, bytes]:
        return bytes(raw).decode("utf-8", "replace") if self._text else bytes(raw)

    def read(self, n: Optional[int] = None) -> Union[str, bytes]:
        """The rest of the file, or ``n`` characters (bytes in binary modes) of it."""
        self._check(self._readable, "reading")
        if n is None or n < 0:
            raw, self._pos = self._data[self._pos :], len(self._data)
            return self._out(raw)
        if not self._text:
            raw = self._data[self._pos : self._pos + n]
            self._pos += len(raw)
            return bytes(raw)
        text = bytes(self._data[self._pos : self._pos + 4 * n]).decode("utf-8", "replace")[:n]  # a character is at most 4 bytes
        self._pos += len(text.encode("utf-8"))
        return text

    def readline(self) -> Union[str, bytes]:
        self._check(self._readable, "reading")
        cut = self._data.find(b"\n", self._pos)
        end = len(self._data) if cut < 0 else cut + 1
        raw, self._pos = self._data[self._pos : end], end
        return self._out(raw)

    def readlines(self) -> List[Union[str, bytes]]:
        return list(self)

    def __iter__(self) -> Iterator[Union[str, bytes]]:
        while True:
            line = self.readline()
            if not line:
                return
            yield line

    # Writing.

    def write(self, data: Union[str, bytes, bytearray, memoryview]) -> int:
        """Keeps ``data`` to send on ``flush()``/``close()``; returns how much was written (characters in text modes)."""
        self._check(self._writable, "writing")
        if self._text and not isinstance(data, str):
            raise TypeError(f"write() takes str in text mode {self.mode!r}, not {type(data).__name__}")
        if not self._text and not isinstance(data, (bytes, bytearray, memoryview)):
            raise TypeError(f"write() takes bytes in binary mode {self.mode!r}, not {type(data).__name__}")
        raw = data.encode("utf-8") if isinstance(data, str) else bytes(data)
        if self._append:
            if len(self._added) + len(raw) > FILE_BYTES:
                self.flush()
            self._added.extend(raw)
            if self._readable:
                self._data.extend(raw)
            self._pos = len(self._data)
        else:
            if max(len(self._data), self._pos + len(raw)) > FILE_BYTES:
                raise InvalidError(f"{self.path}: a file written through open() has at most {FILE_BYTES} bytes (256 MiB)")
            if self._pos > len(self._data):
                self._data.extend(b"\0" * (self._pos - len(self._data)))
            self._data[self._pos : self._pos + len(raw)] = raw
            self._pos += len(raw)
            self._dirty = True
        return len(data)

    def flush(self) -> None:
        """Sends what was written since the last flush to the sandbox."""
        if self.closed:
            raise ValueError(f"I/O operation on closed file {self.path}")
        if self._added:
            write_bytes(self._client, self._base, self.path, bytes(self._added), append=True)
            self._added.clear()
        elif self._dirty:
            write_bytes(self._client, self._base, self.path, bytes(self._data), append=False)
            self._dirty = False

    # Position and lifetime.

    def seek(self, offset: int, whence: int = 0) -> int:
        """Moves to ``offset`` bytes from the start (whence 0), from here (1) or from the end (2)."""
        self._check(True, "seeking")
        origin = {0: 0, 1: self._pos, 2: len(self._data)}.get(whence)
        if origin is None:
            raise ValueError(f"seek: whence must be 0, 1 or 2, got {whence!r}")
        if origin + offset < 0:
            raise ValueError(f"seek: position {origin + offset} is before the start of the file")
        self._pos = origin + offset
        return self._pos

    def tell(self) -> int:
        self._check(True, "tell")
        return self._pos

    def close(self) -> None:
        """Flushes what was written, then closes the file (a second close does nothing)."""
        if self.closed:
            return
        try:
            self.flush()
        finally:
            self.closed = True

    def __enter__(self) -> "SandboxFile":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"<SandboxFile {self.path!r} mode={self.mode!r}{' closed' if self.closed else ''}>"


def ls(client: Client, sandbox_id: str, path: str) -> List[str]:
    """The names in a sandbox's folder (as ``ls``)."""
    path = absolute(path, "ls")
    try:
        answer: Dict[str, Any] = client.json("GET", f"/v1/sandboxes/{sandbox_id}/entries?{_query(path)}")
    except Error as err:
        raise as_os_error(err, path) from None
    return [posixpath.basename(str(e.get("path", "")).rstrip("/")) for e in answer.get("entries") or []]


def mkdir(client: Client, sandbox_id: str, path: str, parents: bool = False) -> None:
    path = absolute(path, "mkdir")
    try:
        client.json("POST", f"/v1/sandboxes/{sandbox_id}/mkdir", {"path": path, "parents": bool(parents)})
    except Error as err:
        raise as_os_error(err, path) from None


def rm(client: Client, sandbox_id: str, path: str, recursive: bool = False) -> None:
    path = absolute(path, "rm")
    try:
        client.json("DELETE", f"/v1/sandboxes/{sandbox_id}/files?{_query(path)}&recursive={int(bool(recursive))}")
    except Error as err:
        raise as_os_error(err, path) from None
