"""Deployed functions and their calls, shaped like Modal's client (``modal.Function``, ``modal.FunctionCall``).

``Function.from_name(app, name)`` is a lazy handle: nothing is sent until its first use.
``fn.spawn(x)`` queues a call and returns a ``FunctionCall`` once the call is durable;
``FunctionCall.from_id(call_id)`` finds it again, in this process or any other, and ``.get()``
waits for its result. Between Python programs and Python functions values travel pickled
(``_values.py``); with TypeScript functions, as JSON.
"""
from __future__ import annotations

import asyncio
import functools
import math
import re
import time
from typing import Any, Callable, Dict, Iterable, Iterator, List, Optional, Sequence
from urllib.parse import quote

from . import _context, _map, _values
from ._client import Client
from .exception import (
    CancelledError,
    Error,
    InvalidError,
    NotFoundError,
    OutputExpiredError,
)

#: ``fc-`` + 26 characters of Crockford base32, as ``protocol/api.ts`` CALL_ID_PATTERN.
_CALL_ID = re.compile(r"^fc-[0-9a-hjkmnp-tv-z]{26}$")
#: The header that makes a submit idempotent, and the longest key (``protocol/api.ts``).
_IDEMPOTENT_REPLAYED_HEADER = "idempotent-replayed"  # lower case, as answer_headers has it
_IDEMPOTENCY_KEY_HEADER = "Idempotency-Key"
#: The header naming the call a container runs for (daemon/api/call-views.ts PARENT_CALL_HEADER).
_PARENT_CALL_HEADER = "X-Gantry-Parent-Call"
_MAX_IDEMPOTENCY_KEY_CHARS = 255
#: Longest wait asked of the daemon in one request (it grants at most 60 s); longer waits repeat.
_MAX_WAIT_PER_REQUEST_S = 50.0
_TERMINAL = ("succeeded", "failed", "cancelled")


class _WithAio:
    """A method callable as ``obj.m(...)`` and awaitable as ``await obj.m.aio(...)`` (Modal's async variants).

    The ``.aio`` form runs the same blocking call in a worker thread, so an event loop (a FastAPI
    handler, say) keeps serving meanwhile.
    """

    def __init__(self, f: Callable[..., Any]) -> None:
        self._f = f
        functools.update_wrapper(self, f)  # type: ignore[arg-type]

    def __get__(self, obj: Any, objtype: Any = None) -> Any:
        if obj is None:
            return self
        bound = functools.partial(self._f, obj)
        bound.aio = self._aio(bound)  # type: ignore[attr-defined]
        return bound

    @staticmethod
    def _aio(call: Callable[..., Any]) -> Callable[..., Any]:
        async def aio(*args: Any, **kwargs: Any) -> Any:
            return await asyncio.get_running_loop().run_in_executor(None, functools.partial(call, *args, **kwargs))

        return aio


class _WithAioIter(_WithAio):
    """An iterator method also usable as ``async for x in obj.m.aio(...)``: the same blocking
    iterator advanced in a worker thread, one item at a time."""

    @staticmethod
    def _aio(call: Callable[..., Any]) -> Callable[..., Any]:
        async def aio(*args: Any, **kwargs: Any) -> Any:
            loop = asyncio.get_running_loop()
            it = await loop.run_in_executor(None, functools.partial(call, *args, **kwargs))
            done = object()
            while True:
                item = await loop.run_in_executor(None, next, it, done)
                if item is done:
                    return
                yield item

        return aio


def _segment(s: str) -> str:
    return quote(s, safe="")


