"""Volumes on the Python side (python/gantry/volume.py), without a daemon: the name, mount point and
path rules of protocol/volumes.ts, the mounts ``@app.function(volumes=...)`` declares, pickling a
handle, reading a mounted volume inside a (fake) container, and the requests the client sends, checked
against a fake daemon on a unix socket: uploads stream with the right query and Content-Type, 409
raises FileExistsError, downloads arrive in chunks as they are sent.
"""
from __future__ import annotations

import asyncio
import http.server
import io
import json
import os
import pickle
import re
import threading
from dataclasses import dataclass, field
from pathlib import PurePosixPath
from typing import Any, Callable, Dict, Iterator, List, Optional, Tuple, Union
from urllib.parse import parse_qsl, unquote, urlsplit

import pytest

import gantry as modal
import gantry.volume as gvolume
import gantry._ephemeral as gephemeral
from gantry._client import STREAM_CHUNK, Client
from gantry.exception import DaemonNotRunningError, Error, InvalidError, NotFoundError
from gantry.volume import FileEntry, FileEntryType
from helpers import fake_daemon_on_socket, wait_until

pytestmark = pytest.mark.no_daemon


@pytest.fixture(autouse=True)
def no_container(monkeypatch: pytest.MonkeyPatch) -> None:
    """Outside a container unless a test says otherwise (conftest clears the client's own variables)."""
    for name in ("GANTRY_VOLUMES", "GANTRY_API_SOCKET", "GANTRY_API_URL", "GANTRY_API_TOKEN", "GANTRY_CONTAINER_ID"):
        monkeypatch.delenv(name, raising=False)


# --- A fake daemon on a unix socket ----------------------------------------------------------------


@dataclass
class Req:
    method: str
    path: str
    query: Dict[str, str]
    headers: Dict[str, str]
    body: bytes
    #: Sizes of the chunks of a chunked body; None when it came with a Content-Length.
    chunks: Optional[List[int]] = None

    def json(self) -> Any:
        return json.loads(self.body)


@dataclass
class Streamed:
    """An answer sent in parts: ``before`` runs between them (it may block)."""

    parts: List[bytes]
    between: Callable[[], None] = lambda: None


Reply = Tuple[int, Union[None, bytes, Dict[str, Any], Streamed]]


def not_found(message: str) -> Reply:
    return 404, {"error": {"code": "not_found", "message": message}}


def view(name: str) -> Dict[str, Any]:
    return {"name": name, "created_at": "2024-01-01T00:00:00Z", "size_bytes": 0, "files": 0, "mounted_by": [], "ephemeral": False, "expires_at": None}


@dataclass
class FakeDaemon:
    home: str
    volumes: set = field(default_factory=lambda: {"data"})
    requests: List[Req] = field(default_factory=list)
    #: (METHOD, path) → a reply, or a function of the request giving one.
    routes: Dict[Tuple[str, str], Any] = field(default_factory=dict)
    #: When set: answers a PUT with this reply before reading its body, and closes.
    refuse_puts_unread: Optional[Reply] = None

    @property
    def socket(self) -> str:
        return os.path.join(self.home, "gantry.sock")

    def of(self, method: str, path: Optional[str] = None) -> List[Req]:
        return [r for r in self.requests if r.method == method and (path is None or r.path == path)]

    def reply(self, req: Req) -> Reply:
        route = self.routes.get((req.method, req.path))
        if route is not None:
            return route(req) if callable(route) else route
        if req.method == "GET" and req.path.startswith("/v1/volumes/") and req.path.count("/") == 3:
            name = req.path.rsplit("/", 1)[1]
            return (200, view(name)) if name in self.volumes else not_found(f"no volume named {name}")
        return 200, {}


def _read_chunked(rfile: Any) -> Tuple[bytes, List[int]]:
    body = bytearray()
    sizes: List[int] = []
    while True:
        n = int(rfile.readline().split(b";")[0].strip(), 16)
        if n == 0:
            while rfile.readline() not in (b"\r\n", b"\n", b""):
                pass
            return bytes(body), sizes
        body += rfile.read(n)
        sizes.append(n)
        rfile.readline()


