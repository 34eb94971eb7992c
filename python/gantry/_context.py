"""Where code runs, and which input it runs: read by ``gantry.current_function_call_id()``,
``gantry.current_input_id()`` and ``gantry.is_local()``. In a function's container the agent binds
the context variable holding the running input (call ID, attempt); elsewhere there is none.
"""
from __future__ import annotations

import contextvars
import os
from typing import Optional, Tuple

_input: Optional["contextvars.ContextVar[Optional[Tuple[str, int]]]"] = None


def bind(var: "contextvars.ContextVar[Optional[Tuple[str, int]]]") -> None:
    """The agent's variable: (call ID, attempt) of the input the current thread or task runs."""
    global _input
    _input = var


def current_input() -> Optional[Tuple[str, int]]:
    return _input.get() if _input is not None else None


def in_container() -> bool:
    return "GANTRY_CONTAINER_ID" in os.environ


def current_function_call_id() -> Optional[str]:
    """The ID (``fc-…``) of the call this code runs for, in a function's container; None elsewhere."""
    running = current_input()
    return running[0] if running else None


def current_input_id() -> Optional[str]:
    """An ID of the input this code runs (one per attempt of a call: ``in-…-N``); None outside a function."""
    running = current_input()
    return f"in-{running[0][3:]}-{running[1]}" if running else None


def is_local() -> bool:
    """True in the program that deploys or calls functions; False inside a function's container."""
    return not in_container()
