"""Sandboxes (Modal's ``modal.Sandbox``): containers started from a program, running a command (or
nothing, kept up until their timeout), with more commands exec'd into them, stdio streamed and
files read and written::

    app = gantry.App.lookup("sandbox-app", create_if_missing=True)
    sb = gantry.Sandbox.create("python3", "-c", "print(6 * 7)", app=app, block_network=True)
    print(sb.stdout.read())   # "42\\n"
    sb.wait()                 # sb.returncode == 0

``create`` returns once the sandbox has started (its image built first, as a deploy builds it) or
ended already; one that could not start raises ``ExecutionError`` with the daemon's reason. Exit
codes are Modal's: a command's own, 124 when a timeout ended it, 137 when it was terminated.
The routes are those of ``protocol/sandboxes.ts``.
"""
from __future__ import annotations

import re
from typing import Any, Dict, Iterator, Optional, Sequence, Union
from urllib.parse import quote

from . import _sandbox_args as args_
from . import _sandbox_files as files
from ._client import Client
from ._sandbox_io import ContainerProcess, StreamReader, StreamWriter, _wait_view
from ._sandbox_files import SandboxFile
from .exception import Error, ExecutionError, InvalidError, NotFoundError, SandboxTerminatedError, SandboxTimeoutError
from .functions import _WithAio, _WithAioIter
from .volume import _with_aio_function

__all__ = ["ContainerProcess", "Sandbox", "SandboxFile", "StreamReader", "StreamWriter"]

_ID = re.compile(r"^sb-[0-9a-z]{18}$")
_ENDED = ("finished", "timed_out", "terminated", "failed")


def _client_of(client: Optional[Client], what: str) -> Client:
    if client is not None and not isinstance(client, Client):
        raise InvalidError(f"{what}: client must be a gantry Client, got {type(client).__name__}")
    return client or Client.from_env()


def _checked_view(view: Any, what: str) -> Dict[str, Any]:
    if not isinstance(view, dict) or not isinstance(view.get("id"), str) or "state" not in view:
        raise Error(f"the gantry daemon sent an unreadable answer for {what}: {view!r:.200}")
    return view


