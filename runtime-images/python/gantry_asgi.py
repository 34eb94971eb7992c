"""ASGI apps for gantry's Python agent (``@gantry.asgi_app()``, ``@gantry.fastapi_endpoint()``):
requests as tasks on the agent's event loop, bodies streamed both ways, and the app's lifespan.
"""
from __future__ import annotations

import asyncio
import collections
import concurrent.futures
import inspect
import sys
import threading
from typing import Any, Awaitable, Callable, Deque, Dict, Optional, Tuple
from urllib.parse import unquote

from gantry_web import HttpRequest, Host, WebServer, LIFESPAN_SHUTDOWN_TIMEOUT_S, LIFESPAN_FAILED_GRACE_S, _check_response_head, _latin1


def _asgi3(app: Any) -> Callable[[Dict[str, Any], Any, Any], Awaitable[None]]:
    """The app as an ASGI 3 callable: an ASGI 2 app (``app(scope)`` returns ``instance(receive, send)``) is
    wrapped. Told apart as uvicorn does: a class with ``__await__``, or a coroutine function as the
    app or its ``__call__``, is ASGI 3."""
    if inspect.isclass(app):
        is3 = hasattr(app, "__await__")
    elif inspect.isfunction(app):
        is3 = inspect.iscoroutinefunction(app)
    else:
        is3 = inspect.iscoroutinefunction(getattr(app, "__call__", None))
    if is3:
        return app

    async def asgi2(scope: Dict[str, Any], receive: Any, send: Any) -> None:
        instance = app(scope)
        await instance(receive, send)

    return asgi2


class _AsgiRequest:
    """One request on the event loop (only the loop's thread touches it)."""

    __slots__ = ("head", "chunks", "got_end", "body_done", "changed", "cancelled", "started", "complete", "task")

    def __init__(self, head: HttpRequest) -> None:
        self.head = head
        self.chunks: Deque[Tuple[bytes, bool]] = collections.deque()
        self.got_end = False  # the daemon's last chunk arrived
        self.body_done = False  # the app was handed the last chunk
        self.changed = asyncio.Event()  # made on the loop: a chunk came, the request was cancelled or answered
        self.cancelled = False
        self.started = False
        self.complete = False  # the response ended (or failed): nothing more is sent
        self.task: Optional["asyncio.Task[None]"] = None