class FunctionCall:
    """A spawned call, by ID: ``FunctionCall.from_id("fc-…").get(timeout=5)``."""

    def __init__(self, call_id: str, client: Optional[Client] = None, replayed: bool = False) -> None:
        self._call_id = call_id
        self._client = client
        #: True when an idempotency key had already made this call: the spawn queued nothing.
        self.replayed = replayed

    @classmethod
    def from_id(cls, call_id: str, *, client: Optional[Client] = None) -> "FunctionCall":
        """The call with this ID (checked for shape only; an unknown ID raises NotFoundError on use)."""
        if not isinstance(call_id, str) or not _CALL_ID.match(call_id):
            raise InvalidError(f"{call_id!r} is not a call ID (expected fc- followed by 26 letters or digits)")
        return cls(call_id, client)

    @property
    def object_id(self) -> str:
        """The call ID, ``fc-…``."""
        return self._call_id

    def __repr__(self) -> str:
        return f"FunctionCall({self._call_id!r})"

    def _transport(self) -> Client:
        if self._client is None:
            self._client = Client.from_env()
        return self._client

    @_WithAio
    def get(self, timeout: Optional[float] = None) -> Any:
        """Waits for the result and returns it.

        ``timeout=None`` waits as long as it takes; a number waits that many seconds (``0`` polls
        once), then raises the builtin ``TimeoutError`` while the call is still queued or running.
        A failed call raises the remote builtin exception (``ValueError``, ``KeyError``, …) or
        ``RemoteError``, with the remote traceback as ``remote_traceback`` (and a note);
        ``FunctionTimeoutError`` when an attempt ran past the function's timeout,
        ``CancelledError`` when the call was cancelled, ``OutputExpiredError`` once the result was
        dropped, ``NotFoundError`` for an unknown call ID.
        """
        if timeout is not None and (isinstance(timeout, bool) or not isinstance(timeout, (int, float)) or math.isnan(timeout)):
            raise TypeError(f"timeout must be a number of seconds or None, got {timeout!r}")
        deadline = None if timeout is None else time.monotonic() + max(0.0, float(timeout))
        path = f"/v1/calls/{_segment(self._call_id)}"
        while True:
            left = _MAX_WAIT_PER_REQUEST_S if deadline is None else deadline - time.monotonic()
            wait = max(0.0, min(_MAX_WAIT_PER_REQUEST_S, left))
            view = self._transport().json("GET", f"{path}?wait={wait:.3f}", wait_s=wait)
            if not isinstance(view, dict) or "status" not in view:
                raise Error(f"the gantry daemon sent an unreadable answer for call {self._call_id}: {view!r:.200}")
            if view["status"] in _TERMINAL:
                return _settle(self._call_id, view)
            if deadline is not None and time.monotonic() >= deadline:
                raise TimeoutError(f"call {self._call_id} is still {view['status']} after waiting {timeout:g} s")

    def get_call_graph(self) -> List["InputInfo"]:
        """This call and the calls it spawned from inside its container (and theirs), with their status."""
        from .call_graph import InputInfo

        view = self._transport().json("GET", f"/v1/calls/{_segment(self._call_id)}/graph")
        return [InputInfo.from_view(view)]

    @staticmethod
    def gather(*calls: "FunctionCall") -> List[Any]:
        """Waits for every call and returns their results in the order given; the first failure
        (in that order) is raised. ``await FunctionCall.gather.aio(*calls)`` from async code."""
        for c in calls:
            if not isinstance(c, FunctionCall):
                raise InvalidError(f"FunctionCall.gather takes FunctionCall objects, got {type(c).__name__}")
        return [c.get() for c in calls]

    @_WithAio
    def cancel(self) -> None:
        """Cancels the call if it is queued or running; a call that already finished is left as it is."""
        try:
            self._transport().json("POST", f"/v1/calls/{_segment(self._call_id)}/cancel")
        except Error as err:
            if err.code != "conflict":  # 409: already finished, which is what cancel wants anyway
                raise


def _settle(call_id: str, view: Dict[str, Any]) -> Any:
    """The result of a finished call (unpickled when it came pickled), or the error it ended with, raised."""
    status = view["status"]
    if status == "succeeded":
        if view.get("expired"):
            raise OutputExpiredError(f"the result of call {call_id} expired at {view.get('expires_at')}")
        return _values.result_of(call_id, view)
    error = view.get("error") if isinstance(view.get("error"), dict) else {}
    if status == "cancelled":
        message = str(error.get("message") or "the call was cancelled")
        why = "" if message == "the call was cancelled" else f": {message}"  # e.g. "the app was stopped"
        raise CancelledError(f"call {call_id} was cancelled{why}")
    raise _values.exception_of(call_id, error)


