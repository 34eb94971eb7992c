"""Classes with a lifecycle, as Modal's ``@app.cls`` (issue 18): ``@gantry.enter()`` hooks run
once per container before it takes calls, ``@gantry.method()``s serve the calls (all of a class's
methods share its containers), ``@gantry.exit()`` hooks run when the container stops.

    @app.cls(gpu="any")
    class Model:
        @modal.enter()
        def load(self):
            self.weights = load_weights()

        @modal.method()
        def predict(self, x):
            return self.weights(x)

    Model().predict.remote(1)                      # from the app file, or
    modal.Cls.from_name("app", "Model")().predict.remote(1)
"""
from __future__ import annotations

import base64
import inspect
import urllib.parse
from typing import Any, Callable, Dict, List, Optional

from .exception import InvalidError, NotFoundError
from .functions import Function

_MARK = "__gantry_cls_role__"


def _decorator(role: str, name: str, _f: Any = None) -> Callable[[Callable], Callable]:
    if _f is not None:
        raise InvalidError(f"use @gantry.{name}() with parentheses, not @gantry.{name}")

    def mark(f: Callable) -> Callable:
        if isinstance(f, Function) or not callable(f):
            raise InvalidError(f"@gantry.{name}() decorates a method of an @app.cls class, not {type(f).__name__}")
        setattr(f, _MARK, role)
        return f

    return mark


def method(_f: Any = None, *, is_generator: Optional[bool] = None) -> Callable[[Callable], Callable]:
    """Marks a method callers run: ``Model().predict.remote(x)``."""
    return _decorator("method", "method", _f)


def enter(_f: Any = None, *, snap: bool = False) -> Callable[[Callable], Callable]:
    """Marks a method run once per container, before it takes any call (load the model here)."""
    if snap:
        raise InvalidError("enter(snap=True) (memory snapshots) is not supported by gantry: use enter()")
    return _decorator("enter", "enter", _f)


def exit(_f: Any = None) -> Callable[[Callable], Callable]:  # noqa: A001 - Modal's name
    """Marks a method run when the container stops (scale-down, redeploy, app or daemon stop)."""
    return _decorator("exit", "exit", _f)


def batched(_f: Any = None, *, max_batch_size: int, wait_ms: int) -> Callable[[Callable], Callable]:
    """Groups calls into one call of lists (Modal's ``@modal.batched``): callers pass one value,
    the function gets a list of up to ``max_batch_size`` of them (those arriving within
    ``wait_ms``) and returns a list of as many results. On a function (under ``@app.function()``)
    or as a class's only method (in place of ``@gantry.method()``)."""
    if _f is not None:
        raise InvalidError("use @gantry.batched(max_batch_size=..., wait_ms=...) with parentheses")
    for what, value, top in (("max_batch_size", max_batch_size, 1000), ("wait_ms", wait_ms, 600_000)):
        if isinstance(value, bool) or not isinstance(value, int) or not (0 if what == "wait_ms" else 1) <= value <= top:
            raise InvalidError(f"batched: {what} must be a whole number from {0 if what == 'wait_ms' else 1} to {top}, got {value!r}")

    def mark(f: Callable) -> Callable:
        if isinstance(f, Function) or not callable(f):
            raise InvalidError("@gantry.batched() goes under @app.function(), or on a method of an @app.cls class")
        f.__gantry_batched__ = {"max_batch_size": max_batch_size, "wait_ms": wait_ms}  # type: ignore[attr-defined]
        setattr(f, _MARK, "method")  # on a class, it is the method callers run
        return f

    return mark


def batched_option(f: Any) -> Optional[Dict[str, int]]:
    """The deploy option for a function or method marked @batched, or None."""
    marked = getattr(f, "__gantry_batched__", None)
    return {"maxBatchSize": marked["max_batch_size"], "waitMs": marked["wait_ms"]} if marked else None


class _Parameter:
    """``size: int = modal.parameter(default=1)``: a class attribute the instance's value replaces."""

    def __init__(self, default: Any, init: bool) -> None:
        self.default = default
        self.init = init

    def __repr__(self) -> str:
        return f"parameter(default={self.default!r}, init={self.init})"


