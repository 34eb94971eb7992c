"""Dicts, as Modal's ``modal.Dict`` (issue 20): named key-value stores the daemon keeps in SQLite,
shared by the host's programs and the functions' containers.

    d = gantry.Dict.from_name("results", create_if_missing=True)
    d["best"] = {"score": 0.93}              # from any program, or inside a function
    d.put("run-1", 1, skip_if_exists=True)   # False when "run-1" was there: nothing changed
    for key, value in d.items():
        ...

    with gantry.Dict.ephemeral() as tmp:      # lives as long as the block
        tmp.update({"a": 1}, b=2)

Keys and values travel as JSON when JSON holds them exactly (str, bool, None, int within ±(2**53 − 1),
non-integral floats, lists and str-keyed dicts of those), so TypeScript reads and writes the same
entries; anything else is pickled (protocol 4) and read by Python only. A key's identity is its
JSON (object keys sorted) or its pickle: ``d[1]`` and ``d[1.0]`` are two keys here (1.0 is pickled),
and so are ``d[1]`` and ``d[True]``. Keys and values are at most 1 MiB each as they travel.
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Dict as _TDict, Iterator, Optional, Tuple

from ._client import Client
from ._ephemeral import Ephemeral
from ._dq import (  # noqa: F401 - the limits are this module's public names too
    DICT_ENTRIES,
    EPHEMERAL_TTL_S,
    MAX_GET,
    PER_REQUEST,
    VALUE_BYTES,
    _chunks,
    _delete,
    _Handle,
    _info_fields,
    _Manager,
    _pairs,
    _segment,
    _unwire,
    _wire,
)
from .functions import _WithAio, _WithAioIter
from .volume import _with_aio_function

__all__ = ["Dict", "DictInfo"]


@dataclass(frozen=True)
class DictInfo:
    """What the daemon says of a Dict (Modal's ``DictInfo``, and more): ``created_by`` is None here;
    ``expires_at`` is set for ephemeral ones; ``len`` is the entries it holds."""

    name: Optional[str]
    created_at: Optional[datetime]
    created_by: Optional[str] = None
    ephemeral: bool = False
    expires_at: Optional[datetime] = None
    len: int = 0


class Dict(_Handle):
    """A Dict the daemon keeps, by name. Get one with ``Dict.from_name`` (or ``Dict.ephemeral()``)."""

    _what = "Dict"
    _route = "dicts"

    # Making handles.

    @staticmethod
    def from_name(name: str, *, create_if_missing: bool = False, environment_name: Optional[str] = None, client: Optional[Client] = None) -> "Dict":
        """The Dict called ``name``: a lazy handle (the daemon is asked on first use). An unknown name
        raises NotFoundError then, unless ``create_if_missing=True`` (it is made then).
        ``environment_name`` is accepted as Modal's and has no effect."""
        return Dict._from_name(name, create_if_missing, client)

    def ephemeral(data: Optional[Any] = None, client: Optional[Client] = None, environment_name: Optional[str] = None) -> "Ephemeral[Dict]":  # type: ignore[misc]
        """A Dict that lives for a ``with`` (or ``async with``) block: made on entry (holding ``data``,
        Modal's deprecated argument, when given), kept alive by heartbeats, deleted at the block's end."""
        if isinstance(data, Client) and client is None:
            data, client = None, data
        return Ephemeral(Dict, client, data)

    ephemeral.aio = ephemeral  # type: ignore[attr-defined]  # the same object serves ``async with``
    ephemeral = staticmethod(ephemeral)  # type: ignore[assignment]

    def __reduce__(self) -> Tuple[Any, ...]:
        """A handle travels (to a function, as an argument) as its name."""
        return (_restore, (self._name, self._create_if_missing))

    # Reading.

    @_WithAio
    def get(self, key: Any, default: Any = None) -> Any:
        """The value of ``key``; ``default`` when there is none."""
        found, value = self._get(key)
        return value if found else default

    def _get(self, key: Any) -> Tuple[bool, Any]:
        wire, _ = _wire(key, "Dict key")
        self.hydrate()
        answer = self._transport().json("POST", self._path("/get"), {"key": wire})
        if not answer.get("found"):
            return False, None
        return True, _unwire(answer.get("value"), f"the value of a key of Dict {self._name}")

    def __getitem__(self, key: Any) -> Any:
        found, value = self._get(key)
        if not found:
            raise KeyError(key)
        return value

    @_WithAio
    def contains(self, key: Any) -> bool:
        """Whether ``key`` is there."""
        wire, _ = _wire(key, "Dict key")
        self.hydrate()
        return bool(self._transport().json("POST", self._path("/contains"), {"key": wire}).get("found"))

    def __contains__(self, key: Any) -> bool:
        return self.contains(key)

    @_WithAio
    def len(self) -> int:
        """Entries it holds (also ``len(d)``)."""
        self.hydrate()
        return int(self._transport().json("GET", self._path("/len")).get("len", 0))

    def __len__(self) -> int:
        return self.len()

    def _entries(self) -> Iterator[_TDict[str, Any]]:
        """Its entries as they travel, oldest write first, a page of MAX_GET at a time."""
        self.hydrate()
        client = self._transport()
        after: Optional[str] = None
        while True:
            query = f"limit={MAX_GET}" + (f"&after={_segment(after)}" if after is not None else "")
            answer = client.json("GET", self._path(f"/items?{query}"))
            yield from answer.get("items") or []
            nxt = answer.get("next")
            if nxt is None or str(nxt) == after:
                return
            after = str(nxt)

    @_WithAioIter
    def keys(self) -> Iterator[Any]:
        """Its keys, oldest write first, fetched a page at a time as they are iterated (an iterator, as Modal's)."""
        return (_unwire(e.get("key"), f"a key of Dict {self._name}") for e in self._entries())

    @_WithAioIter
    def values(self) -> Iterator[Any]:
        """Its values, oldest write first, fetched a page at a time as they are iterated."""
        return (_unwire(e.get("value"), f"a value of Dict {self._name}") for e in self._entries())

    @_WithAioIter
    def items(self) -> Iterator[Tuple[Any, Any]]:
        """Its (key, value) pairs, oldest write first, fetched a page at a time as they are iterated."""
        return ((_unwire(e.get("key"), f"a key of Dict {self._name}"), _unwire(e.get("value"), f"a value of Dict {self._name}")) for e in self._entries())

    def __iter__(self) -> Iterator[Any]:
        return self.keys()

    @_WithAio
    def info(self) -> DictInfo:
        """What the daemon says of it now."""
        view = self._view()
        return DictInfo(len=int(view.get("len") or 0), **_info_fields(view))

    # Writing.

    @_WithAio
    def put(self, key: Any, value: Any, *, skip_if_exists: bool = False) -> bool:
        """Sets ``key`` to ``value``. With ``skip_if_exists=True`` an existing key is left as it is and
        False is returned; otherwise True."""
        k, _ = _wire(key, "Dict key")
        v, _ = _wire(value, "Dict value")
        self.hydrate()
        answer = self._transport().json("POST", self._path("/put"), {"key": k, "value": v, "skip_if_exists": bool(skip_if_exists)})
        return bool(answer.get("created", True))

    def __setitem__(self, key: Any, value: Any) -> None:
        self.put(key, value)

    @_WithAio
    def update(self, other: Any = None, /, **kwargs: Any) -> None:
        """Sets many keys at once, as ``dict.update``: a mapping, or an iterable of (key, value) pairs,
        and keyword arguments (later ones win). Sent in requests of at most 10,000 entries."""
        entries: _TDict[str, Tuple[_TDict[str, Any], int]] = {}
        for key, value in _pairs(other, kwargs):
            k, kn = _wire(key, "Dict key")
            v, vn = _wire(value, "Dict value")
            ident = _identity(k)
            entries.pop(ident, None)  # a key given again is written where its last value stands
            entries[ident] = ({"key": k, "value": v}, kn + vn)
        if not entries:
            return None
        self.hydrate()
        client = self._transport()
        for chunk in _chunks(list(entries.values()), PER_REQUEST):
            client.json("POST", self._path("/update"), {"entries": chunk})
        return None

    @_WithAio
    def pop(self, key: Any) -> Any:
        """Removes ``key`` and returns its value; KeyError when there is none."""
        wire, _ = _wire(key, "Dict key")
        self.hydrate()
        answer = self._transport().json("POST", self._path("/pop"), {"key": wire})
        if not answer.get("found"):
            raise KeyError(key)
        return _unwire(answer.get("value"), f"the value of a key of Dict {self._name}")

    def __delitem__(self, key: Any) -> None:
        self.pop(key)

    @_WithAio
    def clear(self) -> None:
        """Removes every entry."""
        self.hydrate()
        self._transport().json("POST", self._path("/clear"))
        return None

    # Named Dicts, by name.

    @staticmethod
    @_with_aio_function
    def delete(name: str, *, allow_missing: bool = False, client: Optional[Client] = None, environment_name: Optional[str] = None) -> None:
        """Deletes the Dict called ``name`` and all it holds (Modal's older spelling of ``Dict.objects.delete``)."""
        _delete(Dict, name, allow_missing=allow_missing, client=client)

    objects: "_Manager[Dict]"


Dict.objects = _Manager(Dict)


def _identity(wire: _TDict[str, Any]) -> str:
    """A key's identity as the daemon keeps it: its JSON with object keys sorted, or its pickle."""
    if "pickled" in wire:
        return "pickle:" + wire["pickled"]
    return json.dumps(wire["value"], sort_keys=True, separators=(",", ":"))


def _restore(name: str, create_if_missing: bool = False) -> Dict:
    return Dict(name, create_if_missing=create_if_missing)
