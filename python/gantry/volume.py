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
import concurrent.futures
import enum
import functools
import io
import json
import os
import re
import stat as stat_mod
import threading
from dataclasses import dataclass
from pathlib import PurePosixPath
from typing import Any, BinaryIO, Callable, Dict, Iterator, List, Optional, Sequence, Tuple, Union
from urllib.parse import quote

from ._client import STREAM_CHUNK, Client, error_from_api, read_chunks
from .exception import Error, InvalidError, NotFoundError
from .functions import _WithAio, _WithAioIter

# --- The rules of protocol/volumes.ts, mirrored ----------------------------------------------------

#: Characters of a volume's name; of a path inside a volume; volumes one function mounts.
NAME_LENGTH = 63
PATH_LENGTH = 4096
MOUNTS_PER_FUNCTION = 16
#: Seconds an ephemeral volume lives past its last heartbeat; its owner heartbeats every quarter of that.
EPHEMERAL_TTL_S = 300
_HEARTBEAT_INTERVAL_S = EPHEMERAL_TTL_S / 4
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


def volume_name_problem(name: Any) -> Optional[str]:
    """Why ``name`` cannot name a volume, or None when it can: letters, digits, - . _, under 64 characters."""
    if not isinstance(name, str) or not name:
        return f"a volume name must be a non-empty string, got {_show(name)}"
    if _js_length(name) > NAME_LENGTH:
        return f"volume name {_show(name[:40])}… is {_js_length(name)} characters; at most {NAME_LENGTH} are allowed"
    if not _NAME.fullmatch(name) or name in (".", ".."):
        return f'{_show(name)} is not a volume name: use letters, digits, -, . and _ (not "." or "..")'
    return None


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


# --- Handles ---------------------------------------------------------------------------------------


def _with_aio_function(f: Callable[..., Any]) -> Callable[..., Any]:
    """A plain function (a static method) that also has ``.aio``, as ``_WithAio`` gives methods."""
    f.aio = _WithAio._aio(f)  # type: ignore[attr-defined]
    return f


class Volume:
    """A volume the daemon keeps, by name. Get one with ``Volume.from_name`` (or ``Volume.ephemeral()``),
    mount it with ``@app.function(volumes={"/data": vol})``."""

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

    def ephemeral(client: Optional[Client] = None, version: Optional[int] = None) -> "_EphemeralVolume":  # type: ignore[misc]
        """A volume that lives for a ``with`` (or ``async with``) block: made on entry, kept alive by
        heartbeats while the block runs, deleted at its end."""
        return _EphemeralVolume(client)

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
        client = self._transport()
        try:
            return client.json("GET", self._path())
        except NotFoundError:
            if not self._create_if_missing:
                raise NotFoundError(
                    f"volume {self._name} does not exist: create it with `gantry volume create {self._name}`, "
                    f"or use Volume.from_name({self._name!r}, create_if_missing=True)"
                ) from None
        return client.json("POST", "/v1/volumes", {"name": self._name, "exist_ok": True})

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
        """Copies files inside the volume: into ``dst_path`` when it is a folder or ends with "/",
        else to it (one source). ``recursive`` is accepted as Modal's; the daemon decides about folders."""
        if isinstance(src_paths, (str, bytes)) or not isinstance(src_paths, (list, tuple)) or not src_paths:
            raise InvalidError(f"copy_files takes a non-empty list of paths inside the volume, got {_show(src_paths)}")
        sources = [_checked_path(p) for p in src_paths]
        dst = _checked_path(dst_path)
        self._refuse_read_only("copy files")
        self.hydrate()
        try:
            self._transport().json("POST", f"{self._path()}/copy", {"src_paths": sources, "dst_path": dst})
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


# --- Ephemeral volumes -----------------------------------------------------------------------------


