"""gantry's runtime agent for Python functions, started as the container's entrypoint.

It mirrors the Node agent (runtime-images/node/agent.ts) message for message; the wire protocol
is protocol/agent-messages.ts. In order:

1. Reads its environment (``AgentEnv``): the daemon's unix socket, the container's token, the
   app module's name and folder, the app and function names, ``GANTRY_MAX_INPUTS``. A missing
   variable is reported on stderr and the agent exits with code 2.
2. Connects to the daemon: a small WebSocket client (RFC 6455, client side, text messages only)
   over the unix socket, authenticated with ``Authorization: Bearer <token>``.
3. Forwards stdout and stderr: each complete line still goes to the real stream (docker logs) and
   is sent as a ``log`` message, tagged with the call that wrote it (a context variable, set for
   each input in its worker thread or its coroutine's task).
4. Imports the module (``GANTRY_APP_DIR`` first on ``sys.path``), finds the function with
   ``gantry.app.lookup_local`` and says ``ready``, or sends ``init_error`` and exits.
5. Runs each ``input`` as ``f(*args, **kwargs)``: a plain ``def`` in a thread pool of
   ``max_inputs`` workers, an ``async def`` on one event loop in a thread of its own, at most
   ``max_inputs`` at once either way; each result (JSON, at most ``MAX_OUTPUT_BYTES``) or error
   goes back as an ``output`` with the call's ID and attempt.
6. Serves HTTP instead when the function is a web endpoint (``@gantry.asgi_app()``,
   ``@gantry.wsgi_app()``, ``@gantry.fastapi_endpoint()``): ``http_request`` and ``http_body`` in,
   ``http_response``, ``http_body`` or ``http_error`` out, ``http_cancel`` stops a request. The
   bridge to ASGI and WSGI is gantry_web.py; a web endpoint answers inputs with an error, and a
   plain function answers HTTP requests with one.
7. Ends on ``shutdown`` or when the daemon closes the connection (exit 0), on SIGTERM (closes
   with 1001, exit 143 as the signal would: the daemon tells a container stopped from outside from
   one whose function ended its process), or when the connection is lost (exit 1); an ASGI app's
   lifespan shutdown runs first.

Standard library only: it runs on any Python >= 3.9 (Debian 12 ships 3.11).
"""
from __future__ import annotations

import asyncio
import base64
import binascii
import collections
import concurrent.futures
import contextvars
import importlib
import inspect
import io
import json
import os
import pickle
import platform
import re
import signal
import sys
import threading
import traceback
from typing import Any, BinaryIO, Callable, Dict, List, NoReturn, Optional, Tuple

import gantry_batch
import gantry_cancel
import gantry_web
from gantry_websocket import ConnectionLost, ProtocolError, UnixWebSocket

# From protocol/agent-messages.ts and protocol/remote-error.ts.
AGENT_PROTOCOL_VERSION = 1
AGENT_WS_PATH = "/agent"
MAX_OUTPUT_BYTES = 32 * 1024 * 1024
#: Pickled values: protocol 4 reads on every Python gantry supports (>= 3.9) at both ends.
PICKLE_PROTOCOL = 4
#: The most base64 characters of a pickled exception (protocol/remote-error.ts MAX_PICKLED_ERROR_CHARS).
MAX_PICKLED_ERROR_CHARS = 1024 * 1024
MAX_TRACEBACK_CHARS = 64 * 1024
MAX_ERROR_TYPE_CHARS = 200
MAX_CALL_ID_CHARS = 64
MAX_BATCH_MESSAGE_ITEMS = 1000
#: From protocol/json-limits.ts: the daemon refuses JSON nested deeper than this.
MAX_JSON_DEPTH = 512

#: A line longer than this (no newline yet) is sent in pieces.
MAX_LOG_LINE_BYTES = 64 * 1024
#: How long to wait for the daemon to answer our close frame before exiting anyway.
CLOSE_TIMEOUT_S = 5.0

ENV_SOCKET = "GANTRY_AGENT_SOCKET"
ENV_URL = "GANTRY_AGENT_URL"
ENV_CONTAINER = "GANTRY_CONTAINER_ID"
ENV_TOKEN = "GANTRY_AGENT_TOKEN"
ENV_MODULE = "GANTRY_APP_MODULE"
ENV_APP_DIR = "GANTRY_APP_DIR"
ENV_APP = "GANTRY_APP"
ENV_FUNCTION = "GANTRY_FUNCTION"
ENV_MAX_INPUTS = "GANTRY_MAX_INPUTS"

#: Frames from these files are left out of tracebacks: the agent's own and importlib's.
_AGENT_DIR = os.path.dirname(os.path.abspath(__file__))
_HIDDEN_FILES = {
    __file__,
    importlib.__file__,
    *(os.path.join(_AGENT_DIR, f) for f in ("agent.py", "gantry_web.py", "gantry_asgi.py", "gantry_wsgi.py", "gantry_websocket.py", "gantry_cancel.py")),
}

