"""Sandboxes on the Python side without Docker (python/gantry/sandbox.py, _sandbox_args.py,
_sandbox_io.py, _sandbox_files.py): every bad argument is refused before anything is sent, naming
the argument and its limit; the requests the client sends and how it reads the answers, checked
against a fake daemon on a unix socket: the create body (an image's local files packed as a
deploy packs them), waiting out "pending", a failed start, stdout read across cut answers and split
UTF-8, stdin, wait()'s exceptions, file errors as builtin OSErrors, list's query.
"""
from __future__ import annotations

import asyncio
import base64
import http.server
import json
import os
import tempfile
import threading
from dataclasses import dataclass, field
from typing import Any, Callable, Dict, Iterator, List, Optional, Tuple
from urllib.parse import parse_qsl, urlsplit

import pytest

import gantry as modal
from gantry._client import Client
from gantry.exception import ExecutionError, InvalidError, NotFoundError, SandboxTerminatedError, SandboxTimeoutError
from helpers import fake_daemon_on_socket

pytestmark = pytest.mark.no_daemon

SB = "sb-" + "a" * 18
EX = "ex-" + "b" * 18


@pytest.fixture(autouse=True)
def no_container(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("GANTRY_API_SOCKET", "GANTRY_API_URL", "GANTRY_API_TOKEN", "GANTRY_CONTAINER_ID"):
        monkeypatch.delenv(name, raising=False)


def sb_view(state: str = "running", returncode: Optional[int] = None, **more: Any) -> Dict[str, Any]:
    return {"id": SB, "app": "sbx", "name": None, "state": state, "returncode": returncode, "error": None, "tags": {}, **more}


# --- A fake daemon on a unix socket ----------------------------------------------------------------


@dataclass
class Req:
    method: str
    path: str
    query: Dict[str, str]
    body: bytes
    #: The query's pairs in order (a name may come more than once).
    pairs: List[Tuple[str, str]] = field(default_factory=list)

    def json(self) -> Any:
        return json.loads(self.body)


#: A reply: (status, JSON body), or (status, bytes, headers) for a byte stream.
Reply = Tuple[Any, ...]


@dataclass
class FakeDaemon:
    home: str
    requests: List[Req] = field(default_factory=list)
    #: (METHOD, path) → replies given one after another (the last one again after that), or a function of the request.
    routes: Dict[Tuple[str, str], Any] = field(default_factory=dict)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def reply(self, req: Req) -> Reply:
        with self.lock:
            self.requests.append(req)
            route = self.routes.get((req.method, req.path))
            if route is None:
                return (404, {"error": {"code": "not_found", "message": f"no route {req.method} {req.path}"}})
            if callable(route):
                return route(req)
            return route.pop(0) if len(route) > 1 else route[0]

    def sent(self, method: str, path: str) -> List[Req]:
        return [r for r in self.requests if r.method == method and r.path == path]


class _Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *args: Any) -> None:
        pass

    def address_string(self) -> str:
        return "unix"

    def _any(self) -> None:
        fake: FakeDaemon = self.server.fake  # type: ignore[attr-defined]
        if self.headers.get("transfer-encoding") == "chunked":
            body = b""
            while True:
                size = int(self.rfile.readline().strip(), 16)
                body += self.rfile.read(size + 2)[:size]
                if size == 0:
                    break
        else:
            body = self.rfile.read(int(self.headers.get("content-length") or 0))
        url = urlsplit(self.path)
        pairs = parse_qsl(url.query)
        status, payload, *rest = fake.reply(Req(self.command, url.path, dict(pairs), body, pairs))
        data = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
        self.send_response(status)
        self.send_header("Connection", "close")
        self.send_header("Content-Type", "application/octet-stream" if isinstance(payload, bytes) else "application/json")
        for name, value in (rest[0] if rest else {}).items():
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)
        self.close_connection = True

    do_GET = do_POST = do_PUT = do_DELETE = _any


@pytest.fixture
def fake(monkeypatch: pytest.MonkeyPatch) -> Iterator[FakeDaemon]:
    with fake_daemon_on_socket(FakeDaemon, _Handler, monkeypatch, "gs-") as daemon:
        yield daemon