class _EphemeralVolume:
    """``with Volume.ephemeral() as vol:`` (or ``async with``): the volume lives as long as the block."""

    def __init__(self, client: Optional[Client]) -> None:
        self._client = client
        self._volume: Optional[Volume] = None
        self._stop = threading.Event()
        self._thread: Optional[threading.Thread] = None

    def __enter__(self) -> Volume:
        if self._volume is not None:
            raise InvalidError("a Volume.ephemeral() context is entered once; make another for another volume")
        client = self._client or Client.from_env()
        view = client.json("POST", "/v1/volumes/ephemeral")
        vol = Volume(view["name"], client=client, _info=view)
        self._volume = vol
        self._thread = threading.Thread(
            target=_heartbeat, args=(client, vol._path(), self._stop, _HEARTBEAT_INTERVAL_S), name=f"gantry-volume-heartbeat-{vol.name}", daemon=True
        )
        self._thread.start()
        return vol

    def __exit__(self, *exc: Any) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=_HEARTBEAT_JOIN_S)
        vol = self._volume
        if vol is not None:
            try:
                vol._transport().json("DELETE", vol._path())
            except NotFoundError:
                pass  # gone already (it expired): nothing left to delete

    async def __aenter__(self) -> Volume:
        return await asyncio.get_running_loop().run_in_executor(None, self.__enter__)

    async def __aexit__(self, *exc: Any) -> None:
        await asyncio.get_running_loop().run_in_executor(None, functools.partial(self.__exit__, *exc))


#: Seconds the end of an ephemeral block waits for a heartbeat under way.
_HEARTBEAT_JOIN_S = 35.0


def _heartbeat(client: Client, path: str, stop: threading.Event, interval: float) -> None:
    """Keeps an ephemeral volume alive until ``stop`` is set; a failed heartbeat is tried again at the next
    one (the daemon keeps it for EPHEMERAL_TTL_S, four intervals); one the daemon no longer knows ends it."""
    while not stop.wait(interval):
        try:
            client.json("POST", f"{path}/heartbeat")
        except NotFoundError:
            return
        except Error:
            continue


# --- Batch uploads ---------------------------------------------------------------------------------


@dataclass
class _Upload:
    remote: str
    local_path: Optional[str] = None
    fileobj: Optional[BinaryIO] = None