class _Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *args: Any) -> None:
        pass

    def address_string(self) -> str:
        return "unix"

    def _any(self) -> None:
        fake: FakeDaemon = self.server.fake  # type: ignore[attr-defined]
        split = urlsplit(self.path)
        headers = {k.lower(): v for k, v in self.headers.items()}
        if self.command == "PUT" and fake.refuse_puts_unread is not None:
            fake.requests.append(Req(self.command, unquote(split.path), dict(parse_qsl(split.query, keep_blank_values=True)), headers, b""))
            self._answer(*fake.refuse_puts_unread)
            self.close_connection = True
            return
        chunks = None
        if headers.get("transfer-encoding", "").lower() == "chunked":
            body, chunks = _read_chunked(self.rfile)
        else:
            body = self.rfile.read(int(headers.get("content-length") or 0))
        req = Req(self.command, unquote(split.path), dict(parse_qsl(split.query, keep_blank_values=True)), headers, body, chunks)
        fake.requests.append(req)
        self._answer(*fake.reply(req))

    def _answer(self, status: int, answer: Any) -> None:
        self.send_response(status)
        self.send_header("Connection", "close")
        if isinstance(answer, Streamed):
            self.send_header("Content-Type", "application/octet-stream")
            self.send_header("Content-Length", str(sum(len(p) for p in answer.parts)))
            self.end_headers()
            for i, part in enumerate(answer.parts):
                if i:
                    answer.between()
                self.wfile.write(part)
                self.wfile.flush()
            return
        data = answer if isinstance(answer, bytes) else (b"" if answer is None else json.dumps(answer).encode())
        self.send_header("Content-Type", "application/octet-stream" if isinstance(answer, bytes) else "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    do_GET = do_POST = do_PUT = do_DELETE = _any


@pytest.fixture
def fake(monkeypatch: pytest.MonkeyPatch) -> Iterator[FakeDaemon]:
    with fake_daemon_on_socket(FakeDaemon, _Handler, monkeypatch, "gv-") as daemon:
        yield daemon


NOWHERE = Client(socket_path="/nonexistent/gantry.sock")


# --- Names, mount points, paths --------------------------------------------------------------------


@pytest.mark.parametrize("good", ["data", "my-vol_1.2", "x" * 63, "A.b-C_9", "..a", "-"])
def test_a_volume_name_has_letters_digits_and_dash_dot_underscore(good: str) -> None:
    assert modal.Volume.from_name(good).name == good


@pytest.mark.parametrize(
    "bad, message",
    [
        ("", "must be a non-empty string"),
        (".", 'not "." or ".."'),
        ("..", 'not "." or ".."'),
        ("a/b", "use letters, digits, -, . and _"),
        ("has space", "use letters, digits, -, . and _"),
        ("trailing\n", "use letters, digits, -, . and _"),
        ("é", "use letters, digits, -, . and _"),
        ("x" * 64, "is 64 characters; at most 63 are allowed"),
        (42, "must be a non-empty string, got 42"),
    ],
)
def test_a_bad_volume_name_is_refused_at_once_naming_the_rule(bad: Any, message: str) -> None:
    with pytest.raises(InvalidError, match=f"Volume.from_name: .*{re.escape(message)}"):
        modal.Volume.from_name(bad)


def test_from_name_is_lazy_and_the_first_use_asks_the_daemon() -> None:
    vol = modal.Volume.from_name("data", client=NOWHERE)  # nothing sent: no daemon needed
    with pytest.raises(DaemonNotRunningError, match="no gantry daemon answers"):
        vol.listdir("/")


@pytest.mark.parametrize("version", [0, 3, "2", True])
def test_from_name_takes_version_1_or_2(version: Any) -> None:
    with pytest.raises(InvalidError, match="version must be 1, 2 or None"):
        modal.Volume.from_name("data", version=version)


@pytest.mark.parametrize(
    "call",
    [
        lambda v: v.listdir("a/../b"),
        lambda v: v.listdir("../etc", recursive=True),
        lambda v: v.read_file("x/.."),
        lambda v: v.read_file_into_fileobj("/../x", io.BytesIO()),
        lambda v: v.remove_file("..", recursive=True),
        lambda v: v.copy_files(["ok", "a/../../b"], "dst"),
        lambda v: v.copy_files(["ok"], "dst/.."),
        lambda v: v.batch_upload().put_file(io.BytesIO(b"x"), "up/../../x"),
        lambda v: v.batch_upload().put_directory(".", "../up"),
    ],
)
def test_a_path_with_a_dotdot_part_is_refused_before_any_request(fake: FakeDaemon, call: Callable[[Any], Any]) -> None:
    vol = modal.Volume.from_name("data")
    with pytest.raises(InvalidError, match=r"has a \.\. part: paths stay inside their volume"):
        call(vol)
    assert fake.requests == []


def test_nul_and_overlong_paths_are_refused(fake: FakeDaemon) -> None:
    vol = modal.Volume.from_name("data")
    with pytest.raises(InvalidError, match="contains a NUL character"):
        vol.listdir("a\0b")
    with pytest.raises(InvalidError, match="is 4097 characters; at most 4096 are allowed"):
        vol.read_file("x" * 4097)
    with pytest.raises(InvalidError, match="must be a string"):
        vol.listdir(3)  # type: ignore[arg-type]
    assert fake.requests == []


# --- Mounts in a function's options ----------------------------------------------------------------


def test_function_options_carry_the_mounts_with_their_marks() -> None:
    app = modal.App("py-volumes-options")
    data = modal.Volume.from_name("data", create_if_missing=True)
    models = modal.Volume.from_name("models")

    @app.function(volumes={"/data": data, PurePosixPath("/models"): models.read_only(), "/cache": data.read_only()})
    def f() -> None: ...

    @app.function(volumes={})
    def g() -> None: ...

    assert app.manifest() == [
        {
            "name": "f",
            "options": {
                "volumes": [
                    {"path": "/data", "name": "data", "createIfMissing": True},
                    {"path": "/models", "name": "models", "readOnly": True},
                    {"path": "/cache", "name": "data", "readOnly": True, "createIfMissing": True},
                ]
            },
        },
        {"name": "g", "options": {}},
    ]


def test_a_class_mounts_volumes_too() -> None:
    app = modal.App("py-volumes-cls")

    @app.cls(volumes={"/weights": modal.Volume.from_name("weights").read_only()})
    class Model:
        @modal.method()
        def run(self) -> int:
            return 1

    (entry,) = app.manifest()
    assert entry["options"]["volumes"] == [{"path": "/weights", "name": "weights", "readOnly": True}]


V = modal.Volume.from_name("v")
W = modal.Volume.from_name("w")


@pytest.mark.parametrize(
    "volumes, message",
    [
        ([V], r"volumes takes a dict of mount point to volume.*got list"),
        ({"/data": "v"}, r"volumes takes a dict of mount point to volume.*got str at /data"),
        ({"/data": modal.Secret.from_name("s")}, r"got Secret at /data"),
        ({3: V}, r"got the mount point 3"),
        ({"/": V}, r"a volume cannot be mounted at /$"),
        ({"data": V}, r"must be an absolute path"),
        ({"/data/": V}, r"no //, \. or \.\. parts, no trailing /"),
        ({"/a//b": V}, r"no //, \. or \.\. parts"),
        ({"/a/./b": V}, r"no //, \. or \.\. parts"),
        ({"/a/../etc": V}, r"no //, \. or \.\. parts"),
        ({"/etc": V}, r"cannot be mounted at /etc: /etc is the system's"),
        ({"/usr/local/data": V}, r"/usr is the system's"),
        ({"/run/gantry/x": V}, r"/run/gantry is gantry's own"),
        ({"/data": V, "/data/sub": W}, r"volume mount points /data and /data/sub overlap"),
        ({"/data": V, PurePosixPath("/data"): W}, r"two volumes are mounted at /data"),
        ({f"/m{i}": V for i in range(17)}, r"at most 16 volumes, got 17"),
    ],
)
def test_bad_mounts_are_refused_at_definition(volumes: Any, message: str) -> None:
    app = modal.App("py-volumes-bad")
    with pytest.raises(InvalidError, match=message):
        app.function(volumes=volumes)


def test_neighbouring_mount_points_do_not_overlap() -> None:
    app = modal.App("py-volumes-neighbours")

    @app.function(volumes={"/data": V, "/data2": W, "/srv/a": V.read_only()})
    def f() -> None: ...

    assert [m["path"] for m in app.manifest()[0]["options"]["volumes"]] == ["/data", "/data2", "/srv/a"]


# --- Handles travel by name -----------------------------------------------------------------------


def test_a_handle_pickles_to_its_name_and_read_only_mark() -> None:
    vol = modal.Volume.from_name("data", create_if_missing=True, client=NOWHERE)
    back = pickle.loads(pickle.dumps(vol))
    assert (back.name, back.is_read_only) == ("data", False)
    ro = pickle.loads(pickle.dumps(vol.read_only()))
    assert (ro.name, ro.is_read_only, repr(ro)) == ("data", True, "Volume.from_name('data').read_only()")
    assert b"nonexistent" not in pickle.dumps(vol)  # the client stays behind


def test_modal_names_are_where_modal_has_them() -> None:
    import gantry.volume

    assert modal.volume is gantry.volume
    assert modal.Volume is gantry.volume.Volume
    assert modal.volume.FileEntry is FileEntry
    assert [t.name for t in FileEntryType][:4] == ["UNSPECIFIED", "FILE", "DIRECTORY", "SYMLINK"]


# --- Inside a function's container ----------------------------------------------------------------


@pytest.fixture
def mounted(tmp_path: Any, monkeypatch: pytest.MonkeyPatch) -> str:
    """A volume "vol" mounted at tmp/mnt, as the daemon's GANTRY_VOLUMES says; a folder outside it."""
    mnt = tmp_path / "mnt"
    (mnt / "sub" / "deeper").mkdir(parents=True)
    (mnt / "a.txt").write_bytes(b"hello")
    (mnt / "sub" / "b.bin").write_bytes(b"\x00" * 10)
    (mnt / "sub" / "deeper" / "c.txt").write_bytes(b"c")
    (mnt / "big.bin").write_bytes(os.urandom(2 * STREAM_CHUNK + 3))
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "secret.txt").write_bytes(b"secret")
    os.symlink(outside, mnt / "link_out")
    os.symlink(outside / "secret.txt", mnt / "file_out")
    os.symlink("sub", mnt / "link_in")
    monkeypatch.setenv("GANTRY_VOLUMES", json.dumps({"vol": str(mnt), "other": "/nowhere"}))
    monkeypatch.setenv("GANTRY_CONTAINER_ID", "c-test")
    return str(mnt)


