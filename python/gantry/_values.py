"""How values travel (issue 17). Between a Python program and a Python function they are pickled
(the standard library's pickle: no dependency on either side, and classes from the app file
unpickle wherever that module imports); with anything else they are JSON. The daemon stores each
payload with its format and never unpickles.

Why not cloudpickle (Modal's choice): the client and agent stay standard-library only, and a
function's container holds the app file under its own module name, so classes defined there pickle
by reference. What stdlib pickle cannot send (lambdas, classes defined in ``__main__``) is refused
in the caller, naming the argument.
"""
from __future__ import annotations

import base64
import builtins
import math
import os
import pickle
from typing import Any, Dict, List, Optional, Sequence, Tuple

from .exception import DeserializationError, ExecutionError, FunctionTimeoutError, RemoteError, RequestSizeError, SerializationError

#: Protocol 4 reads on every Python gantry supports (>= 3.9), in the caller and in the image.
PICKLE_PROTOCOL = 4
#: The daemon's default request limit (8 MiB): a larger pickled input is refused before sending.
MAX_INPUT_BYTES = 8 * 1024 * 1024
#: Builtin exceptions a remote error never becomes: ``TimeoutError`` would read as "still pending",
#: the ``Stop*`` ones would end a caller's loop or generator.
_NOT_MAPPED = {"TimeoutError", "StopIteration", "StopAsyncIteration"}


def pickles_to(info: Optional[Dict[str, Any]], app_name: str) -> bool:
    """Whether calls of this function carry pickled values: a Python function, and this program
    is no other app's container (those send JSON: unpickling runs code, so pickles cross no app)."""
    if not info or info.get("runtime") != "python" or info.get("web"):
        return False
    own = os.environ.get("GANTRY_APP")
    return "GANTRY_CONTAINER_ID" not in os.environ or own == app_name


def _name(i: Any) -> str:
    return f"positional argument {i}" if isinstance(i, int) else f"keyword argument {i!r}"


def pickled_body(where: str, args: Sequence[Any], kwargs: Dict[str, Any]) -> Dict[str, Any]:
    """``{"pickle": base64}`` of (args, kwargs); an argument that does not pickle is named."""
    try:
        data = pickle.dumps((tuple(args), dict(kwargs)), protocol=PICKLE_PROTOCOL)
    except Exception as exc:
        items: List[Tuple[Any, Any]] = [*enumerate(args), *kwargs.items()]
        for key, value in items:
            try:
                pickle.dumps(value, protocol=PICKLE_PROTOCOL)
            except Exception as e:
                raise SerializationError(f"{where}: {_name(key)} ({type(value).__name__}) cannot be pickled: {e}") from None
        raise SerializationError(f"{where}: the arguments cannot be pickled: {exc}") from None
    text = base64.b64encode(data).decode("ascii")
    if len(text) + 16 > MAX_INPUT_BYTES:
        raise RequestSizeError(f"{where}: the arguments are {len(text)} bytes pickled (base64), over the limit of {MAX_INPUT_BYTES} bytes")
    return {"pickle": text}


def result_of(call_id: str, view: Dict[str, Any]) -> Any:
    """A succeeded call's value: JSON as it came, or unpickled."""
    data = view.get("result_pickle")
    if data is None:
        return view.get("result")
    try:
        return pickle.loads(base64.b64decode(data))
    except Exception as exc:
        raise DeserializationError(f"the result of call {call_id} does not unpickle here: {type(exc).__name__}: {exc} (is the module that defines its class importable in this program?)") from None


def exception_of(call_id: str, error: Dict[str, Any]) -> BaseException:
    """The remote exception as the caller raises it: its own object when it came pickled, a builtin
    of its type, or RemoteError; ExecutionError when its class does not unpickle here."""
    remote_type = str(error.get("type") or "Error")
    message = str(error.get("message") or f"call {call_id} failed")
    tb = str(error.get("traceback") or "")
    exc: BaseException
    if error.get("pickled"):
        try:
            exc = pickle.loads(base64.b64decode(error["pickled"]))
            if not isinstance(exc, BaseException):
                raise TypeError(f"not an exception but {type(exc).__name__}")
        except Exception as why:
            exc = ExecutionError(f"call {call_id} raised {remote_type}: {message} (its class does not unpickle here: {why})", remote_type, tb, call_id)
    elif remote_type == "FunctionTimeoutError":
        exc = FunctionTimeoutError(message, tb, call_id)
    else:
        exc = _builtin_error(remote_type, message) or RemoteError(remote_type, message, tb, call_id)
    for attr, value in (("remote_type", remote_type), ("remote_traceback", tb), ("call_id", call_id)):
        try:
            setattr(exc, attr, value)
        except Exception:  # an exception class with slots: the note below still carries the traceback
            pass
    if tb and hasattr(exc, "add_note"):
        exc.add_note(f"remote traceback of call {call_id}:\n{tb.rstrip()}")
    return exc


def _builtin_error(remote_type: str, message: str) -> Optional[BaseException]:
    """``ValueError("…")`` for a remote ``ValueError``: builtin ``Exception`` subclasses only."""
    cls = getattr(builtins, remote_type, None)
    if remote_type in _NOT_MAPPED or not isinstance(cls, type) or not issubclass(cls, Exception):
        return None
    try:
        return cls(message)
    except Exception:  # a builtin with another constructor (UnicodeDecodeError): stays a RemoteError
        return None


