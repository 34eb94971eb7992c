"""What ``Sandbox.create`` and ``sb.exec`` may take, checked before anything is sent, as
``protocol/sandboxes.ts`` checks it again in the daemon: each bad argument is an ``InvalidError``
naming the argument and its limit. ``create_body`` and ``exec_body`` build the request bodies.
"""
from __future__ import annotations

import os
import re
from pathlib import PurePosixPath
from typing import Any, Dict, List, Optional, Sequence, Tuple

from ._appfile import AppFileError
from ._assets import pack_images
from .exception import InvalidError
from .image import Image
from .secret import Secret

#: As SANDBOX_LIMITS in protocol/sandboxes.ts.
MAX_TIMEOUT_S = 24 * 3600
COMMAND_BYTES = 65_536
MAX_ARGS = 4096
MAX_TAGS = 20
TAG_LENGTH = 256
MAX_SECRETS = 20
MEMORY_MIB = (6, 4 * 1024 * 1024)
MAX_CPU = 1024

_ENV_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
_GPU = re.compile(r"^(any|[A-Za-z0-9-]+)(:[1-8])?$")
_SANDBOX_NAME = re.compile(r"^[A-Za-z0-9._-]{1,64}$")

NO_APP = (
    "Sandboxes require an App when created outside of a gantry container.\n\n"
    "Run an ephemeral App (`with app.run(): ...`), or reference a deployed App using `App.lookup`:\n\n"
    "```\n"
    'app = gantry.App.lookup("sandbox-app", create_if_missing=True)\n'
    "sb = gantry.Sandbox.create(..., app=app)\n"
    "```"
)


def command(args: Sequence[Any], what: str) -> List[str]:
    """A command line: strings without NUL, at most COMMAND_BYTES in all (Modal's ARG_MAX)."""
    bad = next((a for a in args if not isinstance(a, str)), None)
    if bad is not None:
        raise InvalidError(f"{what}: all arguments must be strings, got {type(bad).__name__} {bad!r:.80}")
    if any("\0" in a for a in args):
        raise InvalidError(f"{what}: arguments may not contain NUL characters")
    if len(args) > MAX_ARGS:
        raise InvalidError(f"{what}: at most {MAX_ARGS} arguments, got {len(args)}")
    total = sum(len(a.encode("utf-8")) for a in args)
    if total > COMMAND_BYTES:
        raise InvalidError(f"{what}: the arguments total {total} bytes; at most {COMMAND_BYTES} are allowed (ARG_MAX)")
    return list(args)


def seconds(value: Any, what: str, optional: bool = False) -> Optional[int]:
    """A whole number of seconds in 1..MAX_TIMEOUT_S (None allowed when ``optional``)."""
    if value is None and optional:
        return None
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    if isinstance(value, bool) or not isinstance(value, int):
        raise InvalidError(f"{what} must be a whole number of seconds, got {value!r}")
    if not 1 <= value <= MAX_TIMEOUT_S:
        raise InvalidError(f"{what} must be between 1 and {MAX_TIMEOUT_S} seconds (24 h), got {value}")
    return value


def workdir(path: Any) -> Optional[str]:
    if path is None:
        return None
    if isinstance(path, PurePosixPath):
        path = path.as_posix()
    if not isinstance(path, str) or not path.startswith("/") or len(path) > 4096 or any(c in path for c in "\0\n\r"):
        raise InvalidError(f"workdir must be an absolute path (start with /, at most 4096 characters, one line), got {path!r:.100}")
    return path


def env(values: Any) -> Optional[Dict[str, str]]:
    """``env={"NAME": "value"}``; a None value leaves the variable out (as Modal)."""
    if values is None:
        return None
    if not isinstance(values, dict):
        raise InvalidError(f"env takes a dict of NAME: value strings, got {type(values).__name__}")
    out: Dict[str, str] = {}
    for name, value in values.items():
        if not isinstance(name, str) or not _ENV_NAME.match(name):
            raise InvalidError(f"env: {name!r:.80} is not a variable name (letters, digits and _, not starting with a digit)")
        if value is None:
            continue
        if not isinstance(value, str) or "\0" in value or len(value) > 65_536:
            raise InvalidError(f"env: the value of {name} must be a string without NUL, at most 65536 characters, got {type(value).__name__}")
        out[name] = value
    return out or None


def secret_names(secrets: Any) -> Optional[List[str]]:
    if secrets is None:
        return None
    if not isinstance(secrets, (list, tuple)) or not all(isinstance(s, Secret) for s in secrets):
        raise InvalidError(f'secrets takes a list of gantry.Secret.from_name("NAME"), got {secrets!r:.100}')
    if len(secrets) > MAX_SECRETS:
        raise InvalidError(f"secrets: at most {MAX_SECRETS} secrets, got {len(secrets)}")
    return [s.name for s in secrets] or None


def tags(values: Any, what: str = "tags") -> Dict[str, str]:
    if not isinstance(values, dict):
        raise InvalidError(f"{what} takes a dict of name: value strings, got {type(values).__name__}")
    if len(values) > MAX_TAGS:
        raise InvalidError(f"{what}: a sandbox has at most {MAX_TAGS} tags, got {len(values)}")
    for name, value in values.items():
        if not isinstance(name, str) or not 1 <= len(name) <= TAG_LENGTH:
            raise InvalidError(f"{what}: a tag's name is a string of 1 to {TAG_LENGTH} characters, got {name!r:.80}")
        if not isinstance(value, str) or len(value) > TAG_LENGTH:
            raise InvalidError(f"{what}: the value of tag {name!r:.80} must be a string of at most {TAG_LENGTH} characters, got {type(value).__name__}")
    return dict(values)


