"""An app's lifecycle from the program that defines it (python/gantry/_deploy.py), against a fake daemon
on a unix socket: ``with app.run():`` deploys the defining file (a script run as ``python script.py``
too) and stops the app at the end of the block, even when it raises; ``app.deploy()`` leaves it
running; ``App.lookup``; ``enable_output()`` prints the deploy's progress; failures raise the
classes of ``gantry.exception``.
"""
from __future__ import annotations

import asyncio
import importlib.util
import json
import os
import shutil
import subprocess
import sys
import tempfile
import textwrap
import types
import http.server
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Dict, Iterator, List, Optional

import pytest

import gantry
from gantry import _deploy
from gantry.app import _apps
from gantry.exception import Error, InvalidError, NotFoundError
from helpers import ROOT, fake_daemon_on_socket

pytestmark = pytest.mark.no_daemon


# --- A fake daemon on a unix socket ----------------------------------------------------------------


@dataclass
class FakeDaemon:
    home: str
    #: App name → state, as GET /v1/apps/NAME answers (absent: 404).
    apps: Dict[str, str] = field(default_factory=dict)
    deploys: List[Dict[str, Any]] = field(default_factory=list)
    stops: List[str] = field(default_factory=list)
    heartbeats: List[str] = field(default_factory=list)
    #: When set, the deploy answers this error event instead of deploying.
    deploy_error: Optional[Dict[str, str]] = None

    @property
    def socket(self) -> str:
        return os.path.join(self.home, "gantry.sock")

    def deploy_events(self, body: Dict[str, Any]) -> List[Dict[str, Any]]:
        names = [f["name"] for f in body["functions"]]
        events: List[Dict[str, Any]] = [
            {"type": "image", "image": "gantry-img-1", "status": "building", "functions": names},
            {"type": "build", "image": "gantry-img-1", "step": 1, "total": 2, "line": "Step 1/2 : FROM python:3.11-slim"},
            {"type": "build", "image": "gantry-img-1", "step": 1, "total": 2, "line": "Collecting requests"},
            {"type": "build", "image": "gantry-img-1", "step": 2, "total": 2, "line": "Step 2/2 : ARG PIP_INDEX_URL"},
            {"type": "image", "image": "gantry-img-1", "status": "built", "functions": names},
        ]
        if self.deploy_error is not None:
            return events + [{"type": "error", "error": self.deploy_error}]
        self.apps[body["app"]] = "deployed"
        functions = [{"name": n, "web_url": f"http://127.0.0.1:9/web/{body['app']}/{n}/" if n.startswith("web") else None, "web_methods": {}} for n in names]
        return events + [{"type": "done", "app": body["app"], "functions": functions, "built": ["gantry-img-1"], "cached": [], "version": len(self.deploys)}]


class _Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *args: Any) -> None:
        pass

    def address_string(self) -> str:
        return "unix"

    def _json(self, status: int, body: Any) -> None:
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Connection", "close")
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def _any(self) -> None:
        fake: FakeDaemon = self.server.fake  # type: ignore[attr-defined]
        raw = self.rfile.read(int(self.headers.get("content-length") or 0))
        parts = self.path.strip("/").split("/")
        if self.command == "POST" and self.path == "/v1/apps/deploy":
            body = json.loads(raw)
            fake.deploys.append(body)
            self.send_response(200)
            self.send_header("Connection", "close")
            self.send_header("Content-Type", "application/x-ndjson")
            self.end_headers()
            for e in fake.deploy_events(body):
                self.wfile.write(json.dumps(e).encode() + b"\n")
                self.wfile.flush()
            self.close_connection = True
            return
        if self.command == "POST" and len(parts) == 4 and parts[:2] == ["v1", "apps"] and parts[3] == "stop":
            if parts[2] not in fake.apps:
                return self._json(404, {"error": {"code": "not_found", "message": f"no deployed app named {parts[2]}"}})
            fake.stops.append(parts[2])
            fake.apps[parts[2]] = "stopped"
            return self._json(200, {"app": parts[2], "stopped": True, "functions": []})
        if self.command == "POST" and len(parts) == 4 and parts[:2] == ["v1", "apps"] and parts[3] == "heartbeat":
            fake.heartbeats.append(parts[2])
            return self._json(200, {"app": parts[2], "expires_at": "", "heartbeat_every_s": 0.02})
        if self.command == "GET" and len(parts) == 3 and parts[:2] == ["v1", "apps"]:
            state = fake.apps.get(parts[2])
            if state is None:
                return self._json(404, {"error": {"code": "not_found", "message": f"no deployed app named {parts[2]}"}})
            return self._json(200, {"name": parts[2], "state": state, "functions": []})
        self._json(404, {"error": {"code": "not_found", "message": f"no route {self.command} {self.path}"}})

    do_GET = do_POST = _any


