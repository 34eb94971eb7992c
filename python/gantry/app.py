"""Apps and their functions, as app files define them (Modal's ``App`` API).

Defining a function registers it; nothing runs until the daemon calls it in a container.
Options keep Modal's names (snake_case); ``manifest()`` gives them to the daemon in its
camelCase form.
"""
from __future__ import annotations

import contextlib
import inspect
import re
from pathlib import PurePosixPath
from typing import TYPE_CHECKING, Any, Callable, Dict, List, Optional, Sequence, Union

from ._client import Client
from .exception import InvalidError, NotFoundError
from .functions import Function
from .image import Image
from .schedule import Schedule
from .secret import Secret
from .volume import MOUNTS_PER_FUNCTION, Volume, mount_path_problem, overlapping_mounts

if TYPE_CHECKING:
    from . import _deploy

_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_-]{0,63}$")

#: Apps defined in this process, by name (the agent and the manifest reader look them up here).
_apps: Dict[str, "App"] = {}


class Retries:
    """A retry policy: ``Retries(max_retries=3, backoff_coefficient=2.0, initial_delay=1.0, max_delay=60.0)``."""

    def __init__(
        self,
        *,
        max_retries: int,
        backoff_coefficient: float = 2.0,
        initial_delay: float = 1.0,
        max_delay: float = 60.0,
    ) -> None:
        self.max_retries = max_retries
        self.backoff_coefficient = backoff_coefficient
        self.initial_delay = initial_delay
        self.max_delay = max_delay

    def to_option(self) -> Dict[str, Any]:
        return {
            "maxRetries": self.max_retries,
            "backoffCoefficient": self.backoff_coefficient,
            "initialDelay": self.initial_delay,
            "maxDelay": self.max_delay,
        }


def concurrent(_f: Optional[Callable] = None, *, max_inputs: int, target_inputs: Optional[int] = None) -> Callable:
    """Lets one container take up to ``max_inputs`` calls at once (Modal's ``@modal.concurrent``).

    Put it under ``@app.function()``.
    """

    def mark(f: Callable) -> Callable:
        if isinstance(f, Function):
            raise InvalidError("@gantry.concurrent goes under @app.function(), not above it")
        f.__gantry_max_inputs__ = max_inputs  # type: ignore[attr-defined]
        return f

    return mark(_f) if _f is not None else mark


_WEB_METHODS = ("GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS")


def _web(kind: str, public: bool, method: Optional[str] = None) -> Callable:
    def mark(f: Callable) -> Callable:
        if isinstance(f, Function):
            raise InvalidError(f"@gantry.{kind}_app() goes under @app.function(), not above it")
        web: Dict[str, Any] = {"kind": kind}
        if method is not None:
            web["method"] = method
        f.__gantry_web__ = {"web": web, "public": public}  # type: ignore[attr-defined]
        return f

    return mark


def asgi_app(*, public: bool = False, label: Optional[str] = None) -> Callable:
    """Serves the ASGI app (FastAPI, Starlette…) the decorated function returns, at /web/APP/FUNCTION/.

    ``public=True``: no token needed even where the daemon asks for one.
    """
    return _web("asgi", public)


def wsgi_app(*, public: bool = False, label: Optional[str] = None) -> Callable:
    """Serves the WSGI app (Flask, Django…) the decorated function returns, at /web/APP/FUNCTION/."""
    return _web("wsgi", public)


def fastapi_endpoint(*, method: str = "GET", public: bool = False, label: Optional[str] = None, docs: bool = False) -> Callable:
    """Serves the decorated function as one FastAPI route (FastAPI must be in the image)."""
    if not isinstance(method, str) or method.upper() not in _WEB_METHODS:
        raise InvalidError(f"fastapi_endpoint: method must be one of {', '.join(_WEB_METHODS)}, got {method!r}")
    return _web("fastapi", public, method.upper())


#: Modal's older name for fastapi_endpoint.
web_endpoint = fastapi_endpoint


_VOLUMES_FORM = 'volumes takes a dict of mount point to volume, e.g. volumes={"/data": gantry.Volume.from_name("data")}'


