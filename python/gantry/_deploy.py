"""Deploys an App from the program that defines it: ``with app.run():``, ``app.deploy()``,
``App.lookup(name)`` and ``gantry.enable_output()``.

The deploy request is the one ``gantry deploy`` sends for the app's file (``_manifest.read``), built
from the App object in memory instead of importing the file again: the functions' options, the
module that defines them with the Python files beside it, and the local files the images copy. The module is shipped under its file's name, so a script run as
``python script.py`` is imported by the containers as ``script``; its ``if __name__ ==
"__main__":`` block, where ``with app.run():`` belongs, does not run there.
"""
from __future__ import annotations

import asyncio
import copy
import functools
import os
import re
import sys
import threading
import time
import types
import warnings
from typing import TYPE_CHECKING, Any, Dict, List, Optional, TextIO, Tuple
from urllib.parse import quote

from ._appfile import AppFileError, module_name
from ._assets import pack_images
from ._client import Client
from ._context import in_container
from ._ephemeral import _heartbeat
from .exception import Error, InvalidError, NotFoundError

if TYPE_CHECKING:
    from .app import App

#: A Dockerfile step as the build prints it.
_STEP = re.compile(r"^Step \d+/\d+ : (.*)$")
#: Seconds the deploy's answer may go quiet (an image step that prints nothing for a while).
_DEPLOY_QUIET_S = 3600.0

_output_lock = threading.Lock()
_output_depth = 0


class _Output:
    """``enable_output()``: while any such block runs, deploys print their progress on stderr."""

    def __enter__(self) -> None:
        global _output_depth
        with _output_lock:
            _output_depth += 1

    def __exit__(self, *exc: Any) -> None:
        global _output_depth
        with _output_lock:
            _output_depth -= 1


def output_enabled() -> bool:
    return _output_depth > 0


def _segment(name: str) -> str:
    return quote(name, safe="")


# --- The app's module and the request --------------------------------------------------------------


def _holds(name: str, app: "App") -> bool:
    module = sys.modules.get(name)
    return module is not None and any(v is app for v in vars(module).values())


def _module_of(app: "App") -> types.ModuleType:
    """The module that defines the app's functions (the one the containers import)."""
    names = sorted({str(getattr(d.raw_f, "__module__", None) or "__main__") for d in app._functions.values()}) or ["__main__"]
    # Functions spread over modules: the one holding the App as a global (it imports the others).
    name = next((n for n in names if _holds(n, app)), names[0])
    module = sys.modules.get(name)
    if module is None:
        raise InvalidError(f"app {app.name}: the module {name} that defines its functions is not loaded")
    return module


def app_file(app: "App") -> Tuple[str, str]:
    """(the path of the file that defines the app's functions, the module name the containers import)."""
    module = _module_of(app)
    path = getattr(module, "__file__", None)
    if not path or not path.endswith(".py") or not os.path.isfile(path):
        where = "this interactive session" if module.__name__ == "__main__" else f"module {module.__name__}"
        raise InvalidError(f"app {app.name} is defined in {where}, which has no .py file to ship to its containers: define it in a .py file")
    path = os.path.abspath(path)
    try:
        return path, module_name(path)
    except AppFileError as e:
        raise InvalidError(str(e)) from None


def deploy_request(app: "App") -> Dict[str, Any]:
    """The daemon's deploy request for the app (protocol/function-spec.ts deployRequestSchema)."""
    from ._manifest import _source_files

    functions: List[Dict[str, Any]] = copy.deepcopy(app.manifest())  # packing replaces local paths in place
    if not functions:
        raise InvalidError(f"app {app.name} defines no functions: use @app.function() before deploying it")
    path, module = app_file(app)
    assets: Dict[str, Any] = {}
    try:
        pack_images(functions, assets)
        files = _source_files(path)
    except AppFileError as e:
        raise InvalidError(str(e)) from None
    return {"app": app.name, "runtime": "python", "functions": functions, "files": files, "module": module, "assets": assets, "source": path}


# --- The deploy, with progress ------------------------------------------------------------------------


