"""Web endpoints in gantry's Python agent: the bridge between the agent protocol's HTTP messages
(protocol/agent-messages.ts: ``http_request``, ``http_body``, ``http_cancel`` in; ``http_response``,
``http_body``, ``http_error`` out) and the user's ASGI or WSGI app.

- ``asgi`` (``@gantry.asgi_app()``): the decorated function, called once, returns an ASGI app
  (FastAPI, Starlette, a raw ``async def app(scope, receive, send)``); ``fastapi``
  (``@gantry.fastapi_endpoint()``): the function itself becomes the one route ``/`` of a FastAPI
  app made here. Requests run as tasks on the agent's event loop; the ASGI lifespan runs once at
  load (if the app takes it) and its shutdown at exit.
- ``wsgi`` (``@gantry.wsgi_app()``): the decorated function returns a WSGI callable (Flask,
  Django…); requests run in a pool of threads, with a PEP 3333 environ.

Bodies stream both ways: each ``http_body`` chunk reaches the app as it arrives (``http.request``
events, or ``wsgi.input`` reads), and each piece of the response is sent as the app hands it over,
in chunks of at most ``MAX_HTTP_CHUNK_BYTES`` (raw bytes, sent as base64). At most ``max_inputs``
requests run at once. Output written while a request runs is tagged with its ``requestId``.

Standard library only (Python >= 3.9); FastAPI only when the function's image has it.
"""
from __future__ import annotations

import asyncio
import base64
import binascii
import contextvars
import inspect
import json
import sys
from typing import Any, Awaitable, Callable, Dict, List, Optional, Tuple

# From protocol/agent-messages.ts.
MAX_HTTP_CHUNK_BYTES = 256 * 1024
MAX_REQUEST_ID_CHARS = 64
MAX_METHOD_CHARS = 16
MAX_HEADERS = 500
MAX_HEADER_NAME_CHARS = 1024
MAX_HEADER_VALUE_CHARS = 64 * 1024

FASTAPI_MISSING = 'fastapi_endpoint needs FastAPI in the function\'s image, e.g. Image.debian_slim().apt_install("python3-fastapi")'
#: How long the ASGI lifespan's shutdown may take at exit.
LIFESPAN_SHUTDOWN_TIMEOUT_S = 10.0
#: How long to wait, after the app said ``lifespan.startup.failed``, for its task to end with the exception.
LIFESPAN_FAILED_GRACE_S = 5.0


class BadMessage(ValueError):
    """An HTTP message from the daemon outside the protocol."""


class ClientDisconnected(OSError):
    """Raised by ``wsgi.input`` once the request was cancelled (the client went away, or a timeout)."""


# --- the daemon's messages -------------------------------------------------------------------


def _string(msg: Dict[str, Any], key: str, max_chars: Optional[int] = None, min_chars: int = 0) -> str:
    value = msg.get(key)
    if not isinstance(value, str) or len(value) < min_chars or (max_chars is not None and len(value) > max_chars):
        limit = f" of {min_chars} to {max_chars} characters" if max_chars is not None else ""
        raise BadMessage(f"{key} must be a string{limit}")
    return value


def _request_id(msg: Dict[str, Any]) -> str:
    return _string(msg, "requestId", MAX_REQUEST_ID_CHARS, 1)


def _headers(value: Any, what: str) -> List[Tuple[str, str]]:
    if not isinstance(value, (list, tuple)) or len(value) > MAX_HEADERS:
        raise BadMessage(f"{what} must be a list of at most {MAX_HEADERS} [name, value] pairs")
    pairs: List[Tuple[str, str]] = []
    for pair in value:
        if not isinstance(pair, (list, tuple)) or len(pair) != 2:
            raise BadMessage(f"{what} must be [name, value] pairs")
        name, val = pair
        if not isinstance(name, str) or not isinstance(val, str) or len(name) > MAX_HEADER_NAME_CHARS or len(val) > MAX_HEADER_VALUE_CHARS:
            raise BadMessage(f"{what}: a name is a string of at most {MAX_HEADER_NAME_CHARS} characters, a value one of at most {MAX_HEADER_VALUE_CHARS}")
        pairs.append((name, val))
    return pairs