def parameter(*, default: Any = ..., init: bool = True) -> Any:
    """A class parameter (Modal's ``modal.parameter``), declared with its type:
    ``size: int = modal.parameter(default=1)``; int, str, bytes and bool. ``Model(size=2)`` is an
    instance with its own pool of containers (each distinct parameter set scales on its own), and
    ``self.size`` reads it in hooks and methods. ``init=False``: not set by callers, only its default."""
    if not isinstance(init, bool):
        raise InvalidError(f"parameter(init=...) takes True or False, got {init!r}")
    return _Parameter(default, init)


_PARAM_TYPES = {int: "int", str: "str", bytes: "bytes", bool: "bool", "int": "int", "str": "str", "bytes": "bytes", "bool": "bool"}


def declared_params(user_cls: type) -> List[Dict[str, Any]]:
    """The class's parameters as the deploy request takes them (``[{"name", "type", "default"?}]``)."""
    hints: Dict[str, Any] = {}
    for klass in reversed(user_cls.__mro__):
        hints.update(getattr(klass, "__annotations__", {}) or {})
    out: List[Dict[str, Any]] = []
    for name in dir(user_cls):
        p = getattr(user_cls, name, None)
        if not isinstance(p, _Parameter) or not p.init:
            continue
        kind = _PARAM_TYPES.get(hints.get(name))  # type: ignore[arg-type]
        if kind is None:
            raise InvalidError(f"class {user_cls.__name__}: parameter {name} needs a type, one of int, str, bytes, bool ({name}: int = modal.parameter()), got {hints.get(name)!r}")
        entry: Dict[str, Any] = {"name": name, "type": kind}
        if p.default is not ...:
            entry["default"] = _check_value(user_cls.__name__, name, kind, p.default, default=True)
        out.append(entry)
    return out


def _check_value(cls_name: str, name: str, kind: str, value: Any, *, default: bool = False) -> Any:
    """The parameter's value as JSON (bytes as {"bytes": base64}); raises TypeError for a wrong type."""
    ok = {"int": isinstance(value, int) and not isinstance(value, bool), "bool": isinstance(value, bool), "str": isinstance(value, str), "bytes": isinstance(value, bytes)}[kind]
    if not ok:
        what = "default" if default else "value"
        raise TypeError(f"{cls_name}: parameter {name} takes {kind}, got {type(value).__name__} {value!r:.40} as its {what}")
    if kind == "int" and not -(2**53) < value < 2**53:
        raise InvalidError(f"{cls_name}: parameter {name} must be within ±2^53, got {value}")
    if kind in ("str", "bytes") and len(value) > 4096:
        raise InvalidError(f"{cls_name}: parameter {name} holds at most 4096 {'characters' if kind == 'str' else 'bytes'}, got {len(value)}")
    return {"bytes": base64.b64encode(value).decode("ascii")} if kind == "bytes" else value


def check_params(cls_name: str, declared: List[Dict[str, Any]], args: tuple, kwargs: Dict[str, Any]) -> Dict[str, Any]:
    """A caller's ``Model(**kwargs)`` as the daemon takes it; raises Modal's errors for bad ones."""
    if args:
        raise InvalidError(f"{cls_name}() takes its parameters by keyword only, as {cls_name}(name=value)")
    by_name = {p["name"]: p for p in declared}
    unknown = [k for k in kwargs if k not in by_name]
    if unknown:
        takes = f"it takes {', '.join(by_name)}" if by_name else "it declares no parameters"
        raise InvalidError(f"{cls_name}() got unknown parameter {', '.join(unknown)}: {takes}")
    missing = [p["name"] for p in declared if p["name"] not in kwargs and "default" not in p]
    if missing:
        raise InvalidError(f"{cls_name}() is missing parameter {', '.join(missing)}, which has no default")
    return {k: _check_value(cls_name, k, by_name[k]["type"], v) for k, v in kwargs.items()}


def instantiate(user_cls: type, params: Dict[str, Any]) -> Any:
    """The class's instance in a container (or a local call): parameters set before any hook runs."""
    obj = user_cls()
    for name in dir(user_cls):
        p = getattr(user_cls, name, None)
        if isinstance(p, _Parameter) and p.default is not ... and name not in params:
            setattr(obj, name, p.default)
    for name, value in params.items():
        setattr(obj, name, base64.b64decode(value["bytes"]) if isinstance(value, dict) and "bytes" in value else value)
    return obj


