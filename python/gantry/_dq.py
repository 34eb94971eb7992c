"""What ``Dict`` and ``Queue`` share (issue 20): the rules of protocol/dicts-queues.ts mirrored for
early errors (the daemon checks them again), keys and values as they travel, and the handle, its
ephemeral form and ``objects`` manager, written once for both (``_dict.py``, ``_queue.py``).
"""
from __future__ import annotations

import asyncio
import functools
import json
import threading
from datetime import datetime
from typing import Any, Dict, Generic, Iterable, Iterator, List, Optional, Tuple, Type, TypeVar
from urllib.parse import quote

from . import _values
from ._client import Client
from .exception import InvalidError, NotFoundError, RequestSizeError
from .functions import _WithAio
from ._volume_rules import _js_length, _show, name_problem
from ._ephemeral import Ephemeral, fetch_or_create

# --- The rules of protocol/dicts-queues.ts, mirrored -----------------------------------------------

#: Characters of a Dict's or Queue's name.
NAME_LENGTH = 63
#: Bytes of one key or value as it travels (its JSON text, or its base64).
VALUE_BYTES = 1024 * 1024
#: Entries one Dict holds.
DICT_ENTRIES = 1_000_000
#: Entries one update carries; values one put_many request carries.
PER_REQUEST = 10_000
#: Items one Queue partition holds, and partitions one Queue has (as Modal).
ITEMS_PER_PARTITION = 100_000
PARTITIONS_PER_QUEUE = 100_000
#: Bytes of a partition key (non-empty when given).
PARTITION_KEY_BYTES = 64
#: Items one get takes at most; items one read of items answers.
MAX_GET = 1_000
#: The longest one request waits in the daemon; longer waits are asked again.
MAX_WAIT_S = 50.0
from ._ephemeral import _HEARTBEAT_INTERVAL_S, EPHEMERAL_TTL_S  # noqa: F401 - shared by every ephemeral kind
#: A partition is cleared this long after its last put, unless the put set a shorter partition_ttl.
PARTITION_TTL_S = 24 * 3600
#: Bytes of keys and values one request carries at most (the daemon takes bodies of 64 MiB; JSON
#: escapes can make the body larger than the values' own bytes).
_REQUEST_BUDGET = 16 * 1024 * 1024

def dq_name_problem(what: str, name: Any) -> Optional[str]:
    """Why ``name`` cannot name a Dict or Queue (``what``), or None: the rule of every named object."""
    return name_problem(what, name)


def partition_problem(partition: Any) -> Optional[str]:
    """Why ``partition`` cannot be a partition key, or None (None is the default partition)."""
    if partition is None:
        return None
    if not isinstance(partition, str) or partition == "":
        return f"a partition key must be a non-empty string, got {_show(partition)}"
    try:
        size = len(partition.encode("utf-8"))
    except UnicodeEncodeError:
        return f"partition key {partition[:40]!r} is not well-formed Unicode (it holds a lone surrogate)"
    if size > PARTITION_KEY_BYTES:
        return f"partition key {_show(partition[:40])} is {size} bytes; at most {PARTITION_KEY_BYTES} are allowed"
    return None


def _checked_name(where: str, what: str, name: Any) -> str:
    problem = dq_name_problem(what, name)
    if problem:
        raise InvalidError(f"{where}: {problem}")
    return name


def _checked_partition(where: str, partition: Any) -> Optional[str]:
    problem = partition_problem(partition)
    if problem:
        raise InvalidError(f"{where}: {problem}")
    return partition


def _checked_timeout(where: str, timeout: Any, name: str = "timeout") -> Optional[float]:
    if timeout is None:
        return None
    if isinstance(timeout, bool) or not isinstance(timeout, (int, float)) or not timeout >= 0:
        raise InvalidError(f"{where}: {name} must be None or a number of seconds from 0 up, got {_show(timeout)}")
    return float(timeout)


def _segment(s: str) -> str:
    return quote(s, safe="")


def _seconds(s: float) -> str:
    """A wait as a query takes it: plain decimal seconds (no exponent)."""
    text = f"{max(0.0, s):.3f}".rstrip("0").rstrip(".")
    return text or "0"


# --- Keys and values as they travel ----------------------------------------------------------------


def _wire(value: Any, where: str) -> Tuple[Dict[str, Any], int]:
    """``value`` as it travels, and the bytes it adds to a request body. RequestSizeError (an
    InvalidError) naming the limit when it is over 1 MiB as it travels: its JSON text (UTF-8) or its base64."""
    wire = _values.encode_value(value, where)
    if "pickled" in wire:
        size = body = len(wire["pickled"])
        form = "pickled (base64)"
    else:
        text = json.dumps(value, separators=(",", ":"))  # as the client sends it: non-ASCII escaped
        body = len(text)
        size = len(json.dumps(value, separators=(",", ":"), ensure_ascii=False).encode("utf-8")) if "\\u" in text else body
        form = "as JSON"
    if size > VALUE_BYTES:
        raise RequestSizeError(f"{where} is {size} bytes {form}; a Dict's or Queue's key or value may be at most {VALUE_BYTES} bytes (1 MiB)")
    return wire, body + 16


def _unwire(wire: Any, where: str) -> Any:
    return _values.decode_value(wire, where)


T = TypeVar("T")


def _chunks(items: List[Tuple[T, int]], most: int) -> Iterator[List[T]]:
    """``items`` (each with its bytes) in runs of at most ``most`` and about ``_REQUEST_BUDGET`` bytes (never empty)."""
    run: List[T] = []
    size = 0
    for item, n in items:
        if run and (len(run) >= most or size + n > _REQUEST_BUDGET):
            yield run
            run, size = [], 0
        run.append(item)
        size += n
    if run:
        yield run