class HttpRequest:
    """An ``http_request`` message: the head of one request."""

    __slots__ = ("request_id", "method", "path", "root_path", "query", "headers", "client")

    def __init__(self, request_id: str, method: str, path: str, root_path: str, query: str, headers: List[Tuple[str, str]], client: Optional[Tuple[str, int]]) -> None:
        self.request_id = request_id
        self.method = method
        self.path = path
        self.root_path = root_path
        self.query = query
        self.headers = headers
        self.client = client

    @classmethod
    def parse(cls, msg: Dict[str, Any]) -> "HttpRequest":
        """Checks what protocol/agent-messages.ts's daemonToAgentSchema checks."""
        request_id = _request_id(msg)
        method = _string(msg, "method", MAX_METHOD_CHARS, 1)
        path = _string(msg, "path")
        if not path.startswith("/"):
            raise BadMessage("path must start with /")
        root_path = _string(msg, "rootPath")
        query = _string(msg, "query")
        headers = _headers(msg.get("headers"), "headers")
        client = msg.get("client")
        if client is not None:
            ok = isinstance(client, list) and len(client) == 2 and isinstance(client[0], str)
            port = client[1] if ok else None
            if isinstance(port, float) and port.is_integer():
                port = int(port)
            if not ok or isinstance(port, bool) or not isinstance(port, int):
                raise BadMessage("client must be [host, port] or null")
            client = (client[0], port)
        return cls(request_id, method, path, root_path, query, headers, client)


def parse_body(msg: Dict[str, Any]) -> Tuple[str, bytes, bool]:
    """An ``http_body`` message: (requestId, the chunk's bytes, whether it is the last)."""
    request_id = _request_id(msg)
    data, end = msg.get("data"), msg.get("end")
    if not isinstance(data, str):
        raise BadMessage("data must be a base64 string")
    if not isinstance(end, bool):
        raise BadMessage("end must be true or false")
    try:
        raw = base64.b64decode(data, validate=True)
    except (binascii.Error, ValueError) as exc:
        raise BadMessage(f"data is not base64: {exc}") from None
    return request_id, raw, end


def parse_cancel(msg: Dict[str, Any]) -> Tuple[str, str]:
    """An ``http_cancel`` message: (requestId, reason)."""
    return _request_id(msg), _string(msg, "reason")


# --- what the agent gives the bridge ---------------------------------------------------------


class Host:
    """The agent's side: sending (one lock, in the WebSocket), errors as data, log tagging."""

    def __init__(
        self,
        function_name: str,
        send: Callable[[Dict[str, Any]], None],
        send_bytes: Callable[[bytes], None],
        remote_error: Callable[[BaseException], Dict[str, str]],
        current_call: "contextvars.ContextVar[Optional[str]]",
        flush_logs: Callable[[str], None],
        max_inputs: int,
    ) -> None:
        self.function_name = function_name
        self.send = send
        self.send_bytes = send_bytes
        self.remote_error = remote_error
        self.current_call = current_call
        self.flush_logs = flush_logs
        self.max_inputs = max_inputs

    def response(self, request_id: str, status: int, headers: List[Tuple[str, str]]) -> None:
        self.send({"type": "http_response", "requestId": request_id, "status": status, "headers": [list(h) for h in headers]})

    def body(self, request_id: str, data: bytes, end: bool) -> None:
        """Sends ``data`` as ``http_body`` chunks of at most MAX_HTTP_CHUNK_BYTES; ``end`` on the last."""
        rid = json.dumps(request_id).encode("utf-8")
        n = len(data)
        start = 0
        while True:
            piece = data[start : start + MAX_HTTP_CHUNK_BYTES]
            start += MAX_HTTP_CHUNK_BYTES
            last = start >= n
            # Built by hand: base64 needs no JSON escaping, and a large chunk is not scanned again.
            tail = b'","end":true}' if (last and end) else b'","end":false}'
            self.send_bytes(b'{"type":"http_body","requestId":' + rid + b',"data":"' + base64.b64encode(piece) + tail)
            if last:
                return

    def error(self, request_id: str, exc: BaseException) -> None:
        self.flush_logs(request_id)
        self.send({"type": "http_error", "requestId": request_id, "error": self.remote_error(exc)})

    def report_late_error(self, exc: BaseException, what: str) -> None:
        """An exception after the response was complete: its traceback goes to stderr (a log)."""
        tb = self.remote_error(exc)
        text = tb["traceback"] or f"{tb['type']}: {tb['message']}\n"
        print(f"gantry agent: {what}:\n{text}", end="" if text.endswith("\n") else "\n", file=sys.stderr)


