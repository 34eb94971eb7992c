"""Volumes, as Modal's ``modal.Volume`` (issue 19): named folders the daemon keeps, mounted into the
containers of the functions that ask for them, and read and written from outside over the API.

    vol = gantry.Volume.from_name("models", create_if_missing=True)

    @app.function(volumes={"/models": vol})
    def train():
        with open("/models/weights.bin", "wb") as f:
            f.write(b"...")
        vol.commit()

    with vol.batch_upload() as batch:            # from any program: sent when the block ends
        batch.put_file("config.json", "/config.json")
    for entry in vol.listdir("/", recursive=True):
        print(entry.path, entry.type, entry.size)

``Volume.from_name`` is lazy: the name is checked at once, the daemon is asked on first use. Inside a
function's container the daemon sets ``GANTRY_VOLUMES`` (JSON: ``{"NAME": "/mount/point", ...}``);
there a mounted volume's ``listdir`` and ``read_file`` read the mount itself (never following a
symlink out of it), ``commit()`` flushes writes to disk (``os.sync``) and ``reload()`` has nothing to
do: one machine sees its writes at once. The rules for names, mount points and paths are those of
``protocol/volumes.ts``, checked here early (the daemon checks them again).
"""
from __future__ import annotations

import asyncio
import functools
import json
import os
import threading
from typing import Any, BinaryIO, Callable, Dict, Iterator, List, Optional, Sequence, Tuple
from ._client import Client
from .exception import Error, InvalidError, NotFoundError
from .functions import _WithAio, _WithAioIter

from ._volume_rules import (  # noqa: F401 - the rules and entries are this module's public names too
    EPHEMERAL_TTL_S,
    MOUNTS_PER_FUNCTION,
    NAME_LENGTH,
    PATH_LENGTH,
    RESERVED_MOUNT_POINTS,
    VOLUMES_ENV,
    _HEARTBEAT_INTERVAL_S,
    FileEntry,
    FileEntryType,
    _checked_path,
    _flag,
    _segment,
    _show,
    mount_path_problem,
    overlapping_mounts,
    path_parts,
    volume_name_problem,
)
from ._volume_local import _local_listdir, _local_read, _mounted
from ._volume_upload import _BatchUpload
from ._ephemeral import Ephemeral, fetch_or_create

__all__ = ["Volume", "FileEntry", "FileEntryType", "volume_name_problem", "mount_path_problem", "overlapping_mounts", "path_parts", "MOUNTS_PER_FUNCTION", "RESERVED_MOUNT_POINTS", "EPHEMERAL_TTL_S"]

# --- Handles ---------------------------------------------------------------------------------------


def _with_aio_function(f: Callable[..., Any]) -> Callable[..., Any]:
    """A plain function (a static method) that also has ``.aio``, as ``_WithAio`` gives methods."""
    f.aio = _WithAio._aio(f)  # type: ignore[attr-defined]
    return f