#: The call whose code is running (None outside calls); log lines are tagged with it.
_current_call: contextvars.ContextVar[Optional[str]] = contextvars.ContextVar("gantry_call_id", default=None)
#: The running input as (call ID, attempt): gantry.current_input_id() reads it.
_current_input: contextvars.ContextVar[Optional[Tuple[str, int]]] = contextvars.ContextVar("gantry_input", default=None)


def _note(text: str) -> None:
    """A diagnostic line on the real stderr only (for when the connection cannot carry it)."""
    real = sys.__stderr__
    if real is not None:
        real.write(f"gantry agent: {text}\n")
        real.flush()


def _exit(code: int) -> NoReturn:
    """Exits at once: calls still running in other threads are abandoned, as the Node agent does."""
    for stream in (sys.stdout, sys.stderr, sys.__stdout__, sys.__stderr__):
        try:
            if stream is not None:
                stream.flush()
        except Exception:
            pass
    os._exit(code)


# --- JSON messages ---------------------------------------------------------------------------


def _json_bytes(value: Any) -> bytes:
    """Strict JSON (no NaN, tuples as lists) as UTF-8; strings with lone surrogates are escaped."""
    text = json.dumps(value, ensure_ascii=False, allow_nan=False, separators=(",", ":"))
    try:
        return text.encode("utf-8")
    except UnicodeEncodeError:
        return json.dumps(value, ensure_ascii=True, allow_nan=False, separators=(",", ":")).encode("ascii")


_JSON_STRINGS = re.compile(rb'"(?:[^"\\]|\\.)*"')
_NOT_BRACKETS = bytes(b for b in range(256) if b not in b"[]{}")


def _json_depth_problem(data: bytes) -> Optional[str]:
    """Why a JSON text nests deeper than MAX_JSON_DEPTH, or None. Fewer opening brackets than the
    limit settle it at C speed; else strings are cut out and only the brackets walked."""
    if data.count(b"[") + data.count(b"{") <= MAX_JSON_DEPTH:
        return None
    depth = 0
    for b in _JSON_STRINGS.sub(b'""', data).translate(None, _NOT_BRACKETS):
        depth += 1 if b in (0x5B, 0x7B) else -1
        if depth > MAX_JSON_DEPTH:
            return f"JSON nested deeper than the limit of {MAX_JSON_DEPTH} levels of arrays and objects"
    return None


def _remote_error(exc: BaseException) -> Dict[str, str]:
    """An exception as protocol/remote-error.ts's RemoteError, without the agent's own frames."""
    try:
        message = str(exc)
    except Exception:
        message = f"<{type(exc).__name__} whose str() failed>"
    tb = traceback.TracebackException(type(exc), exc, exc.__traceback__)
    _drop_agent_frames(tb, set())
    text = "".join(tb.format())
    if len(text) > MAX_TRACEBACK_CHARS:
        marker = "[... the start of this traceback is left out ...]\n"
        text = marker + text[-(MAX_TRACEBACK_CHARS - len(marker)) :]
    return {"type": type(exc).__name__[:MAX_ERROR_TYPE_CHARS], "message": message, "traceback": text}


def _pickle_b64(value: Any) -> str:
    """A value pickled for a Python caller, as base64 text (how pickles travel in messages)."""
    return base64.b64encode(pickle.dumps(value, protocol=PICKLE_PROTOCOL)).decode("ascii")


def _pickled_exception(exc: BaseException) -> Optional[str]:
    """The exception pickled (base64) for a Python caller, or None when it does not pickle or is too large."""
    try:
        data = _pickle_b64(exc)
    except Exception:
        return None
    return data if len(data) <= MAX_PICKLED_ERROR_CHARS else None


def _drop_agent_frames(tb: traceback.TracebackException, seen: set) -> None:
    """Removes this file's frames and importlib's machinery, here and in chained exceptions."""
    if id(tb) in seen:
        return
    seen.add(id(tb))
    tb.stack[:] = [f for f in tb.stack if f.filename not in _HIDDEN_FILES and not f.filename.startswith("<frozen importlib")]
    for other in (tb.__cause__, tb.__context__, *(getattr(tb, "exceptions", None) or [])):
        if other is not None:
            _drop_agent_frames(other, seen)


def _no_constants(name: str) -> NoReturn:
    raise InvalidMessage(f"{name} is not JSON")


class InvalidMessage(Exception):
    """A message from the daemon that is not JSON or not in the protocol."""


class ResultTooLargeError(Exception):
    """A return value over MAX_OUTPUT_BYTES of JSON."""