class AsgiServer(WebServer):
    """Runs an ASGI app's requests as tasks on the agent's event loop."""

    def __init__(self, host: Host, app: Any, loop: asyncio.AbstractEventLoop) -> None:
        self.host = host
        self.app = _asgi3(app)
        self.loop = loop
        self.lifespan: Optional[_Lifespan] = None
        self._requests: Dict[str, _AsgiRequest] = {}
        self._slots: Optional[asyncio.Semaphore] = None
        self._shutdown_lock = threading.Lock()
        self._shut_down = False

    # From the reading thread: each hops onto the loop, in order.

    def start(self, head: HttpRequest) -> None:
        self.loop.call_soon_threadsafe(self._start, head)

    def body(self, request_id: str, data: bytes, end: bool) -> None:
        self.loop.call_soon_threadsafe(self._body, request_id, data, end)

    def cancel(self, request_id: str, reason: str) -> None:
        self.loop.call_soon_threadsafe(self._cancel, request_id)

    # The lifespan.

    def start_lifespan(self) -> None:
        """Runs the lifespan's startup, if the app takes it; raises if the app says it failed."""
        self.lifespan = _Lifespan(self.app, self.host)
        asyncio.run_coroutine_threadsafe(self.lifespan.startup(), self.loop).result()

    def shutdown(self) -> None:
        with self._shutdown_lock:
            if self._shut_down or self.lifespan is None:
                return
            self._shut_down = True
        future = asyncio.run_coroutine_threadsafe(self.lifespan.shutdown(), self.loop)
        try:
            future.result(LIFESPAN_SHUTDOWN_TIMEOUT_S)
        except concurrent.futures.TimeoutError:
            future.cancel()
            print(f"gantry agent: the ASGI lifespan shutdown did not finish within {LIFESPAN_SHUTDOWN_TIMEOUT_S:g} s", file=sys.stderr)
        except BaseException as exc:  # the app's problem, reported; the agent exits as it would
            self.host.report_late_error(exc, "the ASGI lifespan shutdown failed")

    # On the loop.

    def _start(self, head: HttpRequest) -> None:
        if head.request_id in self._requests:
            print(f"gantry agent: ignoring a second http_request {head.request_id} while the first runs", file=sys.stderr)
            return
        if self._slots is None:
            self._slots = asyncio.Semaphore(self.host.max_inputs)  # on its loop (Python 3.9 binds it there)
        req = _AsgiRequest(head)
        self._requests[head.request_id] = req
        req.task = self.loop.create_task(self._run(req))

    def _body(self, request_id: str, data: bytes, end: bool) -> None:
        req = self._requests.get(request_id)
        if req is None or req.got_end or req.cancelled:
            return  # answered, cancelled, or over: the rest of the body is not wanted
        if data or end:
            req.chunks.append((data, end))
            req.got_end = end
            req.changed.set()

    def _cancel(self, request_id: str) -> None:
        req = self._requests.pop(request_id, None)
        if req is None:
            return
        req.cancelled = True
        req.changed.set()
        if req.task is not None:
            req.task.cancel()

    def _scope(self, head: HttpRequest) -> Dict[str, Any]:
        scope: Dict[str, Any] = {
            "type": "http",
            "asgi": {"version": "3.0", "spec_version": "2.3"},
            "http_version": "1.1",
            "method": head.method.upper(),
            "scheme": "http",
            "path": unquote(head.path),
            "raw_path": _latin1(head.path),
            "query_string": _latin1(head.query),
            "root_path": head.root_path,
            "headers": [(_latin1(name.lower()), _latin1(value)) for name, value in head.headers],
            "client": head.client,
            "server": None,
        }
        if self.lifespan is not None and self.lifespan.supported:
            scope["state"] = dict(self.lifespan.state)
        return scope

    async def _run(self, req: _AsgiRequest) -> None:
        rid = req.head.request_id
        try:
            assert self._slots is not None
            async with self._slots:
                if req.cancelled:
                    return
                self.host.current_call.set(rid)  # in this task's own context
                try:
                    await self.app(self._scope(req.head), self._receive(req), self._send(req))
                except BaseException as exc:  # a CancelledError not of our making too: the request must be answered
                    if not req.cancelled:
                        self._failed(req, exc)
                else:
                    if not req.complete and not req.cancelled:
                        what = "completing its response" if req.started else "sending a response"
                        self._failed(req, RuntimeError(f"the ASGI app of {self.host.function_name} returned without {what}"))
        except asyncio.CancelledError:
            pass  # cancelled while waiting for a slot
        finally:
            if self._requests.get(rid) is req:
                del self._requests[rid]
            self.host.flush_logs(rid)

    def _failed(self, req: _AsgiRequest, exc: BaseException) -> None:
        if req.complete:
            self.host.report_late_error(exc, f"the ASGI app raised after its response to {req.head.request_id} was complete")
            return
        req.complete = True
        req.changed.set()
        self.host.error(req.head.request_id, exc)

    def _receive(self, req: _AsgiRequest) -> Callable[[], Awaitable[Dict[str, Any]]]:
        async def receive() -> Dict[str, Any]:
            while True:
                if req.cancelled or req.complete:
                    return {"type": "http.disconnect"}
                if req.chunks:
                    data, end = req.chunks.popleft()
                    if not end and req.chunks and req.chunks[0] == (b"", True):
                        req.chunks.popleft()
                        end = True
                    req.body_done = end
                    return {"type": "http.request", "body": data, "more_body": not end}
                req.changed.clear()
                await req.changed.wait()

        return receive

    def _send(self, req: _AsgiRequest) -> Callable[[Dict[str, Any]], Awaitable[None]]:
        rid = req.head.request_id
        host = self.host

        async def send(message: Dict[str, Any]) -> None:
            if req.cancelled:
                return  # the daemon gave the request up: nothing more goes out
            kind = message.get("type")
            if kind == "http.response.start":
                if req.started:
                    raise RuntimeError("the ASGI app sent http.response.start twice")
                status, headers = _check_response_head(message.get("status"), message.get("headers"), "http.response.start")
                req.started = True
                host.response(rid, status, headers)
            elif kind == "http.response.body":
                if not req.started:
                    raise RuntimeError("the ASGI app sent http.response.body before http.response.start")
                if req.complete:
                    raise RuntimeError("the ASGI app sent http.response.body after its response was complete")
                body = message.get("body", b"")
                if not isinstance(body, (bytes, bytearray, memoryview)):
                    raise TypeError(f"http.response.body: body must be bytes, not {type(body).__name__}")
                more = bool(message.get("more_body", False))
                if more:
                    if body:
                        host.body(rid, bytes(body), False)
                        await asyncio.sleep(0)  # a tight streaming loop still lets a cancel in
                else:
                    req.complete = True
                    req.changed.set()
                    host.flush_logs(rid)
                    host.body(rid, bytes(body), True)
            elif kind == "http.response.trailers":
                pass  # trailers are not offered (no "http.response.trailers" extension)
            else:
                raise RuntimeError(f"the ASGI app sent an unexpected message {kind!r} on an http scope")

        return send


