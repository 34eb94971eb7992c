"""The rules of protocol/volumes.ts for names, mount points and paths, mirrored for early errors
(the daemon checks them again), and the entries a listing gives (Modal's ``FileEntry``)."""
from __future__ import annotations

import enum
import json
import os
import re
import stat as stat_mod
from dataclasses import dataclass
from pathlib import PurePosixPath
from typing import Any, Dict, List, Optional, Sequence
from urllib.parse import quote
from .exception import InvalidError

# --- The rules of protocol/volumes.ts, mirrored ----------------------------------------------------

#: Characters of a volume's name; of a path inside a volume; volumes one function mounts.
NAME_LENGTH = 63
PATH_LENGTH = 4096
MOUNTS_PER_FUNCTION = 16
from ._ephemeral import _HEARTBEAT_INTERVAL_S, EPHEMERAL_TTL_S  # noqa: F401 - shared by every ephemeral kind
#: Mount points gantry's own files use, or the system's.
RESERVED_MOUNT_POINTS = ("/run/gantry", "/opt/gantry", "/proc", "/sys", "/dev", "/etc", "/usr", "/bin", "/sbin", "/lib", "/lib64")
#: The variable that, in a function's container, maps the volumes mounted there to their mount points.
VOLUMES_ENV = "GANTRY_VOLUMES"
#: Uploads one batch sends at once.
_UPLOAD_WORKERS = 4

_NAME = re.compile(r"[A-Za-z0-9._-]+")


def _show(value: Any, limit: int = 80) -> str:
    """``value`` as JSON.stringify shows it (repr where JSON cannot), cut to ``limit`` characters."""
    try:
        return json.dumps(value)[:limit]
    except (TypeError, ValueError):
        return repr(value)[:limit]


def _js_length(s: str) -> int:
    """Length as JavaScript counts it (UTF-16 code units), so that limits agree with the daemon's."""
    return len(s.encode("utf-16-le", "surrogatepass")) // 2


def name_problem(what: str, name: Any) -> Optional[str]:
    """Why ``name`` cannot name a ``what`` (a volume, a Dict, a Queue), or None when it can: letters,
    digits, - . _, under 64 characters."""
    if not isinstance(name, str) or not name:
        return f"a {what} name must be a non-empty string, got {_show(name)}"
    if _js_length(name) > NAME_LENGTH:
        return f"{what} name {_show(name[:40])}… is {_js_length(name)} characters; at most {NAME_LENGTH} are allowed"
    if not _NAME.fullmatch(name) or name in (".", ".."):
        return f'{_show(name)} is not a {what} name: use letters, digits, -, . and _ (not "." or "..")'
    return None


def volume_name_problem(name: Any) -> Optional[str]:
    """Why ``name`` cannot name a volume, or None when it can."""
    return name_problem("volume", name)


def mount_path_problem(path: Any) -> Optional[str]:
    """Why ``path`` cannot be a mount point, or None when it can: absolute, normalised, not / nor a reserved folder."""
    if not isinstance(path, str) or not path.startswith("/"):
        return f"a volume's mount point must be an absolute path, got {_show(path)}"
    if path == "/":
        return "a volume cannot be mounted at /"
    if _js_length(path) > 512 or "\0" in path or path.endswith("/") or any(p in ("", ".", "..") for p in path.split("/")[1:]):
        return f"mount point {_show(path)} must be a plain absolute path: no //, . or .. parts, no trailing /"
    for r in RESERVED_MOUNT_POINTS:
        if path == r or path.startswith(f"{r}/"):
            whose = "gantry's own" if r in ("/run/gantry", "/opt/gantry") else "the system's"
            return f"a volume cannot be mounted at {path}: {r} is {whose}"
    return None


def overlapping_mounts(paths: Sequence[str]) -> Optional[str]:
    """Why these mount points cannot go together (one inside another), or None."""
    for a in paths:
        for b in paths:
            if a != b and b.startswith(f"{a}/"):
                return f"volume mount points {a} and {b} overlap: one is inside the other"
    return None


def path_parts(path: Any) -> List[str]:
    """A path inside a volume split into its parts ([] for the root): absolute paths are taken from
    the volume's root (as Modal does); ``..`` parts, NUL and over-long paths raise InvalidError naming the path."""
    if isinstance(path, PurePosixPath):
        path = path.as_posix()
    if not isinstance(path, str):
        raise InvalidError(f"a path inside a volume must be a string, got {_show(path)}")
    if _js_length(path) > PATH_LENGTH:
        raise InvalidError(f"path {_show(path[:60])}… is {_js_length(path)} characters; at most {PATH_LENGTH} are allowed")
    if "\0" in path:
        raise InvalidError(f"path {_show(path)} contains a NUL character")
    parts = [p for p in path.split("/") if p not in ("", ".")]
    if ".." in parts:
        raise InvalidError(f"path {_show(path)} has a .. part: paths stay inside their volume")
    return parts


def _checked_path(path: Any) -> str:
    """The path as the API takes it (a string; PurePosixPath accepted), once ``path_parts`` lets it through."""
    path_parts(path)
    return path.as_posix() if isinstance(path, PurePosixPath) else path


def _segment(s: str) -> str:
    return quote(s, safe="")


def _flag(on: bool) -> str:
    return "1" if on else "0"


# --- Entries ------------------------------------------------------------------------------------


class FileEntryType(enum.IntEnum):
    """What an entry of a volume is (Modal's ``modal.volume.FileEntryType``)."""

    UNSPECIFIED = 0
    FILE = 1
    DIRECTORY = 2
    SYMLINK = 3
    FIFO = 4
    SOCKET = 5


_API_TYPES = {"file": FileEntryType.FILE, "directory": FileEntryType.DIRECTORY, "symlink": FileEntryType.SYMLINK}


@dataclass(frozen=True)
class FileEntry:
    """A file, folder or symlink of a volume: ``path`` relative to its root ("/"-separated), ``mtime`` in
    seconds since the epoch, ``size`` in bytes (Modal's ``modal.volume.FileEntry``)."""

    path: str
    type: FileEntryType
    mtime: int
    size: int

    @classmethod
    def _from_api(cls, e: Dict[str, Any]) -> "FileEntry":
        return cls(
            path=str(e.get("path", "")),
            type=_API_TYPES.get(e.get("type"), FileEntryType.UNSPECIFIED),  # type: ignore[arg-type]
            mtime=int(e.get("mtime") or 0),
            size=int(e.get("size") or 0),
        )

    @classmethod
    def _from_stat(cls, path: str, st: os.stat_result) -> "FileEntry":
        mode = st.st_mode
        if stat_mod.S_ISLNK(mode):
            kind = FileEntryType.SYMLINK
        elif stat_mod.S_ISDIR(mode):
            kind = FileEntryType.DIRECTORY
        elif stat_mod.S_ISREG(mode):
            kind = FileEntryType.FILE
        elif stat_mod.S_ISFIFO(mode):
            kind = FileEntryType.FIFO
        elif stat_mod.S_ISSOCK(mode):
            kind = FileEntryType.SOCKET
        else:
            kind = FileEntryType.UNSPECIFIED
        return cls(path=path, type=kind, mtime=int(st.st_mtime), size=st.st_size)