@pytest.fixture
def fake(monkeypatch: pytest.MonkeyPatch) -> Iterator[FakeDaemon]:
    monkeypatch.delenv("GANTRY_CONTAINER_ID", raising=False)
    with fake_daemon_on_socket(FakeDaemon, _Handler, monkeypatch, "gr-") as daemon:
        yield daemon


# --- App modules written for the test -----------------------------------------------------------------


@pytest.fixture
def app_dir() -> Iterator[Path]:
    d = Path(tempfile.mkdtemp(prefix="gantry-apprun-"))
    saved = dict(_apps)
    yield d
    for name in [m for m, mod in sys.modules.items() if str(getattr(mod, "__file__", "") or "").startswith(str(d))]:
        del sys.modules[name]
    _apps.clear()
    _apps.update(saved)
    shutil.rmtree(d, ignore_errors=True)


def load(app_dir: Path, name: str, source: str) -> types.ModuleType:
    """Writes ``name.py`` in ``app_dir`` and imports it, as a program imports its app module."""
    path = app_dir / f"{name}.py"
    path.write_text(textwrap.dedent(source))
    sys.path.insert(0, str(app_dir))
    try:
        spec = importlib.util.spec_from_file_location(name, path)
        assert spec and spec.loader
        module = importlib.util.module_from_spec(spec)
        sys.modules[name] = module
        spec.loader.exec_module(module)
    finally:
        sys.path.remove(str(app_dir))
    return module


APP = """
    import gantry
    import helper_mod

    image = gantry.Image.debian_slim().add_local_file(__file__.replace("app_mod.py", "data.txt"), "/data/data.txt")
    app = gantry.App("run-app", image=image)

    @app.function()
    def double(x):
        return helper_mod.TWICE * x

    @app.function()
    @gantry.fastapi_endpoint()
    def web_hello():
        return "hi"
"""


@pytest.fixture
def app_mod(app_dir: Path) -> types.ModuleType:
    (app_dir / "helper_mod.py").write_text("TWICE = 2\n")
    (app_dir / "data.txt").write_text("local data\n")
    sys.path.insert(0, str(app_dir))  # where app_mod's own import finds helper_mod
    try:
        return load(app_dir, "app_mod", APP)
    finally:
        sys.path.remove(str(app_dir))


# --- with app.run() -------------------------------------------------------------------------------------


def test_run_deploys_the_defining_file_and_stops_the_app_at_the_end(fake: FakeDaemon, app_mod: types.ModuleType) -> None:
    with app_mod.app.run() as running:
        assert running is app_mod.app
        assert fake.stops == []
        assert len(fake.deploys) == 1
    assert fake.stops == ["run-app"]
    body = fake.deploys[0]
    assert body["app"] == "run-app" and body["runtime"] == "python" and body["module"] == "app_mod"
    assert sorted(body["files"]) == ["app_mod.py", "helper_mod.py"]
    assert [f["name"] for f in body["functions"]] == ["double", "web_hello"]
    assert body["source"].endswith("app_mod.py")
    # The image's local file went as an asset named by its hash; the App keeps its path for the next deploy.
    step = body["functions"][0]["options"]["image"]["steps"][0]
    assert "local" not in step and step["hash"] in body["assets"]
    assert "local" in app_mod.app.manifest()[0]["options"]["image"]["steps"][0]
    with app_mod.app.run():
        pass
    assert fake.deploys[1]["functions"] == body["functions"]


def test_run_deploys_an_ephemeral_app_and_heartbeats_while_the_block_runs(fake: FakeDaemon, app_mod: types.ModuleType) -> None:
    import time

    with app_mod.app.run():
        assert fake.deploys[0]["ephemeral"] is True
        deadline = time.monotonic() + 10
        while len(fake.heartbeats) < 3 and time.monotonic() < deadline:
            time.sleep(0.01)
        assert fake.heartbeats[:3] == ["run-app"] * 3  # as often as the daemon asks
    after = len(fake.heartbeats)
    time.sleep(0.1)  # a stopped heartbeat stays stopped: five of its intervals pass without one
    assert len(fake.heartbeats) <= after + 1 and fake.stops == ["run-app"]


def test_sigterm_in_the_block_stops_the_app_as_ctrl_c_does(fake: FakeDaemon, app_mod: types.ModuleType) -> None:
    import signal

    if signal.getsignal(signal.SIGTERM) is not signal.SIG_DFL:
        pytest.skip("something in this process handles SIGTERM already: app.run() leaves it alone then")
    with pytest.raises(SystemExit) as exited:
        with app_mod.app.run():
            os.kill(os.getpid(), signal.SIGTERM)
            for _ in range(1000):  # the handler runs between bytecodes
                pass
    assert exited.value.code == 128 + signal.SIGTERM
    assert fake.stops == ["run-app"]
    assert signal.getsignal(signal.SIGTERM) is signal.SIG_DFL


