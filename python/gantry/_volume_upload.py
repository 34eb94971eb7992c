"""``vol.batch_upload()``: files gathered by ``put_file`` and ``put_directory`` and streamed to the
daemon when the block ends, a few at a time, never whole in memory."""
from __future__ import annotations

from typing import TYPE_CHECKING
import asyncio
import concurrent.futures
import io
import os
from dataclasses import dataclass
from pathlib import PurePosixPath
from typing import Any, BinaryIO, Dict, Iterator, List, Optional, Union
from ._client import STREAM_CHUNK, error_from_api, read_chunks
from .exception import Error, InvalidError
from ._volume_rules import _UPLOAD_WORKERS, _checked_path, _flag, _segment, _show, path_parts

if TYPE_CHECKING:
    from .volume import Volume

# --- Batch uploads ---------------------------------------------------------------------------------


@dataclass
class _Upload:
    remote: str
    local_path: Optional[str] = None
    fileobj: Optional[BinaryIO] = None
    mode: Optional[int] = None


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
        ``remote_path`` (ending with "/": into that folder, keeping the file's name). ``mode`` sets
        the file's permission bits (left out: the local file's, or 0o644 for a file object); setuid,
        setgid and sticky bits are refused."""
        self._open()
        remote = _checked_path(remote_path)
        if mode is not None and (isinstance(mode, bool) or not isinstance(mode, int) or not 0 <= mode <= 0o7777):
            raise InvalidError(f"put_file: mode must be permission bits such as 0o644, got {mode!r}")
        if mode is not None and mode > 0o777:
            raise InvalidError(f"put_file: mode {oct(mode)} sets setuid, setgid or the sticky bit, which volumes refuse: give permission bits up to 0o777")
        if isinstance(local_file, io.TextIOBase):
            raise InvalidError(f"put_file takes a binary file object: open {getattr(local_file, 'name', 'the file')!r} with mode 'rb'")
        if hasattr(local_file, "read"):
            if remote.endswith("/") or not path_parts(remote):
                raise InvalidError(f"put_file: remote path {_show(remote)} names a folder; give the file's path in the volume")
            self._add(_Upload(remote=remote, fileobj=local_file, mode=mode))  # type: ignore[arg-type]
            return
        if not isinstance(local_file, (str, os.PathLike)):
            raise InvalidError(f"put_file takes a local path or a binary file object, got {type(local_file).__name__}")
        local = os.fspath(local_file)
        if not os.path.isfile(local):
            raise FileNotFoundError(f"put_file: {local} is not a file")
        if remote.endswith("/") or not path_parts(remote):
            remote = "/".join([*path_parts(remote), os.path.basename(local)])
            _checked_path(remote)
        self._add(_Upload(remote=remote, local_path=local, mode=mode if mode is not None else _local_mode(local)))

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
                    self._add(_Upload(remote=target, local_path=full, mode=_local_mode(full)))
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
        if upload.mode is not None:
            path += f"&mode={upload.mode:o}"
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


def _local_mode(path: str) -> int:
    """A local file's permission bits, as an upload keeps them (Modal's put_file does the same)."""
    return os.stat(path).st_mode & 0o777


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
