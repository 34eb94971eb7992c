"""Images, built up immutably like Modal's: ``Image.debian_slim().pip_install("numpy").env({...})``.

The daemon turns an image into a generated Dockerfile (the base, these steps in order, then
gantry's runtime layer) and tags the result by its content hash: an unchanged image is never
rebuilt, and changing one step rebuilds only what follows it. Local files (add_local_*, a
requirements file, a find_links folder, a Dockerfile's context) are read when the app is deployed
and sent with it.
"""
from __future__ import annotations

import contextlib
import copy
import importlib.util
import os
import re
from typing import Any, Callable, Dict, Iterator, List, Optional, Sequence, Union

from .exception import InvalidError

_VERSION = re.compile(r"^3\.\d{1,2}$")
_ENV_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
_URL = re.compile(r"^[a-z][a-z0-9+.-]*://", re.I)
# Where add_local_python_source puts modules: on the functions' PYTHONPATH.
PYTHON_SOURCE_DIR = "/opt/gantry/src"

PathLike = Union[str, "os.PathLike[str]"]


def _flat(items: Sequence[Union[str, Sequence[str]]], what: str, allow_empty: bool = False) -> List[str]:
    out: List[str] = []
    for item in items:
        try:
            group = [item] if isinstance(item, str) else list(item)
        except TypeError:  # None, a number: refused below as not a string
            group = [item]
        for s in group:
            if not isinstance(s, str) or not s:
                raise InvalidError(f"{what} takes non-empty strings, got {s!r}")
            out.append(s)
    if not out and not allow_empty:
        raise InvalidError(f"{what} needs at least one argument")
    return out


def _in_container() -> bool:
    # In a function's container the files are already in the image: nothing local to check.
    return "GANTRY_CONTAINER_ID" in os.environ


def _remote(path: Any, what: str) -> str:
    path = os.fspath(path) if isinstance(path, os.PathLike) else path
    if not isinstance(path, str) or not path.startswith("/"):
        raise InvalidError(f"{what}: remote_path must be an absolute path, got {path!r}")
    return path


def _unsupported(what: str, **given: Any) -> None:
    """Modal's options that gantry's builds do not have yet: refused by name rather than ignored."""
    for name, value in given.items():
        if value:
            raise InvalidError(f"{what}: {name}= is not supported by gantry's image builds")


def _pip_options(what: str, find_links: Optional[str], index_url: Optional[str], extra_index_url: Union[str, Sequence[str], None], pre: bool, extra_options: str) -> Dict[str, Any]:
    opts: Dict[str, Any] = {}
    if index_url:
        opts["indexUrl"] = index_url
    if extra_index_url:
        opts["extraIndexUrls"] = [extra_index_url] if isinstance(extra_index_url, str) else list(extra_index_url)
    if find_links:
        if _URL.match(find_links):
            opts["findLinks"] = find_links
        else:
            local = os.path.abspath(os.path.expanduser(find_links))
            if not _in_container() and not os.path.isdir(local):
                raise InvalidError(f"{what}: find_links={find_links!r} is neither a URL nor a folder of this machine")
            opts["findLinksLocal"] = local  # sent with the deploy, then named by its hash
    if pre:
        opts["pre"] = True
    if extra_options:
        if not isinstance(extra_options, str):
            raise InvalidError(f"{what}: extra_options is one string of pip options, got {extra_options!r}")
        opts["extraOptions"] = extra_options
    return opts


