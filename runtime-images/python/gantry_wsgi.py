"""WSGI apps for gantry's Python agent (``@gantry.wsgi_app()``): requests in a pool of threads,
a PEP 3333 environ whose ``wsgi.input`` reads the body as it arrives, the response sent as the
app yields it.
"""
from __future__ import annotations

import collections
import concurrent.futures
import contextvars
import sys
import threading
from typing import Any, Callable, Deque, Dict, Iterator, List, Optional, Tuple
from urllib.parse import unquote_to_bytes

from gantry_web import ClientDisconnected, HttpRequest, Host, WebServer, _check_response_head


class _WsgiInput:
    """``wsgi.input``: a blocking, read-only file over the body's chunks as they arrive.

    ``read(n)`` waits for ``n`` bytes or the end, as a buffered file does; once the request is
    cancelled, reads raise ClientDisconnected.
    """

    def __init__(self) -> None:
        self._cond = threading.Condition()
        self._chunks: Deque[bytes] = collections.deque()
        self._end = False
        self._cancelled: Optional[str] = None

    # The agent's side.

    def feed(self, data: bytes, end: bool) -> None:
        with self._cond:
            if self._end:
                return
            if data:
                self._chunks.append(data)
            self._end = end
            self._cond.notify_all()

    def cancel(self, reason: str) -> None:
        with self._cond:
            self._cancelled = reason
            self._cond.notify_all()

    # The app's side.

    def _more(self) -> bool:
        """Waits (lock held) for a chunk; False at the end of the body."""
        while not self._chunks:
            if self._cancelled is not None:
                raise ClientDisconnected(f"the request was cancelled: {self._cancelled}")
            if self._end:
                return False
            self._cond.wait()
        if self._cancelled is not None:
            raise ClientDisconnected(f"the request was cancelled: {self._cancelled}")
        return True

    def _take(self, n: int) -> bytes:
        """Up to n bytes of the first chunk (lock held, a chunk there)."""
        chunk = self._chunks[0]
        if len(chunk) <= n:
            self._chunks.popleft()
            return chunk
        self._chunks[0] = chunk[n:]
        return chunk[:n]

    def read(self, size: Optional[int] = -1) -> bytes:
        with self._cond:
            parts: List[bytes] = []
            want = -1 if size is None or size < 0 else size
            while want != 0 and self._more():
                part = self._take(want if want > 0 else len(self._chunks[0]))
                parts.append(part)
                if want > 0:
                    want -= len(part)
            return b"".join(parts)

    def readline(self, size: Optional[int] = -1) -> bytes:
        with self._cond:
            parts: List[bytes] = []
            want = -1 if size is None or size < 0 else size
            while want != 0 and self._more():
                chunk = self._chunks[0]
                newline = chunk.find(b"\n")
                n = len(chunk) if newline < 0 else newline + 1
                part = self._take(n if want < 0 else min(n, want))
                parts.append(part)
                if want > 0:
                    want -= len(part)
                if part.endswith(b"\n"):
                    break
            return b"".join(parts)

    def readlines(self, hint: Optional[int] = -1) -> List[bytes]:
        lines: List[bytes] = []
        total = 0
        for line in self:
            lines.append(line)
            total += len(line)
            if hint is not None and 0 < hint <= total:
                break
        return lines

    def __iter__(self) -> Iterator[bytes]:
        while True:
            line = self.readline()
            if not line:
                return
            yield line

    def readable(self) -> bool:
        return True

    def close(self) -> None:
        pass


class _WsgiRequest:
    __slots__ = ("head", "input", "lock", "cancelled", "status", "headers", "head_sent", "complete")

    def __init__(self, head: HttpRequest) -> None:
        self.head = head
        self.input = _WsgiInput()
        #: Held while sending for the request and while cancelling it: nothing goes out after a cancel.
        self.lock = threading.Lock()
        self.cancelled = False
        self.status: Optional[int] = None
        self.headers: List[Tuple[str, str]] = []
        self.head_sent = False
        self.complete = False