def _parse_time(s: Any) -> Optional[datetime]:
    if not isinstance(s, str) or not s:
        return None
    try:
        return datetime.fromisoformat(s.replace("Z", "+00:00"))
    except ValueError:
        return None


# --- Handles -------------------------------------------------------------------------------------


H = TypeVar("H", bound="_Handle")


class _Handle:
    """A Dict or Queue the daemon keeps, by name: lazy (the daemon is asked on first use)."""

    _what = "Dict"
    _route = "dicts"

    def __init__(self, name: str, *, create_if_missing: bool = False, client: Optional[Client] = None, _info: Optional[Dict[str, Any]] = None) -> None:
        self._name = _checked_name(self._what, self._what, name)
        self._create_if_missing = bool(create_if_missing)
        self._client = client
        #: The daemon's view of it (DictView, QueueView), once hydrated.
        self._info = _info
        self._lock = threading.Lock()

    @classmethod
    def _from_name(cls: Type[H], name: str, create_if_missing: bool, client: Optional[Client]) -> H:
        _checked_name(f"{cls._what}.from_name", cls._what, name)
        if client is not None and not isinstance(client, Client):
            raise InvalidError(f"{cls._what}.from_name: client must be a gantry Client, got {type(client).__name__}")
        return cls(name, create_if_missing=create_if_missing, client=client)

    @property
    def name(self) -> str:
        return self._name

    def __repr__(self) -> str:
        return f"{self._what}.from_name({self._name!r})"

    def __bool__(self) -> bool:
        return True  # a handle is a handle, whatever it holds (len() asks the daemon)

    def _transport(self) -> Client:
        if self._client is None:
            self._client = Client.from_env()
        return self._client

    def _path(self, tail: str = "") -> str:
        return f"/v1/{self._route}/{_segment(self._name)}{tail}"

    @_WithAio
    def hydrate(self: H, client: Optional[Client] = None) -> H:
        """Checks with the daemon that it exists (making it with ``create_if_missing``), once."""
        if client is not None and self._client is None:
            self._client = client
        with self._lock:
            if self._info is None:
                self._info = self._fetch()
        return self

    def _fetch(self) -> Dict[str, Any]:
        missing = (
            f"{self._what} {self._name} does not exist: use {self._what}.from_name({self._name!r}, create_if_missing=True), "
            f"or make it with {self._what}.objects.create({self._name!r})"
        )
        return fetch_or_create(self._transport(), self._path(), self._route, self._name, self._create_if_missing, missing)

    def _view(self) -> Dict[str, Any]:
        """The daemon's view of it now (and hydrated)."""
        self.hydrate()
        view = self._transport().json("GET", self._path())
        self._info = view
        return view


def _delete(cls: Type[_Handle], name: str, *, allow_missing: bool, client: Optional[Client]) -> None:
    _checked_name(f"{cls._what}.delete", cls._what, name)
    try:
        (client or Client.from_env()).json("DELETE", f"/v1/{cls._route}/{_segment(name)}")
    except NotFoundError:
        if not allow_missing:
            raise


class _Manager(Generic[H]):
    """``Dict.objects`` / ``Queue.objects``: named ones as a whole (Modal's ``objects`` namespace)."""

    def __init__(self, cls: Type[H]) -> None:
        self._cls = cls

    @_WithAio
    def list(self, *, max_objects: Optional[int] = None, client: Optional[Client] = None, environment_name: Optional[str] = None) -> List[H]:
        """The ones the daemon keeps (ephemeral ones included), as handles."""
        client = client or Client.from_env()
        answer = client.json("GET", f"/v1/{self._cls._route}")
        views = answer.get(self._cls._route, []) if isinstance(answer, dict) else []
        if max_objects is not None:
            views = views[: max(0, int(max_objects))]
        return [self._cls(v["name"], client=client, _info=v) for v in views]

    @_WithAio
    def create(self, name: str, *, allow_existing: bool = False, client: Optional[Client] = None, environment_name: Optional[str] = None) -> None:
        """Makes the one called ``name``; one that exists already is an error (code ``conflict``) unless ``allow_existing=True``."""
        _checked_name(f"{self._cls._what}.objects.create", self._cls._what, name)
        (client or Client.from_env()).json("POST", f"/v1/{self._cls._route}", {"name": name, "exist_ok": bool(allow_existing)})

    @_WithAio
    def delete(self, name: str, *, allow_missing: bool = False, client: Optional[Client] = None, environment_name: Optional[str] = None) -> None:
        """Deletes the one called ``name`` and all it holds; NotFoundError when there is none, unless ``allow_missing=True``."""
        _delete(self._cls, name, allow_missing=allow_missing, client=client)


def _info_fields(view: Dict[str, Any]) -> Dict[str, Any]:
    return {
        "name": view.get("name"),
        "created_at": _parse_time(view.get("created_at")),
        "created_by": None,
        "ephemeral": bool(view.get("ephemeral")),
        "expires_at": _parse_time(view.get("expires_at")),
    }


def _pairs(other: Any, kwargs: Dict[str, Any]) -> Iterable[Tuple[Any, Any]]:
    """The (key, value) pairs of ``dict.update``'s arguments: a mapping (anything with ``keys()``), or
    an iterable of pairs, then the keyword arguments."""
    if other is not None:
        if hasattr(other, "keys"):
            for k in other.keys():
                yield k, other[k]
        else:
            for i, pair in enumerate(other):
                try:
                    k, v = pair
                except (TypeError, ValueError):
                    n = len(pair) if hasattr(pair, "__len__") else None
                    raise ValueError(
                        f"Dict.update sequence element #{i} " + (f"has length {n}; 2 is required" if n is not None else "is not a (key, value) pair")
                    ) from None
                yield k, v
    yield from kwargs.items()