#: ``with_options`` in Modal's names → the daemon's option names (older Modal names beside them).
_VARIANT_OPTIONS = {
    "gpu": "gpu",
    "cpu": "cpu",
    "memory": "memory",
    "timeout": "timeout",
    "retries": "retries",
    "max_containers": "maxContainers",
    "concurrency_limit": "maxContainers",
    "min_containers": "minContainers",
    "keep_warm": "minContainers",
    "buffer_containers": "bufferContainers",
    "scaledown_window": "scaledownWindow",
    "container_idle_timeout": "scaledownWindow",
    "max_inputs": "maxInputs",
    "allow_concurrent_inputs": "maxInputs",
}


def variant_options(cls_name: str, options: Dict[str, Any]) -> Dict[str, Any]:
    out: Dict[str, Any] = {}
    for k, v in options.items():
        if k not in _VARIANT_OPTIONS:
            takes = ", ".join(sorted(set(_VARIANT_OPTIONS) - {"concurrency_limit", "keep_warm", "container_idle_timeout", "allow_concurrent_inputs"}))
            raise InvalidError(f"{cls_name}.with_options({k}=...) is not supported by gantry: it takes {takes}")
        if v is None:
            continue
        if k == "retries" and hasattr(v, "to_option"):
            v = v.to_option()
        if k == "gpu" and isinstance(v, (list, tuple)):
            v = list(v)
        out[_VARIANT_OPTIONS[k]] = v
    return out


def role_of(f: Any) -> Optional[str]:
    """What @method(), @enter() or @exit() marked ``f`` as (None when unmarked)."""
    return getattr(f, _MARK, None)


def web_members(user_cls: type) -> List[str]:
    """The names of the class's web endpoint methods (@fastapi_endpoint, @asgi_app, @wsgi_app), in definition order."""
    seen: Dict[str, None] = {}
    for klass in reversed(user_cls.__mro__):
        for name, value in vars(klass).items():
            if getattr(value, "__gantry_web__", None) is not None:
                seen[name] = None
    return list(seen)


def members(user_cls: type, role: str) -> List[str]:
    """The names of the class's methods marked with ``role``, in definition order (base classes first)."""
    seen: Dict[str, None] = {}
    for klass in reversed(user_cls.__mro__):
        for name, value in vars(klass).items():
            if getattr(value, _MARK, None) == role:
                seen[name] = None
    return list(seen)


class _Method:
    """``Model().predict``: a Function of the instance's pool whose calls name this method."""

    def __init__(self, obj: "_Obj", name: str) -> None:
        self._obj = obj
        self._name = name

    def _function(self) -> Function:
        cls = self._obj._cls
        f = Function(cls.app_name, cls.name, client=cls._client, is_generator=cls._generators.get(self._name, False))
        f._info = cls._info
        f._method = self._name
        if self._obj._params or cls._options:
            f._variant = {"params": self._obj._params, "options": cls._options}
        return f

    def __getattr__(self, verb: str) -> Any:
        if verb.startswith("_"):
            raise AttributeError(verb)
        if verb == "local":
            return self._local
        if verb == "get_web_url":
            return self._web_url
        return getattr(self._function(), verb)

    def _web_url(self) -> str:
        """A web endpoint method's URL, with the instance's parameters as its query."""
        cls = self._obj._cls
        if cls._info is None:
            cls._hydrate()
        url = ((cls._info or {}).get("web_methods") or {}).get(self._name)
        if url is None:
            raise InvalidError(f"{cls.name}.{self._name} is not a web endpoint method")
        query = {k: ("true" if v is True else "false" if v is False else base64.b64decode(v["bytes"]).decode("utf-8", "replace") if isinstance(v, dict) else v) for k, v in self._obj._params.items()}
        return url + ("?" + urllib.parse.urlencode(query) if query else "")

    def _local(self, *args: Any, **kwargs: Any) -> Any:
        return getattr(self._obj._local_instance(), self._name)(*args, **kwargs)


