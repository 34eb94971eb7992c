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

import inspect
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


def parameter(*, default: Any = ..., init: bool = True) -> Any:
    """A class parameter (``size: int = modal.parameter(default=1)``): not yet supported by gantry."""
    raise InvalidError("modal.parameter() is not supported by gantry yet: classes take no parameters (each would be a pool of its own)")


def members(user_cls: type, role: str) -> List[str]:
    """The names of the class's methods marked with ``role``, in definition order (base classes first)."""
    seen: Dict[str, None] = {}
    for klass in reversed(user_cls.__mro__):
        for name, value in vars(klass).items():
            if getattr(value, _MARK, None) == role:
                seen[name] = None
    return list(seen)


class _Method:
    """``Model().predict``: a Function of the class's pool whose calls name this method."""

    def __init__(self, cls: "Cls", name: str) -> None:
        self._cls = cls
        self._name = name

    def _function(self) -> Function:
        f = Function(self._cls.app_name, self._cls.name, client=self._cls._client, is_generator=self._cls._generators.get(self._name, False))
        f._method = self._name
        return f

    def __getattr__(self, verb: str) -> Any:
        if verb.startswith("_"):
            raise AttributeError(verb)
        if verb == "local":
            return self._local
        return getattr(self._function(), verb)

    def _local(self, *args: Any, **kwargs: Any) -> Any:
        return getattr(self._cls._local_instance(), self._name)(*args, **kwargs)


class _Obj:
    """An instance handle: ``Model()``; its methods are attributes."""

    def __init__(self, cls: "Cls") -> None:
        self._cls = cls

    def __getattr__(self, name: str) -> _Method:
        if name.startswith("_"):
            raise AttributeError(name)
        self._cls._check_method(name)
        return _Method(self._cls, name)


class Cls:
    """A deployed class: ``@app.cls`` gives one, ``Cls.from_name(app, name)`` finds one (lazily)."""

    def __init__(self, app_name: str, name: str, user_cls: Optional[type] = None, *, client: Any = None) -> None:
        self.app_name = app_name
        self.name = name
        self._user_cls = user_cls
        self._client = client
        self._methods: Optional[List[str]] = members(user_cls, "method") if user_cls is not None else None
        self._generators: Dict[str, bool] = {}
        if user_cls is not None:
            for m in self._methods or []:
                f = getattr(user_cls, m)
                self._generators[m] = inspect.isgeneratorfunction(f) or inspect.isasyncgenfunction(f)
        self._local_obj: Any = None

    @classmethod
    def from_name(cls, app_name: str, name: str, *, client: Any = None) -> "Cls":
        for what, value in (("app_name", app_name), ("name", name)):
            if not isinstance(value, str) or not value:
                raise InvalidError(f"Cls.from_name: {what} must be a non-empty string, got {value!r}")
        return cls(app_name, name, client=client)

    def __call__(self, *args: Any, **kwargs: Any) -> _Obj:
        if args or kwargs:
            raise InvalidError(f"{self.name}() takes no parameters in gantry yet (modal.parameter is not supported)")
        return _Obj(self)

    def __getattr__(self, name: str) -> Any:
        if name.startswith("_"):
            raise AttributeError(name)
        raise InvalidError(f"{self.name}.{name}: call a method on an instance, {self.name}().{name}.remote(...), not on the class")

    def _check_method(self, name: str) -> None:
        if self._methods is None:
            info = Function(self.app_name, self.name, client=self._client).hydrate()._info or {}
            methods = info.get("methods")
            if methods is None:
                raise NotFoundError(f"{self.app_name}.{self.name} is a function, not a class")
            self._methods = list(methods)
            self._generators = {m: m in (info.get("generator_methods") or []) for m in self._methods}
        if name not in self._methods:
            raise AttributeError(f"class {self.name} has no method {name!r} (its methods: {', '.join(self._methods)})")

    def _local_instance(self) -> Any:
        if self._user_cls is None:
            raise InvalidError(f"{self.name} was looked up by name and has no local code: call .remote() instead")
        if self._local_obj is None:
            obj = self._user_cls()
            for hook in members(self._user_cls, "enter"):
                getattr(obj, hook)()
            self._local_obj = obj
        return self._local_obj

    def __repr__(self) -> str:
        return f"Cls({self.app_name}.{self.name})"