class _Lifespan:
    """The ASGI lifespan protocol, run once: startup at load, shutdown at exit."""

    def __init__(self, app: Callable[..., Awaitable[None]], host: Host) -> None:
        self.app = app
        self.host = host
        self.state: Dict[str, Any] = {}
        self.supported = False
        self._events: Optional["asyncio.Queue[Dict[str, Any]]"] = None
        self._startup: Optional["asyncio.Future[Optional[str]]"] = None
        self._shutdown: Optional["asyncio.Future[Optional[str]]"] = None
        self._task: Optional["asyncio.Task[None]"] = None
        self._receives = 0
        self._error: Optional[BaseException] = None

    async def startup(self) -> None:
        loop = asyncio.get_running_loop()
        self._events = asyncio.Queue()
        self._startup = loop.create_future()
        self._shutdown = loop.create_future()
        self._events.put_nowait({"type": "lifespan.startup"})
        self._task = loop.create_task(self._main())
        failed = await self._startup
        if failed is not None:
            # Starlette says startup.failed, then raises the exception itself: report that one.
            await asyncio.wait({self._task}, timeout=LIFESPAN_FAILED_GRACE_S)
            if self._error is not None:
                raise self._error
            raise RuntimeError(f"the ASGI app's lifespan startup failed: {failed}")

    async def shutdown(self) -> None:
        if not self.supported or self._task is None or self._task.done():
            return
        assert self._events is not None and self._shutdown is not None
        self._events.put_nowait({"type": "lifespan.shutdown"})
        await asyncio.wait({self._task, self._shutdown}, return_when=asyncio.FIRST_COMPLETED)
        failed = self._shutdown.result() if self._shutdown.done() else None
        if failed is not None:
            print(f"gantry agent: the ASGI app's lifespan shutdown failed: {failed}", file=sys.stderr)
        elif self._error is not None:
            self.host.report_late_error(self._error, "the ASGI app's lifespan shutdown raised")

    async def _main(self) -> None:
        scope = {"type": "lifespan", "asgi": {"version": "3.0", "spec_version": "2.0"}, "state": self.state}
        try:
            await self.app(scope, self._receive, self._send)
        except BaseException as exc:
            self._error = exc
            if self._startup is not None and not self._startup.done():
                # As uvicorn's "auto": an app that raises on the lifespan scope does not take it.
                print(f"gantry agent: the ASGI app does not take the lifespan protocol ({type(exc).__name__}: {exc}); going on without it", file=sys.stderr)
        finally:
            for future in (self._startup, self._shutdown):
                if future is not None and not future.done():
                    future.set_result(None)

    async def _receive(self) -> Dict[str, Any]:
        self._receives += 1
        assert self._startup is not None and self._events is not None
        if self._receives > 1 and not self._startup.done():
            self._startup.set_result(None)  # it asks for more without answering the startup: go on
        return await self._events.get()

    async def _send(self, message: Dict[str, Any]) -> None:
        assert self._startup is not None and self._shutdown is not None
        kind = message.get("type")
        if kind == "lifespan.startup.complete":
            self.supported = True
            if not self._startup.done():
                self._startup.set_result(None)
        elif kind == "lifespan.startup.failed":
            if not self._startup.done():
                self._startup.set_result(str(message.get("message", "")))
        elif kind == "lifespan.shutdown.complete":
            if not self._shutdown.done():
                self._shutdown.set_result(None)
        elif kind == "lifespan.shutdown.failed":
            if not self._shutdown.done():
                self._shutdown.set_result(str(message.get("message", "")))
        else:
            raise RuntimeError(f"the ASGI app sent an unexpected message {kind!r} on the lifespan scope")