def _vol() -> modal.Volume:
    return modal.Volume.from_name("vol", client=NOWHERE)  # any request would raise DaemonNotRunningError


def test_listdir_in_a_container_reads_the_mount(mounted: str) -> None:
    top = _vol().listdir("/")
    assert [(e.path, e.type) for e in top] == [
        ("a.txt", FileEntryType.FILE),
        ("big.bin", FileEntryType.FILE),
        ("file_out", FileEntryType.SYMLINK),
        ("link_in", FileEntryType.SYMLINK),
        ("link_out", FileEntryType.SYMLINK),
        ("sub", FileEntryType.DIRECTORY),
    ]
    a = top[0]
    assert a.size == 5 and isinstance(a.mtime, int) and a.mtime > 0


def test_a_recursive_listing_lists_symlinks_without_entering_them(mounted: str) -> None:
    paths = [e.path for e in _vol().listdir("", recursive=True)]
    assert paths == ["a.txt", "big.bin", "file_out", "link_in", "link_out", "sub", "sub/b.bin", "sub/deeper", "sub/deeper/c.txt"]
    assert [e.path for e in _vol().listdir("/sub", recursive=False)] == ["sub/b.bin", "sub/deeper"]


def test_listing_a_file_gives_that_file(mounted: str) -> None:
    (entry,) = _vol().listdir("sub/b.bin")
    assert (entry.path, entry.type, entry.size) == ("sub/b.bin", FileEntryType.FILE, 10)


