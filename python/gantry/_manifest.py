"""``python -m gantry._manifest APP_FILE OUT_JSON``: reads an app file's definitions for
``gantry deploy`` without running any function, and writes them as JSON: the app, its functions
and options, its local entrypoints, the source files to ship, the local files its images copy (packed,
and their paths for ``gantry serve`` to watch), and the modules it imports that exist only in the
image. On an error it writes ``{"error": "..."}`` and exits 2.
"""
from __future__ import annotations

import json
import os
import sys
from typing import Any, Dict, List

from ._appfile import AppFileError, import_app_file
from ._assets import pack_images

MAX_SOURCE_FILES = 500
MAX_SOURCE_BYTES = 16 * 1024 * 1024


def _source_files(app_file: str) -> Dict[str, str]:
    """The app file, the .py files beside it, and the app folder's modules it imported (packages too)."""
    app_dir = os.path.dirname(os.path.abspath(app_file))
    wanted = {os.path.join(app_dir, f) for f in os.listdir(app_dir) if f.endswith(".py")}
    for m in list(sys.modules.values()):
        f = getattr(m, "__file__", None)
        if f and os.path.abspath(f).startswith(app_dir + os.sep) and f.endswith(".py") and "site-packages" not in f:
            wanted.add(os.path.abspath(f))
            d = os.path.dirname(os.path.abspath(f))
            while d != app_dir and d.startswith(app_dir):  # the packages it sits in
                init = os.path.join(d, "__init__.py")
                if os.path.isfile(init):
                    wanted.add(init)
                d = os.path.dirname(d)
    if len(wanted) > MAX_SOURCE_FILES:
        raise AppFileError(f"{app_dir} holds {len(wanted)} Python files to ship with the app, over the limit of {MAX_SOURCE_FILES}")
    files: Dict[str, str] = {}
    total = 0
    for f in sorted(wanted):
        with open(f, encoding="utf-8") as fh:
            text = fh.read()
        total += len(text.encode())
        files[os.path.relpath(f, app_dir).replace(os.sep, "/")] = text
    if total > MAX_SOURCE_BYTES:
        raise AppFileError(f"the app's Python files are {total} bytes, over the limit of {MAX_SOURCE_BYTES} bytes")
    return files


def local_paths(functions: List[Dict[str, Any]]) -> List[str]:
    """The local files and folders the functions' images copy (before ``pack_images`` names them by hash)."""
    paths = set()
    for f in functions:
        image = f["options"].get("image") or {}
        base = image.get("base") or {}
        if base.get("kind") == "dockerfile":
            paths.update(p for p in (base.get("local"), base.get("contextDir")) if p)
        for step in image.get("steps", []):
            paths.update(p for p in (step.get("local"), step.get("requirementsLocal"), (step.get("options") or {}).get("findLinksLocal")) if p)
    return sorted(paths)


def read(app_file: str) -> Dict[str, Any]:
    module, app, standins = import_app_file(app_file)
    functions = app.manifest()
    if not functions:
        raise AppFileError(f"app {app.name} in {app_file} defines no functions: use @app.function()")
    local = local_paths(functions)
    assets: Dict[str, Any] = {}
    pack_images(functions, assets)
    return {
        "app": app.name,
        "module": module.__name__,
        "functions": functions,
        "entrypoints": sorted(app.registered_entrypoints),
        "files": _source_files(app_file),
        "assets": assets,
        "standins": standins.names(),
        "local_paths": local,
        "python": "%d.%d.%d" % sys.version_info[:3],
    }


def main(argv: List[str]) -> int:
    if len(argv) != 2:
        print("usage: python -m gantry._manifest APP_FILE OUT_JSON", file=sys.stderr)
        return 2
    app_file, out = argv
    try:
        result: Dict[str, Any] = read(app_file)
        code = 0
    except AppFileError as e:
        result, code = {"error": str(e)}, 2
    with open(out, "w", encoding="utf-8") as fh:
        json.dump(result, fh)
    return code


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