class _Outputs:
    """Outputs of finished calls, sent together: a thread sends whatever finished while it was sending
    the last message as one ``outputs`` message (at once when idle, in batches under load), with the
    prefetched inputs that began meanwhile (``started``) and those given back unbegun (``withdrawn``)."""

    def __init__(self, send_bytes: Callable[[bytes], None]) -> None:
        self._send_bytes = send_bytes
        self._items: List[bytes] = []
        self._started: List[bytes] = []
        self._withdrawn: List[bytes] = []
        self._ready = threading.Condition()
        threading.Thread(target=self._run, name="gantry-outputs", daemon=True).start()

    def put(self, item: bytes) -> None:
        with self._ready:
            self._items.append(item)
            self._ready.notify()

    def started(self, call_id: str, attempt: int) -> None:
        """A prefetched input began: said in the next message, before its outputs."""
        with self._ready:
            self._started.append(_json_bytes({"callId": call_id, "attempt": attempt}))
            self._ready.notify()

    def withdrawn(self, call_id: str, attempt: int) -> None:
        """A prefetched input was given back, never begun: said in the next message."""
        with self._ready:
            self._withdrawn.append(_json_bytes({"callId": call_id, "attempt": attempt}))
            self._ready.notify()

    def flush(self) -> None:
        """Sends what is waiting now (before the connection closes)."""
        with self._ready:
            items, self._items = self._items, []
            started, self._started = self._started, []
            withdrawn, self._withdrawn = self._withdrawn, []
        for i in range(0, max(len(items), len(started), len(withdrawn)), MAX_BATCH_MESSAGE_ITEMS):
            message = b'{"type":"outputs","outputs":[' + b",".join(items[i : i + MAX_BATCH_MESSAGE_ITEMS]) + b"]"
            for name, refs in ((b"started", started), (b"withdrawn", withdrawn)):
                part = refs[i : i + MAX_BATCH_MESSAGE_ITEMS]
                if part:
                    message += b',"' + name + b'":[' + b",".join(part) + b"]"
            self._send_bytes(message + b"}")

    def _run(self) -> None:
        while True:
            with self._ready:
                while not self._items and not self._started and not self._withdrawn:
                    self._ready.wait()
            self.flush()


class Input:
    """One input (of an ``input`` or ``inputs`` message) from the daemon."""

    def __init__(self, call_id: str, attempt: int, args: List[Any], kwargs: Dict[str, Any], pickled: Optional[str] = None, method: Optional[str] = None, queued: bool = False) -> None:
        self.call_id = call_id
        #: Prefetched: sent while every slot was busy; it begins once one frees (and says ``started``).
        self.queued = queued
        #: A class's call: the method it runs.
        self.method = method
        self.attempt = attempt
        self.args = args
        self.kwargs = kwargs
        #: From a Python caller: base64 of the pickled (args, kwargs), unpickled when the input runs
        #: (so a class the app file defines is found); its result and exception go back pickled.
        self.pickled = pickled

    def arguments(self) -> Tuple[List[Any], Dict[str, Any]]:
        if self.pickled is None:
            return self.args, self.kwargs
        try:
            args, kwargs = pickle.loads(base64.b64decode(self.pickled, validate=True))
        except (binascii.Error, ValueError) as exc:
            raise ValueError(f"the pickled arguments of call {self.call_id} are not base64: {exc}") from None
        return list(args), dict(kwargs)

    @classmethod
    def parse(cls, msg: Dict[str, Any]) -> "Input":
        """Checks what protocol/agent-messages.ts's daemonToAgentSchema checks."""
        call_id, attempt, args = msg.get("callId"), msg.get("attempt"), msg.get("args")
        kwargs = msg.get("kwargs", {})
        if not isinstance(call_id, str) or not 1 <= len(call_id) <= MAX_CALL_ID_CHARS:
            raise InvalidMessage("callId must be a string of 1 to 64 characters")
        if isinstance(attempt, float) and attempt.is_integer():
            attempt = int(attempt)
        if isinstance(attempt, bool) or not isinstance(attempt, int) or attempt < 1:
            raise InvalidMessage("attempt must be a whole number >= 1")
        if not isinstance(args, list):
            raise InvalidMessage("args must be an array")
        if not isinstance(kwargs, dict):
            raise InvalidMessage("kwargs must be an object")
        pickled = msg.get("pickle")
        if pickled is not None and not isinstance(pickled, str):
            raise InvalidMessage("pickle must be a base64 string")
        method = msg.get("method")
        if method is not None and not isinstance(method, str):
            raise InvalidMessage("method must be a string")
        return cls(call_id, attempt, args, kwargs, pickled, method, msg.get("queued") is True)


# --- stdout and stderr -----------------------------------------------------------------------


class LineForwarder(io.BufferedIOBase):
    """The bytes under a replaced sys.stdout or sys.stderr.

    Each write goes to the real stream at once; each complete line is also handed to ``send``
    with the current call's ID. Unfinished lines are kept per call, so concurrent calls' output
    does not mix; ``flush_call`` sends what a call left without a newline.
    """

    def __init__(self, stream: str, real: Optional[BinaryIO], send: Callable[[str, str, Optional[str]], None]) -> None:
        super().__init__()
        self._stream = stream
        self._real = real
        self._send = send
        self._lock = threading.RLock()
        self._partial: Dict[Optional[str], bytes] = {}

    def writable(self) -> bool:
        return True

    def fileno(self) -> int:
        if self._real is None:
            raise io.UnsupportedOperation("fileno")
        return self._real.fileno()

    def isatty(self) -> bool:
        return self._real is not None and self._real.isatty()

    def write(self, data: Any) -> int:
        data = bytes(data)
        if self._real is not None:
            try:
                self._real.write(data)
                self._real.flush()
            except (OSError, ValueError):
                pass
        call_id = _current_call.get()
        with self._lock:
            lines = (self._partial.pop(call_id, b"") + data).split(b"\n")
            rest = lines.pop()
            while len(rest) > MAX_LOG_LINE_BYTES:
                lines.append(rest[:MAX_LOG_LINE_BYTES])
                rest = rest[MAX_LOG_LINE_BYTES:]
            if rest:
                self._partial[call_id] = rest
            for line in lines:
                self._send(self._stream, line.decode("utf-8", "replace"), call_id)
        return len(data)

    def flush_call(self, call_id: Optional[str]) -> None:
        with self._lock:
            rest = self._partial.pop(call_id, b"")
            if rest:
                self._send(self._stream, rest.decode("utf-8", "replace"), call_id)