def running(fake: FakeDaemon) -> modal.Sandbox:
    fake.routes[("GET", f"/v1/sandboxes/{SB}")] = [(200, sb_view())]
    return modal.Sandbox.from_id(SB)


# --- Arguments refused before anything is sent ------------------------------------------------------


def test_create_without_an_app_says_how_to_get_one() -> None:
    with pytest.raises(InvalidError, match=r"(?s)Sandboxes require an App.*App\.lookup\(\"sandbox-app\", create_if_missing=True\)") as got:
        modal.Sandbox.create("echo", "hi")
    assert "Sandbox.create(..., app=app)" in str(got.value)
    with pytest.raises(InvalidError, match="app must be a gantry.App"):
        modal.Sandbox.create("echo", app="sbx")


@pytest.mark.parametrize(
    "args, options, named",
    [
        (("echo", 3), {}, "all arguments must be strings"),
        (("echo", "a\0b"), {}, "NUL"),
        (("x" * 70_000,), {}, "at most 65536 are allowed"),
        ((), {"timeout": 0}, "timeout must be between 1 and 86400"),
        ((), {"timeout": 86_401}, "timeout must be between 1 and 86400"),
        ((), {"timeout": "5"}, "timeout must be a whole number"),
        ((), {"idle_timeout": 0}, "idle_timeout must be between 1 and 86400"),
        ((), {"workdir": "tmp"}, "workdir must be an absolute path"),
        ((), {"tags": {"k": 1}}, "value of tag 'k' must be a string of at most 256"),
        ((), {"tags": {f"k{i}": "v" for i in range(21)}}, "at most 20 tags"),
        ((), {"tags": {"": "v"}}, "1 to 256 characters"),
        ((), {"env": {"1X": "v"}}, "env: '1X' is not a variable name"),
        ((), {"env": {"X": 1}}, "the value of X must be a string"),
        ((), {"memory": 2}, "memory is a whole number of MiB between 6 and"),
        ((), {"memory": (1, 2, 3)}, r"memory takes a number or a \(request, limit\) pair"),
        ((), {"cpu": 0}, "cpu is a number of cores above 0 and at most 1024"),
        ((), {"gpu": "A100;rm"}, 'gpu must look like "any", "A100" or "H100:2"'),
        ((), {"secrets": ["openai"]}, "secrets takes a list of gantry.Secret.from_name"),
        ((), {"secrets": [modal.Secret.from_name(f"s{i}") for i in range(21)]}, "at most 20 secrets"),
        ((), {"volumes": ["/data"]}, "volumes takes a dict of mount point to volume"),
        ((), {"volumes": {"/etc": modal.Volume.from_name("v")}}, "/etc is the system's"),
        ((), {"name": "no spaces"}, "a sandbox name is letters, digits"),
        ((), {"image": "python:3.12"}, "image must be a gantry.Image"),
        ((), {"block_network": "yes"}, "block_network must be True or False"),
        ((), {"pty": 1}, "pty must be True or False"),
    ],
)
def test_bad_create_arguments_are_refused_naming_the_argument(args: tuple, options: Dict[str, Any], named: str) -> None:
    # No daemon answers here: a request would fail with DaemonNotRunningError, not InvalidError.
    with pytest.raises(InvalidError, match=named):
        modal.Sandbox.create(*args, app=modal.App("sbx"), client=Client(socket_path="/nonexistent/gantry.sock"), **options)


def test_an_image_file_that_went_missing_is_refused_naming_it(tmp_path: Any) -> None:
    local = tmp_path / "gone.txt"
    local.write_text("x")
    image = modal.Image.debian_slim().add_local_file(str(local), "/srv/gone.txt")
    local.unlink()
    with pytest.raises(InvalidError, match="gone.txt is not a file"):
        modal.Sandbox.create(app=modal.App("sbx"), image=image, client=Client(socket_path="/nonexistent/gantry.sock"))


