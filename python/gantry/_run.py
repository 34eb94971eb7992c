"""``python -m gantry._run [--detach] [--check] APP_FILE[::NAME] [options]``: what ``gantry run``
runs for a Python app file (after deploying it), as Modal's ``modal run`` does.

- ``NAME`` picks a local entrypoint (``@app.local_entrypoint()``), run here, or a function
  (``@app.function()``), run remotely, its result printed. Without it: the file's one local
  entrypoint, else its one function; several are refused, naming them.
- The options after the file are the parameters of that entrypoint or function, by name
  (``--batch-size 4`` for ``batch_size``), converted by their annotations, else their defaults'
  types: ``int``, ``float``, ``str``, and ``bool`` as flags (``--flag`` / ``--no-flag``). A parameter
  without a default is a required option. An unknown option, a missing one or a bad value is
  refused naming the option and its type (exit 2); ``--help`` lists them.
- Ctrl-C (or SIGTERM/SIGHUP) ends the run. Without ``--detach``, the calls this run spawned that are
  still queued or running are cancelled first (the calls made through the gantry client in this
  process, seen as they are spawned); with it, they go on. A run that ends by itself leaves its
  calls as they are: the app is deployed, not ephemeral as Modal's is.
- ``--check`` only checks the name and the options (``gantry run`` does so before it deploys).
"""
from __future__ import annotations

import inspect
import os
import re
import signal
import sys
import threading
import time
import traceback
import typing
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Callable, Dict, List, Optional, Tuple

from ._appfile import AppFileError, import_app_file
from ._client import Client

_TYPES: Dict[Any, str] = {int: "int", float: "float", str: "str", bool: "bool"}
_BY_NAME = {v: k for k, v in _TYPES.items()}
#: The options of ``gantry run`` itself, and gantry's (they go before the file).
_RUN_OPTIONS = ("detach", "deploy", "no-deploy", "json", "verbose", "url", "token-file", "ca-cert", "token")
_TRUE = ("1", "true", "yes", "on")
_FALSE = ("0", "false", "no", "off")
_EXIT_INTERRUPTED = 130


class UsageError(Exception):
    """A bad target or option: exit 2, one line."""


class Option:
    """One parameter of the target as a command-line option."""

    def __init__(self, name: str, type_name: str, default: Any) -> None:
        self.name = name
        self.flag = "--" + name.replace("_", "-")
        #: int, float, str or bool; anything else is named as it is and cannot be given.
        self.type_name = type_name
        self.default = default

    @property
    def required(self) -> bool:
        return self.default is inspect.Parameter.empty

    @property
    def supported(self) -> bool:
        return self.type_name in _BY_NAME

    def describe(self) -> str:
        """``--n INT`` or ``--verbose / --no-verbose``."""
        if self.type_name == "bool":
            return f"{self.flag} / --no-{self.flag[2:]}"
        return f"{self.flag} {self.type_name.upper()}"


def _type_name(annotation: Any) -> str:
    """``int`` for int, ``Optional[int]``, ``int | None`` or the string ``"int"``; else the annotation's name."""
    if isinstance(annotation, str):
        text = annotation.replace("typing.", "").replace(" ", "")
        m = re.match(r"^Optional\[(\w+)\]$", text) or re.match(r"^(\w+)\|None$", text) or re.match(r"^None\|(\w+)$", text)
        return m.group(1) if m else text
    if annotation in _TYPES:
        return _TYPES[annotation]
    args = [a for a in typing.get_args(annotation) if a is not type(None)]
    if typing.get_origin(annotation) is not None and len(args) == 1 and len(typing.get_args(annotation)) == 2 and args[0] in _TYPES:
        return _TYPES[args[0]]  # Optional[X], X | None
    return getattr(annotation, "__name__", None) or str(annotation)


def options_of(f: Callable) -> List[Option]:
    """The options a function's parameters make (``*args`` and ``**kwargs`` make none)."""
    try:
        hints = typing.get_type_hints(f)
    except Exception:  # an annotation that does not resolve here: read it as written
        hints = {}
    options = []
    for p in inspect.signature(f).parameters.values():
        if p.kind in (p.VAR_POSITIONAL, p.VAR_KEYWORD):
            continue
        annotation = hints.get(p.name, p.annotation)
        if annotation is not inspect.Parameter.empty:
            type_name = _type_name(annotation)
        elif p.default is not inspect.Parameter.empty and p.default is not None and type(p.default) in _TYPES:
            type_name = _TYPES[type(p.default)]
        else:
            type_name = "str"
        options.append(Option(p.name, type_name, p.default))
    return options