class _BatchUpload:
    """Files to upload, gathered by ``put_file`` and ``put_directory`` and sent when the block ends."""

    def __init__(self, volume: Volume, force: bool) -> None:
        self._volume = volume
        self._force = force
        self._uploads: List[_Upload] = []
        self._remotes: Dict[str, int] = {}
        self._done = False

    def put_file(self, local_file: Union[str, "os.PathLike[str]", BinaryIO], remote_path: Union[str, PurePosixPath], mode: Optional[int] = None) -> None:
        """Uploads a local file (a path, or a binary file object read from where it stands) to
        ``remote_path`` (ending with "/": into that folder, keeping the file's name). ``mode`` is
        accepted as Modal's and not kept: the daemon sets files' permissions."""
        self._open()
        remote = _checked_path(remote_path)
        if mode is not None and (isinstance(mode, bool) or not isinstance(mode, int) or not 0 <= mode <= 0o7777):
            raise InvalidError(f"put_file: mode must be permission bits such as 0o644, got {mode!r}")
        if isinstance(local_file, io.TextIOBase):
            raise InvalidError(f"put_file takes a binary file object: open {getattr(local_file, 'name', 'the file')!r} with mode 'rb'")
        if hasattr(local_file, "read"):
            if remote.endswith("/") or not path_parts(remote):
                raise InvalidError(f"put_file: remote path {_show(remote)} names a folder; give the file's path in the volume")
            self._add(_Upload(remote=remote, fileobj=local_file))  # type: ignore[arg-type]
            return
        if not isinstance(local_file, (str, os.PathLike)):
            raise InvalidError(f"put_file takes a local path or a binary file object, got {type(local_file).__name__}")
        local = os.fspath(local_file)
        if not os.path.isfile(local):
            raise FileNotFoundError(f"put_file: {local} is not a file")
        if remote.endswith("/") or not path_parts(remote):
            remote = "/".join([*path_parts(remote), os.path.basename(local)])
            _checked_path(remote)
        self._add(_Upload(remote=remote, local_path=local))

    def put_directory(self, local_path: Union[str, "os.PathLike[str]"], remote_path: Union[str, PurePosixPath], recursive: bool = True) -> None:
        """Uploads the files of a local folder under ``remote_path`` (those of its sub-folders too,
        unless ``recursive=False``); symlinked folders are not entered."""
        self._open()
        remote = _checked_path(remote_path)
        local = os.fspath(local_path)
        if not os.path.isdir(local):
            raise NotADirectoryError(f"put_directory: {local} is not a folder")
        base = path_parts(remote)
        for where, folders, files in os.walk(local):
            folders.sort()
            rel = os.path.relpath(where, local)
            rel_parts = [] if rel == "." else rel.split(os.sep)
            for f in sorted(files):
                full = os.path.join(where, f)
                if os.path.isfile(full):
                    target = "/".join([*base, *rel_parts, f])
                    _checked_path(target)
                    self._add(_Upload(remote=target, local_path=full))
            if not recursive:
                folders.clear()

    def _open(self) -> None:
        if self._done:
            raise InvalidError("this batch_upload has ended: start another with vol.batch_upload()")

    def _add(self, upload: _Upload) -> None:
        key = "/".join(path_parts(upload.remote))
        if key in self._remotes:
            raise InvalidError(f"batch_upload: {upload.remote} is uploaded twice in one batch")
        self._remotes[key] = len(self._uploads)
        self._uploads.append(upload)

    def __enter__(self) -> "_BatchUpload":
        self._open()
        return self

    def __exit__(self, exc_type: Any, exc: Any, tb: Any) -> None:
        self._done = True
        if exc_type is None:
            self._send_all()

    async def __aenter__(self) -> "_BatchUpload":
        return self.__enter__()

    async def __aexit__(self, exc_type: Any, exc: Any, tb: Any) -> None:
        self._done = True
        if exc_type is None:
            await asyncio.get_running_loop().run_in_executor(None, self._send_all)

    def _send_all(self) -> None:
        if not self._uploads:
            return
        self._volume.hydrate()
        if len(self._uploads) == 1:
            self._send(self._uploads[0])
            return
        pool = concurrent.futures.ThreadPoolExecutor(max_workers=min(_UPLOAD_WORKERS, len(self._uploads)), thread_name_prefix="gantry-volume-upload")
        futures = [pool.submit(self._send, u) for u in self._uploads]
        try:
            for fut in futures:
                fut.result()  # the first failure, in the order the files were put
        except BaseException:
            for fut in futures:
                fut.cancel()
            raise
        finally:
            pool.shutdown(wait=True)

    def _send(self, upload: _Upload) -> None:
        vol = self._volume
        path = f"{vol._path()}/files?path={_segment(upload.remote)}&overwrite={_flag(self._force)}"
        if upload.local_path is not None:
            with open(upload.local_path, "rb") as f:
                size = os.fstat(f.fileno()).st_size
                status, answer = vol._transport().send_stream("PUT", path, _exactly(f, size, upload.local_path), length=size)
        else:
            f = upload.fileobj
            assert f is not None
            size = _left_in(f)
            body = read_chunks(f) if size is None else _exactly(f, size, "the file object")
            status, answer = vol._transport().send_stream("PUT", path, body, length=size)
        if status == 409:
            raise FileExistsError(f"{upload.remote} already exists in volume {vol.name}; use batch_upload(force=True) to overwrite it")
        if not 200 <= status < 300:
            raise error_from_api(status, answer, vol._transport().target)


def _left_in(f: BinaryIO) -> Optional[int]:
    """Bytes from where a seekable file object stands to its end; None when it cannot tell."""
    try:
        if not f.seekable():
            return None
        here = f.tell()
        end = f.seek(0, os.SEEK_END)
        f.seek(here)
        return max(0, end - here)
    except (AttributeError, OSError, ValueError):
        return None


def _exactly(f: BinaryIO, size: int, what: str) -> Iterator[bytes]:
    """``size`` bytes of ``f``, in chunks; Error when it ends sooner (the upload is broken off then)."""
    left = size
    while left > 0:
        chunk = f.read(min(STREAM_CHUNK, left))
        if not chunk:
            raise Error(f"{what} ended {left} bytes short of the {size} it had when the upload began")
        left -= len(chunk)
        yield bytes(chunk)
