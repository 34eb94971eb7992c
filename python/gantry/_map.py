"""Many calls of one function (``Function.map``, ``starmap``, ``spawn_map``): inputs are submitted
in chunks (``POST …/calls/batch``, one transaction each) and results read as NDJSON streams
(``POST /v1/calls/results``), one chunk at a time while later chunks run. At most ``window`` calls
are in flight, so memory stays bounded for any number of inputs.
"""
from __future__ import annotations

import itertools
from collections import deque
from typing import TYPE_CHECKING, Any, Deque, Dict, Iterable, Iterator, List, Tuple

if TYPE_CHECKING:
    from ._client import Client

#: Calls per batch request.
MAP_CHUNK = 1000
#: Calls in flight at most (submitted, their results not yet yielded).
MAP_WINDOW = 10_000
_RESULTS_WAIT_S = 50.0

Inputs = Iterator[Tuple[Tuple[Any, ...], Dict[str, Any]]]


def submit(client: "Client", path: str, bodies: List[Dict[str, Any]]) -> List[str]:
    """Queues one chunk of calls; their IDs, in order (durable once this returns)."""
    from .functions import _parent_headers  # the call graph: a container's batches are its call's children

    return client.json("POST", f"{path}/calls/batch", {"calls": bodies}, headers=_parent_headers())["call_ids"]


def chunks(bodies: Iterator[Dict[str, Any]]) -> Iterator[List[Dict[str, Any]]]:
    while True:
        chunk = list(itertools.islice(bodies, MAP_CHUNK))
        if not chunk:
            return
        yield chunk


def results(client: "Client", path: str, bodies: Iterator[Dict[str, Any]], ordered: bool = True) -> Iterator[Dict[str, Any]]:
    """Each call's outcome line (``status``, ``result`` or ``error``, …), in input order unless ``ordered`` is false."""
    pending: Deque[List[str]] = deque()
    in_flight = 0
    source = chunks(bodies)
    exhausted = False
    while True:
        while not exhausted and in_flight < MAP_WINDOW:
            chunk = next(source, None)
            if chunk is None:
                exhausted = True
                break
            ids = submit(client, path, chunk)
            pending.append(ids)
            in_flight += len(ids)
        if not pending:
            return
        ids = pending.popleft()
        for line in _chunk_results(client, ids, ordered):
            in_flight -= 1
            yield line


def _chunk_results(client: "Client", ids: List[str], ordered: bool) -> Iterator[Dict[str, Any]]:
    """The chunk's outcome lines; calls still running when a stream ends are asked for again."""
    got: Dict[int, Dict[str, Any]] = {}  # waiting for their turn (ordered)
    seen = set()
    next_i = 0
    open_ = list(range(len(ids)))
    while open_:
        asked = open_
        body = {"call_ids": [ids[i] for i in asked], "wait": _RESULTS_WAIT_S}
        for line in client.stream_lines("POST", "/v1/calls/results", body, wait_s=_RESULTS_WAIT_S):
            at = asked[line["index"]]
            seen.add(at)
            if not ordered:
                yield line
                continue
            got[at] = line
            while next_i in got:
                yield got.pop(next_i)
                next_i += 1
        open_ = [i for i in asked if i not in seen]


def as_bodies(fn_name: str, inputs: Iterable[Tuple[Tuple[Any, ...], Dict[str, Any]]], body: Any) -> Iterator[Dict[str, Any]]:
    """Each call's request body, its arguments checked to be JSON (a TypeError names the call and the argument)."""
    for n, (args, kwargs) in enumerate(inputs):
        yield body(f"{fn_name} (input {n})", args, kwargs)
