"""Queues, as Modal's ``modal.Queue`` (issue 20): FIFO queues the daemon keeps in SQLite, shared by
the host's programs and the functions' containers, each split into independent partitions.

    q = gantry.Queue.from_name("jobs", create_if_missing=True)
    q.put({"id": 1})                       # the default partition
    q.put_many([2, 3], partition="fast")   # another, independent one
    job = q.get()                          # waits for one (queue.Empty after a timeout)
    batch = q.get_many(100, timeout=5, partition="fast")
    for item in q.iterate():               # reads without removing
        ...

As Modal: a partition holds 5,000 items of at most 1 MiB each and is cleared 24 h after its last put
(or its ``partition_ttl``); a Queue has up to 100,000 partitions; partition keys are 1 to 64 bytes.
A full partition raises the standard library's ``queue.Full``, a get that finds nothing in time
``queue.Empty``. Waits happen in the daemon (each request holds at most MAX_WAIT_S; longer waits are
asked again), never by polling here. Values travel as ``gantry.Dict``'s do (JSON when JSON holds them
exactly, else pickled).
"""
from __future__ import annotations

import queue as _stdlib_queue
import time
import warnings
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Iterator, List, Optional, Sequence, Tuple

from ._client import Client, error_from_api
from ._ephemeral import Ephemeral
from ._dq import (  # noqa: F401 - the limits are this module's public names too
    EPHEMERAL_TTL_S,
    ITEMS_PER_PARTITION,
    MAX_GET,
    MAX_WAIT_S,
    PARTITION_KEY_BYTES,
    PARTITION_TTL_S,
    PARTITIONS_PER_QUEUE,
    PER_REQUEST,
    VALUE_BYTES,
    _checked_partition,
    _checked_timeout,
    _chunks,
    _delete,
    _Handle,
    _info_fields,
    _Manager,
    _seconds,
    _segment,
    _show,
    _unwire,
    _wire,
)
from .exception import InvalidError
from .functions import _WithAio, _WithAioIter
from .volume import _with_aio_function

__all__ = ["Queue", "QueueInfo"]

#: Values one put request carries: no more than a partition holds, so that every request can fit
#: (a blocking put_many longer than that goes in as consumers make room).
_PUT_CHUNK = min(PER_REQUEST, ITEMS_PER_PARTITION)


@dataclass(frozen=True)
class QueueInfo:
    """What the daemon says of a Queue (Modal's ``QueueInfo``, and more): ``created_by`` is None here;
    ``expires_at`` is set for ephemeral ones; ``len`` counts the items of all its partitions, and
    ``partitions`` the partitions that hold some."""

    name: Optional[str]
    created_at: Optional[datetime]
    created_by: Optional[str] = None
    ephemeral: bool = False
    expires_at: Optional[datetime] = None
    len: int = 0
    partitions: int = 0