def _check_idempotency_key(key: Any) -> str:
    """The key, if it is 1–255 printable ASCII characters; else InvalidError naming the limit."""
    if not isinstance(key, str):
        raise InvalidError(f"idempotency_key must be a str, got {type(key).__name__}")
    if not 1 <= len(key) <= _MAX_IDEMPOTENCY_KEY_CHARS:
        raise InvalidError(f"idempotency_key must be 1 to {_MAX_IDEMPOTENCY_KEY_CHARS} characters; got {len(key)}")
    for i, ch in enumerate(key):
        if not " " <= ch <= "~":
            raise InvalidError(f"idempotency_key must be printable ASCII (space to ~); character {i + 1} is {ch!r}")
    return key


class Function:
    """A function of a deployed app: ``Function.from_name("my-job-queue", "process_job")``.

    App files get one from ``@app.function()``; it calls the deployed function of that name.
    """

    def __init__(self, app_name: str, function_name: str, raw_f: Optional[Callable] = None, *, client: Optional[Client] = None, is_generator: Optional[bool] = None) -> None:
        self.app_name = app_name
        self.function_name = function_name
        self.raw_f = raw_f
        self._client = client
        #: Known from the app file's definition, else from the daemon (hydrate).
        self._is_generator = is_generator
        #: A class's method (gantry.Cls): each call names it.
        self._method: Optional[str] = None
        #: A class's instance with parameters or options: {"params": {...}, "options": {...}}.
        self._variant: Optional[Dict[str, Any]] = None
        self._info: Optional[Dict[str, Any]] = None
        self._idempotency_key: Optional[str] = None

    def with_options(self, *, idempotency_key: Optional[str] = None) -> "Function":
        """The same function whose calls take these options, e.g.
        ``f.with_options(idempotency_key="order-42").spawn(order)``.

        ``idempotency_key`` (1–255 printable ASCII characters) makes ``spawn`` and ``remote``
        idempotent: the first spawn with the key makes the call; any other within 24 h, for the same
        function, returns that call and queues nothing.
        """
        other = Function(self.app_name, self.function_name, self.raw_f, client=self._client, is_generator=self._is_generator)
        other._info = self._info
        other._idempotency_key = self._idempotency_key
        other._method = self._method
        other._variant = self._variant
        if idempotency_key is not None:
            other._idempotency_key = _check_idempotency_key(idempotency_key)
        return other

    @classmethod
    def from_name(cls, app_name: str, name: str, *, client: Optional[Client] = None) -> "Function":
        """A lazy handle: nothing is checked until first use (an unknown one raises NotFoundError then)."""
        for what, value in (("app_name", app_name), ("name", name)):
            if not isinstance(value, str) or not value:
                raise InvalidError(f"Function.from_name: {what} must be a non-empty string, got {value!r}")
        return cls(app_name, name, client=client)

    @classmethod
    def lookup(cls, app_name: str, name: str, *, client: Optional[Client] = None) -> "Function":
        """The older, eager form of ``from_name``: raises NotFoundError now for an unknown app or function."""
        return cls.from_name(app_name, name, client=client).hydrate()

    @property
    def object_name(self) -> str:
        return f"{self.app_name}.{self.function_name}" + (f".{self._method}" if self._method else "")

    def __repr__(self) -> str:
        return f"Function({self.object_name!r})"

    def _transport(self) -> Client:
        if self._client is None:
            self._client = Client.from_env()
        return self._client

    def _path(self) -> str:
        return f"/v1/apps/{_segment(self.app_name)}/functions/{_segment(self.function_name)}"

    def hydrate(self) -> "Function":
        """Checks with the daemon that the function is deployed (once; later calls return at once)."""
        if self._info is None:
            self._info = self._transport().json("GET", self._path())
        return self

    @property
    def is_generator(self) -> bool:
        """Whether the function yields: call it with ``remote_gen``."""
        if self._is_generator is None:
            self.hydrate()
            self._is_generator = bool((self._info or {}).get("generator"))
        return self._is_generator

    def _refuse_generator(self, verb: str) -> None:
        if self.is_generator:
            raise InvalidError(f"{self.object_name} is a generator function: call it with remote_gen (or remote_gen.aio), not {verb}")

    def _refuse_plain(self) -> None:
        if not self.is_generator:
            raise InvalidError(f"{self.object_name} is not a generator function: call it with remote, spawn or map, not remote_gen")

    @_WithAioIter
    def remote_gen(self, *args: Any, **kwargs: Any) -> Iterator[Any]:
        """Runs a generator function and yields its items as they are yielded remotely (the first
        arrives before the function ends). A failure mid-stream raises after the items before it."""
        self._refuse_plain()
        self._refuse_key("remote_gen")
        body = self._body(self.object_name, args, kwargs)
        answer = self._transport().json("POST", f"{self._path()}/calls", body, headers=_parent_headers())
        return _stream_items(self._transport(), answer["call_id"])

    def get_web_url(self) -> Optional[str]:
        """A web endpoint's URL (served on the daemon's web port, another origin than its API); None for a plain function."""
        self.hydrate()
        assert self._info is not None
        url = self._info.get("web_url")
        return url if isinstance(url, str) else None

    def _body(self, where: str, args: Sequence[Any], kwargs: Dict[str, Any]) -> Dict[str, Any]:
        """A call's request body: pickled for a Python function (from a program outside other apps), else JSON."""
        if _values.pickles_to(self._info, self.app_name):
            body = _values.pickled_body(where, args, kwargs)
        else:
            body = _values.json_body(where, args, kwargs)
        if self._method is not None:
            body["method"] = self._method
        if self._variant is not None:
            body.update(self._variant)
        return body

    @_WithAio
    def spawn(self, *args: Any, **kwargs: Any) -> FunctionCall:
        """Queues a call and returns it once it is durable. A Python function gets the arguments
        pickled (any value pickle takes); a TypeScript one gets JSON values."""
        self.hydrate()
        self._refuse_generator("spawn or remote")
        body = self._body(self.object_name, args, kwargs)
        key = self._idempotency_key
        headers = _parent_headers()
        if key is not None:
            headers[_IDEMPOTENCY_KEY_HEADER] = key
        answered: Dict[str, str] = {}
        answer = self._transport().json("POST", f"{self._path()}/calls", body, headers=headers, answer_headers=answered)
        return FunctionCall(answer["call_id"], self._transport(), replayed=answered.get(_IDEMPOTENT_REPLAYED_HEADER) == "true")

    @_WithAio
    def remote(self, *args: Any, **kwargs: Any) -> Any:
        """Spawns a call and waits, as long as it takes, for its result."""
        return self.spawn(*args, **kwargs).get()

    @_WithAioIter
    def map(
        self,
        *input_iterators: Iterable[Any],
        kwargs: Optional[Dict[str, Any]] = None,
        order_outputs: bool = True,
        return_exceptions: bool = False,
    ) -> Iterator[Any]:
        """Calls the function once per input (one item of each iterator, as ``builtins.map`` does)
        and yields the results, in input order unless ``order_outputs=False``. The first failure is
        raised, or yielded in its place with ``return_exceptions=True``. Memory stays bounded."""
        if not input_iterators:
            raise InvalidError(f"{self.object_name}.map needs at least one iterable of inputs")
        self._refuse_key("map")
        return self._map(((tuple(items), kwargs or {}) for items in zip(*input_iterators)), order_outputs, return_exceptions)

    @_WithAioIter
    def starmap(
        self,
        input_iterator: Iterable[Sequence[Any]],
        kwargs: Optional[Dict[str, Any]] = None,
        order_outputs: bool = True,
        return_exceptions: bool = False,
    ) -> Iterator[Any]:
        """Like ``map``, but each input is a sequence of the call's positional arguments."""
        self._refuse_key("starmap")
        return self._map(((tuple(items), kwargs or {}) for items in input_iterator), order_outputs, return_exceptions)

    @_WithAio
    def for_each(self, *input_iterators: Iterable[Any], kwargs: Optional[Dict[str, Any]] = None, ignore_exceptions: bool = False) -> None:
        """Calls the function once per input, as ``map`` does, and waits for all of them, keeping no
        results; the first failure is raised unless ``ignore_exceptions=True``."""
        for _ in self.map(*input_iterators, kwargs=kwargs, order_outputs=False, return_exceptions=ignore_exceptions):
            pass

    def spawn_map(self, *input_iterators: Iterable[Any], kwargs: Optional[Dict[str, Any]] = None) -> List[FunctionCall]:
        """Queues a call per input (as ``map`` would) and returns them, in input order, once all are durable."""
        if not input_iterators:
            raise InvalidError(f"{self.object_name}.spawn_map needs at least one iterable of inputs")
        self._refuse_key("spawn_map")
        self.hydrate()
        self._refuse_generator("spawn_map")
        client = self._transport()
        calls: List[FunctionCall] = []
        inputs = ((tuple(items), kwargs or {}) for items in zip(*input_iterators))
        for chunk in _map.chunks(_map.as_bodies(self.object_name, inputs, self._body)):
            calls.extend(FunctionCall(i, client) for i in _map.submit(client, self._path(), chunk))
        return calls

    def _refuse_key(self, verb: str) -> None:
        if self._idempotency_key is not None:
            raise InvalidError(f"an idempotency key names one call: use spawn or remote, not {verb}, on {self.object_name}")

    def _map(self, inputs: Iterator[Any], ordered: bool, return_exceptions: bool) -> Iterator[Any]:
        self.hydrate()
        self._refuse_generator("map")
        client = self._transport()
        for line in _map.results(client, self._path(), _map.as_bodies(self.object_name, inputs, self._body), ordered):
            if line.get("not_found"):
                exc: BaseException = NotFoundError(f"call {line['call_id']} is not known to the daemon")
            else:
                try:
                    yield _settle(line["call_id"], line)
                    continue
                except Exception as e:  # the call failed: raised, or yielded in its place
                    exc = e
            if not return_exceptions:
                raise exc
            yield exc

    def local(self, *args: Any, **kwargs: Any) -> Any:
        """Runs the function's own code in this process (only a function defined in this app file has it)."""
        if self.raw_f is None:
            raise InvalidError(
                f"{self.object_name} was looked up by name and has no local code: call .remote() or .spawn() instead"
            )
        return self.raw_f(*args, **kwargs)

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        return self.local(*args, **kwargs)