def _convert(o: Option, text: str) -> Any:
    if not o.supported:
        raise UsageError(f"{o.flag} is a parameter of type {o.type_name}, which gantry run cannot take from the command line (it takes int, float, str and bool)")
    if o.type_name == "bool":
        if text.lower() in _TRUE:
            return True
        if text.lower() in _FALSE:
            return False
        raise UsageError(f"{o.flag} is a bool flag: give {o.flag} or --no-{o.flag[2:]}, not {text!r}")
    try:
        return _BY_NAME[o.type_name](text)
    except ValueError:
        article = "an" if o.type_name == "int" else "a"
        raise UsageError(f"{o.flag} takes {article} {o.type_name}, got {text!r}") from None


def _takes(options: List[Option]) -> str:
    return ", ".join(f"{o.flag} ({o.type_name})" for o in options) or "none"


def parse_options(what: str, options: List[Option], argv: List[str]) -> Dict[str, Any]:
    """The keyword arguments ``argv`` gives (``--name value``, ``--name=value``, ``--flag``, ``--no-flag``);
    defaults are left to the function. Raises UsageError naming the option and its type."""
    by_flag = {}
    for o in options:
        by_flag[o.flag[2:]] = o
        by_flag.setdefault(o.name, o)  # --batch_size as well as --batch-size
    kwargs: Dict[str, Any] = {}
    i = 0
    while i < len(argv):
        arg = argv[i]
        i += 1
        if arg == "--":
            continue
        if not arg.startswith("--"):
            raise UsageError(f"unexpected argument {arg!r}: {what} takes options by name (--name value; it takes: {_takes(options)})")
        key, eq, inline = arg[2:].partition("=")
        o = by_flag.get(key)
        negated = False
        if o is None and key.startswith("no-") and by_flag.get(key[3:]) is not None and by_flag[key[3:]].type_name == "bool":
            o, negated = by_flag[key[3:]], True
        if o is None:
            own = key in _RUN_OPTIONS
            hint = "; gantry run's own options (--detach, --no-deploy) and gantry's (--json, --url …) go before the file" if own else ""
            raise UsageError(f"{what} has no option --{key} (it takes: {_takes(options)}){hint}")
        if o.type_name == "bool" and not eq:
            kwargs[o.name] = not negated
            continue
        if negated:
            raise UsageError(f"--no-{o.flag[2:]} takes no value")
        if not eq:
            if i >= len(argv):
                raise UsageError(f"{o.flag} needs a value ({o.type_name})")
            inline = argv[i]
            i += 1
        kwargs[o.name] = _convert(o, inline)
    missing = [o for o in options if o.required and o.name not in kwargs]
    if missing:
        names = ", ".join(f"{o.flag} ({o.type_name})" for o in missing)
        raise UsageError(f"{what} needs {names}")
    return kwargs


def help_text(usage: str, what: str, doc: Optional[str], options: List[Option]) -> str:
    """What ``--help`` prints: the usage, what the target is, and each option with its type and default."""
    parts = [f"[{o.describe()}]" if not o.required else o.describe() for o in options]
    lines = [f"usage: gantry run {usage}{' ' if parts else ''}{' '.join(parts)}", "", what]
    if doc:
        lines += ["", inspect.cleandoc(doc)]
    if options:
        lines += ["", "options:"]
        width = max(len(o.describe()) for o in options)
        for o in options:
            default = "required" if o.required else f"default {o.default!r}"
            lines.append(f"  {o.describe().ljust(width)}  {o.type_name}, {default}")
    return "\n".join(lines)


class Target:
    """What ``NAME`` picked: a local entrypoint (run here) or a function (run remotely)."""

    def __init__(self, name: str, f: Callable, handle: Any = None) -> None:
        self.name = name
        self.f = f
        #: The function's handle (gantry.Function) for a function; None for an entrypoint.
        self.handle = handle

    @property
    def what(self) -> str:
        return f"the function {self.name}" if self.handle is not None else f"the entrypoint {self.name}"


