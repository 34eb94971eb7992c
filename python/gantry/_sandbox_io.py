"""A sandbox process's stdio and its exit: ``StreamReader`` (stdout, stderr), ``StreamWriter``
(stdin) and ``ContainerProcess`` (what ``sb.exec`` returns), over the routes of
``protocol/sandboxes.ts``.

A reader keeps its own byte offset and follows the stream (``?offset=N&follow=1``) until the daemon
says it is closed (the process ended); ``read()`` returns everything up to there, iterating yields
lines as they come. Text readers decode UTF-8, keeping a multi-byte character split across chunks.
"""
from __future__ import annotations

import asyncio
import codecs
from typing import Any, AsyncIterator, Dict, Iterator, List, Optional, Union

from ._client import Client, error_from_api
from .exception import Error
from .functions import _WithAio

#: As MAX_WAIT_S and SANDBOX_LIMITS.stdinBytes in protocol/sandboxes.ts.
MAX_WAIT_S = 50
STDIN_BYTES = 8 * 1024 * 1024

Data = Union[str, bytes]


class StreamReader:
    """A process's stdout or stderr: ``read()`` (to its end) or ``for line in reader`` (as lines
    come). ``str`` for text readers, ``bytes`` otherwise."""

    def __init__(self, client: Client, proc_path: str, stream: str, text: bool = True) -> None:
        self._client = client
        self._path = f"{proc_path}/{stream}"
        self._text = text
        self._offset = 0
        self._decoder = codecs.getincrementaldecoder("utf-8")(errors="replace") if text else None
        self._held: Data = "" if text else b""  # read from the daemon, not yet given out
        self._eof = False

    def _empty(self) -> Data:
        return "" if self._text else b""

    def _chunks(self) -> Iterator[Data]:
        """The stream's data from where this reader stands, decoded, until the daemon closes it."""
        while not self._eof:
            stream = self._client.stream_bytes("GET", f"{self._path}?offset={self._offset}&follow=1")
            closed = stream.headers.get("x-gantry-closed") == "1"
            with stream:
                for raw in stream:
                    self._offset += len(raw)
                    yield self._decoder.decode(raw) if self._decoder else raw
            # An answer that began on an open stream and ended has followed it to its close; one
            # cut short is asked again from where it stopped (the next answer says it is closed).
            if closed:
                self._eof = True
        if self._decoder is not None:
            tail = self._decoder.decode(b"", final=True)
            self._decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")
            if tail:
                yield tail

    @_WithAio
    def read(self) -> Data:
        """Everything from where this reader stands to the stream's end (blocks until the process
        ends); empty once it was all read."""
        parts: List[Any] = [self._held]
        self._held = self._empty()
        parts.extend(self._chunks())
        return self._empty().join(parts)

    def __iter__(self) -> Iterator[Data]:
        """Lines (with their ``\\n``) as they come; the last may lack one."""
        newline = "\n" if self._text else b"\n"
        chunks = self._chunks()
        while True:
            cut = self._held.find(newline)  # type: ignore[arg-type]
            if cut >= 0:
                line, self._held = self._held[: cut + 1], self._held[cut + 1 :]
                yield line
                continue
            chunk = next(chunks, None)
            if chunk is None:
                break
            self._held += chunk  # type: ignore[operator]
        if self._held:
            line, self._held = self._held, self._empty()
            yield line

    async def __aiter__(self) -> AsyncIterator[Data]:
        """``async for line in reader``: the same lines, each read in a worker thread."""
        loop = asyncio.get_running_loop()
        lines = iter(self)
        done = object()
        while True:
            line = await loop.run_in_executor(None, next, lines, done)
            if line is done:
                return
            yield line  # type: ignore[misc]