def _parent_headers() -> Dict[str, str]:
    """In a function's container, the call it runs for: calls spawned now become its children (get_call_graph)."""
    running = _context.current_input()
    return {_PARENT_CALL_HEADER: running[0]} if running else {}


def _stream_items(client: Client, call_id: str) -> Iterator[Any]:
    """A generator call's items, in order, long-polling for each next one; then its failure, raised."""
    path = f"/v1/calls/{_segment(call_id)}/items"
    at = 0
    while True:
        page = client.json("GET", f"{path}?from={at}&wait={_MAX_WAIT_PER_REQUEST_S:.0f}", wait_s=_MAX_WAIT_PER_REQUEST_S)
        for item in page["items"]:
            yield _values.result_of(call_id, {"result": item.get("value"), "result_pickle": item.get("pickled")})
        at = page["next"]
        if not page["done"]:
            continue
        if page.get("expired"):
            raise OutputExpiredError(f"the items of call {call_id} expired")
        if page["status"] != "succeeded":
            _settle(call_id, {"status": page["status"], "error": page.get("error") or {}})
        return


async def _gather_aio(*calls: FunctionCall) -> List[Any]:
    return await asyncio.get_running_loop().run_in_executor(None, functools.partial(FunctionCall.gather, *calls))


FunctionCall.gather.aio = _gather_aio  # type: ignore[attr-defined]
