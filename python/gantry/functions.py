"""Placeholder until the client lands (owned by the client work)."""
from __future__ import annotations

from typing import Any, Callable, Optional


class Function:
    def __init__(self, app_name: str, function_name: str, raw_f: Optional[Callable] = None) -> None:
        self.app_name = app_name
        self.function_name = function_name
        self.raw_f = raw_f

    @property
    def object_name(self) -> str:
        return f"{self.app_name}.{self.function_name}"

    def local(self, *args: Any, **kwargs: Any) -> Any:
        assert self.raw_f is not None
        return self.raw_f(*args, **kwargs)


class FunctionCall:
    pass
