"""Stopping one input when the daemon asks (a ``cancel`` message: its call was cancelled, ran past
its timeout, or its app stopped), while the container's other inputs run on.

- A plain ``def`` runs in a worker thread: ``InputCancellation`` is raised in that thread
  (``PyThreadState_SetAsyncExc``), at its next bytecode; a thread blocked in C (``time.sleep``, a
  socket read) sees it when that call returns. Once the input is over, a cancel still pending for
  its thread is cleared under the same lock, so it never reaches the next input the thread runs.
- An ``async def`` has its task cancelled (``asyncio.CancelledError`` inside it).

Either way the input ends as usual and its output goes back: that is what frees its slot.
"""
from __future__ import annotations

import asyncio
import ctypes
import threading
from typing import Dict, Optional, Tuple

try:
    from gantry.exception import InputCancellation
except ImportError:  # an image without the gantry package: the agent still runs

    class InputCancellation(BaseException):  # type: ignore[no-redef]
        pass


Key = Tuple[str, int]


def _raise_in(thread_id: int, exc: Optional[type]) -> None:
    ctypes.pythonapi.PyThreadState_SetAsyncExc(ctypes.c_ulong(thread_id), ctypes.py_object(exc) if exc is not None else None)


class Cancels:
    """The inputs running now, by (call ID, attempt): where a cancel must go."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._threads: Dict[Key, int] = {}
        self._tasks: Dict[Key, Tuple[asyncio.AbstractEventLoop, "asyncio.Task[object]"]] = {}
        self._asked: Dict[Key, int] = {}

    def enter_thread(self, key: Key) -> None:
        with self._lock:
            self._threads[key] = threading.get_ident()

    def exit_thread(self, key: Key) -> None:
        """The input is over in this thread: a cancel still pending for it is withdrawn."""
        with self._lock:
            ident = self._threads.pop(key, None)
            if self._asked.pop(key, None) is not None and ident is not None:
                _raise_in(ident, None)

    def enter_task(self, key: Key, task: "asyncio.Task[object]") -> None:
        with self._lock:
            self._tasks[key] = (task.get_loop(), task)

    def exit_task(self, key: Key) -> None:
        with self._lock:
            self._tasks.pop(key, None)

    def cancel(self, key: Key) -> bool:
        """Asks the running input to stop; False when it is not running here (over already)."""
        with self._lock:
            ident = self._threads.get(key)
            if ident is not None:
                self._asked[key] = ident
                _raise_in(ident, InputCancellation)
                return True
            found = self._tasks.get(key)
        if found is None:
            return False
        loop, task = found
        loop.call_soon_threadsafe(task.cancel)
        return True