def _volume_mounts(volumes: Any) -> Optional[List[Dict[str, Any]]]:
    """``volumes={"/data": vol}`` as the deploy request takes it (protocol/volumes.ts VolumeMount[]), checked as the daemon will."""
    if volumes is None:
        return None
    if not isinstance(volumes, dict):
        raise InvalidError(f"{_VOLUMES_FORM}; got {type(volumes).__name__}")
    mounts: List[Dict[str, Any]] = []
    for path, vol in volumes.items():
        if isinstance(path, PurePosixPath):
            path = path.as_posix()
        if not isinstance(path, str):
            raise InvalidError(f"{_VOLUMES_FORM}; got the mount point {path!r}")
        if not isinstance(vol, Volume):
            raise InvalidError(f"{_VOLUMES_FORM}; got {type(vol).__name__} at {path}")
        problem = mount_path_problem(path)
        if problem:
            raise InvalidError(f"volumes: {problem}")
        if any(m["path"] == path for m in mounts):
            raise InvalidError(f"volumes: two volumes are mounted at {path}")
        mounts.append(vol.to_mount(path))
    if len(mounts) > MOUNTS_PER_FUNCTION:
        raise InvalidError(f"volumes: a function mounts at most {MOUNTS_PER_FUNCTION} volumes, got {len(mounts)}")
    problem = overlapping_mounts([m["path"] for m in mounts])
    if problem:
        raise InvalidError(f"volumes: {problem}")
    return mounts or None


def _schedule_option(schedule: Any) -> Optional[Dict[str, Any]]:
    if schedule is None:
        return None
    if not isinstance(schedule, Schedule):
        raise InvalidError(f"schedule takes gantry.Period(...) or gantry.Cron(...), got {type(schedule).__name__}")
    return schedule.to_option()


def _check_schedulable(name: str, f: Callable) -> None:
    """A scheduled function is called with no arguments: one that needs some is refused."""
    required = [p.name for p in inspect.signature(f).parameters.values() if p.default is p.empty and p.kind not in (p.VAR_POSITIONAL, p.VAR_KEYWORD)]
    if required:
        raise InvalidError(f"function {name} has a schedule, so it is called with no arguments, but it needs {', '.join(required)}: give them defaults or drop the schedule")


class LocalEntrypoint:
    """A function of the app file run on this machine by ``gantry run``."""

    def __init__(self, app: "App", raw_f: Callable) -> None:
        self.app = app
        self.raw_f = raw_f
        self.name = raw_f.__name__

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        return self.raw_f(*args, **kwargs)


class _FunctionDefinition:
    def __init__(self, name: str, raw_f: Callable, options: Dict[str, Any], handle: Function) -> None:
        self.name = name
        self.raw_f = raw_f
        self.options = options
        self.handle = handle