def test_bad_exec_open_and_lookup_arguments_are_refused() -> None:
    sb = modal.Sandbox(sb_view(), Client(socket_path="/nonexistent/gantry.sock"))
    with pytest.raises(InvalidError, match="exec needs a command"):
        sb.exec()
    with pytest.raises(InvalidError, match="workdir must be an absolute path"):
        sb.exec("ls", workdir="rel")
    with pytest.raises(InvalidError, match="timeout must be between 1 and 86400"):
        sb.exec("ls", timeout=0)
    with pytest.raises(InvalidError, match="bufsize is -1 or 1"):
        sb.exec("ls", bufsize=4096)
    with pytest.raises(InvalidError, match="mode 'rw' is not one gantry takes"):
        sb.open("/tmp/x", "rw")
    with pytest.raises(InvalidError, match="mode 'x' is not one gantry takes"):
        sb.open("/tmp/x", "x")
    with pytest.raises(InvalidError, match="open: a path inside a sandbox must be absolute"):
        sb.open("tmp/x", "w")
    with pytest.raises(InvalidError, match="ls: a path inside a sandbox must be absolute"):
        sb.ls("tmp")
    with pytest.raises(InvalidError, match="set_tags: a sandbox has at most 20 tags"):
        sb.set_tags({f"k{i}": "v" for i in range(21)})
    with pytest.raises(InvalidError, match="is not a sandbox ID"):
        modal.Sandbox.from_id("fc-123")


# --- What is sent, and how answers are read --------------------------------------------------------


def test_create_sends_the_image_as_a_deploy_does_and_waits_out_pending(fake: FakeDaemon, tmp_path: Any) -> None:
    local = tmp_path / "hello.txt"
    local.write_text("hi there")
    image = modal.Image.debian_slim().pip_install("six").add_local_file(str(local), "/srv/hello.txt")
    fake.routes[("POST", "/v1/sandboxes")] = [(201, sb_view("pending"))]
    fake.routes[("GET", f"/v1/sandboxes/{SB}")] = [(200, sb_view("pending")), (200, sb_view("running"))]
    sb = modal.Sandbox.create(
        "sleep", "9", app=modal.App("sbx"), image=image, secrets=[modal.Secret.from_name("openai")],
        volumes={"/data": modal.Volume.from_name("vol")}, memory=(128, 512), env={"A": "1", "B": None}, tags={"team": "ml"},
        block_network=True,
    )
    assert sb.object_id == SB and sb.returncode is None
    body = fake.sent("POST", "/v1/sandboxes")[0].json()
    assert body["app"] == "sbx" and body["runtime"] == "python" and body["command"] == ["sleep", "9"]
    assert body["timeout"] == 300 and body["memory"] == 512 and body["env"] == {"A": "1"} and body["block_network"] is True
    assert body["secrets"] == ["openai"] and body["volumes"] == [{"path": "/data", "name": "vol"}] and body["tags"] == {"team": "ml"}
    step = body["image"]["steps"][-1]
    assert step["kind"] == "file" and "local" not in step
    asset = body["assets"][step["hash"]]
    assert base64.b64decode(asset["hello.txt"]["data"]) == b"hi there" and asset["hello.txt"]["mode"] == 0o644
    waits = fake.sent("GET", f"/v1/sandboxes/{SB}")
    assert len(waits) == 2 and all(w.query.get("until") == "running" and float(w.query["wait"]) > 0 for w in waits)


def test_a_sandbox_that_fails_to_start_raises_execution_error_with_the_reason(fake: FakeDaemon) -> None:
    fake.routes[("POST", "/v1/sandboxes")] = [(201, sb_view("pending"))]
    fake.routes[("GET", f"/v1/sandboxes/{SB}")] = [(200, sb_view("failed", error="secret openai does not exist"))]
    with pytest.raises(ExecutionError, match=f"sandbox {SB} failed to start: secret openai does not exist"):
        modal.Sandbox.create(app=modal.App("sbx"))
    fake.routes[("POST", "/v1/sandboxes")] = [(400, {"error": {"code": "invalid_argument", "message": "app names are letters"}})]
    with pytest.raises(InvalidError, match="app names are letters"):
        modal.Sandbox.create(app=modal.App("sbx"))