class _Progress:
    """Prints a deploy's events as ``gantry deploy`` does (plain lines), when output is enabled."""

    def __init__(self, stream: Optional[TextIO]) -> None:
        self.stream = stream
        self.started: Dict[str, float] = {}
        self.recent: List[str] = []

    def say(self, line: str) -> None:
        if self.stream is not None:
            print(line, file=self.stream, flush=True)

    def event(self, e: Dict[str, Any]) -> None:
        kind = e.get("type")
        if kind == "image":
            fns = ", ".join(e.get("functions") or [])
            if e.get("status") == "cached":
                self.say(f"✓ image {e['image']} unchanged ({fns})")
            elif e.get("status") == "building":
                self.started[e["image"]] = time.monotonic()
                self.say(f"building image {e['image']} for {fns} …")
            else:
                took = time.monotonic() - self.started.get(e["image"], time.monotonic())
                self.say(f"✓ built image {e['image']} in {took:.1f} s")
        elif kind == "build":
            line = str(e.get("line", "")).strip()
            step = _STEP.match(line)
            if step:
                text = step.group(1)
                if not text.startswith("ARG "):  # gantry's own ARG lines (the host's index settings)
                    self.say(f"  [{e.get('step')}/{e.get('total')}] {text}")
            elif line and not line.startswith(("---> ", "Removing intermediate container", "Successfully built", "Successfully tagged")):
                self.recent = (self.recent + [line])[-30:]
        elif kind == "log":
            self.say(str(e.get("line", "")))


def _web_lines(done: Dict[str, Any]) -> List[str]:
    lines = []
    for f in done.get("functions") or []:
        if f.get("web_url"):
            lines.append(f"  {f['name']}: {f['web_url']}")
        for method, url in sorted((f.get("web_methods") or {}).items()):
            lines.append(f"  {f['name']}.{method}: {url}")
    return lines


def deploy(app: "App", client: Client, ephemeral: bool = False) -> Dict[str, Any]:
    """Deploys the app; returns the daemon's answer (its ``done`` event). Raises InvalidError for a
    request the daemon refuses, Error when an image fails to build. ``ephemeral``: the daemon stops
    the app unless this process heartbeats (``with app.run():``)."""
    body = deploy_request(app)
    if ephemeral:
        body["ephemeral"] = True
    progress = _Progress(sys.stderr if output_enabled() else None)
    started = time.monotonic()
    done: Optional[Dict[str, Any]] = None
    failure: Optional[Dict[str, Any]] = None
    for e in client.stream_lines("POST", "/v1/apps/deploy", body, wait_s=_DEPLOY_QUIET_S):
        if not isinstance(e, dict):
            continue
        if e.get("type") == "done":
            done = e
        elif e.get("type") == "error":
            failure = e.get("error") or {}
        else:
            progress.event(e)
    if failure is not None:
        message = str(failure.get("message") or "the daemon gave no reason")
        if progress.recent and "last lines of the build" not in message:
            progress.say("last build output:\n" + "\n".join(f"  {line}" for line in progress.recent))
        err: Error = InvalidError(f"deploy of {app.name} failed: {message}") if failure.get("code") == "invalid_argument" else Error(f"deploy of {app.name} failed: {message}")
        err.code = str(failure.get("code") or "deploy_failed")
        raise err
    if done is None:
        raise Error(f"the gantry daemon at {client.target} ended the deploy of {app.name} without an answer; see its log")
    built, cached = done.get("built") or [], done.get("cached") or []
    version = f" v{done['version']}" if isinstance(done.get("version"), int) else ""
    progress.say(f"✓ deployed app {app.name}{version} in {time.monotonic() - started:.1f} s ({len(built)} image(s) built, {len(cached)} unchanged)")
    web = _web_lines(done)
    if web:
        progress.say("web endpoints:\n" + "\n".join(web))
    return done


def app_state(name: str, client: Client) -> Optional[str]:
    """The app's state in the daemon ("deployed", "stopped"), or None when it knows no such app."""
    try:
        view = client.json("GET", f"/v1/apps/{_segment(name)}")
    except NotFoundError:
        return None
    return view.get("state") if isinstance(view, dict) else None


