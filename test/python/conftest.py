"""A real gantry daemon for the Python client's tests: one per session, in a temp GANTRY_HOME.

It is started and stopped with the real CLI (``bin/gantry.js``), serves its unix socket and an
HTTP port that wants a token, and has the TypeScript fixture app ``behaviours`` deployed. Each
test sees ``GANTRY_HOME`` pointing at it (unless marked ``no_daemon``) and no
``GANTRY_URL``/``GANTRY_TOKEN``.
"""
from __future__ import annotations

import json
import secrets
import shutil
import sys
import tempfile
from dataclasses import dataclass
from typing import Iterator

import pytest

from helpers import BEHAVIOURS, CLIENT_ENV, ROOT, gantry_cli

sys.path.insert(0, str(ROOT / "python"))


@dataclass(frozen=True)
class Daemon:
    home: str
    url: str
    token: str


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "no_daemon: the test needs no running daemon")


@pytest.fixture(scope="session")
def daemon() -> Iterator[Daemon]:
    home = tempfile.mkdtemp(prefix="gp-", dir="/tmp")  # short: a unix socket path fits in 108 bytes
    token = secrets.token_hex(16)
    # The token in the environment: on the command line it would show in ps (and is refused).
    started = gantry_cli(
        home, "daemon", "start", "--http-port", "0", "--container-network", "none", "--json", env_extra={"GANTRY_TOKEN": token}
    )
    if started.returncode != 0:
        shutil.rmtree(home, ignore_errors=True)
        pytest.fail(f"gantry daemon start failed (exit {started.returncode}):\n{started.stderr}{started.stdout}")
    try:
        url = json.loads(started.stdout)["http"]
        deployed = gantry_cli(home, "deploy", str(BEHAVIOURS))
        assert deployed.returncode == 0, f"deploy of {BEHAVIOURS} failed:\n{deployed.stderr}{deployed.stdout}"
        yield Daemon(home=home, url=url, token=token)
    finally:
        stopped = gantry_cli(home, "daemon", "stop", "--grace", "2")
        shutil.rmtree(home, ignore_errors=True)
        assert stopped.returncode == 0, f"gantry daemon stop failed:\n{stopped.stderr}{stopped.stdout}"


@pytest.fixture(autouse=True)
def client_env(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> None:
    """Clears the client's environment, then points GANTRY_HOME at the session's daemon."""
    for name in CLIENT_ENV:
        monkeypatch.delenv(name, raising=False)
    if request.node.get_closest_marker("no_daemon") is None:
        d: Daemon = request.getfixturevalue("daemon")
        monkeypatch.setenv("GANTRY_HOME", d.home)


@pytest.fixture
def empty_home() -> Iterator[str]:
    """A GANTRY_HOME where no daemon runs."""
    home = tempfile.mkdtemp(prefix="gp-none-", dir="/tmp")
    yield home
    shutil.rmtree(home, ignore_errors=True)
