"""Idempotent spawns from Python: ``f.with_options(idempotency_key=...)`` against a real daemon."""
from __future__ import annotations

import asyncio
import uuid

import pytest

import gantry
from gantry._client import Client
from gantry.exception import InvalidError


def _key(name: str) -> str:
    return f"{name}-{uuid.uuid4().hex}"


def _calls_of(fn: str) -> int:
    """How many calls of behaviours.<fn> the daemon has on record."""
    return len(Client.from_env().json("GET", f"/v1/calls?app=behaviours&function={fn}&limit=1000")["calls"])


def test_a_repeated_key_returns_the_first_call_and_queues_nothing() -> None:
    echo = gantry.Function.from_name("behaviours", "echo")
    keyed = echo.with_options(idempotency_key=_key("order"))
    before = _calls_of("echo")
    first = keyed.spawn({"order": 1})
    again = keyed.spawn({"order": 2})  # a replay's arguments are not looked at
    assert again.object_id == first.object_id
    assert (first.replayed, again.replayed) == (False, True)  # the daemon's Idempotent-Replayed answer
    assert again.get(timeout=30) == {"order": 1}
    assert keyed.remote({"order": 3}) == {"order": 1}  # remote spawns with the key too
    assert _calls_of("echo") == before + 1


def test_with_options_leaves_the_original_handle_as_it_was() -> None:
    echo = gantry.Function.from_name("behaviours", "echo")
    keyed = echo.with_options(idempotency_key=_key("orig"))
    ids = {keyed.spawn(1).object_id, echo.spawn(1).object_id, echo.spawn(1).object_id}
    assert len(ids) == 3


def test_the_same_key_on_another_function_is_another_call() -> None:
    key = _key("shared")
    a = gantry.Function.from_name("behaviours", "echo").with_options(idempotency_key=key).spawn("x")
    b = gantry.Function.from_name("behaviours", "short_lived").with_options(idempotency_key=key).spawn("x")
    assert a.object_id != b.object_id
    assert a.get(timeout=30) == b.get(timeout=30) == "x"


def test_spawn_aio_takes_the_key_as_well() -> None:
    keyed = gantry.Function.from_name("behaviours", "echo").with_options(idempotency_key=_key("aio"))

    async def both() -> list:
        return list(await asyncio.gather(keyed.spawn.aio("a"), keyed.spawn.aio("b")))

    first, second = asyncio.run(both())
    assert first.object_id == second.object_id


@pytest.mark.parametrize(
    ("key", "message"),
    [
        ("", r"1 to 255 characters; got 0"),
        ("k" * 256, r"1 to 255 characters; got 256"),
        ("caf\u00e9", r"printable ASCII .*character 4"),
        ("tab\there", r"printable ASCII .*character 4"),
        (42, r"must be a str, got int"),
    ],
)
def test_bad_keys_are_refused_before_anything_is_sent(key: object, message: str) -> None:
    with pytest.raises(InvalidError, match=message):
        gantry.Function.from_name("behaviours", "echo").with_options(idempotency_key=key)  # type: ignore[arg-type]


def test_map_and_spawn_map_take_no_key() -> None:
    keyed = gantry.Function.from_name("behaviours", "echo").with_options(idempotency_key=_key("map"))
    for verb in (lambda: keyed.map([1, 2]), lambda: keyed.starmap([(1,)]), lambda: keyed.spawn_map([1, 2])):
        with pytest.raises(InvalidError, match="an idempotency key names one call: use spawn or remote"):
            verb()