class StreamWriter:
    """A process's stdin: ``write()`` buffers here, ``drain()`` sends what was buffered, and
    ``write_eof()`` closes stdin once the buffer is drained (as Modal's)."""

    def __init__(self, client: Client, proc_path: str) -> None:
        self._client = client
        self._path = f"{proc_path}/stdin"
        self._buffer = bytearray()
        self._eof = False
        self._eof_sent = False

    def write(self, data: Union[bytes, bytearray, memoryview, str]) -> None:
        """Buffers ``data`` (a str is sent as UTF-8); nothing is sent before ``drain()``."""
        if self._eof:
            raise EOFError("stdin is closed (write_eof() was called): nothing more can be written")
        if isinstance(data, str):
            data = data.encode("utf-8")
        if not isinstance(data, (bytes, bytearray, memoryview)):
            raise TypeError(f"stdin.write takes bytes or str, not {type(data).__name__}")
        self._buffer.extend(data)

    def write_eof(self) -> None:
        """Closes stdin after the buffered data, on the next ``drain()``."""
        self._eof = True

    @_WithAio
    def drain(self) -> None:
        """Sends the buffered data (in pieces of at most 8 MiB), and the end of stdin when
        ``write_eof()`` was called."""
        while self._buffer or (self._eof and not self._eof_sent):
            piece = bytes(self._buffer[:STDIN_BYTES])
            last = len(self._buffer) <= STDIN_BYTES
            eof = self._eof and last
            status, answer = self._client.send_stream("POST", f"{self._path}?eof={int(eof)}", [piece] if piece else [], length=len(piece))
            if not 200 <= status < 300:
                raise error_from_api(status, answer, self._client.target)
            del self._buffer[: len(piece)]
            self._eof_sent = eof


def _wait_view(client: Client, path: str, ended: Any, until_running: bool = False) -> Dict[str, Any]:
    """GET ``path?wait=S`` (``&until=running``: answered once it runs, too) until ``ended(view)``; the last view."""
    until = "&until=running" if until_running else ""
    while True:
        view = client.json("GET", f"{path}?wait={MAX_WAIT_S}{until}", wait_s=MAX_WAIT_S)
        if not isinstance(view, dict):
            raise Error(f"the gantry daemon sent an unreadable answer for {path}: {view!r:.200}")
        if ended(view):
            return view


class ContainerProcess:
    """A command run in a sandbox by ``sb.exec(...)``: its ``stdout``, ``stderr`` and ``stdin``,
    ``wait()`` for its exit code, ``poll()``, and ``returncode`` (None while it runs; 124 when its
    timeout ended it, 137 when its sandbox was terminated)."""

    def __init__(self, client: Client, sandbox_id: str, view: Dict[str, Any], text: bool = True) -> None:
        self._client = client
        self._id = str(view["id"])
        self._path = f"/v1/sandboxes/{sandbox_id}/procs/{self._id}"
        self._returncode: Optional[int] = None
        self._update(view)
        self.stdout = StreamReader(client, self._path, "stdout", text)
        self.stderr = StreamReader(client, self._path, "stderr", text)
        self.stdin = StreamWriter(client, self._path)

    @property
    def object_id(self) -> str:
        """The process's ID (``ex-…``)."""
        return self._id

    @property
    def returncode(self) -> Optional[int]:
        return self._returncode

    def _update(self, view: Dict[str, Any]) -> None:
        if not view.get("running") and isinstance(view.get("returncode"), int):
            self._returncode = view["returncode"]

    @_WithAio
    def poll(self) -> Optional[int]:
        """Asks the daemon once: the exit code, or None while it runs."""
        self._update(self._client.json("GET", self._path))
        return self._returncode

    @_WithAio
    def wait(self) -> int:
        """Waits for the process to end and returns its exit code."""
        while self._returncode is None:
            view = _wait_view(self._client, self._path, lambda v: not v.get("running"))
            self._update(view)
            if self._returncode is None and not view.get("running"):
                raise Error(f"the gantry daemon says process {self._id} ended but gives no exit code: {view!r:.200}")
        return self._returncode

    def __repr__(self) -> str:
        return f"ContainerProcess({self._id!r}, returncode={self._returncode!r})"
