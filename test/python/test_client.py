"""The transport: the unix socket, GANTRY_URL with GANTRY_TOKEN, no daemon, error answers by code."""
from __future__ import annotations

import os
import socket

import pytest

import gantry
from gantry import exception
from gantry._client import Client, error_from_api


def test_gantry_url_and_token_reach_the_daemon_over_tcp(daemon, empty_home: str, monkeypatch: pytest.MonkeyPatch) -> None:  # type: ignore[no-untyped-def]
    monkeypatch.setenv("GANTRY_HOME", empty_home)  # no socket there: only the URL can answer
    monkeypatch.setenv("GANTRY_URL", daemon.url)
    monkeypatch.setenv("GANTRY_TOKEN", daemon.token)
    echo = gantry.Function.lookup("behaviours", "echo")
    call = echo.spawn("over tcp")
    assert gantry.FunctionCall.from_id(call.object_id).get(timeout=60) == "over tcp"


def test_a_wrong_or_missing_token_raises_auth_error(daemon, monkeypatch: pytest.MonkeyPatch) -> None:  # type: ignore[no-untyped-def]
    monkeypatch.setenv("GANTRY_URL", daemon.url)
    monkeypatch.setenv("GANTRY_TOKEN", "wrong")
    with pytest.raises(exception.AuthError, match="wrong token"):
        gantry.Function.from_name("behaviours", "echo").remote(1)
    monkeypatch.delenv("GANTRY_TOKEN")
    with pytest.raises(exception.AuthError):
        gantry.FunctionCall.from_id("fc-00000000000000000000000000").get(timeout=0)


def test_an_explicit_client_beats_the_environment(daemon, empty_home: str, monkeypatch: pytest.MonkeyPatch) -> None:  # type: ignore[no-untyped-def]
    monkeypatch.setenv("GANTRY_HOME", empty_home)
    client = Client(os.path.join(daemon.home, "gantry.sock"))
    assert gantry.Function.from_name("behaviours", "echo", client=client).remote("explicit") == "explicit"
    client = Client(url=daemon.url, token=daemon.token)
    call = gantry.Function.from_name("behaviours", "echo", client=client).spawn("explicit tcp")
    assert gantry.FunctionCall.from_id(call.object_id, client=client).get(timeout=60) == "explicit tcp"


@pytest.mark.no_daemon
def test_no_daemon_on_the_socket_says_how_to_start_one(empty_home: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GANTRY_HOME", empty_home)
    sock = os.path.join(empty_home, "gantry.sock")
    with pytest.raises(exception.DaemonNotRunningError) as info:
        gantry.Function.lookup("behaviours", "echo")
    assert sock in str(info.value) and "ENOENT" in str(info.value)
    assert "gantry daemon start" in str(info.value)


@pytest.mark.no_daemon
def test_a_stale_socket_file_counts_as_no_daemon(empty_home: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GANTRY_HOME", empty_home)
    stale = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    stale.bind(os.path.join(empty_home, "gantry.sock"))
    stale.close()  # the file stays; nobody listens
    with pytest.raises(exception.DaemonNotRunningError, match=r"ECONNREFUSED.*gantry daemon start"):
        gantry.FunctionCall.from_id("fc-00000000000000000000000000").get()


@pytest.mark.no_daemon
def test_no_daemon_at_the_url_names_it(monkeypatch: pytest.MonkeyPatch) -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # free once closed
    monkeypatch.setenv("GANTRY_URL", f"http://127.0.0.1:{port}")
    with pytest.raises(exception.DaemonNotRunningError, match=rf"http://127\.0\.0\.1:{port} .*gantry daemon start"):
        gantry.Function.from_name("behaviours", "echo").remote(1)


@pytest.mark.no_daemon
def test_a_malformed_url_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GANTRY_URL", "127.0.0.1:8700")
    with pytest.raises(exception.InvalidError, match="GANTRY_URL must look like http://host:port"):
        gantry.Function.from_name("behaviours", "echo").remote(1)


@pytest.mark.no_daemon
@pytest.mark.parametrize(
    "status, code, cls",
    [
        (404, "not_found", exception.NotFoundError),
        (404, "output_expired", exception.OutputExpiredError),
        (400, "invalid_argument", exception.InvalidError),
        (413, "payload_too_large", exception.RequestSizeError),
        (429, "queue_full", exception.ResourceExhaustedError),
        (401, "unauthorized", exception.AuthError),
        (503, "shutting_down", exception.Error),
    ],
)
def test_error_answers_map_by_code(status: int, code: str, cls: type) -> None:
    err = error_from_api(status, {"error": {"code": code, "message": "the daemon's words"}}, "/x.sock")
    assert type(err) is cls and str(err) == "the daemon's words" and err.code == code


@pytest.mark.no_daemon
def test_an_error_answer_without_a_body_names_the_status() -> None:
    err = error_from_api(502, "Bad Gateway", "http://h:1")
    assert type(err) is exception.Error and str(err) == "the gantry daemon at http://h:1 answered HTTP 502"


@pytest.mark.no_daemon
def test_no_error_class_is_a_builtin_timeout_error() -> None:
    classes = [c for c in vars(exception).values() if isinstance(c, type) and issubclass(c, exception.Error)]
    assert exception.FunctionTimeoutError in classes and exception.CancelledError in classes
    assert not any(issubclass(c, TimeoutError) for c in classes)
