"""What every ephemeral object (a Volume, a Dict, a Queue) does: made on entering a ``with`` block,
kept alive by heartbeats from a thread while the block runs, deleted at its end. The class it makes
names its kind (``_what``), its route (``_route``), and is built as ``cls(name, client=, _info=)``."""
from __future__ import annotations

import asyncio
import functools
import threading
from typing import Any, Dict, Generic, Optional, Type, TypeVar

from ._client import Client
from .exception import Error, InvalidError, NotFoundError

#: Seconds an ephemeral object lives past its last heartbeat (protocol's EPHEMERAL_TTL_S); its owner heartbeats every quarter of that.
EPHEMERAL_TTL_S = 300
_HEARTBEAT_INTERVAL_S = EPHEMERAL_TTL_S / 4

H = TypeVar("H")


def fetch_or_create(client: Client, path: str, route: str, name: str, create_if_missing: bool, missing: str) -> Dict[str, Any]:
    """A named object's view from the daemon (``GET path``); an unknown one is made with
    ``create_if_missing`` (``POST /v1/ROUTE``), else NotFoundError saying ``missing``."""
    try:
        return client.json("GET", path)
    except NotFoundError:
        if not create_if_missing:
            raise NotFoundError(missing) from None
    return client.json("POST", f"/v1/{route}", {"name": name, "exist_ok": True})


#: Seconds the end of an ephemeral block waits for a heartbeat under way.
_HEARTBEAT_JOIN_S = 35.0


def _heartbeat(client: Client, path: str, stop: threading.Event, interval: float, first_now: bool = False) -> None:
    """Keeps an ephemeral object (or app) alive until ``stop`` is set, a first heartbeat at once with
    ``first_now``; an answer naming ``heartbeat_every_s`` sets the interval (an app's comes from the
    daemon's TTL). A failed heartbeat is tried again at the next one (the daemon keeps it for four
    intervals); one the daemon no longer knows ends it."""
    if not first_now and stop.wait(interval):
        return
    while True:
        try:
            answer = client.json("POST", f"{path}/heartbeat")
            every = answer.get("heartbeat_every_s") if isinstance(answer, dict) else None
            if isinstance(every, (int, float)) and not isinstance(every, bool) and every > 0:
                interval = float(every)
        except NotFoundError:
            return
        except Error:
            pass
        if stop.wait(interval):
            return


class Ephemeral(Generic[H]):
    """``with Dict.ephemeral() as d:`` (a Queue, a Volume; or ``async with``): it lives as long as
    the block, kept by heartbeats every EPHEMERAL_TTL_S / 4 seconds, and is deleted at its end."""

    def __init__(self, cls: Type[H], client: Optional[Client], data: Optional[Any] = None) -> None:
        if client is not None and not isinstance(client, Client):
            raise InvalidError(f"{cls._what}.ephemeral: client must be a gantry Client, got {type(client).__name__}")
        self._cls = cls
        self._client = client
        self._data = data
        self._obj: Optional[H] = None
        self._stop = threading.Event()
        self._thread: Optional[threading.Thread] = None

    def __enter__(self) -> H:
        if self._obj is not None:
            raise InvalidError(f"a {self._cls._what}.ephemeral() context is entered once; make another for another {self._cls._what}")
        client = self._client or Client.from_env()
        view = client.json("POST", f"/v1/{self._cls._route}/ephemeral")
        obj = self._cls(view["name"], client=client, _info=view)
        self._obj = obj
        self._thread = threading.Thread(
            target=_heartbeat,
            args=(client, obj._path(), self._stop, _HEARTBEAT_INTERVAL_S),
            name=f"gantry-{self._cls._what.lower()}-heartbeat-{obj.name}",
            daemon=True,
        )
        self._thread.start()
        if self._data:
            try:
                obj.update(self._data)  # type: ignore[attr-defined]
            except BaseException:
                self.__exit__(None, None, None)
                raise
        return obj

    def __exit__(self, *exc: Any) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=_HEARTBEAT_JOIN_S)
        obj = self._obj
        if obj is not None:
            try:
                obj._transport().json("DELETE", obj._path())
            except NotFoundError:
                pass  # gone already (it expired): nothing left to delete

    async def __aenter__(self) -> H:
        return await asyncio.get_running_loop().run_in_executor(None, self.__enter__)

    async def __aexit__(self, *exc: Any) -> None:
        await asyncio.get_running_loop().run_in_executor(None, functools.partial(self.__exit__, *exc))
