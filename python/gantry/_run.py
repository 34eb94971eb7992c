"""``python -m gantry._run APP_FILE[::ENTRYPOINT] [--name value ...]``: runs an app file's local
entrypoint on this machine (``gantry run``). Options become the entrypoint's keyword arguments,
converted by its annotations (int, float, bool flags, str), as Modal's ``modal run`` does.
"""
from __future__ import annotations

import inspect
import sys
import traceback
from typing import Any, Callable, Dict, List

from ._appfile import AppFileError, import_app_file


def _parse(f: Callable, argv: List[str]) -> Dict[str, Any]:
    params = inspect.signature(f).parameters
    kwargs: Dict[str, Any] = {}
    i = 0
    while i < len(argv):
        arg = argv[i]
        if not arg.startswith("--"):
            raise AppFileError(f"unexpected argument {arg!r}: the entrypoint takes --name value options")
        key, _, inline = arg[2:].partition("=")
        name = key.replace("-", "_")
        p = params.get(name)
        if p is None:
            known = ", ".join(f"--{n.replace('_', '-')}" for n in params) or "none"
            raise AppFileError(f"the entrypoint {f.__name__} has no option --{key} (it takes: {known})")
        kind = p.annotation if p.annotation is not inspect.Parameter.empty else (type(p.default) if p.default not in (inspect.Parameter.empty, None) else str)
        kind = {"int": int, "float": float, "bool": bool, "str": str}.get(kind, kind) if isinstance(kind, str) else kind
        if kind is bool and not inline:
            kwargs[name] = True
            i += 1
            continue
        if not inline:
            if i + 1 >= len(argv):
                raise AppFileError(f"--{key} needs a value")
            inline = argv[i + 1]
            i += 1
        try:
            kwargs[name] = kind(inline) if kind in (int, float, str) else (inline.lower() in ("1", "true", "yes")) if kind is bool else inline
        except ValueError:
            raise AppFileError(f"--{key} takes a {kind.__name__}, got {inline!r}") from None
        i += 1
    return kwargs


def main(argv: List[str]) -> int:
    if not argv:
        print("usage: python -m gantry._run APP_FILE[::ENTRYPOINT] [--name value ...]", file=sys.stderr)
        return 2
    target, args = argv[0], argv[1:]
    path, _, wanted = target.partition("::")
    try:
        _, app, standins = import_app_file(path)
        if standins.names():
            print(f"[gantry] not importable here, read as stand-ins: {', '.join(standins.names())}", file=sys.stderr)
        entrypoints = app.registered_entrypoints
        if wanted:
            if wanted not in entrypoints:
                raise AppFileError(f"{path} has no local entrypoint {wanted!r} (it has: {', '.join(sorted(entrypoints)) or 'none'})")
            ep = entrypoints[wanted]
        elif len(entrypoints) == 1:
            ep = next(iter(entrypoints.values()))
        elif not entrypoints:
            raise AppFileError(f"{path} has no local entrypoint: mark one with @app.local_entrypoint()")
        else:
            raise AppFileError(f"{path} has {len(entrypoints)} local entrypoints; name one: {path}::{sorted(entrypoints)[0]}")
        kwargs = _parse(ep.raw_f, args)
    except AppFileError as e:
        print(f"Error: {e}", file=sys.stderr)
        return 2
    try:
        result = ep.raw_f(**kwargs)
        if inspect.iscoroutine(result):
            import asyncio

            asyncio.run(result)
    except Exception:
        traceback.print_exc()
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
