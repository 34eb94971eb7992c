"""Local files an image names, read when the app is deployed: each becomes an asset (files by
relative path, base64, mode) named by its hash, and the step names the hash instead of the path.
Covers add_local_dir/add_local_file/add_local_python_source, requirements files, find_links
folders and from_dockerfile's context (only the files its COPY and ADD lines name).
"""
from __future__ import annotations

import base64
import fnmatch
import glob
import hashlib
import json
import os
import re
from pathlib import Path
from typing import Any, Callable, Dict, Iterable, List, Sequence, Union

from ._appfile import AppFileError

MAX_FOLDER_BYTES = 40 * 1024 * 1024
MAX_DOCKERFILE_BYTES = 256 * 1024

Asset = Dict[str, Dict[str, Any]]
Ignore = Union[Sequence[str], Callable[[Path], bool]]


def asset_hash(files: Asset) -> str:
    """The hash the daemon checks an asset against (daemon/docker/image-plan.ts assetHash)."""
    h = hashlib.sha256()
    for path in sorted(files):
        data = base64.b64decode(files[path]["data"])
        for part in (path.encode(), str(files[path]["mode"]).encode(), str(len(data)).encode()):
            h.update(part + b"\0")
        h.update(data)
    return h.hexdigest()


class _Packer:
    def __init__(self, what: str) -> None:
        self.what = what
        self.files: Asset = {}
        self.total = 0

    def add(self, path: str, name: str) -> None:
        with open(path, "rb") as fh:
            data = fh.read()
        self.total += len(data)
        if self.total > MAX_FOLDER_BYTES:
            raise AppFileError(f"{self.what}: the files are over the limit of {MAX_FOLDER_BYTES} bytes")
        mode = 0o755 if os.stat(path).st_mode & 0o111 else 0o644
        self.files[name] = {"data": base64.b64encode(data).decode(), "mode": mode}


def _ignored(ignore: Ignore, rel: str, full: str) -> bool:
    if callable(ignore):
        return bool(ignore(Path(full)))
    # "**/" also matches no folder ("**/*.log" takes a top-level a.log), as in cli/image-assets.ts.
    pats = [p for pat in ignore for p in {pat, pat.replace("**/", "")}]
    return any(fnmatch.fnmatch(rel, pat) or fnmatch.fnmatch(os.path.basename(rel), pat) for pat in pats)


def pack_folder(local: str, what: str, ignore: Ignore = ()) -> Asset:
    if not os.path.isdir(local):
        raise AppFileError(f"{what}: {local} is not a folder")
    packer = _Packer(what)
    for root, dirs, names in os.walk(local):
        dirs[:] = sorted(d for d in dirs if d != "__pycache__")
        for n in sorted(names):
            p = os.path.join(root, n)
            rel = os.path.relpath(p, local).replace(os.sep, "/")
            if os.path.islink(p) or not os.path.isfile(p) or _ignored(ignore, rel, p):
                continue  # links are not followed out of the folder
            packer.add(p, rel)
    return packer.files


def pack_file(local: str, name: str, what: str) -> Asset:
    if not os.path.isfile(local):
        raise AppFileError(f"{what}: {local} is not a file")
    packer = _Packer(what)
    packer.add(local, name)
    return packer.files


def _copy_sources(dockerfile: str) -> List[str]:
    """The local sources of a Dockerfile's COPY and ADD lines (not --from=, not URLs)."""
    text = re.sub(r"\\\r?\n", " ", dockerfile)
    sources: List[str] = []
    for line in text.splitlines():
        words = line.strip().split(None, 1)
        if len(words) < 2 or words[0].upper() not in ("COPY", "ADD"):
            continue
        lead = re.match(r"((?:--\S+\s+)*)(.*)$", words[1].strip(), re.S)
        if "--from" in lead.group(1):
            continue
        rest = lead.group(2)
        if rest.startswith("["):
            try:
                parts = [str(p) for p in json.loads(rest)]
            except ValueError:
                parts = rest.split()
        else:
            parts = rest.split()  # as Docker reads it: words between spaces, quotes kept (use the JSON form for spaces)
        flags = [p for p in parts if p.startswith("--")]
        if any(f.startswith("--from") for f in flags):
            continue
        args = [p for p in parts if not p.startswith("--")]
        sources.extend(s for s in args[:-1] if "://" not in s)
    return sources