def _check_response_head(status: Any, headers: Any, what: str) -> Tuple[int, List[Tuple[str, str]]]:
    if isinstance(status, bool) or not isinstance(status, int) or not 100 <= status <= 599:
        raise ValueError(f"{what}: the status must be a whole number from 100 to 599, got {status!r}")
    pairs: List[Tuple[str, str]] = []
    for pair in headers or ():
        try:
            name, value = pair
        except (TypeError, ValueError):
            raise ValueError(f"{what}: headers must be (name, value) pairs, got {pair!r}") from None
        name, value = _native(name, what), _native(value, what)
        if len(name) > MAX_HEADER_NAME_CHARS or len(value) > MAX_HEADER_VALUE_CHARS:
            raise ValueError(f"{what}: a header name is at most {MAX_HEADER_NAME_CHARS} characters and a value at most {MAX_HEADER_VALUE_CHARS} (header {name[:80]!r})")
        pairs.append((name, value))
    if len(pairs) > MAX_HEADERS:
        raise ValueError(f"{what}: at most {MAX_HEADERS} headers, got {len(pairs)}")
    return status, pairs


def _native(value: Any, what: str) -> str:
    """A header name or value as a string: bytes are taken as Latin-1 (as HTTP has them)."""
    if isinstance(value, (bytes, bytearray, memoryview)):
        return bytes(value).decode("latin-1")
    if isinstance(value, str):
        return value
    raise TypeError(f"{what}: header names and values are bytes or str, got {type(value).__name__}")


def _latin1(text: str) -> bytes:
    """A string from the daemon as the bytes HTTP carried (Latin-1), or UTF-8 if it is outside Latin-1."""
    try:
        return text.encode("latin-1")
    except UnicodeEncodeError:
        return text.encode("utf-8", "surrogateescape")


# --- loading ---------------------------------------------------------------------------------


def load(marker: Dict[str, Any], fn: Callable[..., Any], host: Host, start_event_loop: Callable[[], asyncio.AbstractEventLoop]) -> "WebServer":
    """Makes the web server the function's marker asks for; raises (for init_error) if it cannot."""
    web = marker.get("web") if isinstance(marker, dict) else None
    kind = web.get("kind") if isinstance(web, dict) else None
    if kind == "wsgi":
        app = fn()
        if not callable(app):
            raise TypeError(f"@wsgi_app: {host.function_name} must return a WSGI app (a callable), not {type(app).__name__}")
        from gantry_wsgi import WsgiServer  # a module per kind of app, loaded when used

        return WsgiServer(host, app)
    if kind not in ("asgi", "fastapi"):
        raise ValueError(f"{host.function_name} has an unknown web endpoint kind {kind!r}")
    loop = start_event_loop()
    if kind == "fastapi":
        app = _fastapi_app(fn, web.get("method") or "GET")
    else:
        app = fn()
        if inspect.isawaitable(app):
            app = asyncio.run_coroutine_threadsafe(_awaited(app), loop).result()
        if not callable(app):
            raise TypeError(f"@asgi_app: {host.function_name} must return an ASGI app (a callable), not {type(app).__name__}")
    from gantry_asgi import AsgiServer

    server = AsgiServer(host, app, loop)
    server.start_lifespan()
    return server


async def _awaited(awaitable: Awaitable[Any]) -> Any:
    return await awaitable


def _fastapi_app(fn: Callable[..., Any], method: str) -> Any:
    """A FastAPI app with one route, ``/``, for ``fn`` and the marked method (no docs routes)."""
    try:
        import fastapi  # type: ignore[import-not-found]
    except ModuleNotFoundError as exc:
        if exc.name != "fastapi":
            raise  # FastAPI is there, but something it needs is not: that is the error to see
        raise ImportError(FASTAPI_MISSING) from None
    app = fastapi.FastAPI(docs_url=None, redoc_url=None, openapi_url=None)
    app.add_api_route("/", fn, methods=[method])
    return app


class WebServer:
    """What the agent calls, from its reading thread."""

    def start(self, head: HttpRequest) -> None:
        raise NotImplementedError

    def body(self, request_id: str, data: bytes, end: bool) -> None:
        raise NotImplementedError

    def cancel(self, request_id: str, reason: str) -> None:
        raise NotImplementedError

    def shutdown(self) -> None:
        """Runs the app's shutdown (once, bounded in time); called at exit from any thread."""