def test_a_symlink_that_stays_inside_the_mount_is_followed(mounted: str) -> None:
    assert [e.path for e in _vol().listdir("link_in")] == ["link_in/b.bin", "link_in/deeper"]
    assert b"".join(_vol().read_file("/link_in/deeper/c.txt")) == b"c"


@pytest.mark.parametrize(
    "call",
    [
        lambda v: v.listdir("link_out"),
        lambda v: v.listdir("link_out/", recursive=True),
        lambda v: v.read_file("link_out/secret.txt"),
        lambda v: v.read_file("file_out"),
        lambda v: v.read_file_into_fileobj("file_out", io.BytesIO()),
    ],
)
def test_a_symlink_out_of_the_mount_is_never_followed(mounted: str, call: Callable[[Any], Any]) -> None:
    with pytest.raises(InvalidError, match=r"goes through the symlink (link|file)_out, which points out of the volume"):
        call(_vol())


def test_read_file_in_a_container_yields_chunks_of_the_file(mounted: str) -> None:
    chunks = list(_vol().read_file("big.bin"))
    assert [len(c) for c in chunks] == [STREAM_CHUNK, STREAM_CHUNK, 3]
    with open(os.path.join(mounted, "big.bin"), "rb") as f:
        assert b"".join(chunks) == f.read()
    out = io.BytesIO()
    assert _vol().read_file_into_fileobj("a.txt", out) == 5 and out.getvalue() == b"hello"