class Image:
    def __init__(self, base: Dict[str, Any], steps: Optional[List[Dict[str, Any]]] = None) -> None:
        self._base = base
        self._steps: List[Dict[str, Any]] = steps or []

    # Bases

    @staticmethod
    def debian_slim(python_version: Optional[str] = None, force_build: bool = False) -> "Image":
        """gantry's Python base (Debian 12 with its Python 3.11 and pip, or the official python image)."""
        _unsupported("debian_slim", force_build=force_build)
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
    def from_registry(tag: str, secret: Any = None, *, add_python: Optional[str] = None, setup_dockerfile_commands: Sequence[str] = (), force_build: bool = False, **kwargs: Any) -> "Image":
        """Any image with Python >= 3.9 as ``python3`` (on this machine, or pulled); gantry adds its agent on top."""
        if add_python is not None:
            raise InvalidError("add_python is not supported: use an image that has python3 (>= 3.9)")
        _unsupported("from_registry", secret=secret, setup_dockerfile_commands=list(setup_dockerfile_commands), force_build=force_build, **kwargs)
        if not isinstance(tag, str) or not tag:
            raise InvalidError(f"from_registry takes an image reference like 'python:3.12-slim', got {tag!r}")
        return Image({"kind": "registry", "ref": tag})

    @staticmethod
    def from_dockerfile(path: PathLike, *, context_dir: Optional[PathLike] = None, add_python: Optional[str] = None, force_build: bool = False, secrets: Any = None, gpu: Any = None, **kwargs: Any) -> "Image":
        """An image built from your Dockerfile; its COPY and ADD sources are read from ``context_dir``
        (default: the current folder) and sent with the deploy. Its final image needs python3 (>= 3.9)."""
        if add_python is not None:
            raise InvalidError("add_python is not supported: install python3 in the Dockerfile")
        _unsupported("from_dockerfile", force_build=force_build, secrets=secrets, gpu=gpu, **kwargs)
        local = os.path.abspath(os.fspath(path))
        context = os.path.abspath(os.fspath(context_dir)) if context_dir is not None else os.getcwd()
        if not _in_container():
            if not os.path.isfile(local):
                raise InvalidError(f"from_dockerfile: {local} is not a file")
            if not os.path.isdir(context):
                raise InvalidError(f"from_dockerfile: context_dir {context} is not a folder")
        return Image({"kind": "dockerfile", "local": local, "contextDir": context})

    # Packages

    def apt_install(self, *packages: Union[str, Sequence[str]], force_build: bool = False, secrets: Any = None, gpu: Any = None, env: Any = None) -> "Image":
        _unsupported("apt_install", force_build=force_build, secrets=secrets, gpu=gpu, env=env)
        return self._with({"kind": "apt", "packages": _flat(packages, "apt_install")})

    def pip_install(self, *packages: Union[str, Sequence[str]], find_links: Optional[str] = None, index_url: Optional[str] = None, extra_index_url: Optional[str] = None, pre: bool = False, extra_options: str = "", force_build: bool = False, secrets: Any = None, gpu: Any = None, env: Any = None) -> "Image":
        """Installs packages with pip into the Python that runs the functions, from the host's package index unless given one."""
        _unsupported("pip_install", force_build=force_build, secrets=secrets, gpu=gpu, env=env)
        pkgs = _flat(packages, "pip_install", allow_empty=True)
        if not pkgs:
            return self
        return self._pip("pip", "pip_install", pkgs, None, find_links, index_url, extra_index_url, pre, extra_options)

    def uv_pip_install(self, *packages: Union[str, Sequence[str]], requirements: Optional[Sequence[PathLike]] = None, find_links: Optional[str] = None, index_url: Optional[str] = None, extra_index_url: Optional[str] = None, pre: bool = False, extra_options: str = "", force_build: bool = False, uv_version: Optional[str] = None, secrets: Any = None, gpu: Any = None, env: Any = None) -> "Image":
        """Installs packages with uv (installed into the image by the first such step)."""
        _unsupported("uv_pip_install", force_build=force_build, uv_version=uv_version, secrets=secrets, gpu=gpu, env=env)
        pkgs = _flat(packages, "uv_pip_install", allow_empty=True)
        reqs = [requirements] if isinstance(requirements, (str, os.PathLike)) else list(requirements or [])
        if len(reqs) > 1:
            raise InvalidError("uv_pip_install: gantry takes one requirements file per step")
        if not pkgs and not reqs:
            return self
        req = self._requirements_file("uv_pip_install", reqs[0]) if reqs else None
        return self._pip("uv", "uv_pip_install", pkgs, req, find_links, index_url, extra_index_url, pre, extra_options)

    def pip_install_from_requirements(self, requirements_txt: PathLike, find_links: Optional[str] = None, *, index_url: Optional[str] = None, extra_index_url: Optional[str] = None, pre: bool = False, extra_options: str = "", force_build: bool = False, secrets: Any = None, gpu: Any = None, env: Any = None) -> "Image":
        """Installs a requirements.txt of this machine (sent with the deploy) with pip."""
        _unsupported("pip_install_from_requirements", force_build=force_build, secrets=secrets, gpu=gpu, env=env)
        req = self._requirements_file("pip_install_from_requirements", requirements_txt)
        return self._pip("pip", "pip_install_from_requirements", [], req, find_links, index_url, extra_index_url, pre, extra_options)

    def pip_install_from_pyproject(self, pyproject_toml: PathLike, optional_dependencies: Sequence[str] = (), *, find_links: Optional[str] = None, index_url: Optional[str] = None, extra_index_url: Optional[str] = None, pre: bool = False, extra_options: str = "", force_build: bool = False, secrets: Any = None, gpu: Any = None, env: Any = None) -> "Image":
        """Installs a pyproject.toml's [project] dependencies (and the optional groups named) with pip."""
        _unsupported("pip_install_from_pyproject", force_build=force_build, secrets=secrets, gpu=gpu, env=env)
        pkgs = _pyproject_dependencies(os.fspath(pyproject_toml), list(optional_dependencies))
        if not pkgs:
            return self
        return self._pip("pip", "pip_install_from_pyproject", pkgs, None, find_links, index_url, extra_index_url, pre, extra_options)

    # Commands, environment, files

    def run_commands(self, *commands: Union[str, Sequence[str]], secrets: Any = None, gpu: Any = None, force_build: bool = False, env: Any = None) -> "Image":
        _unsupported("run_commands", secrets=secrets, gpu=gpu, force_build=force_build, env=env)
        return self._with({"kind": "run", "commands": _flat(commands, "run_commands")})

    def env(self, vars: Dict[str, str]) -> "Image":
        if not isinstance(vars, dict) or not all(isinstance(k, str) and _ENV_NAME.match(k) and isinstance(v, str) for k, v in vars.items()):
            raise InvalidError("env takes a dict of NAME: value strings (names are letters, digits and _)")
        return self._with({"kind": "env", "vars": dict(vars)})

    def workdir(self, path: PathLike) -> "Image":
        """The working folder of later build steps and of the functions."""
        return self._with({"kind": "workdir", "path": _remote(path, "workdir")})

    def add_local_dir(self, local_path: PathLike, remote_path: str, *, copy: bool = False, ignore: Union[Sequence[str], Callable[[Any], bool]] = ()) -> "Image":
        """Puts a folder of this machine at ``remote_path``: as a build step with copy=True, otherwise
        as the image's last layer (no build step may follow; a changed file rebuilds only that layer)."""
        local = os.path.abspath(os.fspath(local_path))
        if not _in_container() and not os.path.isdir(local):
            raise InvalidError(f"add_local_dir: {local} is not a folder")
        step: Dict[str, Any] = {"kind": "dir", "local": local, "remote": _remote(remote_path, "add_local_dir"), "copy": bool(copy)}
        if ignore:
            step["ignore"] = ignore if callable(ignore) else list(ignore)  # its own copy: images are immutable
        return self._with(step)

    def add_local_file(self, local_path: PathLike, remote_path: str, *, copy: bool = False) -> "Image":
        """Puts one file of this machine at ``remote_path`` (a path ending in / keeps the file's name)."""
        local = os.path.abspath(os.fspath(local_path))
        if not _in_container() and not os.path.isfile(local):
            raise InvalidError(f"add_local_file: {local} is not a file")
        remote = _remote(remote_path, "add_local_file")
        if remote.endswith("/"):
            remote += os.path.basename(local)
        return self._with({"kind": "file", "local": local, "remote": remote, "copy": bool(copy)})

    def add_local_python_source(self, *modules: str, copy: bool = False, ignore: Union[Sequence[str], Callable[[Any], bool]] = ()) -> "Image":
        """Puts local Python modules or packages, found as ``import`` finds them here, on the functions' path."""
        img = self
        for name in _flat(modules, "add_local_python_source"):
            if _in_container():
                img = img._with({"kind": "dir", "local": "", "remote": f"{PYTHON_SOURCE_DIR}/{name}", "copy": bool(copy)})
                continue
            spec = importlib.util.find_spec(name) if name.isidentifier() else None
            if spec is None or not (spec.submodule_search_locations or (spec.origin and spec.origin.endswith(".py"))):
                raise InvalidError(f"add_local_python_source: {name!r} is not a module or package of pure Python that import finds here")
            if spec.submodule_search_locations:
                img = img.add_local_dir(list(spec.submodule_search_locations)[0], f"{PYTHON_SOURCE_DIR}/{name}", copy=copy, ignore=ignore or ("**/__pycache__/**", "*.pyc"))
            else:
                img = img.add_local_file(spec.origin, f"{PYTHON_SOURCE_DIR}/{name}.py", copy=copy)  # type: ignore[arg-type]
        return img

    @contextlib.contextmanager
    def imports(self) -> Iterator[None]:
        """``with image.imports(): import torch``: imports that exist only in the image."""
        try:
            yield
        except ImportError:
            pass

    def to_spec(self) -> Dict[str, Any]:
        """The plain-data form the daemon takes (local files still named by their path until deploy)."""
        return copy.deepcopy({"base": self._base, "steps": self._steps})

    # Internals

    def _pip(self, installer: str, what: str, pkgs: List[str], requirements: Optional[str], find_links: Optional[str], index_url: Optional[str], extra_index_url: Any, pre: bool, extra_options: str) -> "Image":
        for p in pkgs:
            if p.lstrip().startswith("-"):
                raise InvalidError(f"{what}: {p!r} is an option, not a package: pass options with extra_options=")
        step: Dict[str, Any] = {"kind": "pip", "packages": pkgs}
        if installer == "uv":
            step["installer"] = "uv"
        if requirements:
            step["requirementsLocal"] = requirements
        opts = _pip_options(what, find_links, index_url, extra_index_url, pre, extra_options)
        if opts:
            step["options"] = opts
        return self._with(step)

    @staticmethod
    def _requirements_file(what: str, path: PathLike) -> str:
        local = os.path.abspath(os.fspath(path))
        if not _in_container() and not os.path.isfile(local):
            raise InvalidError(f"{what}: {local} is not a file")
        return local

    def _with(self, step: Dict[str, Any]) -> "Image":
        late = next((s for s in self._steps if s["kind"] in ("dir", "file") and not s.get("copy")), None)
        if late is not None and not (step["kind"] in ("dir", "file") and not step.get("copy")):
            raise InvalidError(
                f"an image build step ({step['kind']}) comes after add_local_{late['kind']}({late.get('local')!r}, {late['remote']!r}), "
                "which adds its files when the container starts: pass copy=True to it, or move it to the end"
            )
        return Image(self._base, [*self._steps, step])


