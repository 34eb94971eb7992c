"""Function handles against a real daemon: from_name (lazy), lookup (eager), spawn, remote, arguments."""
from __future__ import annotations

import math
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest

import gantry
from gantry.exception import DaemonNotRunningError, InvalidError, NotFoundError


def test_from_name_then_remote_returns_the_result() -> None:
    echo = gantry.Function.from_name("behaviours", "echo")
    assert echo.object_name == "behaviours.echo"
    assert echo.remote({"hello": "world", "n": [1, 2.5, None, True]}) == {"hello": "world", "n": [1, 2.5, None, True]}
    assert echo.remote("again") == "again"  # the same handle, reused


def test_spawn_returns_a_call_that_from_id_finds_again() -> None:
    call = gantry.Function.from_name("behaviours", "echo").spawn([1, "two"])
    assert call.object_id.startswith("fc-")
    assert gantry.FunctionCall.from_id(call.object_id).get() == [1, "two"]
    assert call.get(timeout=30) == [1, "two"]  # and the original handle still reads it


def test_tuples_travel_as_lists() -> None:
    assert gantry.Function.from_name("behaviours", "echo").remote((1, (2, 3))) == [1, [2, 3]]


def test_kwargs_reach_the_function() -> None:
    # The fixture is a JavaScript function, which refuses keyword arguments by name: proof they were sent.
    with pytest.raises(TypeError, match=r"keyword arguments \(size\)"):
        gantry.Function.from_name("behaviours", "echo").remote(1, size=3)


def test_retries_are_the_daemons_business() -> None:
    # flaky fails its first call in each container; its one retry succeeds.
    assert gantry.Function.from_name("behaviours", "flaky").remote()["calls"] >= 2


@pytest.mark.no_daemon
def test_from_name_is_lazy(empty_home: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GANTRY_HOME", empty_home)
    fn = gantry.Function.from_name("no-such-app", "echo")  # no daemon here, and no error: nothing was sent
    with pytest.raises(DaemonNotRunningError):
        fn.spawn(1)  # the first use is what talks to the daemon


def test_unknown_app_or_function_raise_not_found_on_use() -> None:
    with pytest.raises(NotFoundError, match="no deployed app named no-such-app"):
        gantry.Function.from_name("no-such-app", "echo").spawn(1)
    with pytest.raises(NotFoundError, match="app behaviours has no function named nope"):
        gantry.Function.from_name("behaviours", "nope").remote(1)


def test_lookup_checks_at_once() -> None:
    assert gantry.Function.lookup("behaviours", "echo").remote(7) == 7
    with pytest.raises(NotFoundError, match="no deployed app named no-such-app"):
        gantry.Function.lookup("no-such-app", "echo")
    with pytest.raises(NotFoundError, match="has no function named nope"):
        gantry.Function.lookup("behaviours", "nope")


@pytest.mark.parametrize(
    "args, kwargs, message",
    [
        (({1, 2},), {}, r"positional argument 0 is set, not a JSON value"),
        ((1, b"raw"), {}, r"positional argument 1 is bytes, not a JSON value"),
        ((), {"when": object()}, r"keyword argument 'when' is object, not a JSON value"),
        (({"a": [1, {"b": 1j}]},), {}, r"positional argument 0 is complex at \['a'\]\[1\]\['b'\]"),
        (({1: "x"},), {}, r"positional argument 0 has a key 1 of type int: JSON object keys must be str"),
        ((math.nan,), {}, r"positional argument 0 is nan, which JSON cannot carry"),
        ((), {"x": [math.inf]}, r"keyword argument 'x' is inf at \[0\], which JSON cannot carry"),
    ],
)
def test_non_json_arguments_to_a_typescript_function_raise_type_error_before_any_call(args: Any, kwargs: Any, message: str) -> None:
    """A TypeScript function takes JSON: the client learns its runtime (one GET), then refuses before submitting."""
    fn = gantry.Function.from_name("behaviours", "echo")
    with pytest.raises(TypeError, match=r"^behaviours\.echo: " + message):
        fn.spawn(*args, **kwargs)
    with pytest.raises(TypeError, match=message):
        fn.remote(*args, **kwargs)


def test_an_argument_that_contains_itself_is_refused() -> None:
    loop: list = [1]
    loop.append(loop)
    with pytest.raises(TypeError, match=r"positional argument 0 contains itself at \[1\]"):
        gantry.Function.from_name("behaviours", "echo").spawn(loop)


@pytest.mark.no_daemon
def test_local_runs_the_raw_function_and_needs_one() -> None:
    fn = gantry.Function("app", "double", raw_f=lambda x, k=1: x * 2 * k)
    assert fn.local(3) == 6
    assert fn(3, k=10) == 60
    with pytest.raises(InvalidError, match="app.echo was looked up by name and has no local code"):
        gantry.Function.from_name("app", "echo").local(1)


def test_one_handle_serves_many_threads() -> None:
    echo = gantry.Function.from_name("behaviours", "echo")
    with ThreadPoolExecutor(max_workers=8) as pool:
        results = list(pool.map(lambda i: echo.spawn({"i": i}).get(timeout=60), range(24)))
    assert results == [{"i": i} for i in range(24)]