def pick(path: str, app: Any, wanted: str) -> Target:
    """The entrypoint or function ``wanted`` names; without a name, the one entrypoint, else the one function."""
    entrypoints = app.registered_entrypoints
    definitions = app._functions
    functions = sorted(n for n, d in definitions.items() if "cls" not in d.options)
    classes = sorted(n for n, d in definitions.items() if "cls" in d.options)
    known = f"local entrypoints: {', '.join(sorted(entrypoints)) or 'none'}; functions: {', '.join(functions) or 'none'}"
    if wanted:
        if wanted in entrypoints:
            return Target(wanted, entrypoints[wanted].raw_f)
        if wanted in classes:
            raise UsageError(f"{wanted} in {path} is a class: gantry run runs a local entrypoint or a function ({known})")
        if wanted in functions:
            d = definitions[wanted]
            return Target(wanted, d.raw_f, d.handle)
        raise UsageError(f"{path} has no local entrypoint or function named {wanted!r} ({known})")
    if len(entrypoints) == 1:
        name, ep = next(iter(entrypoints.items()))
        return Target(name, ep.raw_f)
    if len(entrypoints) > 1:
        names = sorted(entrypoints)
        raise UsageError(f"{path} has {len(names)} local entrypoints ({', '.join(names)}): name one, e.g. gantry run {path}::{names[0]}")
    if len(functions) == 1:
        d = definitions[functions[0]]
        return Target(functions[0], d.raw_f, d.handle)
    if functions:
        raise UsageError(f"{path} has no local entrypoint and {len(functions)} functions ({', '.join(functions)}): name one, e.g. gantry run {path}::{functions[0]}")
    raise UsageError(f"{path} has no local entrypoint: mark one with @app.local_entrypoint()")


class SpawnedCalls:
    """The calls this process spawns, seen as the gantry client makes them (``Client.json``), less
    those it saw finish: what Ctrl-C cancels."""

    _SPAWN = re.compile(r"/v1/apps/[^/]+/functions/[^/]+/calls(/batch)?$")
    _READ = re.compile(r"^/v1/calls/([^/?]+)\?")

    def __init__(self) -> None:
        self.calls: Dict[str, Client] = {}
        self._lock = threading.Lock()
        self._original: Optional[Callable] = None

    def saw(self, client: Client, method: str, path: str, answer: Any) -> None:
        if not isinstance(answer, dict):
            return
        if method == "POST" and self._SPAWN.search(path):
            ids = answer.get("call_ids") if path.endswith("/batch") else [answer.get("call_id")]
            with self._lock:
                for call_id in ids or []:
                    if isinstance(call_id, str):
                        self.calls[call_id] = client
        elif method == "GET" and answer.get("status") in ("succeeded", "failed", "cancelled"):
            m = self._READ.match(path)
            if m:
                with self._lock:
                    self.calls.pop(m.group(1), None)

    def install(self) -> None:
        original = self._original = Client.json
        tracker = self

        def json(client: Client, method: str, path: str, *args: Any, **kwargs: Any) -> Any:
            answer = original(client, method, path, *args, **kwargs)
            tracker.saw(client, method, path, answer)
            return answer

        Client.json = json  # type: ignore[method-assign]

    def uninstall(self) -> None:
        if self._original is not None:
            Client.json = self._original  # type: ignore[method-assign]
            self._original = None

    def cancel_all(self) -> Tuple[int, int]:
        """Cancels every call still tracked, 16 at a time: (cancelled, could not be cancelled)."""
        with self._lock:
            calls = list(self.calls.items())

        def cancel(item: Tuple[str, Client]) -> Optional[bool]:
            call_id, client = item
            try:
                status, _ = client.request("POST", f"/v1/calls/{call_id}/cancel")
            except Exception:
                return False
            return True if status == 200 else None if status in (404, 409) else False  # 409: it had finished

        pool = ThreadPoolExecutor(max_workers=16)
        try:
            outcomes = list(pool.map(cancel, calls))
        finally:
            pool.shutdown(wait=False)
        return outcomes.count(True), outcomes.count(False)


def _say(line: str) -> None:
    """A line on stderr written straight to its descriptor: the signal may have come in the middle of
    a print, whose stream lock the interrupted frame still holds."""
    os.write(2, (line + "\n").encode("utf-8", "replace"))