def _pyproject_dependencies(path: str, groups: List[str]) -> List[str]:
    if _in_container():
        return []
    try:
        import tomllib  # Python >= 3.11
    except ImportError:  # pragma: no cover - older Pythons
        raise InvalidError("pip_install_from_pyproject reads pyproject.toml with tomllib: deploy with Python 3.11 or newer") from None
    try:
        with open(path, "rb") as fh:
            data = tomllib.load(fh)
    except FileNotFoundError:
        raise InvalidError(f"pip_install_from_pyproject: {os.path.abspath(path)} is not a file") from None
    except tomllib.TOMLDecodeError as e:
        raise InvalidError(f"pip_install_from_pyproject: {path} is not valid TOML: {e}") from None
    project = data.get("project") or {}
    if "dependencies" not in project:
        # Modal refuses this too: a Poetry file ([tool.poetry.dependencies]) would install nothing.
        raise InvalidError(f"pip_install_from_pyproject: {path} has no [project] dependencies list (a [tool.poetry] file: use pip_install with its packages)")
    deps = list(project.get("dependencies") or [])
    optional = project.get("optional-dependencies") or {}
    for g in groups:
        if g not in optional:
            raise InvalidError(f"pip_install_from_pyproject: {path} has no optional dependencies {g!r} (it has {', '.join(sorted(optional)) or 'none'})")
        deps.extend(optional[g])
    return deps
