"""The errors gantry raises, in one module, with Modal's names (``modal.exception``).

Callers branch on the class, never on message text. ``FunctionCall.get()`` raises the builtin
``TimeoutError`` while a call is still pending; none of the classes here derives from it, so
``except TimeoutError`` means "not finished yet" and nothing else. A remote function that raised a
builtin exception (``ValueError``, ``KeyError``, …) arrives as that builtin instead of
``RemoteError``, with the remote traceback attached (see ``gantry.functions``).
"""
from __future__ import annotations

from typing import Optional


class Error(Exception):
    """Base of gantry's errors. ``code`` is the daemon's error code where one came with it."""

    code: str = "error"


class InvalidError(Error):
    """An app file, an argument or a call ID that gantry cannot take."""

    code = "invalid_argument"


class RequestSizeError(InvalidError):
    """A request body over the daemon's limit (8 MiB for a call's arguments)."""

    code = "payload_too_large"


class NotFoundError(Error):
    """Unknown app, function or call ID."""

    code = "not_found"


class OutputExpiredError(Error):
    """The call finished, but its result was dropped after the function's ``result_ttl``."""

    code = "output_expired"


class CancelledError(Error):
    """The call was cancelled (``FunctionCall.cancel()``, or its app was stopped) before it finished.

    Not ``asyncio.CancelledError``: this one is an ordinary ``Exception``.
    """

    code = "cancelled"


class InputCancellation(BaseException):
    """Raised inside a function's input when the daemon asks it to stop: its call was cancelled,
    ran past its timeout, or its app was stopped (an ``async def`` has its task cancelled instead).

    A ``BaseException``, as Modal's: ``except Exception`` in the function does not swallow it. The
    input keeps its container slot until it has really stopped; one that does not stop within the
    grace (30 s) gets its container replaced.
    """


class ResourceExhaustedError(Error):
    """The daemon refused a call for now: the function's queue is full. Retry later."""

    code = "queue_full"


class AuthError(Error):
    """The daemon's HTTP port wants a token: set ``GANTRY_TOKEN`` to the daemon's token (its ``GANTRY_TOKEN`` or ``--token-file``)."""

    code = "unauthorized"


class PermissionDeniedError(Error):
    """The daemon refused what the caller may not do (code in a function's container reaching another
    app's sandbox or a secret, a value another app pickled): Modal's name for a 403."""

    code = "forbidden"


class DaemonNotRunningError(Error):
    """No gantry daemon answers on the socket or URL; start one with ``gantry daemon start``."""

    code = "daemon_not_running"


class RemoteError(Error):
    """The function raised an error that is not a Python builtin (or the call failed otherwise).

    ``remote_type`` is the remote error's class name, ``traceback`` (also ``remote_traceback``)
    its traceback as text, ``call_id`` the call it came from.
    """

    code = "function_failed"

    def __init__(self, remote_type: str, message: str, traceback: str = "", call_id: Optional[str] = None) -> None:
        super().__init__(f"{remote_type}: {message}")
        self.remote_type = remote_type
        self.remote_message = message
        self.traceback = traceback
        self.remote_traceback = traceback
        self.call_id = call_id

    def __reduce__(self):  # type: ignore[no-untyped-def]
        return (type(self), (self.remote_type, self.remote_message, self.traceback, self.call_id))


class FunctionTimeoutError(RemoteError):
    """An attempt ran past the function's ``timeout`` (and no retries were left)."""

    code = "function_timeout"

    def __init__(self, message: str, traceback: str = "", call_id: Optional[str] = None) -> None:
        super().__init__("FunctionTimeoutError", message, traceback, call_id)

    def __reduce__(self):  # type: ignore[no-untyped-def]
        return (type(self), (self.remote_message, self.traceback, self.call_id))


class ExecutionError(Error):
    """A remote exception that cannot be rebuilt here (its class does not unpickle in this
    program): ``remote_type`` names the class, ``remote_traceback`` holds the remote traceback."""

    code = "execution_error"

    def __init__(self, message: str, remote_type: str = "", traceback: str = "", call_id: Optional[str] = None) -> None:
        super().__init__(message)
        self.remote_type = remote_type
        self.traceback = traceback
        self.remote_traceback = traceback
        self.call_id = call_id

    def __reduce__(self):  # type: ignore[no-untyped-def]
        return (type(self), (str(self), self.remote_type, self.traceback, self.call_id))


class SandboxTimeoutError(Error):
    """A Sandbox ran past its ``timeout`` (or its ``idle_timeout``) and was ended (exit code 124):
    ``sb.wait()`` raises it. Not the builtin ``TimeoutError`` (see above)."""

    code = "sandbox_timeout"


class SandboxTerminatedError(Error):
    """A Sandbox was terminated (``sb.terminate()``, an app stop, a daemon restart; exit code 137):
    ``sb.wait()`` raises it unless ``raise_on_termination=False``."""

    code = "sandbox_terminated"


class SerializationError(Error):
    """An argument cannot be pickled to send (a lock, an open file, a lambda): the message names it."""

    code = "serialization_error"


class DeserializationError(Error):
    """A result came back pickled but does not unpickle in this program (its class is not importable here)."""

    code = "deserialization_error"