def test_missing_paths_in_a_container_raise_file_not_found(mounted: str) -> None:
    with pytest.raises(FileNotFoundError, match="no file 'nope.txt' in volume vol|no file \"nope.txt\" in volume vol"):
        _vol().read_file("nope.txt")
    with pytest.raises(FileNotFoundError, match="in volume vol"):
        _vol().listdir("sub/nope", recursive=True)
    with pytest.raises(InvalidError, match=r"\.\. part"):
        _vol().listdir("sub/../../x")


def test_commit_in_a_container_syncs_and_reload_has_nothing_to_do(mounted: str, monkeypatch: pytest.MonkeyPatch) -> None:
    synced: List[bool] = []
    monkeypatch.setattr(gvolume.os, "sync", lambda: synced.append(True))
    vol = _vol()
    assert vol.commit() is None and synced == [True]
    assert vol.reload() is None
    assert asyncio.run(vol.commit.aio()) is None and synced == [True, True]


def test_a_volume_not_mounted_here_goes_to_the_api(mounted: str) -> None:
    with pytest.raises(DaemonNotRunningError):
        modal.Volume.from_name("elsewhere", client=NOWHERE).listdir("/")


def test_a_malformed_gantry_volumes_is_an_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GANTRY_VOLUMES", '["not", "a", "map"]')
    with pytest.raises(Error, match=r"GANTRY_VOLUMES must hold JSON like"):
        _vol().listdir("/")


# --- Over the API (a fake daemon) -----------------------------------------------------------------


def test_first_use_hydrates_once(fake: FakeDaemon) -> None:
    fake.routes[("GET", "/v1/volumes/data/entries")] = (200, {"entries": []})
    vol = modal.Volume.from_name("data")
    assert fake.requests == []
    vol.listdir("/")
    vol.listdir("/")
    assert [(r.method, r.path) for r in fake.requests] == [
        ("GET", "/v1/volumes/data"),
        ("GET", "/v1/volumes/data/entries"),
        ("GET", "/v1/volumes/data/entries"),
    ]


def test_an_unknown_volume_says_how_to_make_one(fake: FakeDaemon) -> None:
    with pytest.raises(NotFoundError, match=r"volume nope does not exist: create it with `gantry volume create nope`, or use Volume\.from_name\('nope', create_if_missing=True\)"):
        modal.Volume.from_name("nope").hydrate()
    assert fake.of("POST") == []


def test_create_if_missing_makes_it_on_first_use(fake: FakeDaemon) -> None:
    fake.routes[("POST", "/v1/volumes")] = lambda req: (201, view(req.json()["name"]))
    vol = modal.Volume.from_name("fresh", create_if_missing=True)
    assert vol.hydrate() is vol
    (post,) = fake.of("POST", "/v1/volumes")
    assert post.json() == {"name": "fresh", "exist_ok": True}


def test_listdir_over_the_api(fake: FakeDaemon) -> None:
    fake.routes[("GET", "/v1/volumes/data/entries")] = (
        200,
        {
            "entries": [
                {"path": "dir", "type": "directory", "size": 0, "mtime": 1700000000},
                {"path": "dir/f.txt", "type": "file", "size": 3, "mtime": 1700000001.5},
                {"path": "dir/l", "type": "symlink", "size": 4, "mtime": 1700000002},
            ]
        },
    )
    entries = modal.Volume.from_name("data").listdir("/dir stuff/", recursive=True)
    assert entries == [
        FileEntry("dir", FileEntryType.DIRECTORY, 1700000000, 0),
        FileEntry("dir/f.txt", FileEntryType.FILE, 1700000001, 3),
        FileEntry("dir/l", FileEntryType.SYMLINK, 1700000002, 4),
    ]
    (req,) = fake.of("GET", "/v1/volumes/data/entries")
    assert req.query == {"path": "/dir stuff/", "recursive": "1"}
    assert [e.path for e in modal.Volume.from_name("data").iterdir("/")] == ["dir", "dir/f.txt", "dir/l"]
    assert fake.of("GET", "/v1/volumes/data/entries")[-1].query["recursive"] == "1"  # iterdir: recursive as Modal's


def test_listdir_of_a_missing_path_raises_file_not_found(fake: FakeDaemon) -> None:
    fake.routes[("GET", "/v1/volumes/data/entries")] = not_found("nothing at nope")
    with pytest.raises(FileNotFoundError, match="no file or folder 'nope' in volume data|nothing at nope"):
        modal.Volume.from_name("data").listdir("nope")