class WsgiServer(WebServer):
    """Runs a WSGI app's requests in a pool of ``max_inputs`` threads."""

    def __init__(self, host: Host, app: Callable[..., Any]) -> None:
        self.host = host
        self.app = app
        self._pool = concurrent.futures.ThreadPoolExecutor(host.max_inputs, thread_name_prefix="gantry-request")
        self._requests: Dict[str, _WsgiRequest] = {}
        self._lock = threading.Lock()

    def start(self, head: HttpRequest) -> None:
        req = _WsgiRequest(head)
        with self._lock:
            if head.request_id in self._requests:
                print(f"gantry agent: ignoring a second http_request {head.request_id} while the first runs", file=sys.stderr)
                return
            self._requests[head.request_id] = req
        self._pool.submit(contextvars.copy_context().run, self._run, req)

    def body(self, request_id: str, data: bytes, end: bool) -> None:
        with self._lock:
            req = self._requests.get(request_id)
        if req is not None:
            req.input.feed(data, end)

    def cancel(self, request_id: str, reason: str) -> None:
        with self._lock:
            req = self._requests.pop(request_id, None)
        if req is not None:
            with req.lock:
                req.cancelled = True
            req.input.cancel(reason)

    def _run(self, req: _WsgiRequest) -> None:
        rid = req.head.request_id
        try:
            if req.cancelled:
                return
            self.host.current_call.set(rid)  # in this request's own copy of the context
            self._serve(req)
        except BaseException as exc:
            with req.lock:
                if req.cancelled:
                    pass
                elif req.complete:
                    self.host.report_late_error(exc, f"the WSGI app raised after its response to {rid} was complete")
                else:
                    req.complete = True
                    self.host.error(rid, exc)
        finally:
            with self._lock:
                if self._requests.get(rid) is req:
                    del self._requests[rid]
            self.host.flush_logs(rid)

    def _serve(self, req: _WsgiRequest) -> None:
        rid = req.head.request_id
        host = self.host

        def emit(data: bytes, end: bool) -> None:
            """Sends the head (once) and a piece of the body; raises once the request was cancelled."""
            with req.lock:
                if req.cancelled:
                    raise ClientDisconnected("the request was cancelled")
                if not req.head_sent:
                    assert req.status is not None
                    req.head_sent = True
                    host.response(rid, req.status, req.headers)
                if end:
                    req.complete = True
                    host.flush_logs(rid)
                if data or end:
                    host.body(rid, data, end)

        def write(data: bytes) -> None:
            if req.status is None:
                raise AssertionError("write() before start_response()")
            if not isinstance(data, (bytes, bytearray)):
                raise TypeError(f"a WSGI app writes bytes, not {type(data).__name__}")
            emit(bytes(data), False)

        def start_response(status: str, headers: List[Tuple[str, str]], exc_info: Any = None) -> Callable[[bytes], None]:
            if exc_info:
                try:
                    if req.head_sent:
                        raise exc_info[1].with_traceback(exc_info[2])
                finally:
                    exc_info = None
            elif req.status is not None:
                raise AssertionError("start_response() was called twice without exc_info")
            if not isinstance(status, str):
                raise TypeError(f"start_response: the status is a string like '200 OK', not {type(status).__name__}")
            code = status.split(" ", 1)[0]
            if len(code) != 3 or not code.isdigit():
                raise ValueError(f"start_response: the status must look like '200 OK', got {status!r}")
            if not isinstance(headers, list):
                raise TypeError(f"start_response: headers are a list of (name, value) tuples, not {type(headers).__name__}")
            req.status, req.headers = _check_response_head(int(code), headers, "start_response")
            return write

        result = self.app(_environ(req.head, req.input), start_response)
        try:
            # A list's last item carries the end; an iterator's end is known only when it stops.
            last = len(result) - 1 if isinstance(result, (list, tuple)) else -1
            for i, item in enumerate(result):
                if req.cancelled:
                    return  # stop iterating: the client is gone
                if not isinstance(item, (bytes, bytearray)):
                    raise TypeError(f"a WSGI app yields bytes, not {type(item).__name__}")
                if req.status is None:
                    raise AssertionError("the WSGI app yielded its body before calling start_response()")
                if item or i == last:  # as PEP 3333: the head goes with the first non-empty piece
                    emit(bytes(item), i == last)
            if req.cancelled or req.complete:
                return
            if req.status is None:
                raise RuntimeError(f"the WSGI app of {host.function_name} returned without calling start_response()")
            emit(b"", True)
        finally:
            close = getattr(result, "close", None)
            if close is not None:
                close()


def _environ(head: HttpRequest, stream: _WsgiInput) -> Dict[str, Any]:
    """PEP 3333's environ for one request."""
    host_header = next((value for name, value in head.headers if name.lower() == "host"), "")
    if host_header.startswith("["):  # [::1]:8080
        bracket = host_header.find("]") + 1
        server_name, server_port = host_header[:bracket], host_header[bracket + 1 :]
    else:
        server_name, _, server_port = host_header.partition(":")
    raw_uri = head.root_path + head.path + (f"?{head.query}" if head.query else "")
    environ: Dict[str, Any] = {
        "REQUEST_METHOD": head.method.upper(),
        "SCRIPT_NAME": unquote_to_bytes(head.root_path).decode("latin-1"),
        "PATH_INFO": unquote_to_bytes(head.path).decode("latin-1"),
        "QUERY_STRING": head.query,
        "SERVER_NAME": server_name or "localhost",
        "SERVER_PORT": server_port or "80",
        "SERVER_PROTOCOL": "HTTP/1.1",
        "RAW_URI": raw_uri,
        "REQUEST_URI": raw_uri,
        "wsgi.version": (1, 0),
        "wsgi.url_scheme": "http",
        "wsgi.input": stream,
        "wsgi.errors": sys.stderr,
        "wsgi.multithread": True,
        "wsgi.multiprocess": False,
        "wsgi.run_once": False,
        "wsgi.input_terminated": True,
    }
    if head.client is not None:
        environ["REMOTE_ADDR"], environ["REMOTE_PORT"] = head.client[0], str(head.client[1])
    for name, value in head.headers:
        if "_" in name:
            continue  # as gunicorn: X_Forwarded_For must not pass for X-Forwarded-For
        key = name.upper().replace("-", "_")
        if key not in ("CONTENT_TYPE", "CONTENT_LENGTH"):
            key = "HTTP_" + key
        if key in environ:
            environ[key] += ("; " if key == "HTTP_COOKIE" else ",") + value
        else:
            environ[key] = value
    return environ
