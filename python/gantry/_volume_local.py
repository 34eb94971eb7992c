"""Volumes inside a function's container: the daemon sets ``GANTRY_VOLUMES`` (JSON
``{"NAME": "/mount/point"}``), and a mounted volume's ``listdir`` and ``read_file`` read the mount
itself, following a symlink only while it stays inside the mount."""
from __future__ import annotations

import json
import os
import stat as stat_mod
from typing import Any, BinaryIO, Dict, List, Optional, Tuple
from ._client import STREAM_CHUNK
from .exception import Error, InvalidError
from ._volume_rules import VOLUMES_ENV, FileEntry, FileEntryType, _show, path_parts

# --- Inside a function's container ----------------------------------------------------------------


def _mounted() -> Dict[str, str]:
    """The volumes mounted in this container, by name (from GANTRY_VOLUMES); {} elsewhere."""
    raw = os.environ.get(VOLUMES_ENV)
    if not raw:
        return {}
    try:
        mounts = json.loads(raw)
    except ValueError:
        mounts = None
    if not isinstance(mounts, dict) or not all(isinstance(k, str) and isinstance(v, str) for k, v in mounts.items()):
        raise Error(f'{VOLUMES_ENV} must hold JSON like {{"NAME": "/mount/point"}}, got {raw[:200]!r}')
    return mounts


def _inside(path: str, root: str) -> bool:
    return path == root or path.startswith(root.rstrip("/") + "/")


def _local_target(volume: str, mount: str, path: str, parts: List[str]) -> str:
    """Where ``parts`` lead in the mount: symlinks on the way are followed only while they stay inside it."""
    root = os.path.realpath(mount)
    current = root
    for i, part in enumerate(parts):
        step = os.path.join(current, part)
        if os.path.islink(step):
            resolved = os.path.realpath(step)
            if not _inside(resolved, root):
                via = "/".join(parts[: i + 1])
                raise InvalidError(f"path {_show(path)} of volume {volume} goes through the symlink {via}, which points out of the volume")
            step = resolved
        current = step
    return current


def _local_listdir(volume: str, mount: str, path: str, recursive: bool) -> List[FileEntry]:
    parts = path_parts(path)
    target = _local_target(volume, mount, path, parts)
    try:
        st = os.lstat(target)
    except FileNotFoundError:
        raise FileNotFoundError(f"no file or folder {_show(path)} in volume {volume}") from None
    logical = "/".join(parts)
    if not stat_mod.S_ISDIR(st.st_mode):
        return [FileEntry._from_stat(logical, st)]
    entries: List[FileEntry] = []
    folders: List[Tuple[str, str]] = [(target, logical)]
    while folders:
        where, shown = folders.pop()
        with os.scandir(where) as it:
            for e in it:
                entry = FileEntry._from_stat(f"{shown}/{e.name}" if shown else e.name, e.stat(follow_symlinks=False))
                entries.append(entry)
                if recursive and entry.type is FileEntryType.DIRECTORY:  # a symlink is listed, never entered
                    folders.append((e.path, entry.path))
    entries.sort(key=lambda e: e.path)
    return entries


class _FileChunks:
    """A local file's bytes as an iterator of chunks; the file closes at its end or on ``close()``."""

    def __init__(self, f: BinaryIO) -> None:
        self._f: Optional[BinaryIO] = f

    def __iter__(self) -> "_FileChunks":
        return self

    def __next__(self) -> bytes:
        if self._f is None:
            raise StopIteration
        chunk = self._f.read(STREAM_CHUNK)
        if not chunk:
            self.close()
            raise StopIteration
        return chunk

    def close(self) -> None:
        f, self._f = self._f, None
        if f is not None:
            f.close()

    def __enter__(self) -> "_FileChunks":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()


def _local_read(volume: str, mount: str, path: str) -> _FileChunks:
    parts = path_parts(path)
    target = _local_target(volume, mount, path, parts)
    try:
        return _FileChunks(open(target, "rb"))
    except FileNotFoundError:
        raise FileNotFoundError(f"no file {_show(path)} in volume {volume}") from None