def _forwarding_stream(name: str, real: Any, send: Callable[[str, str, Optional[str]], None]) -> Tuple[io.TextIOWrapper, LineForwarder]:
    """A text stream like sys.stdout whose bytes go through a LineForwarder."""
    forwarder = LineForwarder(name, getattr(real, "buffer", None), send)
    errors = getattr(real, "errors", None) or "strict"
    text = io.TextIOWrapper(forwarder, encoding="utf-8", errors=errors, line_buffering=True, write_through=True)  # type: ignore[arg-type]
    return text, forwarder


# --- the agent -------------------------------------------------------------------------------


class Config:
    """What the daemon tells the agent through its environment."""

    def __init__(self, environ: Dict[str, str]) -> None:
        # On one machine, the mounted unix socket; across a cluster, the daemon's ws://HOST:PORT.
        self.url = environ.get(ENV_URL) or None
        self.socket = "" if self.url else self._required(environ, ENV_SOCKET)
        self.container = environ.get(ENV_CONTAINER, "")
        self.token = self._required(environ, ENV_TOKEN)
        self.module = self._required(environ, ENV_MODULE)
        self.app_dir = self._required(environ, ENV_APP_DIR)
        self.app = self._required(environ, ENV_APP)
        self.function = self._required(environ, ENV_FUNCTION)
        self.max_inputs = self._max_inputs(environ.get(ENV_MAX_INPUTS, "1"))

    @staticmethod
    def _required(environ: Dict[str, str], name: str) -> str:
        value = environ.get(name)
        if not value:
            _note(f"environment variable {name} is not set")
            _exit(2)
        return value

    @staticmethod
    def _max_inputs(text: str) -> int:
        try:
            return max(1, int(text))
        except ValueError:
            _note(f"{ENV_MAX_INPUTS}={text!r} is not a whole number; running one input at a time")
            return 1