def test_run_stops_the_app_when_the_block_raises(fake: FakeDaemon, app_mod: types.ModuleType) -> None:
    with pytest.raises(KeyError):
        with app_mod.app.run():
            raise KeyError("boom")
    assert fake.stops == ["run-app"]


def test_run_with_detach_leaves_the_app_running_and_deploy_returns_the_app(fake: FakeDaemon, app_mod: types.ModuleType) -> None:
    with app_mod.app.run(detach=True):
        pass
    assert app_mod.app.deploy() is app_mod.app
    assert len(fake.deploys) == 2 and fake.stops == []
    assert fake.apps == {"run-app": "deployed"}
    assert "ephemeral" not in fake.deploys[0] and "ephemeral" not in fake.deploys[1] and fake.heartbeats == []


def test_async_with_run(fake: FakeDaemon, app_mod: types.ModuleType) -> None:
    async def main() -> None:
        async with app_mod.app.run() as running:
            assert running is app_mod.app and len(fake.deploys) == 1 and fake.stops == []

    asyncio.run(main())
    assert fake.stops == ["run-app"]


def test_run_warns_before_replacing_a_deployed_app(fake: FakeDaemon, app_mod: types.ModuleType) -> None:
    fake.apps["run-app"] = "deployed"
    with pytest.warns(UserWarning, match="app run-app is deployed; app.run\\(\\) replaces it for this block and stops it at the end"):
        with app_mod.app.run():
            pass
    assert fake.stops == ["run-app"]


def test_a_context_is_entered_once(fake: FakeDaemon, app_mod: types.ModuleType) -> None:
    ctx = app_mod.app.run()
    with ctx:
        pass
    with pytest.raises(InvalidError, match="entered once"):
        ctx.__enter__()


def test_a_failed_deploy_raises_and_stops_nothing(fake: FakeDaemon, app_mod: types.ModuleType, capsys: pytest.CaptureFixture[str]) -> None:
    fake.deploy_error = {"code": "build_failed", "message": "image gantry-img-1 failed to build: pip exited 1"}
    with gantry.enable_output():
        with pytest.raises(Error, match="deploy of run-app failed: image gantry-img-1 failed to build") as raised:
            with app_mod.app.run():
                pytest.fail("the block runs only once the app is deployed")
    assert not isinstance(raised.value, InvalidError) and raised.value.code == "build_failed"
    assert fake.stops == []
    assert "last build output:\n  Collecting requests" in capsys.readouterr().err
    fake.deploy_error = {"code": "invalid_argument", "message": "function double: max_containers must be at most 100"}
    with pytest.raises(InvalidError, match="max_containers must be at most 100"):
        app_mod.app.deploy()