class Queue(_Handle):
    """A Queue the daemon keeps, by name. Get one with ``Queue.from_name`` (or ``Queue.ephemeral()``)."""

    _what = "Queue"
    _route = "queues"

    # Making handles.

    @staticmethod
    def from_name(name: str, *, create_if_missing: bool = False, environment_name: Optional[str] = None, client: Optional[Client] = None) -> "Queue":
        """The Queue called ``name``: a lazy handle (the daemon is asked on first use). An unknown name
        raises NotFoundError then, unless ``create_if_missing=True`` (it is made then).
        ``environment_name`` is accepted as Modal's and has no effect."""
        return Queue._from_name(name, create_if_missing, client)

    def ephemeral(client: Optional[Client] = None, environment_name: Optional[str] = None) -> "Ephemeral[Queue]":  # type: ignore[misc]
        """A Queue that lives for a ``with`` (or ``async with``) block: made on entry, kept alive by
        heartbeats while the block runs, deleted at its end."""
        return Ephemeral(Queue, client)

    ephemeral.aio = ephemeral  # type: ignore[attr-defined]  # the same object serves ``async with``
    ephemeral = staticmethod(ephemeral)  # type: ignore[assignment]

    def __reduce__(self) -> Tuple[Any, ...]:
        """A handle travels (to a function, as an argument) as its name."""
        return (_restore, (self._name, self._create_if_missing))

    # Putting.

    @_WithAio
    def put(self, v: Any, block: bool = True, timeout: Optional[float] = None, *, partition: Optional[str] = None, partition_ttl: float = PARTITION_TTL_S) -> None:
        """Adds ``v`` at the end of the partition. When it is full: with ``block`` (the default) waits
        for room, as long as it takes or up to ``timeout`` seconds, then raises ``queue.Full``;
        without, raises ``queue.Full`` at once. ``partition_ttl``: seconds (at most 24 h) after
        which the partition is cleared, counted from its last put."""
        self._put([v], "put", block, timeout, partition, partition_ttl)

    @_WithAio
    def put_many(self, vs: Sequence[Any], block: bool = True, timeout: Optional[float] = None, *, partition: Optional[str] = None, partition_ttl: float = PARTITION_TTL_S) -> None:
        """Adds the values of ``vs`` at the end of the partition, in order, as ``put`` does. Up to 5,000
        go in at once (all or none); more go in 5,000 at a time, so a blocking put_many may be part-done
        when it raises. ``timeout`` bounds the whole wait."""
        if isinstance(vs, (str, bytes)) or not hasattr(vs, "__iter__"):
            raise InvalidError(f"Queue.put_many takes a list of values, got {type(vs).__name__}")
        self._put(list(vs), "put_many", block, timeout, partition, partition_ttl)

    def _put(self, vs: List[Any], verb: str, block: bool, timeout: Optional[float], partition: Optional[str], partition_ttl: float) -> None:
        where = f"Queue.{verb}"
        partition = _checked_partition(where, partition)
        timeout = _checked_timeout(where, timeout)
        if isinstance(partition_ttl, bool) or not isinstance(partition_ttl, (int, float)) or not 0 < partition_ttl <= PARTITION_TTL_S:
            raise InvalidError(f"{where}: partition_ttl must be a number of seconds above 0 and at most {PARTITION_TTL_S} (24 h), got {_show(partition_ttl)}")
        if not block and timeout is not None:
            warnings.warn(f"{where}: timeout is ignored when block=False", stacklevel=4)
        wires = [_wire(v, f"{where}: value {i}" if len(vs) > 1 else f"{where}: the value") for i, v in enumerate(vs)]
        if not wires:
            return
        self.hydrate()
        deadline = None if not block or timeout is None else time.monotonic() + timeout
        for chunk in _chunks(wires, _PUT_CHUNK):
            body: dict = {"values": chunk, "partition_ttl": partition_ttl}
            if partition is not None:
                body["partition"] = partition
            self._put_chunk(body, block, deadline)

    def _put_chunk(self, body: dict, block: bool, deadline: Optional[float]) -> None:
        client = self._transport()
        while True:
            wait = _wait_left(block, deadline)
            if wait > 0:
                body["timeout"] = wait
            else:
                body.pop("timeout", None)
            status, answer = client.request("POST", self._path("/put"), body, wait_s=wait)
            if 200 <= status < 300:
                return
            err = error_from_api(status, answer, client.target)
            if getattr(err, "code", None) != "queue_full":
                raise err  # anything else, a limit waiting does not lift (partitions) too, is the caller's to see
            if block and (deadline is None or time.monotonic() < deadline):
                continue  # the daemon waited its most: ask again
            raise _stdlib_queue.Full(str(err))

    # Getting.

    @_WithAio
    def get(self, block: bool = True, timeout: Optional[float] = None, *, partition: Optional[str] = None) -> Optional[Any]:
        """Removes and returns the partition's oldest item. When there is none: with ``block`` (the
        default) waits for one, as long as it takes or up to ``timeout`` seconds, then raises
        ``queue.Empty``; without, returns None at once (as Modal's)."""
        values = self._get(1, "get", block, timeout, partition)
        return values[0] if values else None

    @_WithAio
    def get_many(self, n_values: int, block: bool = True, timeout: Optional[float] = None, *, partition: Optional[str] = None) -> List[Any]:
        """Removes and returns up to ``n_values`` items (at most 1,000 at once), oldest first, as many as
        are there once there is one. When there is none: with ``block`` waits as ``get`` does (then
        ``queue.Empty``); without, returns ``[]``."""
        if isinstance(n_values, bool) or not isinstance(n_values, int) or n_values < 1:
            raise InvalidError(f"Queue.get_many: n_values must be a whole number from 1 up, got {_show(n_values)}")
        return self._get(min(n_values, MAX_GET), "get_many", block, timeout, partition)

    def _get(self, n: int, verb: str, block: bool, timeout: Optional[float], partition: Optional[str]) -> List[Any]:
        where = f"Queue.{verb}"
        partition = _checked_partition(where, partition)
        timeout = _checked_timeout(where, timeout)
        if not block and timeout is not None:
            warnings.warn(f"{where}: timeout is ignored when block=False", stacklevel=4)
        self.hydrate()
        client = self._transport()
        body: dict = {"n": n}
        if partition is not None:
            body["partition"] = partition
        deadline = None if not block or timeout is None else time.monotonic() + timeout
        while True:
            wait = _wait_left(block, deadline)
            if wait > 0:
                body["timeout"] = wait
            else:
                body.pop("timeout", None)
            answer = client.json("POST", self._path("/get"), body, wait_s=wait)
            values = answer.get("values") or []
            if values:
                return [_unwire(w, f"an item of Queue {self._name}") for w in values]
            if not block:
                return []
            if deadline is not None and time.monotonic() >= deadline:
                raise _stdlib_queue.Empty()

    # Looking.

    @_WithAio
    def len(self, *, partition: Optional[str] = None, total: bool = False) -> int:
        """Items in the partition (the default one unless named); with ``total=True``, in all of them."""
        partition = _checked_partition("Queue.len", partition)
        if partition is not None and total:
            raise InvalidError("Queue.len: partition must be None when total=True (the total counts every partition)")
        self.hydrate()
        query = f"total={'1' if total else '0'}" + (f"&partition={_segment(partition)}" if partition is not None else "")
        return int(self._transport().json("GET", self._path(f"/len?{query}")).get("len", 0))

    @_WithAioIter
    def iterate(self, *, partition: Optional[str] = None, item_poll_timeout: float = 0.0) -> Iterator[Any]:
        """The partition's items, oldest first, without removing them; items put meanwhile come too.
        Ends once no new item has come for ``item_poll_timeout`` seconds (0: at once when caught up)."""
        partition = _checked_partition("Queue.iterate", partition)
        poll = _checked_timeout("Queue.iterate", item_poll_timeout, "item_poll_timeout")
        self.hydrate()
        return self._iterate(partition, poll or 0.0)

    def _iterate(self, partition: Optional[str], poll: float) -> Iterator[Any]:
        client = self._transport()
        after = 0
        deadline = time.monotonic() + poll
        while True:
            wait = min(MAX_WAIT_S, max(0.0, deadline - time.monotonic()))
            query = f"after={after}&limit={MAX_GET}&wait={_seconds(wait)}" + (f"&partition={_segment(partition)}" if partition is not None else "")
            answer = client.json("GET", self._path(f"/items?{query}"), wait_s=wait)
            items = answer.get("items") or []
            if items:
                for item in items:
                    after = int(item["seq"])
                    yield _unwire(item.get("value"), f"an item of Queue {self._name}")
                deadline = time.monotonic() + poll
            elif time.monotonic() >= deadline:
                return

    @_WithAio
    def info(self) -> QueueInfo:
        """What the daemon says of it now."""
        view = self._view()
        return QueueInfo(len=int(view.get("len") or 0), partitions=int(view.get("partitions") or 0), **_info_fields(view))

    # Clearing.

    @_WithAio
    def clear(self, *, partition: Optional[str] = None, all: bool = False) -> None:  # noqa: A002 - Modal's name
        """Removes the items of the partition (the default one unless named), or of all with ``all=True``."""
        partition = _checked_partition("Queue.clear", partition)
        if partition is not None and all:
            raise InvalidError("Queue.clear: partition must be None when all=True (all clears every partition)")
        self.hydrate()
        body: dict = {"all": bool(all)}
        if partition is not None:
            body["partition"] = partition
        self._transport().json("POST", self._path("/clear"), body)
        return None

    # Named Queues, by name.

    @staticmethod
    @_with_aio_function
    def delete(name: str, *, allow_missing: bool = False, client: Optional[Client] = None, environment_name: Optional[str] = None) -> None:
        """Deletes the Queue called ``name`` and all it holds (Modal's older spelling of ``Queue.objects.delete``)."""
        _delete(Queue, name, allow_missing=allow_missing, client=client)

    objects: "_Manager[Queue]"


Queue.objects = _Manager(Queue)


def _wait_left(block: bool, deadline: Optional[float]) -> float:
    """Seconds the next request may wait in the daemon: none without ``block``, MAX_WAIT_S without a deadline."""
    if not block:
        return 0.0
    if deadline is None:
        return MAX_WAIT_S
    return min(MAX_WAIT_S, max(0.0, deadline - time.monotonic()))


def _restore(name: str, create_if_missing: bool = False) -> Queue:
    return Queue(name, create_if_missing=create_if_missing)