class _Obj:
    """An instance handle: ``Model(size=2)``; its methods are attributes, its pool its parameter set's."""

    def __init__(self, cls: "Cls", params: Dict[str, Any]) -> None:
        self._cls = cls
        self._params = params
        self._local_obj: Any = None

    def __getattr__(self, name: str) -> _Method:
        if name.startswith("_"):
            raise AttributeError(name)
        self._cls._check_method(name)
        return _Method(self, name)

    def _local_instance(self) -> Any:
        user_cls = self._cls._user_cls
        if user_cls is None:
            raise InvalidError(f"{self._cls.name} was looked up by name and has no local code: call .remote() instead")
        if self._local_obj is None:
            obj = instantiate(user_cls, self._params)
            for hook in members(user_cls, "enter"):
                getattr(obj, hook)()
            self._local_obj = obj
        return self._local_obj


class Cls:
    """A deployed class: ``@app.cls`` gives one, ``Cls.from_name(app, name)`` finds one (lazily)."""

    def __init__(self, app_name: str, name: str, user_cls: Optional[type] = None, *, client: Any = None) -> None:
        self.app_name = app_name
        self.name = name
        self._user_cls = user_cls
        self._client = client
        self._methods: Optional[List[str]] = members(user_cls, "method") + web_members(user_cls) if user_cls is not None else None
        self._params: Optional[List[Dict[str, Any]]] = declared_params(user_cls) if user_cls is not None else None
        self._generators: Dict[str, bool] = {}
        self._info: Optional[Dict[str, Any]] = None
        #: with_options / with_concurrency: another pool with these options.
        self._options: Dict[str, Any] = {}
        if user_cls is not None:
            for m in self._methods or []:
                f = getattr(user_cls, m)
                self._generators[m] = inspect.isgeneratorfunction(f) or inspect.isasyncgenfunction(f)

    @classmethod
    def from_name(cls, app_name: str, name: str, *, client: Any = None) -> "Cls":
        for what, value in (("app_name", app_name), ("name", name)):
            if not isinstance(value, str) or not value:
                raise InvalidError(f"Cls.from_name: {what} must be a non-empty string, got {value!r}")
        return cls(app_name, name, client=client)

    def __call__(self, *args: Any, **kwargs: Any) -> _Obj:
        """An instance: ``Model(size=2)`` (keywords only); each distinct parameter set has its own pool."""
        if self._params is None:
            self._hydrate()
        return _Obj(self, check_params(self.name, self._params or [], args, kwargs))

    def with_options(self, **options: Any) -> "Cls":
        """The same class in a pool of its own with these options: ``Model.with_options(gpu="A100", max_containers=2)()``."""
        other = self._copy()
        other._options = {**self._options, **variant_options(self.name, options)}
        return other

    def with_concurrency(self, *, max_inputs: int, target_inputs: Optional[int] = None) -> "Cls":
        """The same class in a pool whose containers take up to ``max_inputs`` calls at once."""
        return self.with_options(max_inputs=max_inputs)

    def with_batching(self, *, max_batch_size: int, wait_ms: int) -> "Cls":
        raise InvalidError(f"{self.name}.with_batching() is not supported by gantry: set @gantry.batched(max_batch_size=, wait_ms=) on the method")

    def _copy(self) -> "Cls":
        other = Cls(self.app_name, self.name, client=self._client)
        other._user_cls, other._methods, other._params = self._user_cls, self._methods, self._params
        other._generators, other._info, other._options = dict(self._generators), self._info, dict(self._options)
        return other

    def __getattr__(self, name: str) -> Any:
        if name.startswith("_"):
            raise AttributeError(name)
        raise InvalidError(f"{self.name}.{name}: call a method on an instance, {self.name}().{name}.remote(...), not on the class")

    def _hydrate(self) -> None:
        """Learns the class's methods and parameters from the daemon (once): NotFoundError for an unknown one."""
        info = Function(self.app_name, self.name, client=self._client).hydrate()._info or {}
        methods = info.get("methods")
        if methods is None:
            raise NotFoundError(f"{self.app_name}.{self.name} is a function, not a class")
        self._info = info
        self._methods = list(methods)
        self._params = list(info.get("params") or [])
        self._generators = {m: m in (info.get("generator_methods") or []) for m in self._methods}

    def _check_method(self, name: str) -> None:
        if self._methods is None:
            self._hydrate()
        assert self._methods is not None
        if name not in self._methods:
            raise AttributeError(f"class {self.name} has no method {name!r} (its methods: {', '.join(self._methods)})")

    def __repr__(self) -> str:
        return f"Cls({self.app_name}.{self.name})"
