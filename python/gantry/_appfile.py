"""Imports an app file the way ``gantry deploy`` and ``gantry run`` need it: as a module named
after the file, its folder first on sys.path, missing image-only modules stood in for, and errors
that point at the user's file and line.
"""
from __future__ import annotations

import importlib.util
import os
import sys
import traceback
import types
from typing import Tuple

from ._standins import StandIns
from .app import App, _apps


class AppFileError(Exception):
    """The app file cannot be read: a syntax error, an error while importing it, no App."""


def module_name(path: str) -> str:
    name = os.path.splitext(os.path.basename(path))[0]
    if not name.isidentifier():
        raise AppFileError(f"{path}: an app file's name must be a Python module name (letters, digits and _), not {name!r}")
    return name


def _user_traceback(exc: BaseException, app_dir: str) -> str:
    """The traceback from the first frame in the user's files on (gantry's own frames left out)."""
    frames = traceback.extract_tb(exc.__traceback__)
    for i, f in enumerate(frames):
        if os.path.realpath(f.filename).startswith(app_dir):
            frames = frames[i:]
            break
    lines = ["Traceback (most recent call last):\n", *traceback.format_list(frames), *traceback.format_exception_only(type(exc), exc)]
    return "".join(lines)


def import_app_file(path: str) -> Tuple[types.ModuleType, App, StandIns]:
    """Imports the app file; returns its module, its one App and the stand-ins it needed."""
    path = os.path.abspath(path)
    if not os.path.isfile(path):
        raise AppFileError(f"app file {path} does not exist")
    name = module_name(path)
    app_dir = os.path.dirname(path)
    sys.path.insert(0, app_dir)
    _apps.clear()
    standins = StandIns(app_dir)
    spec = importlib.util.spec_from_file_location(name, path)
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    with standins:
        try:
            spec.loader.exec_module(module)
        except SyntaxError as e:
            where = f"{e.filename}:{e.lineno}" if e.filename else path
            text = f"\n    {e.text.rstrip()}" if e.text else ""
            raise AppFileError(f"{where}: SyntaxError: {e.msg}{text}") from None
        except Exception as e:  # the app's own code failed while being imported
            raise AppFileError(f"importing {path} failed:\n{_user_traceback(e, os.path.realpath(app_dir) + os.sep).rstrip()}") from None
    apps = [a for a in _apps.values()]
    if not apps:
        raise AppFileError(f'{path} defines no gantry App: add app = gantry.App("name")')
    if len(apps) > 1:
        raise AppFileError(f"{path} defines {len(apps)} Apps ({', '.join(a.name for a in apps)}); deploy one App per file")
    return module, apps[0], standins