def test_read_file_yields_chunks_as_they_arrive(fake: FakeDaemon) -> None:
    first, rest = b"a" * 1000, os.urandom(3 * STREAM_CHUNK)
    got_first = threading.Event()
    released: List[bool] = []
    fake.routes[("GET", "/v1/volumes/data/files")] = (200, Streamed([first, rest], between=lambda: released.append(got_first.wait(10))))
    chunks = modal.Volume.from_name("data").read_file("/models/w.bin")
    head = b""
    while len(head) < len(first):  # the daemon sends the rest only once the first part has been read here
        head += next(chunks)
    got_first.set()
    tail = list(chunks)
    assert released == [True]
    assert head + b"".join(tail) == first + rest
    assert all(len(c) <= STREAM_CHUNK for c in tail) and len(tail) >= 3
    (req,) = fake.of("GET", "/v1/volumes/data/files")
    assert req.query == {"path": "/models/w.bin"}


def test_read_file_of_a_missing_file_raises_at_once(fake: FakeDaemon) -> None:
    fake.routes[("GET", "/v1/volumes/data/files")] = not_found("no file nope")
    with pytest.raises(FileNotFoundError, match="nope"):
        modal.Volume.from_name("data").read_file("nope")


def test_read_file_into_fileobj_counts_the_bytes(fake: FakeDaemon) -> None:
    body = os.urandom(STREAM_CHUNK + 17)
    fake.routes[("GET", "/v1/volumes/data/files")] = (200, body)
    out = io.BytesIO()
    assert modal.Volume.from_name("data").read_file_into_fileobj("f", out) == len(body)
    assert out.getvalue() == body


class CountingReader(io.BytesIO):
    """A file object that records how much each read asked for."""

    def __init__(self, data: bytes, seekable: bool = True) -> None:
        super().__init__(data)
        self._can_seek = seekable
        self.asked: List[int] = []

    def read(self, size: Optional[int] = -1) -> bytes:  # type: ignore[override]
        self.asked.append(-1 if size is None else size)
        return super().read(size)

    def seekable(self) -> bool:
        return self._can_seek


def test_batch_upload_streams_each_file_when_the_block_ends(fake: FakeDaemon, tmp_path: Any) -> None:
    local = tmp_path / "weights.bin"
    local.write_bytes(os.urandom(STREAM_CHUNK + 5))
    tree = tmp_path / "tree"
    (tree / "nested").mkdir(parents=True)
    (tree / "top.txt").write_bytes(b"top")
    (tree / "nested" / "inner.txt").write_bytes(b"inner")
    big = os.urandom(4 * STREAM_CHUNK + 1)
    reader = CountingReader(big)
    vol = modal.Volume.from_name("data")
    with vol.batch_upload() as batch:
        batch.put_file(str(local), "/models/w.bin")
        batch.put_file(local, "/into/")
        batch.put_file(reader, PurePosixPath("/raw.bin"))
        batch.put_directory(str(tree), "/tree")
        assert fake.of("PUT") == []  # nothing is sent before the block ends
    puts = {r.query["path"]: r for r in fake.of("PUT")}
    assert sorted(puts) == ["/models/w.bin", "/raw.bin", "into/weights.bin", "tree/nested/inner.txt", "tree/top.txt"]
    for r in puts.values():
        assert r.path == "/v1/volumes/data/files"
        assert r.query["overwrite"] == "0"
        assert r.headers["content-type"] == "application/octet-stream"
        assert r.headers["content-length"] == str(len(r.body)) and r.chunks is None
    assert puts["/models/w.bin"].body == local.read_bytes() == puts["into/weights.bin"].body
    assert puts["tree/nested/inner.txt"].body == b"inner" and puts["tree/top.txt"].body == b"top"
    assert puts["/raw.bin"].body == big
    assert max(reader.asked) <= STREAM_CHUNK and len(reader.asked) >= 5  # read a chunk at a time, never whole
    # Local files keep their permission bits (as Modal's put_file); a file object gets the daemon's 0644.
    assert puts["/models/w.bin"].query["mode"] == oct(local.stat().st_mode & 0o777)[2:]
    assert "mode" not in puts["/raw.bin"].query


def test_put_file_mode_is_sent_and_setuid_refused(fake: FakeDaemon) -> None:
    vol = modal.Volume.from_name("data")
    with vol.batch_upload() as batch:
        batch.put_file(io.BytesIO(b"k"), "key", mode=0o600)
        with pytest.raises(modal.exception.InvalidError, match="setuid, setgid or the sticky bit"):
            batch.put_file(io.BytesIO(b"k"), "suid", mode=0o4755)
    (put,) = fake.of("PUT")
    assert put.query == {"path": "key", "overwrite": "0", "mode": "600"}


