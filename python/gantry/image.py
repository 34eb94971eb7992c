"""Images, built up immutably like Modal's: ``Image.debian_slim().apt_install("curl").env({...})``.

The daemon turns an image into a generated Dockerfile (gantry's Python runtime layer on the base,
then these steps) and tags the result by its content hash: an unchanged image is never rebuilt.
"""
from __future__ import annotations

import contextlib
import os
import re
from typing import Any, Dict, Iterator, List, Optional, Sequence, Union

from .exception import InvalidError

_VERSION = re.compile(r"^3\.\d{1,2}$")
_ENV_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


def _flat(items: Sequence[Union[str, Sequence[str]]], what: str) -> List[str]:
    out: List[str] = []
    for item in items:
        for s in [item] if isinstance(item, str) else item:
            if not isinstance(s, str) or not s:
                raise InvalidError(f"{what} takes non-empty strings, got {s!r}")
            out.append(s)
    if not out:
        raise InvalidError(f"{what} needs at least one argument")
    return out


class Image:
    def __init__(self, base: Dict[str, Any], steps: Optional[List[Dict[str, Any]]] = None) -> None:
        self._base = base
        self._steps: List[Dict[str, Any]] = steps or []

    @staticmethod
    def debian_slim(python_version: Optional[str] = None) -> "Image":
        """gantry's Python base (Debian 12 with its Python 3.11, or the official python image)."""
        base: Dict[str, Any] = {"kind": "python"}
        if python_version is not None:
            if not isinstance(python_version, str) or not _VERSION.match(python_version):
                raise InvalidError(f'python_version must look like "3.11", got {python_version!r}')
            base["version"] = python_version
        return Image(base)

    @staticmethod
    def python(python_version: Optional[str] = None) -> "Image":
        """The same as ``debian_slim``."""
        return Image.debian_slim(python_version)

    @staticmethod
    def from_registry(tag: str, add_python: Optional[str] = None) -> "Image":
        """Any image with Python >= 3.9 as ``python3``; gantry adds its agent on top."""
        if add_python is not None:
            raise InvalidError("add_python is not supported: use an image that has python3 (>= 3.9)")
        if not isinstance(tag, str) or not tag:
            raise InvalidError(f"from_registry takes an image reference like 'python:3.12-slim', got {tag!r}")
        return Image({"kind": "registry", "ref": tag})

    def apt_install(self, *packages: Union[str, Sequence[str]]) -> "Image":
        return self._with({"kind": "apt", "packages": _flat(packages, "apt_install")})

    def pip_install(self, *packages: Union[str, Sequence[str]]) -> "Image":
        """Installs packages with pip when the image is built (needs pip in the image and a reachable index)."""
        return self._with({"kind": "pip", "packages": _flat(packages, "pip_install")})

    def run_commands(self, *commands: Union[str, Sequence[str]]) -> "Image":
        return self._with({"kind": "run", "commands": _flat(commands, "run_commands")})

    def env(self, vars: Dict[str, str]) -> "Image":
        if not isinstance(vars, dict) or not all(isinstance(k, str) and _ENV_NAME.match(k) and isinstance(v, str) for k, v in vars.items()):
            raise InvalidError("env takes a dict of NAME: value strings (names are letters, digits and _)")
        return self._with({"kind": "env", "vars": dict(vars)})

    def add_local_dir(self, local_path: Union[str, "os.PathLike[str]"], remote_path: str) -> "Image":
        """Copies a folder of this machine into the image at ``remote_path`` (an absolute path)."""
        local = os.path.abspath(os.fspath(local_path))
        # In a function's container the folder is already in the image: nothing to check there.
        if "GANTRY_CONTAINER_ID" not in os.environ and not os.path.isdir(local):
            raise InvalidError(f"add_local_dir: {local} is not a folder")
        if not isinstance(remote_path, str) or not remote_path.startswith("/"):
            raise InvalidError(f"add_local_dir: remote_path must be an absolute path, got {remote_path!r}")
        return self._with({"kind": "dir", "local": local, "remote": remote_path})

    @contextlib.contextmanager
    def imports(self) -> Iterator[None]:
        """``with image.imports(): import torch``: imports that exist only in the image."""
        try:
            yield
        except ImportError:
            pass

    def to_spec(self) -> Dict[str, Any]:
        """The plain-data form the daemon takes (folders still named by their local path)."""
        return {"base": dict(self._base), "steps": [dict(s) for s in self._steps]}

    def _with(self, step: Dict[str, Any]) -> "Image":
        return Image(self._base, [*self._steps, step])
