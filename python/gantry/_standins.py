"""Stand-ins for modules that exist only in a function's image.

Reading an app file's definitions (``gantry deploy``) or running its local entrypoint (``gantry
run``) imports it on this machine, where ``import torch`` or ``import fastapi`` may fail. While a
``StandIns`` finder is installed, a module that the app's own files import and that cannot be
found here becomes a stand-in: every attribute, call or subclass of it is another stand-in.
Imports made by installed libraries (their optional dependencies) are left alone.
"""
from __future__ import annotations

import importlib.abc
import importlib.machinery
import os
import sys
import types
from typing import Any, List, Optional, Sequence, Set


class StandIn:
    """Anything a missing module offers: attributes, calls, subclasses, decorators."""

    def __init__(self, name: str) -> None:
        object.__setattr__(self, "_name", name)

    def __getattr__(self, attr: str) -> "StandIn":
        if attr.startswith("__") and attr.endswith("__"):
            raise AttributeError(attr)
        return StandIn(f"{self._name}.{attr}")

    def __setattr__(self, attr: str, value: Any) -> None:
        pass

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        # Used as a decorator (@torch.no_grad() on a function): leave the function as it is.
        if len(args) == 1 and not kwargs and callable(args[0]) and not isinstance(args[0], StandIn):
            return args[0]
        return StandIn(f"{self._name}()")

    def __mro_entries__(self, bases: tuple) -> tuple:
        return (object,)  # class Model(torch.nn.Module): a plain class here

    def __getitem__(self, key: Any) -> "StandIn":
        return StandIn(f"{self._name}[...]")

    def __iter__(self):  # type: ignore[no-untyped-def]
        return iter(())

    def __len__(self) -> int:
        return 0

    def __bool__(self) -> bool:
        return False

    def __repr__(self) -> str:
        return f"<stand-in for {self._name}>"

    __str__ = __repr__


class _StandInModule(types.ModuleType):
    def __getattr__(self, attr: str) -> StandIn:
        if attr.startswith("__") and attr.endswith("__"):
            raise AttributeError(attr)
        return StandIn(f"{self.__name__}.{attr}")


class _Loader(importlib.abc.Loader):
    def create_module(self, spec: importlib.machinery.ModuleSpec) -> types.ModuleType:
        m = _StandInModule(spec.name)
        m.__path__ = []  # a package, so that `import torch.nn` works too
        m.__all__ = []
        return m

    def exec_module(self, module: types.ModuleType) -> None:
        pass


class StandIns(importlib.abc.MetaPathFinder):
    """Installed last on sys.meta_path while an app file is read; records what it stood in for."""

    def __init__(self, app_dir: str) -> None:
        self.app_dir = os.path.realpath(app_dir) + os.sep
        self.missing: Set[str] = set()

    def __enter__(self) -> "StandIns":
        sys.meta_path.append(self)
        return self

    def __exit__(self, *exc: Any) -> None:
        if self in sys.meta_path:
            sys.meta_path.remove(self)

    def find_spec(self, fullname: str, path: Optional[Sequence[str]], target: Optional[types.ModuleType] = None) -> Optional[importlib.machinery.ModuleSpec]:
        parent = fullname.rpartition(".")[0]
        if parent and isinstance(sys.modules.get(parent), _StandInModule):
            return importlib.machinery.ModuleSpec(fullname, _Loader(), is_package=True)
        if parent or not self._imported_by_app():
            return None
        self.missing.add(fullname)
        return importlib.machinery.ModuleSpec(fullname, _Loader(), is_package=True)

    def _imported_by_app(self) -> bool:
        """Whether the import statement is in one of the app's own files (not in a library)."""
        frame = sys._getframe(2)
        while frame is not None:
            file = frame.f_code.co_filename
            if not file.startswith("<frozen importlib") and "importlib" not in os.path.basename(os.path.dirname(file) or ""):
                real = os.path.realpath(file)
                return real.startswith(self.app_dir) and not any(d in real for d in ("/site-packages/", "/dist-packages/"))
            frame = frame.f_back  # type: ignore[assignment]
        return False

    def names(self) -> List[str]:
        return sorted(self.missing)