def test_inside_a_container_run_deploys_nothing(fake: FakeDaemon, app_mod: types.ModuleType, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GANTRY_CONTAINER_ID", "c-1")
    with app_mod.app.run():
        pass
    assert fake.deploys == [] and fake.stops == []


def test_an_app_without_functions_or_without_a_file_is_refused(fake: FakeDaemon, app_dir: Path) -> None:
    empty = load(app_dir, "empty_mod", "import gantry\napp = gantry.App('run-empty')\n")
    with pytest.raises(InvalidError, match="app run-empty defines no functions"):
        with empty.app.run():
            pass
    app = gantry.App("run-nofile")
    code = compile("def f(x):\n    return x\n", "<stdin>", "exec")
    ns: Dict[str, Any] = {"__name__": "__main__"}
    exec(code, ns)
    app.function()(ns["f"])
    main = sys.modules["__main__"]
    saved = getattr(main, "__file__", None)
    try:
        if saved is not None:
            del main.__file__
        with pytest.raises(InvalidError, match="app run-nofile is defined in this interactive session, which has no .py file"):
            app.deploy()
    finally:
        if saved is not None:
            main.__file__ = saved
    assert fake.deploys == []


# --- enable_output ----------------------------------------------------------------------------------------


def test_enable_output_prints_the_deploy_s_progress_and_urls_on_stderr(fake: FakeDaemon, app_mod: types.ModuleType, capsys: pytest.CaptureFixture[str]) -> None:
    app_mod.app.deploy()
    assert capsys.readouterr().err == ""
    fake.apps.clear()  # as if stopped since: app.run() below replaces nothing
    with gantry.enable_output():
        with gantry.enable_output():
            pass
        assert _deploy.output_enabled()
        with app_mod.app.run():
            pass
    assert not _deploy.output_enabled()
    err = capsys.readouterr().err
    assert "building image gantry-img-1 for double, web_hello …" in err
    assert "  [1/2] FROM python:3.11-slim" in err
    assert "ARG PIP_INDEX_URL" not in err
    assert "✓ built image gantry-img-1 in " in err
    assert "✓ deployed app run-app v2 in " in err and "(1 image(s) built, 0 unchanged)" in err
    assert "web endpoints:\n  web_hello: http://127.0.0.1:9/web/run-app/web_hello/" in err
    assert "✓ stopped app run-app" in err
    with gantry.enable_output(show_progress=False):
        assert not _deploy.output_enabled()


# --- App.lookup -------------------------------------------------------------------------------------------


def test_lookup_finds_a_deployed_app_and_refuses_one_missing_or_stopped(fake: FakeDaemon, app_mod: types.ModuleType) -> None:
    fake.apps.update({"other": "deployed", "old": "stopped"})
    found = gantry.App.lookup("other")
    assert isinstance(found, gantry.App) and found.name == "other" and found.registered_functions == {}
    assert "other" not in _apps  # a handle, not an app this process defines
    same = gantry.App.lookup("run-app", create_if_missing=True)
    assert same is not app_mod.app and _apps["run-app"] is app_mod.app
    with pytest.raises(NotFoundError, match="no deployed app named missing"):
        gantry.App.lookup("missing")
    with pytest.raises(NotFoundError, match="no deployed app named old \\(it is stopped\\)"):
        gantry.App.lookup("old")
    made = gantry.App.lookup("missing", create_if_missing=True)
    assert made.name == "missing" and "missing" not in _apps
    with pytest.raises(InvalidError, match="defines no functions"):
        made.deploy()
    with pytest.raises(InvalidError, match="App name 'bad name' is invalid"):
        gantry.App.lookup("bad name")


# --- A script run as python script.py -----------------------------------------------------------------


def test_a_script_run_with_python_ships_itself_as_a_module_and_stops_the_app(fake: FakeDaemon, app_dir: Path) -> None:
    (app_dir / "helper_mod.py").write_text("TWICE = 2\n")
    script = app_dir / "my_script.py"
    script.write_text(
        textwrap.dedent(
            """
            import sys
            import gantry
            import helper_mod

            app = gantry.App("run-script")

            @app.function()
            def double(x):
                return helper_mod.TWICE * x

            if __name__ == "__main__":
                with gantry.enable_output():
                    with app.run():
                        print("inside the block", flush=True)
            """
        )
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith("GANTRY_")}
    env.update({"GANTRY_HOME": fake.home, "PYTHONPATH": str(ROOT / "python")})
    done = subprocess.run([sys.executable, str(script)], env=env, capture_output=True, text=True, timeout=60, check=False)
    assert done.returncode == 0, done.stderr
    assert done.stdout == "inside the block\n"
    assert "✓ deployed app run-script" in done.stderr and "✓ stopped app run-script" in done.stderr
    body = fake.deploys[0]
    assert body["module"] == "my_script" and sorted(body["files"]) == ["helper_mod.py", "my_script.py"]
    assert body["files"]["my_script.py"] == script.read_text()
    assert fake.stops == ["run-script"]


# --- What gantry serve watches ----------------------------------------------------------------------------


def test_the_manifest_names_the_local_files_and_folders_the_images_copy(app_dir: Path) -> None:
    (app_dir / "assets").mkdir()
    (app_dir / "requirements.txt").write_text("requests\n")
    (app_dir / "data.txt").write_text("x\n")
    app_file = app_dir / "served.py"
    app_file.write_text(
        textwrap.dedent(
            f"""
            import gantry
            image = (
                gantry.Image.debian_slim()
                .pip_install_from_requirements({str(app_dir / "requirements.txt")!r})
                .add_local_file({str(app_dir / "data.txt")!r}, "/data/")
                .add_local_dir({str(app_dir / "assets")!r}, "/assets")
            )
            app = gantry.App("served", image=image)

            @app.function()
            def f():
                return 1
            """
        )
    )
    out = app_dir / "manifest.json"
    env = {**os.environ, "PYTHONPATH": str(ROOT / "python")}
    done = subprocess.run([sys.executable, "-m", "gantry._manifest", str(app_file), str(out)], env=env, capture_output=True, text=True, check=False)
    assert done.returncode == 0, done.stderr
    manifest = json.loads(out.read_text())
    assert manifest["local_paths"] == sorted(str(app_dir / n) for n in ("assets", "data.txt", "requirements.txt"))
