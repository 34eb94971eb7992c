"""Sandboxes from Python against the session's real daemon and Docker (python/gantry/sandbox.py):
a command's output and exit code, exec with stdout, stderr and stdin, files in and out (and the
errors a local open raises), from_id, list by app and tags, set_tags, terminate (137), a timeout
(124), an image with a local file, and the container's confinement (no network but loopback, not
root). Every sandbox runs with block_network=True: none of these tests is about reaching out.
One sandbox with no command serves the checks that leave it as they found it.
"""
from __future__ import annotations

import asyncio
import os
import uuid
from typing import Iterator

import pytest

import gantry as modal
from gantry._client import Client
from gantry.exception import Error, ExecutionError, InvalidError, SandboxTerminatedError, SandboxTimeoutError

APP = "sbx-py"


@pytest.fixture(scope="module")
def shared(daemon) -> Iterator[modal.Sandbox]:  # type: ignore[no-untyped-def]
    """A sandbox running no command (kept up until its timeout), for checks that change nothing others read."""
    client = Client(socket_path=os.path.join(daemon.home, "gantry.sock"))
    app = modal.App.lookup(APP, create_if_missing=True, client=client)
    sb = modal.Sandbox.create(app=app, timeout=600, block_network=True, tags={"role": "shared"}, client=client)
    yield sb
    sb.terminate()


def app() -> modal.App:
    return modal.App.lookup(APP, create_if_missing=True)


def test_a_command_s_output_and_exit_code_and_from_id() -> None:
    sb = modal.Sandbox.create("sh", "-c", "echo hi; echo oops >&2; exit 3", app=app(), block_network=True)
    assert sb.object_id.startswith("sb-")
    assert sb.stdout.read() == "hi\n"
    assert sb.stderr.read() == "oops\n"
    sb.wait()  # an exit code of its own is no termination: nothing raised
    assert sb.returncode == 3 and sb.poll() == 3
    again = modal.Sandbox.from_id(sb.object_id)
    assert again.object_id == sb.object_id and again.returncode == 3
    assert again.stdout.read() == "hi\n"  # a new handle reads the stream from its start


def test_exec_streams_stdout_stderr_and_stdin(shared: modal.Sandbox) -> None:
    p = shared.exec("sh", "-c", "echo out; echo err >&2; exit 5")
    assert p.stdout.read() == "out\n" and p.stderr.read() == "err\n"
    assert p.wait() == 5 and p.returncode == 5

    cat = shared.exec("cat")
    cat.stdin.write(b"line 1\n")
    cat.stdin.write("línea 2\n")
    cat.stdin.write_eof()
    cat.stdin.drain()
    assert list(cat.stdout) == ["line 1\n", "línea 2\n"]
    assert cat.wait() == 0

    raw = shared.exec("printf", "\\377\\n", text=False)
    assert raw.stdout.read() == b"\xff\n" and raw.wait() == 0


def test_an_exec_past_its_timeout_ends_with_124(shared: modal.Sandbox) -> None:
    p = shared.exec("sleep", "60", timeout=1)
    assert p.wait() == 124
    assert shared.poll() is None  # the sandbox itself goes on


def test_files_written_read_appended_and_refused(shared: modal.Sandbox) -> None:
    folder = f"/tmp/files-{uuid.uuid4().hex[:8]}"
    shared.mkdir(f"{folder}/sub", parents=True)
    with shared.open(f"{folder}/notes.txt", "w") as f:
        f.write("one\n")
    with shared.open(f"{folder}/notes.txt", "a") as f:
        f.write("two\n")
    with shared.open(f"{folder}/notes.txt") as f:
        assert f.readline() == "one\n" and f.read() == "two\n"
    with shared.open(f"{folder}/blob.bin", "wb") as f:
        f.write(bytes(range(256)))
    with shared.open(f"{folder}/blob.bin", "rb") as f:
        assert f.read() == bytes(range(256))
    assert sorted(shared.ls(folder)) == ["blob.bin", "notes.txt", "sub"]
    cat = shared.exec("cat", f"{folder}/notes.txt")
    assert cat.stdout.read() == "one\ntwo\n"  # the file the sandbox's own programs see

    with pytest.raises(FileNotFoundError):
        shared.open(f"{folder}/missing.txt")
    with pytest.raises(PermissionError):
        shared.open("/etc/x", "w")
    with pytest.raises(IsADirectoryError):
        shared.open(f"{folder}/sub")
    with pytest.raises(FileExistsError):
        shared.mkdir(f"{folder}/sub")
    with pytest.raises(IsADirectoryError):
        shared.rm(f"{folder}/sub")  # a folder needs recursive=True
    shared.rm(f"{folder}/notes.txt")
    with pytest.raises(FileNotFoundError):
        shared.open(f"{folder}/notes.txt")
    shared.rm(folder, recursive=True)
    with pytest.raises(FileNotFoundError):
        shared.ls(folder)