class Sandbox:
    """A sandbox, by ID (``sb-…``). Make one with ``Sandbox.create``, find one with
    ``Sandbox.from_id``, ``Sandbox.from_name`` or ``Sandbox.list``."""

    def __init__(self, view: Dict[str, Any], client: Client) -> None:
        self._client = client
        self._view = _checked_view(view, "a sandbox")
        self._id: str = view["id"]
        self._path = f"/v1/sandboxes/{self._id}"
        main = f"{self._path}/procs/main"
        self._stdout = StreamReader(client, main, "stdout")
        self._stderr = StreamReader(client, main, "stderr")
        self._stdin = StreamWriter(client, main)

    # Making and finding sandboxes.

    @staticmethod
    @_with_aio_function
    def create(
        *args: str,
        app: Any = None,
        image: Any = None,
        secrets: Optional[Sequence[Any]] = None,
        volumes: Optional[Dict[Any, Any]] = None,
        timeout: int = 300,
        idle_timeout: Optional[int] = None,
        workdir: Optional[str] = None,
        gpu: Optional[str] = None,
        cpu: Union[None, float, tuple] = None,
        memory: Union[None, int, tuple] = None,
        block_network: bool = False,
        tags: Optional[Dict[str, str]] = None,
        env: Optional[Dict[str, Optional[str]]] = None,
        name: Optional[str] = None,
        pty: bool = False,
        client: Optional[Client] = None,
    ) -> "Sandbox":
        """Starts a sandbox of ``app`` running ``args`` (none: it stays up until ``timeout`` seconds
        pass or it is terminated) and returns it once it has started.

        ``image`` (a ``gantry.Image``, built as a deploy builds it; default the Python base image),
        ``secrets`` (``gantry.Secret.from_name``), ``volumes`` (``{"/data": gantry.Volume...}``),
        ``timeout`` (1 to 86400 s), ``idle_timeout`` (ended after that long with no exec running,
        no stdin written, no file touched), ``workdir`` (absolute), ``cpu`` (cores), ``memory``
        (MiB; of Modal's ``(request, limit)`` pairs gantry takes the limit), ``gpu`` (``"any"``,
        ``"A100"``, ``"H100:2"``), ``block_network`` (only loopback), ``tags``, ``env``, ``name``
        (unique among the app's running sandboxes), ``pty`` (the command gets a terminal).
        """
        body = args_.create_body(
            args,
            dict(app=app, image=image, secrets=secrets, volumes=volumes, timeout=timeout, idle_timeout=idle_timeout, workdir=workdir,
                 gpu=gpu, cpu=cpu, memory=memory, block_network=block_network, tags=tags, env=env, name=name, pty=pty),
        )
        c = _client_of(client, "Sandbox.create")
        view = _checked_view(c.json("POST", "/v1/sandboxes", body), "a new sandbox")
        if view["state"] == "pending":
            view = _checked_view(_wait_view(c, f"/v1/sandboxes/{view['id']}", lambda v: v.get("state") != "pending", until_running=True), view["id"])
        if view["state"] == "failed":
            raise ExecutionError(f"sandbox {view['id']} failed to start: {view.get('error') or 'the daemon gave no reason'}")
        return Sandbox(view, c)

    @staticmethod
    @_with_aio_function
    def from_id(sandbox_id: str, client: Optional[Client] = None) -> "Sandbox":
        """The sandbox ``sandbox_id`` (``sb-…``), ended or not; NotFoundError when the daemon has none."""
        if not isinstance(sandbox_id, str) or not _ID.match(sandbox_id):
            raise InvalidError(f"Sandbox.from_id: {sandbox_id!r:.80} is not a sandbox ID (sb- and 18 letters or digits)")
        c = _client_of(client, "Sandbox.from_id")
        return Sandbox(c.json("GET", f"/v1/sandboxes/{sandbox_id}"), c)

    @staticmethod
    @_with_aio_function
    def from_name(app_name: str, name: str, *, client: Optional[Client] = None) -> "Sandbox":
        """The running sandbox of app ``app_name`` created with ``name=name``; NotFoundError when none runs."""
        for sb in Sandbox.list(app_id=app_name, client=client):
            if sb._view.get("name") == name:
                return sb
        raise NotFoundError(f"app {app_name} has no running sandbox named {name!r}")

    def list(*, app_id: Optional[str] = None, tags: Optional[Dict[str, str]] = None, client: Optional[Client] = None) -> Iterator["Sandbox"]:  # type: ignore[misc]
        """The running sandboxes (of app ``app_id``; having all of ``tags``), newest first (as Modal's, ended ones are left out)."""
        query = ["state=running", "limit=1000"]
        if app_id is not None:
            if not isinstance(app_id, str) or not app_id:
                raise InvalidError(f"Sandbox.list: app_id is an app's name, got {app_id!r:.80}")
            query.append(f"app={quote(app_id, safe='')}")
        for k, v in args_.tags(tags, "Sandbox.list tags").items() if tags is not None else ():
            query.append(f"tag={quote(f'{k}={v}', safe='')}")
        c = _client_of(client, "Sandbox.list")
        answer = c.json("GET", "/v1/sandboxes?" + "&".join(query))
        return iter([Sandbox(v, c) for v in (answer or {}).get("sandboxes") or []])

    list.aio = _WithAioIter._aio(list)  # type: ignore[attr-defined]
    list = staticmethod(list)  # type: ignore[assignment]

    # What it is.

    @property
    def object_id(self) -> str:
        return self._id

    @property
    def returncode(self) -> Optional[int]:
        """Its exit code once it ended (124 timed out, 137 terminated); None while it runs (as the daemon last said)."""
        return self._view.get("returncode") if self._view.get("state") in _ENDED else None

    @property
    def stdout(self) -> StreamReader:
        return self._stdout

    @property
    def stderr(self) -> StreamReader:
        return self._stderr

    @property
    def stdin(self) -> StreamWriter:
        return self._stdin

    def __repr__(self) -> str:
        return f"Sandbox({self._id!r}, state={self._view.get('state')!r})"

    # Its life.

    @_WithAio
    def poll(self) -> Optional[int]:
        """Asks the daemon once: the exit code, or None while it runs."""
        self._view = _checked_view(self._client.json("GET", self._path), self._id)
        return self.returncode

    @_WithAio
    def wait(self, raise_on_termination: bool = True) -> None:
        """Waits for it to end. Raises SandboxTimeoutError when its timeout ended it (as Modal, whatever
        ``raise_on_termination`` says), SandboxTerminatedError when it was terminated (unless
        ``raise_on_termination=False``), ExecutionError for one that never started."""
        while self._view.get("state") not in _ENDED:
            self._view = _checked_view(_wait_view(self._client, self._path, lambda v: v.get("state") in _ENDED), self._id)
        state, why = self._view["state"], self._view.get("error") or ""
        if state == "failed":
            raise ExecutionError(f"sandbox {self._id} failed to start: {why or 'the daemon gave no reason'}")
        if state == "timed_out":
            raise SandboxTimeoutError(f"sandbox {self._id} timed out" + (f": {why}" if why else ""))
        if state == "terminated" and raise_on_termination:
            raise SandboxTerminatedError(f"sandbox {self._id} was terminated" + (f": {why}" if why else ""))

    @_WithAio
    def terminate(self, *, wait: bool = False) -> Optional[int]:
        """Ends it (exit code 137; nothing for one ended already). ``wait=True`` returns its exit code."""
        self._view = _checked_view(self._client.json("POST", f"{self._path}/terminate"), self._id)
        return self.returncode if wait else None

    @_WithAio
    def set_tags(self, tags: Dict[str, str]) -> None:
        """Replaces its tags (``{}`` clears them)."""
        self._view = _checked_view(self._client.json("PUT", f"{self._path}/tags", {"tags": args_.tags(tags, "set_tags")}), self._id)

    @_WithAio
    def get_tags(self) -> Dict[str, str]:
        self._view = _checked_view(self._client.json("GET", self._path), self._id)
        return dict(self._view.get("tags") or {})

    @_WithAio
    def exec(
        self,
        *args: str,
        workdir: Optional[str] = None,
        timeout: Optional[int] = None,
        env: Optional[Dict[str, Optional[str]]] = None,
        secrets: Optional[Sequence[Any]] = None,
        pty: bool = False,
        text: bool = True,
        bufsize: int = -1,
    ) -> ContainerProcess:
        """Runs a command in it (it must be running) and returns the process: ``stdout``/``stderr``
        (``str``, or ``bytes`` with ``text=False``), ``stdin``, ``wait()``, ``poll()``, ``returncode``.
        ``timeout`` ends it with 124 after that many seconds. Lines come as they are written
        whatever ``bufsize`` says."""
        if bufsize not in (-1, 1):
            raise InvalidError(f"exec: bufsize is -1 or 1, got {bufsize!r}")
        if not isinstance(text, bool):
            raise InvalidError(f"exec: text must be True or False, got {text!r:.80}")
        body = args_.exec_body(args, dict(workdir=workdir, timeout=timeout, env=env, secrets=secrets, pty=pty))
        view = self._client.json("POST", f"{self._path}/exec", body)
        if not isinstance(view, dict) or not isinstance(view.get("id"), str):
            raise Error(f"the gantry daemon sent an unreadable answer for an exec in {self._id}: {view!r:.200}")
        return ContainerProcess(self._client, self._id, view, text=text)

    # Its files.

    def open(self, path: str, mode: str = "r") -> SandboxFile:
        """A file inside it: modes r, w, a (with + and b); see ``gantry.sandbox.SandboxFile``.
        FileNotFoundError, PermissionError and IsADirectoryError as a local open raises them."""
        return SandboxFile(self._client, self._id, path, mode)

    @_WithAio
    def ls(self, path: str) -> "list[str]":
        """The names in a folder."""
        return files.ls(self._client, self._id, path)

    @_WithAio
    def mkdir(self, path: str, parents: bool = False) -> None:
        files.mkdir(self._client, self._id, path, parents)

    @_WithAio
    def rm(self, path: str, recursive: bool = False) -> None:
        """Removes a file, or a folder with ``recursive=True``."""
        files.rm(self._client, self._id, path, recursive)