def stop(name: str, client: Client) -> bool:
    """Stops the app (its queued calls are cancelled, its containers stop); False when the daemon knows no such app."""
    try:
        client.json("POST", f"/v1/apps/{_segment(name)}/stop")
    except NotFoundError:
        return False
    if output_enabled():
        print(f"✓ stopped app {name}", file=sys.stderr, flush=True)
    return True


# --- app.run() ----------------------------------------------------------------------------------------


class AppRun:
    """``with app.run():`` (or ``async with``): the app is deployed on entering the block and stopped at its end."""

    def __init__(self, app: "App", client: Optional[Client], detach: bool) -> None:
        if client is not None and not isinstance(client, Client):
            raise InvalidError(f"app.run: client must be a gantry Client, got {type(client).__name__}")
        self._app = app
        self._client = client
        self._detach = detach
        self._deployed = False
        self._entered = False
        self._beating = threading.Event()
        self._heartbeat: Optional[threading.Thread] = None
        self._sigterm: Any = None

    def __enter__(self) -> "App":
        if self._entered:
            raise InvalidError("an app.run() context is entered once; call app.run() again for another block")
        self._entered = True
        if in_container():
            return self._app  # a function's container imports the module: the app is deployed already
        client = self._client = self._client or Client.from_env()
        if app_state(self._app.name, client) == "deployed":
            warnings.warn(
                f"app {self._app.name} is deployed; app.run() replaces it for this block and stops it at the end",
                stacklevel=2,
            )
        deploy(self._app, client, ephemeral=not self._detach)
        self._deployed = True
        if not self._detach:
            # Ephemeral: if this process dies inside the block, the daemon stops the app a minute on.
            # As often as the daemon asks (a quarter of its TTL), the first at once.
            beat_args = (client, f"/v1/apps/{_segment(self._app.name)}", self._beating, 15.0, True)
            self._heartbeat = threading.Thread(target=_heartbeat, args=beat_args, name=f"gantry-app-heartbeat-{self._app.name}", daemon=True)
            self._heartbeat.start()
            self._sigterm = _exit_on_sigterm()
        return self._app

    def __exit__(self, exc_type: Any, exc: Any, tb: Any) -> None:
        if not self._deployed or self._detach:
            return
        self._deployed = False
        self._beating.set()
        _restore_sigterm(self._sigterm)
        assert self._client is not None
        try:
            stop(self._app.name, self._client)
        except Error as err:
            if exc is None:
                raise
            warnings.warn(f"app {self._app.name} could not be stopped ({err}); stop it with: gantry apps stop {self._app.name}", stacklevel=2)

    async def __aenter__(self) -> "App":
        return await asyncio.get_running_loop().run_in_executor(None, self.__enter__)

    async def __aexit__(self, exc_type: Any, exc: Any, tb: Any) -> None:
        await asyncio.get_running_loop().run_in_executor(None, functools.partial(self.__exit__, exc_type, exc, tb))


def _exit_on_sigterm() -> Any:
    """SIGTERM (``kill``, a container runtime stopping the script) ends the block as Ctrl-C does, so
    its app is stopped: only in the main thread, and only where nobody handles SIGTERM already.
    Returns what to restore, or None when left alone."""
    import signal

    if threading.current_thread() is not threading.main_thread() or signal.getsignal(signal.SIGTERM) is not signal.SIG_DFL:
        return None

    def on_sigterm(signum: int, frame: Any) -> None:
        raise SystemExit(128 + signum)

    signal.signal(signal.SIGTERM, on_sigterm)
    return on_sigterm


def _restore_sigterm(installed: Any) -> None:
    import signal

    if installed is not None and threading.current_thread() is threading.main_thread() and signal.getsignal(signal.SIGTERM) is installed:
        signal.signal(signal.SIGTERM, signal.SIG_DFL)


def handle(name: str) -> "App":
    """An App handle for a deployed app of this name, kept out of the apps this process defines
    (where a container looks its functions up)."""
    from .app import App, _apps

    defined = _apps.get(name)
    obj = App(name)
    if defined is None:
        del _apps[name]
    else:
        _apps[name] = defined
    return obj