def test_the_sandbox_has_only_loopback_and_is_not_root(shared: modal.Sandbox) -> None:
    net = shared.exec("ls", "/sys/class/net")
    assert net.stdout.read().split() == ["lo"]
    uid = shared.exec("id", "-u")
    assert uid.stdout.read().strip() != "0" and uid.wait() == 0


def test_tags_list_and_terminate() -> None:
    mark = uuid.uuid4().hex[:8]
    sb = modal.Sandbox.create(app=app(), block_network=True, tags={"run": mark}, name=f"victim-{mark}")
    sb.set_tags({"run": mark, "role": "victim"})
    assert sb.get_tags() == {"run": mark, "role": "victim"}
    assert [s.object_id for s in modal.Sandbox.list(tags={"run": mark, "role": "victim"})] == [sb.object_id]
    assert list(modal.Sandbox.list(tags={"run": mark, "role": "other"})) == []
    assert sb.object_id in [s.object_id for s in modal.Sandbox.list(app_id=APP)]
    assert list(modal.Sandbox.list(app_id="no-such-app")) == []
    assert modal.Sandbox.from_name(APP, f"victim-{mark}").object_id == sb.object_id

    sb.terminate()
    sb.wait(raise_on_termination=False)
    assert sb.returncode == 137
    with pytest.raises(SandboxTerminatedError):
        sb.wait()
    assert list(modal.Sandbox.list(tags={"run": mark})) == []  # only running ones are listed
    with pytest.raises(Error):
        sb.exec("true")  # it no longer runs


def test_a_sandbox_past_its_timeout_ends_with_124() -> None:
    sb = modal.Sandbox.create("sleep", "60", app=app(), timeout=2, block_network=True)
    with pytest.raises(SandboxTimeoutError):
        sb.wait()
    assert sb.returncode == 124


def test_an_image_with_a_local_file_and_starts_that_fail(tmp_path) -> None:  # type: ignore[no-untyped-def]
    local = tmp_path / "hello.txt"
    local.write_text("hello from the host\n")  # the same bytes each run: the image is built once
    image = modal.Image.debian_slim().add_local_file(str(local), "/srv/hello.txt")
    sb = modal.Sandbox.create("sh", "-c", "pwd; cat /srv/hello.txt", app=app(), image=image, workdir="/work", block_network=True)
    assert sb.stdout.read() == "/work\nhello from the host\n"
    sb.wait()
    assert sb.returncode == 0

    broken = modal.Image.debian_slim().run_commands("echo cannot build >&2; exit 7")
    with pytest.raises(ExecutionError, match="failed to start"):
        modal.Sandbox.create("true", app=app(), image=broken, block_network=True)
    with pytest.raises(InvalidError, match="no-such-secret"):
        modal.Sandbox.create("true", app=app(), secrets=[modal.Secret.from_name("no-such-secret")], block_network=True)


def test_a_workdir_holding_image_files_shows_them(tmp_path) -> None:  # type: ignore[no-untyped-def]
    local = tmp_path / "hello.txt"
    local.write_text("hello from the host\n")
    image = modal.Image.debian_slim().add_local_file(str(local), "/srv/hello.txt")
    sb = modal.Sandbox.create("cat", "hello.txt", app=app(), image=image, workdir="/srv", block_network=True)
    assert sb.stdout.read() == "hello from the host\n"


def test_the_aio_forms(shared: modal.Sandbox) -> None:
    async def main() -> tuple:
        p = await shared.exec.aio("echo", "async")
        lines = [line async for line in p.stdout]
        return lines, await p.wait.aio()

    assert asyncio.run(main()) == (["async\n"], 0)