class Volume:
    """A volume the daemon keeps, by name. Get one with ``Volume.from_name`` (or ``Volume.ephemeral()``),
    mount it with ``@app.function(volumes={"/data": vol})``."""

    #: Its kind and route, as every ephemeral object names them (gantry._ephemeral).
    _what = "Volume"
    _route = "volumes"

    def __init__(
        self,
        name: str,
        *,
        read_only: bool = False,
        create_if_missing: bool = False,
        client: Optional[Client] = None,
        _info: Optional[Dict[str, Any]] = None,
    ) -> None:
        problem = volume_name_problem(name)
        if problem:
            raise InvalidError(problem)
        self._name = name
        self._read_only = bool(read_only)
        self._create_if_missing = bool(create_if_missing)
        self._client = client
        #: The daemon's view of it (protocol/volumes.ts VolumeView), once hydrated.
        self._info = _info
        self._lock = threading.Lock()

    # Making handles.

    @staticmethod
    def from_name(name: str, *, create_if_missing: bool = False, version: Optional[int] = None, client: Optional[Client] = None) -> "Volume":
        """The volume called ``name``: a lazy handle (the daemon is asked on first use). An unknown
        name raises NotFoundError then, unless ``create_if_missing=True`` (it is made then, and at
        deploy for the functions that mount it). ``version`` (Modal's VolumeFS version) is accepted
        and has no effect."""
        problem = volume_name_problem(name)
        if problem:
            raise InvalidError(f"Volume.from_name: {problem}")
        if version is not None and (isinstance(version, bool) or version not in (1, 2)):
            raise InvalidError(f"Volume.from_name: version must be 1, 2 or None, got {version!r}")
        if client is not None and not isinstance(client, Client):
            raise InvalidError(f"Volume.from_name: client must be a gantry Client, got {type(client).__name__}")
        return Volume(name, create_if_missing=create_if_missing, client=client)

    def ephemeral(client: Optional[Client] = None, version: Optional[int] = None) -> "Ephemeral[Volume]":  # type: ignore[misc]
        """A volume that lives for a ``with`` (or ``async with``) block: made on entry, kept alive by
        heartbeats while the block runs, deleted at its end."""
        return Ephemeral(Volume, client)

    ephemeral.aio = ephemeral  # type: ignore[attr-defined]  # the same object serves ``async with``
    ephemeral = staticmethod(ephemeral)  # type: ignore[assignment]

    def read_only(self) -> "Volume":
        """The same volume, marked read-only: mounted read-only, and refusing writes through this handle."""
        other = Volume(self._name, read_only=True, create_if_missing=self._create_if_missing, client=self._client, _info=self._info)
        return other

    # What a handle is.

    @property
    def name(self) -> str:
        return self._name

    @property
    def is_read_only(self) -> bool:
        return self._read_only

    def __repr__(self) -> str:
        return f"Volume.from_name({self._name!r})" + (".read_only()" if self._read_only else "")

    def __reduce__(self) -> Tuple[Any, ...]:
        """A handle travels (to a function, as an argument) as its name and read-only mark."""
        return (_restore, (self._name, self._read_only))

    def to_mount(self, path: str) -> Dict[str, Any]:
        """This volume mounted at ``path``, as a function's options take it (protocol/volumes.ts VolumeMount)."""
        mount: Dict[str, Any] = {"path": path, "name": self._name}
        if self._read_only:
            mount["readOnly"] = True
        if self._create_if_missing:
            mount["createIfMissing"] = True
        return mount

    def _transport(self) -> Client:
        if self._client is None:
            self._client = Client.from_env()
        return self._client

    def _path(self) -> str:
        return f"/v1/volumes/{_segment(self._name)}"

    def _mount(self) -> Optional[str]:
        """Where this volume is mounted in this function's container; None elsewhere."""
        return _mounted().get(self._name)

    def _refuse_read_only(self, verb: str) -> None:
        if self._read_only:
            raise InvalidError(f"volume {self._name} was opened read-only (vol.read_only()): it cannot {verb}")

    # The daemon's side.

    @_WithAio
    def hydrate(self) -> "Volume":
        """Checks with the daemon that the volume exists (making it with ``create_if_missing``), once;
        in a container where it is mounted, there is nothing to check."""
        with self._lock:
            if self._info is None and self._mount() is None:
                self._info = self._fetch()
        return self

    def _fetch(self) -> Dict[str, Any]:
        missing = (
            f"volume {self._name} does not exist: create it with `gantry volume create {self._name}`, "
            f"or use Volume.from_name({self._name!r}, create_if_missing=True)"
        )
        return fetch_or_create(self._transport(), self._path(), self._route, self._name, self._create_if_missing, missing)

    @_WithAio
    def commit(self) -> None:
        """Makes this volume's writes durable: in a container where it is mounted, flushes them to disk
        (``os.sync``); elsewhere asks the daemon to. Other containers on this machine see writes at once."""
        if self._mount() is not None:
            os.sync()
            return None
        self.hydrate()
        self._transport().json("POST", f"{self._path()}/commit")
        return None

    @_WithAio
    def reload(self) -> None:
        """Modal's reload: here writes are visible at once, so there is nothing to fetch (a handle
        outside a container is checked with the daemon, as on first use)."""
        if self._mount() is None:
            self.hydrate()
        return None

    @_WithAio
    def listdir(self, path: str, recursive: bool = False) -> List[FileEntry]:
        """The entries of the folder ``path`` ("/" the root; a file's path gives that file), and of
        its sub-folders with ``recursive=True``; FileNotFoundError when there is nothing there."""
        path = _checked_path(path)
        mount = self._mount()
        if mount is not None:
            return _local_listdir(self._name, mount, path, recursive)
        self.hydrate()
        query = f"path={_segment(path)}&recursive={_flag(recursive)}"
        try:
            answer = self._transport().json("GET", f"{self._path()}/entries?{query}")
        except NotFoundError as err:
            raise FileNotFoundError(f"no file or folder {_show(path)} in volume {self._name} ({err})") from None
        return [FileEntry._from_api(e) for e in answer.get("entries", [])]

    @_WithAioIter
    def iterdir(self, path: str, recursive: bool = True) -> Iterator[FileEntry]:
        """The entries ``listdir`` gives, one at a time (recursive unless told otherwise, as Modal's)."""
        return iter(self.listdir(path, recursive=recursive))

    @_WithAioIter
    def read_file(self, path: str) -> Iterator[bytes]:
        """The file's bytes as an iterator of chunks, streamed (never all in memory);
        FileNotFoundError (at once) when there is no such file."""
        path = _checked_path(path)
        mount = self._mount()
        if mount is not None:
            return _local_read(self._name, mount, path)
        self.hydrate()
        try:
            return self._transport().stream_bytes("GET", f"{self._path()}/files?path={_segment(path)}")
        except NotFoundError as err:
            raise FileNotFoundError(f"no file {_show(path)} in volume {self._name} ({err})") from None

    @_WithAio
    def read_file_into_fileobj(self, path: str, fileobj: BinaryIO) -> int:
        """Writes the file's bytes into ``fileobj`` (a binary file object) as they arrive; returns how many."""
        written = 0
        chunks = self.read_file(path)
        try:
            for chunk in chunks:
                fileobj.write(chunk)
                written += len(chunk)
        finally:
            close = getattr(chunks, "close", None)
            if close is not None:
                close()
        return written

    @_WithAio
    def remove_file(self, path: str, recursive: bool = False) -> None:
        """Removes a file, or a folder and all it holds (that needs ``recursive=True``)."""
        path = _checked_path(path)
        self._refuse_read_only("remove files")
        self.hydrate()
        query = f"path={_segment(path)}&recursive={_flag(recursive)}"
        try:
            self._transport().json("DELETE", f"{self._path()}/files?{query}")
        except NotFoundError as err:
            raise FileNotFoundError(f"no file or folder {_show(path)} in volume {self._name} ({err})") from None

    @_WithAio
    def copy_files(self, src_paths: Sequence[str], dst_path: str, recursive: bool = False) -> None:
        """Copies files inside the volume, as ``cp`` does: into ``dst_path`` when it is a folder or ends
        with "/", else to it (one source). A folder is copied, with all it holds, only with
        ``recursive=True`` (else InvalidError naming it), as ``cp -r``. Files keep their permissions."""
        if isinstance(src_paths, (str, bytes)) or not isinstance(src_paths, (list, tuple)) or not src_paths:
            raise InvalidError(f"copy_files takes a non-empty list of paths inside the volume, got {_show(src_paths)}")
        sources = [_checked_path(p) for p in src_paths]
        dst = _checked_path(dst_path)
        self._refuse_read_only("copy files")
        self.hydrate()
        try:
            self._transport().json("POST", f"{self._path()}/copy", {"src_paths": sources, "dst_path": dst, "recursive": bool(recursive)})
        except NotFoundError as err:
            raise FileNotFoundError(f"copy_files in volume {self._name}: {err}") from None

    def batch_upload(self, force: bool = False) -> "_BatchUpload":
        """Uploads files when the ``with`` block ends (without an exception):

            with vol.batch_upload() as batch:
                batch.put_file("local.txt", "/remote.txt")
                batch.put_directory("data/", "/data")

        An existing file raises FileExistsError unless ``force=True``."""
        self._refuse_read_only("take uploads")
        return _BatchUpload(self, bool(force))

    # Named volumes, by name.

    @staticmethod
    @_with_aio_function
    def delete(name: str, *, allow_missing: bool = False, client: Optional[Client] = None) -> None:
        """Deletes the volume called ``name`` and all its files (Modal's older spelling of ``Volume.objects.delete``)."""
        _delete(name, allow_missing=allow_missing, client=client)

    objects: "_VolumeManager"