def test_a_file_object_that_cannot_seek_goes_chunked(fake: FakeDaemon) -> None:
    data = os.urandom(2 * STREAM_CHUNK + 9)
    with modal.Volume.from_name("data").batch_upload(force=True) as batch:
        batch.put_file(CountingReader(data, seekable=False), "stream.bin")
    (put,) = fake.of("PUT")
    assert put.query == {"path": "stream.bin", "overwrite": "1"}
    assert put.body == data and "content-length" not in put.headers
    assert put.chunks is not None and max(put.chunks) <= STREAM_CHUNK and len(put.chunks) == 3


def test_put_directory_without_recursive_takes_the_top_files_only(fake: FakeDaemon, tmp_path: Any) -> None:
    (tmp_path / "sub").mkdir()
    (tmp_path / "a").write_bytes(b"a")
    (tmp_path / "sub" / "b").write_bytes(b"b")
    with modal.Volume.from_name("data").batch_upload() as batch:
        batch.put_directory(tmp_path, "/", recursive=False)
    assert [r.query["path"] for r in fake.of("PUT")] == ["a"]


def test_an_exception_in_the_block_uploads_nothing(fake: FakeDaemon) -> None:
    with pytest.raises(RuntimeError, match="changed my mind"):
        with modal.Volume.from_name("data").batch_upload() as batch:
            batch.put_file(io.BytesIO(b"x"), "x")
            raise RuntimeError("changed my mind")
    assert fake.requests == []


def test_an_existing_file_without_force_raises_file_exists(fake: FakeDaemon) -> None:
    fake.routes[("PUT", "/v1/volumes/data/files")] = (409, {"error": {"code": "conflict", "message": "exists"}})
    with pytest.raises(FileExistsError, match=r"/models/w\.bin already exists in volume data; use batch_upload\(force=True\)"):
        with modal.Volume.from_name("data").batch_upload() as batch:
            batch.put_file(io.BytesIO(b"weights"), "/models/w.bin")


def test_a_refusal_sent_before_the_body_is_read_still_arrives(fake: FakeDaemon) -> None:
    fake.refuse_puts_unread = (409, {"error": {"code": "conflict", "message": "exists"}})
    with pytest.raises(FileExistsError, match="big.bin already exists"):
        with modal.Volume.from_name("data").batch_upload() as batch:
            batch.put_file(io.BytesIO(os.urandom(16 * 1024 * 1024)), "big.bin")


def test_other_refusals_raise_the_daemons_error(fake: FakeDaemon) -> None:
    fake.routes[("PUT", "/v1/volumes/data/files")] = (400, {"error": {"code": "invalid_argument", "message": "a folder is there"}})
    with pytest.raises(InvalidError, match="a folder is there"):
        with modal.Volume.from_name("data").batch_upload(force=True) as batch:
            batch.put_file(io.BytesIO(b"x"), "dir")


def test_put_file_checks_its_arguments_at_once(fake: FakeDaemon, tmp_path: Any) -> None:
    batch = modal.Volume.from_name("data").batch_upload()
    with pytest.raises(FileNotFoundError, match="is not a file"):
        batch.put_file(str(tmp_path / "missing"), "x")
    with pytest.raises(InvalidError, match="names a folder"):
        batch.put_file(io.BytesIO(b"x"), "dir/")
    with pytest.raises(InvalidError, match="takes a binary file object"):
        batch.put_file(io.StringIO("text"), "x")
    with pytest.raises(InvalidError, match="mode must be permission bits"):
        batch.put_file(io.BytesIO(b"x"), "x", mode=-1)
    batch.put_file(io.BytesIO(b"x"), "x")
    with pytest.raises(InvalidError, match="x is uploaded twice in one batch"):
        batch.put_file(io.BytesIO(b"y"), "/x")
    with pytest.raises(NotADirectoryError):
        batch.put_directory(str(tmp_path / "missing"), "/")
    assert fake.requests == []


def test_a_read_only_handle_refuses_writes(fake: FakeDaemon) -> None:
    ro = modal.Volume.from_name("data").read_only()
    for write in (lambda: ro.batch_upload(), lambda: ro.remove_file("x"), lambda: ro.copy_files(["a"], "b")):
        with pytest.raises(InvalidError, match="was opened read-only"):
            write()
    assert fake.requests == []