class App:
    """A group of functions deployed together: ``app = gantry.App("my-job-queue")``."""

    def __init__(self, name: Optional[str] = None, *, image: Optional[Image] = None) -> None:
        if name is None:
            raise InvalidError('an App needs a name: gantry.App("my-app")')
        if not isinstance(name, str) or not _NAME.match(name):
            raise InvalidError(f"App name {name!r} is invalid: use letters, digits, _ and -, at most 64 characters")
        if image is not None and not isinstance(image, Image):
            raise InvalidError(f"App image must be a gantry.Image, got {type(image).__name__}")
        self.name = name
        self.image = image
        self._functions: Dict[str, _FunctionDefinition] = {}
        self._entrypoints: Dict[str, LocalEntrypoint] = {}
        _apps[name] = self

    @property
    def app_id(self) -> str:
        """The app's ID as the daemon knows it: its name (what ``Sandbox.list(app_id=...)`` takes)."""
        return self.name

    @property
    def registered_functions(self) -> Dict[str, Function]:
        return {name: d.handle for name, d in self._functions.items()}

    @property
    def registered_entrypoints(self) -> Dict[str, LocalEntrypoint]:
        return dict(self._entrypoints)

    def function(
        self,
        _f: Optional[Callable] = None,
        *,
        image: Optional[Image] = None,
        gpu: Union[None, str, Sequence[str]] = None,
        cpu: Optional[float] = None,
        memory: Optional[int] = None,
        timeout: Optional[float] = None,
        startup_timeout: Optional[float] = None,
        retries: Union[None, int, Retries] = None,
        max_containers: Optional[int] = None,
        min_containers: Optional[int] = None,
        buffer_containers: Optional[int] = None,
        scaledown_window: Optional[float] = None,
        max_inputs: Optional[int] = None,
        env: Optional[Dict[str, str]] = None,
        result_ttl: Optional[float] = None,
        network: Optional[str] = None,
        secrets: Optional[Sequence[Secret]] = None,
        volumes: Optional[Dict[Union[str, PurePosixPath], Volume]] = None,
        schedule: Optional[Schedule] = None,
        name: Optional[str] = None,
    ) -> Callable:
        """Defines a function: ``@app.function(retries=3, timeout=60)``, then a (sync or async) ``def``."""
        if image is not None and not isinstance(image, Image):
            raise InvalidError(f"image must be a gantry.Image, got {type(image).__name__}")
        if isinstance(retries, bool) or not (retries is None or isinstance(retries, (int, Retries))):
            raise InvalidError(f"retries must be a whole number or gantry.Retries(...), got {retries!r}")
        if secrets is not None and (not isinstance(secrets, (list, tuple)) or not all(isinstance(s, Secret) for s in secrets)):
            raise InvalidError(f'secrets takes a list of gantry.Secret.from_name("NAME"), got {secrets!r}')
        chosen = image or self.image
        options: Dict[str, Any] = {
            "image": chosen.to_spec() if chosen else None,
            "gpu": list(gpu) if isinstance(gpu, (list, tuple)) else gpu,
            "cpu": cpu,
            "memory": memory,
            "timeout": timeout,
            "startupTimeout": startup_timeout,
            "retries": retries.to_option() if isinstance(retries, Retries) else retries,
            "maxContainers": max_containers,
            "minContainers": min_containers,
            "bufferContainers": buffer_containers,
            "scaledownWindow": scaledown_window,
            "maxInputs": max_inputs,
            "env": env,
            "resultTtl": result_ttl,
            "network": network,
            "secrets": [s.to_option() for s in secrets] if secrets else None,
            "volumes": _volume_mounts(volumes),
            "schedule": _schedule_option(schedule),
        }

        def wrap(f: Callable) -> Function:
            if isinstance(f, Function):
                raise InvalidError(f"{f.object_name} is already a gantry function")
            if not callable(f) or inspect.isclass(f):
                raise InvalidError(f"@app.function() decorates a function, not {type(f).__name__}")
            from .cls import batched_option, role_of

            role = role_of(f)
            if role is not None and not (role == "method" and batched_option(f)):
                raise InvalidError(f"@gantry.{role}() marks a method of an @app.cls class, not a function under @app.function()")
            fn_name = name or f.__name__
            if not _NAME.match(fn_name):
                raise InvalidError(f"function name {fn_name!r} is invalid: use letters, digits, _ and -, at most 64 characters")
            if fn_name in self._functions:
                raise InvalidError(f"app {self.name} already has a function named {fn_name}")
            opts = {k: v for k, v in options.items() if v is not None}
            if schedule is not None:
                _check_schedulable(fn_name, f)
            web = getattr(f, "__gantry_web__", None)
            if web is not None:
                opts["web"] = web["web"]
                if web["public"]:
                    opts["public"] = True
            marked = getattr(f, "__gantry_max_inputs__", None)
            if marked is not None:
                if max_inputs is not None and max_inputs != marked:
                    raise InvalidError(f"{fn_name}: max_inputs={max_inputs} and @gantry.concurrent(max_inputs={marked}) disagree")
                opts["maxInputs"] = marked
            if inspect.isgeneratorfunction(f) or inspect.isasyncgenfunction(f):
                opts["generator"] = True  # called with remote_gen: items stream as they are yielded
            if batched_option(f):
                opts["batched"] = batched_option(f)
            handle = Function(self.name, fn_name, raw_f=f, is_generator=bool(opts.get("generator")))
            self._functions[fn_name] = _FunctionDefinition(fn_name, f, opts, handle)
            return handle

        return wrap(_f) if _f is not None else wrap

    def cls(self, _c: Optional[type] = None, **options: Any) -> Callable:
        """Defines a class with a lifecycle (Modal's ``@app.cls``): the options of ``@app.function``
        (but ``name``); ``@gantry.enter()`` hooks load once per container, ``@gantry.method()``s
        serve the calls, ``@gantry.exit()`` hooks run when the container stops."""
        from .cls import Cls, batched_option, declared_params, members, web_members

        for refused in ("name", "schedule"):
            if refused in options:
                raise InvalidError(f"@app.cls() takes no {refused}= (a class is named by its own name)")

        def wrap(user_cls: type) -> Cls:
            if isinstance(user_cls, Cls) or not inspect.isclass(user_cls):
                raise InvalidError(f"@app.cls() decorates a class, not {type(user_cls).__name__}")
            methods = members(user_cls, "method")
            webs = web_members(user_cls)
            if not methods and not webs:
                raise InvalidError(f"class {user_cls.__name__} has no @gantry.method() or web endpoint: mark the methods callers run")

            def stand_in() -> None:  # registered like a function, then replaced by the class
                raise InvalidError(f"{user_cls.__name__} is a class: call its methods")

            stand_in.__name__ = user_cls.__name__
            marked = getattr(user_cls, "__gantry_max_inputs__", None)
            if marked is not None:
                stand_in.__gantry_max_inputs__ = marked  # type: ignore[attr-defined]
            self.function(name=user_cls.__name__, **options)(stand_in)
            d = self._functions[user_cls.__name__]
            d.raw_f = user_cls
            entries = []
            for m in methods:
                f = getattr(user_cls, m)
                gen = inspect.isgeneratorfunction(f) or inspect.isasyncgenfunction(f)
                entries.append({"name": m, **({"generator": True} if gen else {})})
            for m in webs:
                marker = getattr(user_cls, m).__gantry_web__
                entries.append({"name": m, "web": marker["web"], **({"public": True} if marker["public"] else {})})
            params = declared_params(user_cls)
            d.options["cls"] = {"methods": entries, **({"params": params} if params else {})}
            marked = [batched_option(getattr(user_cls, m)) for m in methods if batched_option(getattr(user_cls, m))]
            if marked and len(methods) > 1:
                raise InvalidError(f"class {user_cls.__name__}: @batched goes on a class's only method; it has {len(methods)}")
            if marked:
                d.options["batched"] = marked[0]
            handle = Cls(self.name, user_cls.__name__, user_cls)
            return handle

        return wrap(_c) if _c is not None else wrap

    def local_entrypoint(self, _f: Optional[Callable] = None, *, name: Optional[str] = None) -> Callable:
        """Marks the function ``gantry run FILE`` runs on this machine."""

        def wrap(f: Callable) -> LocalEntrypoint:
            ep = LocalEntrypoint(self, f)
            if name:
                ep.name = name
            self._entrypoints[ep.name] = ep
            return ep

        return wrap(_f) if _f is not None else wrap

    def manifest(self) -> List[Dict[str, Any]]:
        """The functions as the daemon's deploy request takes them."""
        return [{"name": d.name, "options": d.options} for d in self._functions.values()]

    def run(self, *, client: Optional[Client] = None, detach: bool = False) -> "_deploy.AppRun":
        """``with app.run():`` deploys the app for the block (``f.remote()`` works inside) and stops it
        at the end: its queued calls are cancelled, its containers stop. ``async with`` works too.

        The app ships the file that defines its functions (a script run as ``python script.py``
        included: keep the block under ``if __name__ == "__main__":``, the containers import the
        file as a module). It is deployed under its own name: an app of that name already deployed is
        replaced for the block, and stopped at its end (with a warning first). ``detach=True``
        leaves it running after the block. Inside a function's container the block deploys nothing.
        ``gantry.enable_output()`` shows the build's progress.
        """
        from . import _deploy

        return _deploy.AppRun(self, client, detach)

    def deploy(self, *, client: Optional[Client] = None) -> "App":
        """Deploys the app as ``gantry deploy`` does with its file (unchanged images are not rebuilt)
        and returns it; it runs until stopped (``gantry apps stop NAME``)."""
        from . import _deploy

        if client is not None and not isinstance(client, Client):
            raise InvalidError(f"app.deploy: client must be a gantry Client, got {type(client).__name__}")
        _deploy.deploy(self, client or Client.from_env())
        return self

    @classmethod
    def lookup(cls, name: str, *, create_if_missing: bool = False, client: Optional[Client] = None) -> "App":
        """A handle of the deployed app ``name`` (call its functions with ``gantry.Function.from_name``).

        NotFoundError when no app of that name is deployed (one stopped counts as none), unless
        ``create_if_missing``: then the handle is an App of that name with no functions. gantry keeps
        no app without functions, so nothing is made in the daemon (deploying the empty handle is
        refused); the app appears when a file or program that defines its functions deploys it.
        """
        from . import _deploy

        if not isinstance(name, str) or not _NAME.match(name):
            raise InvalidError(f"App name {name!r} is invalid: use letters, digits, _ and -, at most 64 characters")
        if client is not None and not isinstance(client, Client):
            raise InvalidError(f"App.lookup: client must be a gantry Client, got {type(client).__name__}")
        state = _deploy.app_state(name, client or Client.from_env())
        if state != "deployed" and not create_if_missing:
            raise NotFoundError(f"no deployed app named {name}" + (" (it is stopped)" if state == "stopped" else ""))
        return _deploy.handle(name)


def enable_output(show_progress: bool = True) -> "contextlib.AbstractContextManager[None]":
    """``with gantry.enable_output():`` makes ``app.run()`` and ``app.deploy()`` print their progress
    (images built or unchanged, build steps, web endpoint URLs) on stderr, as ``gantry deploy`` does."""
    from . import _deploy

    return _deploy._Output() if show_progress else contextlib.nullcontext()


def lookup_local(app_name: str, function_name: str) -> Callable:
    """The user's function as the app module defined it (the agent runs it)."""
    app = _apps.get(app_name)
    if app is None:
        known = ", ".join(sorted(_apps)) or "none"
        raise LookupError(f"the app module defines no App named {app_name!r} (it defines: {known})")
    d = app._functions.get(function_name)
    if d is None:
        known = ", ".join(sorted(app._functions)) or "none"
        raise LookupError(f"app {app_name} defines no function named {function_name!r} (it defines: {known})")
    return d.raw_f