class Agent:
    """One function's agent: loads it, runs the daemon's inputs, sends outputs and log lines."""

    def __init__(self, config: Config, ws: UnixWebSocket) -> None:
        self.config = config
        self.ws = ws
        self.fn: Optional[Callable[..., Any]] = None
        #: The web endpoint's server (None for a function called with inputs).
        self.web: Optional[gantry_web.WebServer] = None
        #: A class's web endpoint methods' servers, by method (requests name theirs as "target").
        self.webs: Dict[str, gantry_web.WebServer] = {}
        self._forwarders: List[LineForwarder] = []
        self._pool: Optional[concurrent.futures.ThreadPoolExecutor] = None
        self._loop: Optional[asyncio.AbstractEventLoop] = None
        #: A class's instance (@app.cls), its callable methods, and its @exit hooks still to run.
        self._obj: Any = None
        self._methods: List[str] = []
        self._exit_hooks: List[str] = []
        #: @batched: inputs are grouped into one call of lists.
        self._batcher: Optional[gantry_batch.Batcher] = None
        self._slots: Optional[asyncio.Semaphore] = None
        self._running = 0
        self._running_lock = threading.Lock()
        #: Prefetched inputs (sent with ``queued``), in the order received; guarded by _running_lock.
        self._waiting: "collections.deque[Input]" = collections.deque()
        self._outputs = _Outputs(self.send_bytes)
        #: Running inputs, where the daemon's cancel messages go.
        self._cancels = gantry_cancel.Cancels()

    # Sending.

    def send(self, msg: Dict[str, Any]) -> None:
        self.send_bytes(_json_bytes(msg))

    def send_bytes(self, payload: bytes) -> None:
        """Sends one message; a broken connection is left for the reading loop to report."""
        try:
            self.ws.send_text(payload)
        except OSError:
            pass

    def _send_log(self, stream: str, line: str, call_id: Optional[str]) -> None:
        msg: Dict[str, Any] = {"type": "log", "stream": stream, "line": line}
        if call_id:
            msg["callId"] = call_id
        self.send(msg)

    def forward_output(self) -> None:
        """Replaces sys.stdout and sys.stderr with streams that also send their lines."""
        sys.stdout, out = _forwarding_stream("stdout", sys.stdout, self._send_log)
        sys.stderr, err = _forwarding_stream("stderr", sys.stderr, self._send_log)
        self._forwarders = [out, err]

    def close(self, code: int, reason: str) -> None:
        """Closes the connection; the reading loop exits when the daemon answers (or after a while)."""
        self._outputs.flush()
        try:
            self.ws.close(code, reason)
        except OSError:
            self.ws.shutdown()
        timer = threading.Timer(CLOSE_TIMEOUT_S, self.ws.shutdown)
        timer.daemon = True
        timer.start()

    # Loading.

    def load(self) -> bool:
        """Imports the app module and finds the function: ready, or init_error (False)."""
        try:
            sys.path.insert(0, self.config.app_dir)
            from gantry import _context  # the call context gantry.current_function_call_id() reads

            _context.bind(_current_input)
            importlib.import_module(self.config.module)
            from gantry.app import lookup_local

            self.fn = lookup_local(self.config.app, self.config.function)
            if inspect.isclass(self.fn):
                self._load_class(self.fn)
            marker = getattr(self.fn, "__gantry_web__", None)
            if marker is not None:
                self.web = gantry_web.load(marker, self.fn, self._web_host(), self._start_event_loop)
        except BaseException as exc:
            self.send({"type": "init_error", "error": _remote_error(exc)})
            return False
        if self.web is not None:
            pass  # its server runs the requests
        elif self._obj is not None:  # a class: its methods may be sync or async
            if self._loop is None:
                self._start_event_loop()
            self._pool = concurrent.futures.ThreadPoolExecutor(self.config.max_inputs, thread_name_prefix="gantry-input")
        elif inspect.iscoroutinefunction(self.fn) or inspect.isasyncgenfunction(self.fn):
            self._start_event_loop()
        else:
            self._pool = concurrent.futures.ThreadPoolExecutor(self.config.max_inputs, thread_name_prefix="gantry-input")
        marked = self._batched_marker()
        if marked is not None:
            self._batcher = gantry_batch.Batcher(int(marked["max_batch_size"]), int(marked["wait_ms"]) / 1000, self._start_batch)
        runtime = f"python {platform.python_version()}"
        self.send({"type": "ready", "protocol": AGENT_PROTOCOL_VERSION, "runtime": runtime, "functionName": self.config.function})
        return True

    def _load_class(self, user_cls: type) -> None:
        """A class (@app.cls): one instance per container; its @enter hooks run now, in order,
        before the agent says ready (an exception fails the container's start with the user's error)."""
        from gantry.cls import instantiate, members, web_members

        # Its parameter set (Model(size=2) has containers of its own), set before any hook runs.
        self._obj = instantiate(user_cls, json.loads(os.environ.get("GANTRY_CLS_PARAMS") or "{}"))
        self._methods = members(user_cls, "method")
        self._exit_hooks = members(user_cls, "exit")
        for name in members(user_cls, "enter"):
            result = getattr(self._obj, name)()
            if inspect.isawaitable(result):
                loop = self._loop or self._start_event_loop()
                asyncio.run_coroutine_threadsafe(result, loop).result()
        # Its web endpoint methods are served after @enter, all on one event loop.
        for name in web_members(user_cls):
            marker = getattr(user_cls, name).__gantry_web__
            self.webs[name] = gantry_web.load(marker, getattr(self._obj, name), self._web_host(), lambda: self._loop or self._start_event_loop())

    def _run_exit_hooks(self) -> None:
        """The class's @exit hooks, once, when the container stops; an exception is printed, the rest still run."""
        hooks, self._exit_hooks = self._exit_hooks, []
        for name in hooks:
            try:
                result = getattr(self._obj, name)()
                if inspect.isawaitable(result) and self._loop is not None:
                    asyncio.run_coroutine_threadsafe(result, self._loop).result()
            except BaseException:
                traceback.print_exc()

    def _target(self, call: Input) -> Callable[..., Any]:
        """What an input runs: the function, or the method of the class's instance it names."""
        if self._obj is None:
            return self.fn  # type: ignore[return-value]
        if call.method not in self._methods:
            raise AttributeError(f"{self.config.function} has no method {call.method!r}")
        return getattr(self._obj, call.method)

    def _start_event_loop(self) -> asyncio.AbstractEventLoop:
        loop = asyncio.new_event_loop()
        threading.Thread(target=loop.run_forever, name="gantry-asyncio", daemon=True).start()

        async def make_slots() -> asyncio.Semaphore:  # created on its loop (Python 3.9 binds it there)
            return asyncio.Semaphore(self.config.max_inputs)

        self._slots = asyncio.run_coroutine_threadsafe(make_slots(), loop).result()
        self._loop = loop
        return loop

    def _web_host(self) -> gantry_web.Host:
        def flush_logs(request_id: str) -> None:
            for forwarder in self._forwarders:
                forwarder.flush_call(request_id)

        return gantry_web.Host(self.config.function, self.send, self.send_bytes, _remote_error, _current_call, flush_logs, self.config.max_inputs)

    # Running inputs.

    def take_input(self, call: Input) -> None:
        """Runs an input now, or (prefetched) once a slot frees."""
        if not call.queued:
            return self.start_input(call)
        with self._running_lock:
            self._waiting.append(call)
        self._begin_waiting()

    def _begin_waiting(self) -> None:
        """Begins prefetched inputs while slots are free, telling the daemon each has begun (its timeout starts)."""
        while True:
            with self._running_lock:
                if not self._waiting or self._running >= self.config.max_inputs:
                    return
                call = self._waiting.popleft()
                self._running += 1
            self._outputs.started(call.call_id, call.attempt)
            self.start_input(call, counted=True)

    def _take_waiting(self, key: Tuple[Any, Any]) -> Optional[Input]:
        """Takes a prefetched input that has not begun out of the waiting ones; None when it is not there."""
        with self._running_lock:
            call = next((c for c in self._waiting if (c.call_id, c.attempt) == key), None)
            if call is not None:
                self._waiting.remove(call)
            return call

    def _drop_waiting(self, key: Tuple[str, int]) -> bool:
        """A cancel for a prefetched input that has not begun: it ends here, as cancelled."""
        call = self._take_waiting(key)
        if call is None:
            return False
        error = gantry_cancel.InputCancellation("the input was asked to stop before it began")
        self._outputs.put(self._output(call, None, error))
        return True

    def withdraw_waiting(self, refs: List[Any]) -> None:
        """The daemon takes back prefetched inputs that have not begun (their container drains)."""
        for ref in refs:
            if not isinstance(ref, dict):
                continue
            call = self._take_waiting((ref.get("callId"), ref.get("attempt")))
            if call is not None:  # else begun already (its started says so), or not known
                self._outputs.withdrawn(call.call_id, call.attempt)

    def start_input(self, call: Input, counted: bool = False) -> None:
        busy = False
        if not counted:
            with self._running_lock:
                busy = self._running >= self.config.max_inputs
                self._running += 1
        if busy:
            print(f"gantry agent: over maxInputs ({self.config.max_inputs}), call {call.call_id} waits for a free slot", file=sys.stderr)
        if self._batcher is not None:
            self._batcher.add(call)
        else:
            self._run_on(call, self._run_async, self._run_sync, call)

    def _run_on(self, call: Input, run_async: Callable[[Any], Any], run_sync: Callable[[Any], None], work: Any) -> None:
        """Runs `work` (an input, or a batch whose first input is `call`) on the event loop when its target is async, else in the thread pool."""
        if self._loop is not None and (self._obj is None or self._is_async(call)):
            asyncio.run_coroutine_threadsafe(run_async(work), self._loop)
        else:
            assert self._pool is not None
            self._pool.submit(contextvars.copy_context().run, run_sync, work)

    def _batched_marker(self) -> Optional[Dict[str, Any]]:
        """@batched's settings: on the function, or on a class's only method."""
        if self._obj is None:
            return getattr(self.fn, "__gantry_batched__", None)
        methods = self._methods
        return getattr(getattr(type(self._obj), methods[0]), "__gantry_batched__", None) if len(methods) == 1 else None

    def _start_batch(self, batch: List[Input]) -> None:
        self._run_on(batch[0], self._run_batch_async, self._run_batch_sync, batch)

    def _batch_call(self, batch: List[Input]) -> Any:
        """Calls the target once with the batch's arguments as lists; returns what it returned."""
        _current_call.set(batch[0].call_id)
        args, kwargs = gantry_batch.transpose([c.arguments() for c in batch], self.config.function)
        return self._target(batch[0])(*args, **kwargs)

    def _finish_batch(self, batch: List[Input], value: Any = None, error: Optional[BaseException] = None) -> None:
        """One result per input; a batch that failed (or returned the wrong shape) fails each of its inputs."""
        if error is None:
            try:
                values = gantry_batch.results(value, len(batch), self.config.function)
            except BaseException as exc:
                error = exc
        if error is not None:
            for c in batch:
                self._finish(c, error=error)
            return
        for c, v in zip(batch, values):
            self._finish(c, value=v)

    def _run_batch_sync(self, batch: List[Input]) -> None:
        try:
            value = self._batch_call(batch)
        except BaseException as exc:
            return self._finish_batch(batch, error=exc)
        self._finish_batch(batch, value)

    async def _run_batch_async(self, batch: List[Input]) -> None:
        try:
            value = await self._batch_call(batch)
        except BaseException as exc:
            return self._finish_batch(batch, error=exc)
        self._finish_batch(batch, value)

    def _is_async(self, call: Input) -> bool:
        f = getattr(type(self._obj), call.method or "", None)
        return inspect.iscoroutinefunction(f) or inspect.isasyncgenfunction(f)

    def _run_sync(self, call: Input) -> None:
        _current_call.set(call.call_id)  # in this input's own copy of the context
        _current_input.set((call.call_id, call.attempt))
        key = (call.call_id, call.attempt)
        try:
            self._cancels.enter_thread(key)
            try:
                args, kwargs = call.arguments()
                value = self._target(call)(*args, **kwargs)
                if inspect.isgenerator(value):
                    for index, item in enumerate(value):
                        self.send_bytes(self._item(call, index, item))  # now, ahead of the output (batched)
                    value = None
            finally:
                self._cancels.exit_thread(key)  # a cancel that came too late is withdrawn
        except BaseException as exc:
            self._finish(call, error=exc)
        else:
            self._finish(call, value=value)

    async def _run_async(self, call: Input) -> None:
        assert self._slots is not None
        async with self._slots:
            _current_call.set(call.call_id)  # in this task's own context
            _current_input.set((call.call_id, call.attempt))
            key = (call.call_id, call.attempt)
            task = asyncio.current_task()
            if task is not None:
                self._cancels.enter_task(key, task)
            try:
                args, kwargs = call.arguments()
                target = self._target(call)
                if inspect.isasyncgenfunction(target):
                    index = 0
                    async for item in target(*args, **kwargs):
                        self.send_bytes(self._item(call, index, item))  # now, ahead of the output (batched)
                        index += 1
                    value = None
                else:
                    value = await target(*args, **kwargs)
            except BaseException as exc:
                self._cancels.exit_task(key)
                self._finish(call, error=exc)
            else:
                self._cancels.exit_task(key)
                self._finish(call, value=value)

    def _finish(self, call: Input, value: Any = None, error: Optional[BaseException] = None) -> None:
        """Sends the call's unfinished log lines, then its output."""
        payload = self._output(call, value, error)
        for forwarder in self._forwarders:
            forwarder.flush_call(call.call_id)
        with self._running_lock:
            self._running -= 1
        self._outputs.put(payload)
        self._begin_waiting()

    def _output(self, call: Input, value: Any, error: Optional[BaseException]) -> bytes:
        if error is None:
            try:
                return self._output_ok(call, value)
            except BaseException as exc:  # not JSON, or too large
                error = exc
        remote = _remote_error(error)
        if call.pickled is not None:
            pickled = _pickled_exception(error)
            if pickled is not None:
                remote["pickled"] = pickled
        return _json_bytes({"callId": call.call_id, "attempt": call.attempt, "ok": False, "error": remote})

    def _item(self, call: Input, index: int, item: Any) -> bytes:
        """One yielded item as its message: pickled for a Python caller, else JSON (a TypeError names it)."""
        head = {"type": "item", "callId": call.call_id, "attempt": call.attempt, "index": index}
        if call.pickled is not None:
            try:
                data = _pickle_b64(item)
            except Exception as exc:
                raise TypeError(f"item {index} of {self.config.function} ({type(item).__name__}) cannot be pickled: {exc}") from None
            size = len(data)
            payload = _json_bytes({**head, "value": None, "pickled": data})
        else:
            try:
                payload = _json_bytes({**head, "value": item})
            except (TypeError, ValueError, RecursionError) as exc:
                raise TypeError(f"item {index} of {self.config.function} is not JSON-serialisable: {exc}") from None
            deep = _json_depth_problem(payload)
            if deep:
                raise TypeError(f"item {index} of {self.config.function} is {deep}")
            size = len(payload)
        if size > MAX_OUTPUT_BYTES:
            raise ResultTooLargeError(f"item {index} is {size} bytes, over the limit of {MAX_OUTPUT_BYTES} bytes")
        return payload

    def _output_ok(self, call: Input, value: Any) -> bytes:
        if call.pickled is not None:  # a Python caller: the value goes back pickled, whatever it is
            try:
                data = _pickle_b64(value)
            except Exception as exc:
                raise TypeError(f"the return value of {self.config.function} ({type(value).__name__}) cannot be pickled: {exc}") from None
            if len(data) > MAX_OUTPUT_BYTES:
                raise ResultTooLargeError(f"the return value is {len(data)} bytes pickled (base64), over the limit of {MAX_OUTPUT_BYTES} bytes")
            return _json_bytes({"callId": call.call_id, "attempt": call.attempt, "ok": True, "value": None, "pickled": data})
        try:
            value_json = _json_bytes(value)
        except (TypeError, ValueError, RecursionError) as exc:
            raise TypeError(f"the return value of {self.config.function} is not JSON-serialisable: {exc}") from None
        if len(value_json) > MAX_OUTPUT_BYTES:
            raise ResultTooLargeError(f"the return value is {len(value_json)} bytes of JSON, over the limit of {MAX_OUTPUT_BYTES} bytes")
        deep = _json_depth_problem(value_json)
        if deep:  # deeper than the daemon takes: this call fails, nothing else
            raise TypeError(f"the return value of {self.config.function} is {deep}")
        # The value is serialised once: spliced into the message rather than encoded again.
        head = _json_bytes({"callId": call.call_id, "attempt": call.attempt, "ok": True})
        return head[:-1] + b',"value":' + value_json + b"}"

    # The daemon's messages.

    def serve(self) -> int:
        """Reads the daemon's messages until the connection ends; returns the exit code."""
        while True:
            try:
                text = self.ws.recv()
            except ConnectionLost as exc:
                if self.ws.close_sent:
                    return 0
                _note(f"the connection to the daemon was lost: {exc}")
                return 1
            except ProtocolError as exc:
                _note(f"the daemon broke the WebSocket protocol: {exc}")
                self.close(exc.code, str(exc))
                return 1
            if text is None:
                return 0
            self.handle(text)

    def handle(self, text: str) -> None:
        try:
            msg = json.loads(text, parse_constant=_no_constants)
        except RecursionError:
            return self._fail_undecodable(text, "it is nested too deeply for Python to decode")
        try:
            kind = msg.get("type") if isinstance(msg, dict) else None
            if kind in ("input", "inputs"):
                items = msg.get("inputs") if kind == "inputs" else [msg]
                if not isinstance(items, list) or not 1 <= len(items) <= MAX_BATCH_MESSAGE_ITEMS:
                    raise InvalidMessage(f"inputs must be an array of 1 to {MAX_BATCH_MESSAGE_ITEMS} inputs")
                for call in [Input.parse(m if isinstance(m, dict) else {}) for m in items]:
                    if self.web is not None:
                        error = TypeError(f"{self.config.function} is a web endpoint: send it HTTP requests, not calls")
                        self._outputs.put(_json_bytes({"callId": call.call_id, "attempt": call.attempt, "ok": False, "error": _remote_error(error)}))
                    elif not self.ws.close_sent:  # closing: its output could not be sent
                        self.take_input(call)
            elif kind in ("http_request", "http_body", "http_cancel"):
                self.handle_http(kind, msg)
            elif kind == "cancel":
                call_id, attempt = msg.get("callId"), msg.get("attempt")
                if isinstance(call_id, str) and isinstance(attempt, int) and not self._drop_waiting((call_id, attempt)):
                    self._cancels.cancel((call_id, attempt))
            elif kind == "withdraw":
                refs = msg.get("inputs")
                if not isinstance(refs, list) or not 1 <= len(refs) <= MAX_BATCH_MESSAGE_ITEMS:
                    raise InvalidMessage(f"withdraw's inputs must be an array of 1 to {MAX_BATCH_MESSAGE_ITEMS} call references")
                self.withdraw_waiting(refs)
            elif kind == "shutdown":
                if self.web is None and not self.webs and not self._exit_hooks:
                    self.close(1000, "shutdown")
                else:  # the app's shutdown may take a while: the connection is still read meanwhile
                    threading.Thread(target=self.stop, args=(1000, "shutdown"), daemon=True).start()
            else:
                raise InvalidMessage(f"unknown type {kind!r}")
        except (ValueError, InvalidMessage) as exc:
            print(f"gantry agent: ignoring a malformed message from the daemon ({exc})", file=sys.stderr)

    def _fail_undecodable(self, text: str, why: str) -> None:
        """A message the agent cannot decode: the inputs it names fail with the reason, rather than
        wait for their timeout or bring the agent (and its other inputs) down."""
        refs = re.findall(r'"callId":"([^"\\]{1,64})","attempt":(\d{1,9})', text)[:MAX_BATCH_MESSAGE_ITEMS]
        for call_id, attempt in refs:
            error = ValueError(f"the input could not be decoded by the agent: {why}")
            self._outputs.put(_json_bytes({"callId": call_id, "attempt": int(attempt), "ok": False, "error": _remote_error(error)}))
        print(f"gantry agent: a message from the daemon could not be decoded ({why}); failed its {len(refs)} input(s)", file=sys.stderr)

    def handle_http(self, kind: str, msg: Dict[str, Any]) -> None:
        if kind == "http_request":
            head = gantry_web.HttpRequest.parse(msg)
            target = msg.get("target")
            server = self.web if target is None else self.webs.get(target) if isinstance(target, str) else None
            if server is None:
                what = "is not a web endpoint" if target is None else f"has no web endpoint method {target!r}"
                self.send({"type": "http_error", "requestId": head.request_id, "error": _remote_error(TypeError(f"{self.config.function} {what}"))})
            elif not self.ws.close_sent:  # closing: its answer could not be sent
                server.start(head)
        elif kind == "http_body":
            request_id, data, end = gantry_web.parse_body(msg)
            for server in self.servers():  # request IDs are unique: the others ignore it
                server.body(request_id, data, end)
        else:
            request_id, reason = gantry_web.parse_cancel(msg)
            for server in self.servers():
                server.cancel(request_id, reason)

    def servers(self) -> List[gantry_web.WebServer]:
        """The web servers this container runs: a web endpoint function's, or a class's web methods'."""
        return ([self.web] if self.web is not None else []) + list(self.webs.values())

    def stop(self, code: int, reason: str) -> None:
        """Runs the web app's shutdown and a class's @exit hooks (if any), then closes the connection."""
        for server in self.servers():
            server.shutdown()
        self._run_exit_hooks()
        self.close(code, reason)


def main() -> int:
    config = Config(dict(os.environ))
    try:
        headers = {"Authorization": f"Bearer {config.token}", "X-Gantry-Container": config.container}
        ws = UnixWebSocket.connect(config.url or config.socket, AGENT_WS_PATH, headers)
    except ConnectionLost as exc:
        _note(f"cannot connect to the daemon at {config.url or config.socket}: {exc}")
        return 1
    agent = Agent(config, ws)
    # The handler must not write to the socket itself: it may interrupt a send in this thread.
    terminated = threading.Event()

    def on_sigterm(*_: Any) -> None:
        terminated.set()
        threading.Thread(target=agent.stop, args=(1001, "SIGTERM"), daemon=True).start()

    signal.signal(signal.SIGTERM, on_sigterm)
    agent.forward_output()
    if not agent.load():
        agent.close(1000, "init failed")
        agent.serve()
        return 1
    code = agent.serve()
    for server in agent.servers():
        server.shutdown()  # once: a no-op if shutdown or SIGTERM ran it
    return 143 if terminated.is_set() else code


if __name__ == "__main__":
    _exit(main())