def _restore(name: str, read_only: bool = False) -> Volume:
    return Volume(name, read_only=read_only)


def _delete(name: str, *, allow_missing: bool, client: Optional[Client]) -> None:
    problem = volume_name_problem(name)
    if problem:
        raise InvalidError(problem)
    try:
        (client or Client.from_env()).json("DELETE", f"/v1/volumes/{_segment(name)}")
    except NotFoundError:
        if not allow_missing:
            raise


class _VolumeManager:
    """``Volume.objects``: named volumes as a whole (Modal's ``modal.Volume.objects``)."""

    @_WithAio
    def list(self, *, max_objects: Optional[int] = None, client: Optional[Client] = None) -> List[Volume]:
        """The named volumes the daemon keeps (ephemeral ones included), as handles."""
        client = client or Client.from_env()
        answer = client.json("GET", "/v1/volumes")
        views = answer.get("volumes", []) if isinstance(answer, dict) else []
        if max_objects is not None:
            views = views[: max(0, int(max_objects))]
        return [Volume(v["name"], client=client, _info=v) for v in views]

    @_WithAio
    def create(self, name: str, *, allow_existing: bool = False, client: Optional[Client] = None) -> None:
        """Makes the volume ``name``; one that exists already is an error (code ``conflict``) unless ``allow_existing=True``."""
        problem = volume_name_problem(name)
        if problem:
            raise InvalidError(problem)
        (client or Client.from_env()).json("POST", "/v1/volumes", {"name": name, "exist_ok": bool(allow_existing)})

    @_WithAio
    def delete(self, name: str, *, allow_missing: bool = False, client: Optional[Client] = None) -> None:
        """Deletes the volume ``name`` and all its files; NotFoundError when there is none, unless ``allow_missing=True``."""
        _delete(name, allow_missing=allow_missing, client=client)


Volume.objects = _VolumeManager()