def pack_dockerfile_context(dockerfile: str, context: str, path: str) -> Asset:
    """The files of ``context`` that the Dockerfile's COPY/ADD lines name; none may leave it."""
    what = f"from_dockerfile({path!r})"
    packer = _Packer(what)
    root = os.path.realpath(context)
    for src in _copy_sources(dockerfile):
        pattern = os.path.normpath(os.path.join(root, src.lstrip("/")))
        if not (pattern == root or pattern.startswith(root + os.sep)):
            raise AppFileError(f"{what}: COPY source {src!r} leaves the context folder {context}")
        matches = glob.glob(pattern) or []
        if not matches:
            raise AppFileError(f"{what}: COPY source {src!r} matches nothing in the context folder {context} (pass context_dir=)")
        for m in matches:
            for f in _walk(m):
                real = os.path.realpath(f)
                if not real.startswith(root + os.sep):
                    raise AppFileError(f"{what}: {f} leads out of the context folder {context}")
                packer.add(f, os.path.relpath(f, root).replace(os.sep, "/"))
    return packer.files


def _walk(path: str) -> Iterable[str]:
    if os.path.isfile(path):
        yield path
        return
    for r, dirs, names in os.walk(path):
        dirs.sort()
        for n in sorted(names):
            p = os.path.join(r, n)
            if os.path.isfile(p):
                yield p


def _store(assets: Dict[str, Asset], files: Asset) -> str:
    h = asset_hash(files)
    assets[h] = files
    return h


def _pack_step(step: Dict[str, Any], assets: Dict[str, Asset]) -> None:
    kind = step["kind"]
    if kind == "dir" and "local" in step:
        local = step.pop("local")
        step["hash"] = _store(assets, pack_folder(local, f"add_local_dir({local!r})", step.pop("ignore", ())))
    elif kind == "file" and "local" in step:
        local = step.pop("local")
        step["hash"] = _store(assets, pack_file(local, step["remote"].rsplit("/", 1)[-1], f"add_local_file({local!r})"))
    elif kind == "pip":
        req = step.pop("requirementsLocal", None)
        if req:
            step["requirements"] = _store(assets, pack_file(req, "requirements.txt", f"requirements {req!r}"))
        opts = step.get("options") or {}
        wheels = opts.pop("findLinksLocal", None)
        if wheels:
            opts["findLinksHash"] = _store(assets, pack_folder(wheels, f"find_links={wheels!r}"))


def _pack_base(base: Dict[str, Any], assets: Dict[str, Asset]) -> None:
    if base.get("kind") != "dockerfile" or "local" not in base:
        return
    path, context = base.pop("local"), base.pop("contextDir")
    if os.path.getsize(path) > MAX_DOCKERFILE_BYTES:
        raise AppFileError(f"from_dockerfile: {path} is over the limit of {MAX_DOCKERFILE_BYTES} bytes")
    with open(path, encoding="utf-8") as fh:
        text = fh.read()
    base.update({"dockerfile": text, "context": _store(assets, pack_dockerfile_context(text, context, path)), "path": path})


def pack_images(functions: List[Dict[str, Any]], assets: Dict[str, Asset]) -> None:
    """Replaces each image's local paths with the hashes of the files sent for them."""
    for f in functions:
        image = f["options"].get("image") or {}
        if image.get("base"):
            _pack_base(image["base"], assets)
        for step in image.get("steps", []):
            _pack_step(step, assets)
