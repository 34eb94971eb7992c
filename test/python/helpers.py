"""Helpers shared by the Python client's tests: the real CLI, another Python process, polling."""
from __future__ import annotations

import contextlib
import os
import shutil
import socketserver
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Callable, Dict, Iterator, Optional, TypeVar

import pytest

ROOT = Path(__file__).resolve().parents[2]
GANTRY_BIN = ROOT / "bin" / "gantry.js"
BEHAVIOURS = ROOT / "test" / "fixtures" / "apps" / "behaviours.ts"
#: The environment the client reads; tests set it themselves.
CLIENT_ENV = ("GANTRY_HOME", "GANTRY_URL", "GANTRY_TOKEN", "GANTRY_CA_CERT")

T = TypeVar("T")


def gantry_cli(
    home: str, *args: str, timeout: float = 180, env_extra: Optional[Dict[str, str]] = None
) -> "subprocess.CompletedProcess[str]":
    """Runs the real CLI against ``home``, as a user would (``env_extra``: more variables, e.g. GANTRY_TOKEN)."""
    env: Dict[str, str] = {k: v for k, v in os.environ.items() if k not in CLIENT_ENV}
    env.update(env_extra or {})
    env["GANTRY_HOME"] = home
    return subprocess.run(
        ["node", str(GANTRY_BIN), *args], env=env, capture_output=True, text=True, timeout=timeout, check=False
    )


def python_in_subprocess(code: str, env: Dict[str, str]) -> "subprocess.CompletedProcess[str]":
    """Runs ``code`` in another Python process, with the gantry package importable and ``env`` set."""
    full: Dict[str, str] = {k: v for k, v in os.environ.items() if k not in CLIENT_ENV}
    full.update(env)
    full["PYTHONPATH"] = str(ROOT / "python")
    return subprocess.run([sys.executable, "-c", code], env=full, capture_output=True, text=True, timeout=120, check=False)


def wait_until(probe: Callable[[], Optional[T]], what: str, timeout: float = 30.0, interval: float = 0.05) -> T:
    """Calls ``probe`` until it returns something other than None; fails after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        got = probe()
        if got is not None:
            return got
        if time.monotonic() >= deadline:
            pytest.fail(f"{what}: not reached within {timeout:g} s")
        time.sleep(interval)


class _UnixServer(socketserver.ThreadingMixIn, socketserver.UnixStreamServer):
    daemon_threads = True


@contextlib.contextmanager
def fake_daemon_on_socket(make: Callable[[str], T], handler: type, monkeypatch: pytest.MonkeyPatch, prefix: str) -> Iterator[T]:
    """Serves a stand-in daemon (``make(home)``, answering through ``handler``, which finds it as
    ``self.server.fake``) on ``$GANTRY_HOME/gantry.sock`` of a fresh short home (a unix socket path
    fits in 108 bytes), with GANTRY_HOME pointing there; everything goes at the end."""
    home = tempfile.mkdtemp(prefix=prefix, dir="/tmp")
    daemon = make(home)
    server = _UnixServer(os.path.join(home, "gantry.sock"), handler)
    server.fake = daemon  # type: ignore[attr-defined]
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    monkeypatch.setenv("GANTRY_HOME", home)
    try:
        yield daemon
    finally:
        released = getattr(daemon, "released", None)
        if released is not None:
            released.set()
        server.shutdown()
        server.server_close()
        shutil.rmtree(home, ignore_errors=True)