def check_json(value: Any, where: str, path: str = "", seen: Optional[List[int]] = None) -> None:
    """Raises TypeError unless ``value`` is made of dict (str keys), list, tuple, str, int, float, bool, None."""
    at = f" at {path}" if path else ""
    if value is None or isinstance(value, (str, bool, int)):
        return
    if isinstance(value, float):
        if not math.isfinite(value):
            raise TypeError(f"{where} is {value!r}{at}, which JSON cannot carry (NaN and infinities are refused)")
        return
    if not isinstance(value, (dict, list, tuple)):
        raise TypeError(
            f"{where} is {type(value).__name__}{at}, not a JSON value: "
            "arguments to a TypeScript function (or another app's) must be dict, list, tuple, str, int, float, bool or None"
        )
    seen = seen if seen is not None else []
    if id(value) in seen:
        raise TypeError(f"{where} contains itself{at}, which JSON cannot carry")
    seen.append(id(value))
    if isinstance(value, dict):
        for k, v in value.items():
            if not isinstance(k, str):
                raise TypeError(f"{where} has a key {k!r} of type {type(k).__name__}{at}: JSON object keys must be str")
            check_json(v, where, f"{path}[{k!r}]", seen)
    else:
        for i, v in enumerate(value):
            check_json(v, where, f"{path}[{i}]", seen)
    seen.pop()


def json_body(where: str, args: Sequence[Any], kwargs: Dict[str, Any]) -> Dict[str, Any]:
    for i, a in enumerate(args):
        check_json(a, f"{where}: positional argument {i}")
    for k, v in kwargs.items():
        check_json(v, f"{where}: keyword argument {k!r}")
    body: Dict[str, Any] = {"args": list(args)}
    if kwargs:
        body["kwargs"] = dict(kwargs)
    return body


# --- Single values (Dicts and Queues, issue 20) ----------------------------------------------------

#: The largest integer JSON carries exactly between Python and JavaScript (Number.MAX_SAFE_INTEGER).
MAX_SAFE_INTEGER = 2**53 - 1
#: Nesting deeper than this is pickled rather than walked (the walk recurses).
_MAX_JSON_DEPTH = 200


def json_exact(value: Any) -> bool:
    """Whether JSON carries ``value`` exactly: it reads back (here, or in TypeScript) equal and of
    the same types. True for str (well-formed Unicode), bool, None, int within ±(2**53 − 1), a finite
    float that is not integral (``1.0`` would read back as the int ``1``), and lists and dicts with
    str keys of those, exactly of those types (subclasses such as IntEnum or OrderedDict are not)."""
    return _exact(value, set(), 0)


def _well_formed(s: str) -> bool:
    try:
        s.encode("utf-8")
    except UnicodeEncodeError:  # a lone surrogate: JSON text in UTF-8 cannot keep it
        return False
    return True


def _exact(v: Any, ancestors: set, depth: int) -> bool:
    t = type(v)
    if v is None or t is bool:
        return True
    if t is str:
        return _well_formed(v)
    if t is int:
        return -MAX_SAFE_INTEGER <= v <= MAX_SAFE_INTEGER
    if t is float:
        return math.isfinite(v) and not v.is_integer()
    if t is not list and t is not dict:
        return False
    if id(v) in ancestors or depth >= _MAX_JSON_DEPTH:
        return False
    ancestors.add(id(v))
    try:
        if t is list:
            return all(_exact(x, ancestors, depth + 1) for x in v)
        return all(type(k) is str and _well_formed(k) and _exact(x, ancestors, depth + 1) for k, x in v.items())
    finally:
        ancestors.discard(id(v))


def encode_value(value: Any, where: str) -> Dict[str, Any]:
    """``value`` as a Dict or Queue carries it (protocol/dicts-queues.ts WireValue): ``{"value": v}``
    when JSON holds it exactly (``json_exact``), else ``{"pickled": base64}`` (pickle protocol 4).
    SerializationError, naming ``where``, when it does not pickle."""
    if json_exact(value):
        return {"value": value}
    try:
        data = pickle.dumps(value, protocol=PICKLE_PROTOCOL)
    except Exception as exc:
        raise SerializationError(f"{where} ({type(value).__name__}) cannot be pickled: {exc}") from None
    return {"pickled": base64.b64encode(data).decode("ascii")}


def decode_value(wire: Any, where: str) -> Any:
    """A WireValue as the value it carries: ``value`` as it is, ``pickled`` unpickled.
    DeserializationError, naming ``where``, when it is neither or does not unpickle here."""
    if isinstance(wire, dict):
        if "pickled" in wire and isinstance(wire["pickled"], str):
            try:
                return pickle.loads(base64.b64decode(wire["pickled"]))
            except Exception as exc:
                raise DeserializationError(
                    f"{where} does not unpickle here: {type(exc).__name__}: {exc} (is the module that defines its class importable in this program?)"
                ) from None
        if "value" in wire:
            return wire["value"]
    raise DeserializationError(f"{where}: the daemon sent {str(wire)[:80]}, which is neither {{\"value\": ...}} nor {{\"pickled\": ...}}")