def _interrupted(tracker: SpawnedCalls, detach: bool) -> None:
    """Ends the run after Ctrl-C: cancels the calls it spawned (unless --detach), then exits at once,
    without waiting for threads still blocked on a call."""
    # What the entrypoint printed goes out, unless the signal came in the middle of a print (then its
    # lock is held by the interrupted frame: the flush would wait for ever, so it gets a second).
    flusher = threading.Thread(target=sys.stdout.flush, daemon=True)
    flusher.start()
    flusher.join(1.0)
    if detach:
        n = len(tracker.calls)
        left = f"the {n} call(s) this run spawned and did not see finish go on" if n else "no call this run spawned is left running"
        _say(f"\n[gantry] interrupted (--detach): {left}")
    elif tracker.calls:
        _say(f"\n[gantry] interrupted: cancelling the {len(tracker.calls)} call(s) this run spawned that may still run (--detach leaves them running) …")
        try:
            cancelled, failed = tracker.cancel_all()
            note = f"; {failed} could not be cancelled (gantry calls ls shows them)" if failed else ""
            _say(f"[gantry] cancelled {cancelled} call(s){note}")
        except KeyboardInterrupt:
            _say("[gantry] interrupted again: calls not yet cancelled go on")
    else:
        _say("\n[gantry] interrupted")
    os._exit(_EXIT_INTERRUPTED)


#: When the first interrupting signal came (time.monotonic()); None before.
_interrupted_at: Optional[float] = None
#: One Ctrl-C on a terminal reaches this process twice, from the terminal and from ``gantry run``.
_SAME_SIGNAL_S = 0.5


def _on_signal(signum: int, frame: Any) -> None:
    """The first SIGINT, SIGTERM or SIGHUP interrupts the run; later a SIGINT (not a copy of the first)
    stops the cancelling, and the others are ignored."""
    global _interrupted_at
    now = time.monotonic()
    if _interrupted_at is not None and (signum != signal.SIGINT or now - _interrupted_at < _SAME_SIGNAL_S):
        return
    if _interrupted_at is None:
        _interrupted_at = now
    raise KeyboardInterrupt


def _run_target(target: Target, kwargs: Dict[str, Any]) -> None:
    if target.handle is None:
        result = target.f(**kwargs)
        if inspect.iscoroutine(result):
            import asyncio

            loop = asyncio.new_event_loop()
            try:
                loop.run_until_complete(result)
                loop.run_until_complete(loop.shutdown_asyncgens())
                loop.run_until_complete(loop.shutdown_default_executor())
            finally:
                loop.close()
        return
    if target.handle.is_generator:
        for item in target.handle.remote_gen(**kwargs):
            print(item, flush=True)
        return
    result = target.handle.remote(**kwargs)
    if result is not None:
        print(result, flush=True)


def main(argv: List[str]) -> int:
    detach = check = False
    while argv and argv[0] in ("--detach", "--check"):
        detach, check = detach or argv[0] == "--detach", check or argv[0] == "--check"
        argv = argv[1:]
    if not argv or argv[0].startswith("-"):
        print("usage: python -m gantry._run [--detach] [--check] APP_FILE[::NAME] [options]", file=sys.stderr)
        return 2
    spec, args = argv[0], argv[1:]
    path, _, wanted = spec.partition("::")
    try:
        _, app, standins = import_app_file(path)
        if standins.names() and not check:
            print(f"[gantry] not importable here, read as stand-ins: {', '.join(standins.names())}", file=sys.stderr)
        target = pick(path, app, wanted)
        options = options_of(target.f)
        flags = args[: args.index("--")] if "--" in args else args
        if "--help" in flags or "-h" in flags:
            usage = f"{path}::{target.name}"
            what = (
                f"Runs the function {target.name} of app {app.name} remotely, with these options as its arguments, and prints its result."
                if target.handle is not None
                else f"Runs the local entrypoint {target.name} of app {app.name} here."
            )
            print(help_text(usage, what, inspect.getdoc(target.f), options))
            return 0
        kwargs = parse_options(target.what, options, args)
    except (AppFileError, UsageError) as e:
        print(f"Error: {e}", file=sys.stderr)
        return 2
    if check:
        return 0
    tracker = SpawnedCalls()
    tracker.install()
    signals = [s for s in (signal.SIGINT, signal.SIGTERM, getattr(signal, "SIGHUP", None)) if s is not None]
    before = {s: signal.signal(s, _on_signal) for s in signals}
    try:
        _run_target(target, kwargs)
    except KeyboardInterrupt:
        _interrupted(tracker, detach)
    except Exception:
        traceback.print_exc()
        return 1
    finally:
        tracker.uninstall()
        for s, handler in before.items():
            signal.signal(s, handler)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
