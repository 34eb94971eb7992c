"""Dynamic batching for ``@gantry.batched(max_batch_size=, wait_ms=)`` (Modal's ``@modal.batched``):
inputs that arrive within ``wait_ms`` of the first (at most ``max_batch_size``) run as one call
whose arguments are lists; its list of results is handed back one per input. Standard library only.
"""
from __future__ import annotations

import threading
from typing import Any, Callable, Dict, List, Optional, Sequence, Tuple

Arguments = Tuple[List[Any], Dict[str, Any]]


class Batcher:
    """Collects inputs and hands each full (or timed-out) batch to ``run``."""

    def __init__(self, max_size: int, wait_s: float, run: Callable[[List[Any]], None]) -> None:
        self._max = max(1, max_size)
        self._wait = max(0.0, wait_s)
        self._run = run
        self._pending: List[Any] = []
        self._lock = threading.Lock()
        self._timer: Optional[threading.Timer] = None

    def add(self, item: Any) -> None:
        batch: List[Any] = []
        with self._lock:
            self._pending.append(item)
            if len(self._pending) >= self._max:
                batch = self._take()
            elif self._timer is None:
                self._timer = threading.Timer(self._wait, self._fire)
                self._timer.daemon = True
                self._timer.start()
        if batch:
            self._run(batch)

    def _fire(self) -> None:
        with self._lock:
            batch = self._take()
        if batch:
            self._run(batch)

    def _take(self) -> List[Any]:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        batch, self._pending = self._pending[: self._max], self._pending[self._max :]
        return batch


def transpose(calls: Sequence[Arguments], fn_name: str) -> Arguments:
    """Each input's arguments become lists: ``f(1)``, ``f(2)`` → ``f([1, 2])``; keywords likewise."""
    first_args, first_kwargs = calls[0]
    for args, kwargs in calls:
        if len(args) != len(first_args) or set(kwargs) != set(first_kwargs):
            raise TypeError(f"the inputs batched for {fn_name} do not all pass the same arguments (each call of a @batched function passes the same positional and keyword arguments)")
    args = [[a[i] for a, _ in calls] for i in range(len(first_args))]
    kwargs = {k: [kw[k] for _, kw in calls] for k in first_kwargs}
    return args, kwargs


def results(value: Any, size: int, fn_name: str) -> List[Any]:
    """The batch's return value as one result per input: a list (or tuple) of the batch's length."""
    if not isinstance(value, (list, tuple)):
        raise TypeError(f"@batched function {fn_name} must return a list (one result per input), not {type(value).__name__}")
    if len(value) != size:
        raise ValueError(f"@batched function {fn_name} returned {len(value)} results for a batch of {size} inputs")
    return list(value)