def test_remove_file_and_copy_files(fake: FakeDaemon) -> None:
    vol = modal.Volume.from_name("data")
    vol.remove_file("/old", recursive=True)
    (rm,) = fake.of("DELETE")
    assert (rm.path, rm.query) == ("/v1/volumes/data/files", {"path": "/old", "recursive": "1"})
    vol.copy_files(["a.txt", "/b/c.txt"], "/dst/")
    (cp,) = fake.of("POST", "/v1/volumes/data/copy")
    assert cp.json() == {"src_paths": ["a.txt", "/b/c.txt"], "dst_path": "/dst/", "recursive": False}
    fake.routes[("DELETE", "/v1/volumes/data/files")] = not_found("no file gone")
    with pytest.raises(FileNotFoundError, match="gone"):
        vol.remove_file("gone")
    with pytest.raises(InvalidError, match="copy_files takes a non-empty list"):
        vol.copy_files("a.txt", "b")  # type: ignore[arg-type]


def test_commit_and_reload_outside_a_container(fake: FakeDaemon) -> None:
    vol = modal.Volume.from_name("data")
    assert vol.commit() is None
    assert vol.reload() is None
    assert [(r.method, r.path) for r in fake.requests] == [("GET", "/v1/volumes/data"), ("POST", "/v1/volumes/data/commit")]


def test_objects_list_and_delete(fake: FakeDaemon) -> None:
    fake.routes[("GET", "/v1/volumes")] = (200, {"volumes": [view("a"), view("b")]})
    assert [v.name for v in modal.Volume.objects.list()] == ["a", "b"]
    assert [v.name for v in asyncio.run(modal.Volume.objects.list.aio(max_objects=1))] == ["a"]
    modal.Volume.objects.delete("a")
    fake.routes[("DELETE", "/v1/volumes/gone")] = not_found("no volume gone")
    modal.Volume.objects.delete("gone", allow_missing=True)
    with pytest.raises(NotFoundError, match="no volume gone"):
        modal.Volume.delete("gone")
    with pytest.raises(InvalidError, match="not a volume name"):
        modal.Volume.objects.delete("a/b")
    assert [r.path for r in fake.of("DELETE")] == ["/v1/volumes/a", "/v1/volumes/gone", "/v1/volumes/gone"]
    modal.Volume.objects.create("new", allow_existing=True)
    assert fake.of("POST", "/v1/volumes")[-1].json() == {"name": "new", "exist_ok": True}


def test_an_ephemeral_volume_heartbeats_while_the_block_runs_and_is_deleted_after(fake: FakeDaemon, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(gephemeral, "_HEARTBEAT_INTERVAL_S", 0.01)
    fake.routes[("POST", "/v1/volumes/ephemeral")] = (201, {**view("ephemeral-k3x9"), "ephemeral": True})
    with modal.Volume.ephemeral() as vol:
        assert vol.name == "ephemeral-k3x9"
        wait_until(lambda: fake.of("POST", "/v1/volumes/ephemeral-k3x9/heartbeat") or None, "a heartbeat", timeout=10)
        beating = [t for t in threading.enumerate() if t.name == "gantry-volume-heartbeat-ephemeral-k3x9"]
        assert len(beating) == 1
    assert not beating[0].is_alive()
    assert fake.of("DELETE", "/v1/volumes/ephemeral-k3x9")
    assert fake.requests[-1].method == "DELETE"


def test_aio_forms(fake: FakeDaemon) -> None:
    fake.routes[("GET", "/v1/volumes/data/entries")] = (200, {"entries": [{"path": "f", "type": "file", "size": 1, "mtime": 1}]})
    fake.routes[("GET", "/v1/volumes/data/files")] = (200, b"abc")
    fake.routes[("POST", "/v1/volumes/ephemeral")] = (201, view("eph"))
    vol = modal.Volume.from_name("data")

    async def main() -> Tuple[List[FileEntry], bytes, str]:
        entries = await vol.listdir.aio("/")
        data = b"".join([c async for c in vol.read_file.aio("f")])
        async with vol.batch_upload() as batch:
            batch.put_file(io.BytesIO(b"z"), "z")
        async with modal.Volume.ephemeral.aio() as eph:
            name = eph.name
        return entries, data, name

    entries, data, name = asyncio.run(main())
    assert [e.path for e in entries] == ["f"] and data == b"abc" and name == "eph"
    assert fake.of("PUT")[0].body == b"z"
    assert fake.of("DELETE", "/v1/volumes/eph")