def _resource(value: Any, what: str) -> Any:
    """Modal's (request, limit) pairs: gantry has one number, the limit Docker enforces."""
    if isinstance(value, tuple):
        if len(value) != 2:
            raise InvalidError(f"{what} takes a number or a (request, limit) pair, got {value!r}")
        return value[1]
    return value


def memory(value: Any) -> Optional[int]:
    """MiB; a (request, limit) pair gives its limit."""
    if value is None:
        return None
    value = _resource(value, "memory")
    lo, hi = MEMORY_MIB
    if isinstance(value, bool) or not isinstance(value, int) or not lo <= value <= hi:
        raise InvalidError(f"memory is a whole number of MiB between {lo} and {hi}, got {value!r}")
    return value


def cpu(value: Any) -> Optional[float]:
    if value is None:
        return None
    value = _resource(value, "cpu")
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 < value <= MAX_CPU:
        raise InvalidError(f"cpu is a number of cores above 0 and at most {MAX_CPU}, got {value!r}")
    return value


def gpu(value: Any) -> Optional[str]:
    if value is None:
        return None
    if not isinstance(value, str) or not _GPU.match(value):
        raise InvalidError(f'gpu must look like "any", "A100" or "H100:2" (one type, 1 to 8 of them), got {value!r:.80}')
    return value


def flag(value: Any, what: str) -> bool:
    if not isinstance(value, bool):
        raise InvalidError(f"{what} must be True or False, got {value!r:.80}")
    return value


def sandbox_name(value: Any) -> Optional[str]:
    if value is None:
        return None
    if not isinstance(value, str) or not _SANDBOX_NAME.match(value):
        raise InvalidError(f"name: a sandbox name is letters, digits, . _ and -, at most 64 characters, got {value!r:.80}")
    return value


def image_parts(image: Any) -> Tuple[Optional[Dict[str, Any]], Optional[Dict[str, Any]]]:
    """(the image's spec, its local files as assets), packed as a deploy packs them."""
    if image is None:
        return None, None
    if not isinstance(image, Image):
        raise InvalidError(f"image must be a gantry.Image, got {type(image).__name__}")
    holder = {"options": {"image": image.to_spec()}}
    assets: Dict[str, Any] = {}
    try:
        pack_images([holder], assets)
    except (AppFileError, OSError) as e:
        raise InvalidError(f"image: {e}") from None
    return holder["options"]["image"], assets or None


def app_name(app: Any) -> str:
    from .app import App

    if app is None:
        from ._context import in_container

        if in_container() and os.environ.get("GANTRY_APP"):
            return os.environ["GANTRY_APP"]  # a function's own app (the daemon checks it is)
        raise InvalidError(NO_APP)
    if not isinstance(app, App):
        raise InvalidError(f"app must be a gantry.App (e.g. gantry.App.lookup(NAME, create_if_missing=True)), got {type(app).__name__}")
    return app.app_id


def create_body(args: Sequence[Any], opts: Dict[str, Any]) -> Dict[str, Any]:
    """The POST /v1/sandboxes body (protocol/sandboxes.ts sandboxCreateSchema) for ``Sandbox.create``'s arguments."""
    from .app import _volume_mounts

    spec, assets = image_parts(opts["image"])
    body: Dict[str, Any] = {
        "app": app_name(opts["app"]),
        "runtime": "python",
        "image": spec,
        "assets": assets,
        "command": command(args, "Sandbox.create") or None,
        "timeout": seconds(opts["timeout"], "timeout"),
        "idle_timeout": seconds(opts["idle_timeout"], "idle_timeout", optional=True),
        "workdir": workdir(opts["workdir"]),
        "env": env(opts["env"]),
        "secrets": secret_names(opts["secrets"]),
        "volumes": _volume_mounts(opts["volumes"]),
        "cpu": cpu(opts["cpu"]),
        "memory": memory(opts["memory"]),
        "gpu": gpu(opts["gpu"]),
        "block_network": flag(opts["block_network"], "block_network"),
        "tags": tags(opts["tags"]) if opts["tags"] is not None else None,
        "name": sandbox_name(opts["name"]),
        "pty": flag(opts["pty"], "pty"),
    }
    return {k: v for k, v in body.items() if v is not None}


def exec_body(args: Sequence[Any], opts: Dict[str, Any]) -> Dict[str, Any]:
    """The POST /v1/sandboxes/:id/exec body (sandboxExecSchema) for ``sb.exec``'s arguments."""
    cmd = command(args, "exec")
    if not cmd:
        raise InvalidError("exec needs a command: sb.exec(\"ls\", \"-l\")")
    body: Dict[str, Any] = {
        "command": cmd,
        "workdir": workdir(opts["workdir"]),
        "timeout": seconds(opts["timeout"], "timeout", optional=True),
        "env": env(opts["env"]),
        "secrets": secret_names(opts["secrets"]),
        "pty": flag(opts["pty"], "pty"),
    }
    return {k: v for k, v in body.items() if v is not None}


def absolute(path: Any, what: str) -> str:
    """A path inside a sandbox (files, ls, mkdir, rm): absolute, one line."""
    if isinstance(path, os.PathLike):
        path = os.fspath(path)
    if not isinstance(path, str) or not path.startswith("/") or len(path) > 4096 or any(c in path for c in "\0\n\r"):
        raise InvalidError(f"{what}: a path inside a sandbox must be absolute (start with /, at most 4096 characters, one line), got {path!r:.100}")
    return path