def test_stdout_reads_on_after_a_cut_answer_and_keeps_split_characters(fake: FakeDaemon) -> None:
    text = "héllo\nwörld\nno newline €"
    raw = text.encode()
    cut = raw.index("€".encode()) + 1  # the first answer ends inside "€"

    def stdout(req: Req) -> Reply:
        offset = int(req.query["offset"])
        assert req.query["follow"] == "1"
        if offset < cut:  # begun while the stream was open, cut short
            return (200, raw[offset:cut], {"x-gantry-closed": "0"})
        return (200, raw[offset:], {"x-gantry-closed": "1"})

    fake.routes[("GET", f"/v1/sandboxes/{SB}/procs/main/stdout")] = stdout
    sb = running(fake)
    assert sb.stdout.read() == text
    assert sb.stdout.read() == ""
    offsets = [r.query["offset"] for r in fake.sent("GET", f"/v1/sandboxes/{SB}/procs/main/stdout")]
    assert offsets == ["0", str(cut)]

    sb2 = running(fake)
    assert list(sb2.stdout) == ["héllo\n", "wörld\n", "no newline €"]


def test_exec_sends_its_options_and_text_false_reads_bytes(fake: FakeDaemon) -> None:
    sb = running(fake)
    fake.routes[("POST", f"/v1/sandboxes/{SB}/exec")] = [(201, {"id": EX, "running": True, "returncode": None})]
    fake.routes[("GET", f"/v1/sandboxes/{SB}/procs/{EX}/stdout")] = [(200, b"a\nb", {"x-gantry-closed": "1"})]
    fake.routes[("GET", f"/v1/sandboxes/{SB}/procs/{EX}")] = [(200, {"id": EX, "running": True, "returncode": None}), (200, {"id": EX, "running": False, "returncode": 3})]
    p = sb.exec("sh", "-c", "x", workdir="/tmp", timeout=5, env={"K": "v"}, text=False)
    assert fake.sent("POST", f"/v1/sandboxes/{SB}/exec")[0].json() == {"command": ["sh", "-c", "x"], "workdir": "/tmp", "timeout": 5, "env": {"K": "v"}, "pty": False}
    assert p.object_id == EX and p.returncode is None
    assert list(p.stdout) == [b"a\n", b"b"]
    assert p.wait() == 3 and p.returncode == 3


def test_stdin_is_sent_on_drain_with_its_end(fake: FakeDaemon) -> None:
    sb = running(fake)
    fake.routes[("POST", f"/v1/sandboxes/{SB}/procs/main/stdin")] = [(200, {"written": 0})]
    sb.stdin.write(b"one\n")
    sb.stdin.write("twö\n")
    assert fake.sent("POST", f"/v1/sandboxes/{SB}/procs/main/stdin") == []
    sb.stdin.write_eof()
    with pytest.raises(EOFError):
        sb.stdin.write(b"late")
    sb.stdin.drain()
    sb.stdin.drain()  # nothing left: nothing sent
    sent = fake.sent("POST", f"/v1/sandboxes/{SB}/procs/main/stdin")
    assert [(r.body, r.query["eof"]) for r in sent] == [("one\ntwö\n".encode(), "1")]


@pytest.mark.parametrize(
    "state, returncode, raise_on_termination, raised",
    [
        ("timed_out", 124, True, SandboxTimeoutError),
        ("timed_out", 124, False, SandboxTimeoutError),  # as Modal: a timeout raises whatever the flag says
        ("terminated", 137, True, SandboxTerminatedError),
        ("terminated", 137, False, None),
        ("finished", 3, True, None),
        ("failed", None, False, ExecutionError),
    ],
)
def test_wait_raises_as_modal_does(fake: FakeDaemon, state: str, returncode: int, raise_on_termination: bool, raised: Any) -> None:
    sb = running(fake)
    fake.routes[("GET", f"/v1/sandboxes/{SB}")] = [(200, sb_view()), (200, sb_view(state, returncode))]
    if raised is None:
        sb.wait(raise_on_termination=raise_on_termination)
    else:
        with pytest.raises(raised):
            sb.wait(raise_on_termination=raise_on_termination)
    assert sb.returncode == returncode


@pytest.mark.parametrize(
    "status, code, errno_name, message, builtin",
    [
        (404, "not_found", "ENOENT", "no such file /x", FileNotFoundError),
        (403, "forbidden", "EACCES", "permission denied: /x", PermissionError),
        (400, "invalid_argument", "EISDIR", "/x is a folder in the sandbox", IsADirectoryError),
        (400, "invalid_argument", "ENOTDIR", "a part of /x is not a folder in the sandbox", NotADirectoryError),
        (409, "conflict", "EEXIST", "/x exists in the sandbox", FileExistsError),
    ],
)
def test_file_errors_are_the_builtin_oserrors(fake: FakeDaemon, status: int, code: str, errno_name: str, message: str, builtin: type) -> None:
    sb = running(fake)
    fake.routes[("GET", f"/v1/sandboxes/{SB}/files")] = [(status, {"error": {"code": code, "message": message, "errno": errno_name}})]
    with pytest.raises(builtin, match=message) as got:
        sb.open("/x")
    assert got.value.filename == "/x"


def test_files_write_whole_in_w_mode_and_only_the_new_bytes_in_a_mode(fake: FakeDaemon) -> None:
    sb = running(fake)
    fake.routes[("PUT", f"/v1/sandboxes/{SB}/files")] = [(201, {"path": "/f", "size": 0})]
    fake.routes[("GET", f"/v1/sandboxes/{SB}/files")] = [(200, b"old\n")]
    with sb.open("/f", "w") as f:
        f.write("ab")
        f.write("cd")
    with sb.open("/f", "a+") as f:
        f.write("new\n")
        f.seek(0)
        assert f.read() == "old\nnew\n"
    puts = [(r.query["append"], r.body) for r in fake.sent("PUT", f"/v1/sandboxes/{SB}/files")]
    assert puts == [("0", b""), ("0", b"abcd"), ("1", b""), ("1", b"new\n")]
    with sb.open("/f", "rb") as f:
        assert f.readline() == b"old\n" and f.read() == b""
        with pytest.raises(OSError, match="not open for writing"):
            f.write(b"x")
    with pytest.raises(ValueError, match="closed file"):
        f.read()


def test_list_asks_for_running_sandboxes_with_every_tag(fake: FakeDaemon) -> None:
    fake.routes[("GET", "/v1/sandboxes")] = [(200, {"sandboxes": [sb_view(name="web")]})]
    got = list(modal.Sandbox.list(app_id="sbx", tags={"team": "ml", "k": "a=b"}))
    assert [s.object_id for s in got] == [SB]
    q = fake.sent("GET", "/v1/sandboxes")[0]
    assert q.query["state"] == "running" and q.query["app"] == "sbx"
    assert [v for k, v in q.pairs if k == "tag"] == ["team=ml", "k=a=b"]
    assert modal.Sandbox.from_name("sbx", "web").object_id == SB
    with pytest.raises(NotFoundError, match="no running sandbox named 'api'"):
        modal.Sandbox.from_name("sbx", "api")


def test_aio_forms_run_the_same_calls(fake: FakeDaemon) -> None:
    fake.routes[("POST", "/v1/sandboxes")] = [(201, sb_view("running"))]
    fake.routes[("GET", f"/v1/sandboxes/{SB}")] = [(200, sb_view("finished", 0))]
    fake.routes[("GET", f"/v1/sandboxes/{SB}/procs/main/stdout")] = [(200, b"out\n", {"x-gantry-closed": "1"})]

    async def main() -> Tuple[str, Optional[int]]:
        sb = await modal.Sandbox.create.aio("echo", "out", app=modal.App("sbx"))
        await sb.wait.aio()
        return await sb.stdout.read.aio(), sb.returncode

    assert asyncio.run(main()) == ("out\n", 0)
