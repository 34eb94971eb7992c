"""JSON over HTTP to the gantry daemon: its unix socket, or a URL with a bearer token.

``Client.from_env()`` reads the environment when it is called: ``GANTRY_URL`` (``http://host:port`` or
``https://host:port``; ``GANTRY_CA_CERT`` names a CA file to trust for it) with ``GANTRY_TOKEN``, otherwise ``GANTRY_API_SOCKET`` (set in functions' containers), otherwise the socket ``$GANTRY_HOME/gantry.sock`` (``~/.gantry`` by
default). Each request opens its own connection, so one client serves any number of threads (and
survives a fork). Error answers become the classes of ``gantry.exception``, chosen by the
daemon's error code, as ``errorFromApi`` does in the TypeScript SDK.
"""
from __future__ import annotations

import contextlib
import errno
import http.client
import json
import os
import socket
import ssl
from typing import Any, BinaryIO, Dict, Iterable, Iterator, Optional, Tuple, Type, Union
from urllib.parse import urlsplit

from .exception import (
    AuthError,
    DaemonNotRunningError,
    Error,
    InvalidError,
    NotFoundError,
    OutputExpiredError,
    PermissionDeniedError,
    RequestSizeError,
    ResourceExhaustedError,
)

#: Seconds a request may take beyond the wait it asked the daemon for.
_REQUEST_MARGIN_S = 30.0
#: Bytes read from a file (or asked of an answer) at once when a body streams (``send_stream``, ``stream_bytes``).
STREAM_CHUNK = 256 * 1024

_ERRORS: Dict[str, Type[Error]] = {
    "not_found": NotFoundError,
    "output_expired": OutputExpiredError,
    "invalid_argument": InvalidError,
    "gpu_unavailable": InvalidError,  # a GPU this machine can never give (as Modal refuses an unknown GPU type)
    "payload_too_large": RequestSizeError,
    "queue_full": ResourceExhaustedError,
    "limit_exceeded": ResourceExhaustedError,
    "unauthorized": AuthError,
    "forbidden": PermissionDeniedError,
}


def gantry_home() -> str:
    return os.environ.get("GANTRY_HOME") or os.path.join(os.path.expanduser("~"), ".gantry")


def default_socket_path() -> str:
    """Inside a function's container, the socket its agent uses (calls only); else ``$GANTRY_HOME``'s."""
    return os.environ.get("GANTRY_API_SOCKET") or os.path.join(gantry_home(), "gantry.sock")


class _UnixConnection(http.client.HTTPConnection):
    """``http.client`` over an AF_UNIX stream socket."""

    def __init__(self, path: str, timeout: float) -> None:
        super().__init__("gantry", timeout=timeout)
        self._path = path

    def connect(self) -> None:
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            sock.settimeout(self.timeout)
            sock.connect(self._path)
        except BaseException:
            sock.close()
            raise
        self.sock = sock


@contextlib.contextmanager
def _no_answer_as(client: "Client", method: str, path: str, timeout: float) -> Iterator[None]:
    """Turns a request that got no answer into the error that says why: no daemon, no answer in
    time, TLS, or the connection failing."""
    try:
        yield
    except (FileNotFoundError, ConnectionRefusedError) as err:
        reason = errno.errorcode.get(err.errno or 0, type(err).__name__)
        raise DaemonNotRunningError(f"no gantry daemon answers at {client.target} ({reason}); start it with: gantry daemon start") from None
    except socket.timeout:
        raise Error(f"the gantry daemon at {client.target} did not answer {method} {path} within {timeout:g} s") from None
    except ssl.SSLError as err:
        raise client._tls_error(err) from None
    except (OSError, http.client.HTTPException) as err:
        raise Error(f"request to the gantry daemon at {client.target} failed: {err}") from err


def _parsed(raw: bytes) -> Any:
    """An answer's body: its JSON, or its text when it is not JSON."""
    try:
        return json.loads(raw) if raw else None
    except ValueError:
        return raw.decode("utf-8", "replace")


class Client:
    """A connection to one gantry daemon: ``Client(socket_path=...)`` or ``Client(url=..., token=...)``.

    For an ``https://`` URL, ``ca_cert`` (default: the ``GANTRY_CA_CERT`` variable) names a PEM file of
    the CA(s) the daemon's certificate must chain to; without it, the system's CAs.
    """

    def __init__(
        self,
        socket_path: Optional[str] = None,
        *,
        url: Optional[str] = None,
        token: Optional[str] = None,
        ca_cert: Optional[str] = None,
    ) -> None:
        if socket_path is not None and url is not None:
            raise InvalidError("a gantry Client takes a socket path or a URL, not both")
        self.token = token
        self._ssl: Optional[ssl.SSLContext] = None
        self._ca_source: Optional[str] = None
        self.url = url.rstrip("/") if url else None
        self.socket_path = None if self.url else (socket_path or default_socket_path())
        if self.url:
            parts = urlsplit(self.url)
            if parts.scheme not in ("http", "https") or not parts.hostname:
                raise InvalidError(f"GANTRY_URL must look like http://host:port, got {url!r}")
            self._scheme = parts.scheme
            self._host = parts.hostname
            self._port = parts.port
            self._prefix = parts.path.rstrip("/")
            if self._scheme == "https":
                self._ssl = self._ssl_context(ca_cert)

    def _ssl_context(self, ca_cert: Optional[str]) -> ssl.SSLContext:
        """Verifies the daemon's certificate and name: against ``ca_cert`` or ``GANTRY_CA_CERT``, else the system's CAs."""
        if ca_cert is not None:
            self._ca_source = f"ca_cert={ca_cert!r}"
        elif os.environ.get("GANTRY_CA_CERT"):
            ca_cert = os.environ["GANTRY_CA_CERT"]
            self._ca_source = f"GANTRY_CA_CERT ({ca_cert})"
        try:
            return ssl.create_default_context(cafile=ca_cert)
        except (OSError, ssl.SSLError) as err:
            raise InvalidError(f"the CA file of {self._ca_source} cannot be used: {err}") from None

    @classmethod
    def from_env(cls) -> "Client":
        """The daemon the environment names: ``GANTRY_URL`` and ``GANTRY_TOKEN`` (``GANTRY_CA_CERT`` for https); in a function's container
        across a cluster ``GANTRY_API_URL`` and ``GANTRY_API_TOKEN``; else the socket."""
        url = os.environ.get("GANTRY_URL") or None
        if url:
            return cls(url=url, token=os.environ.get("GANTRY_TOKEN") or None)
        # Inside a function's container across a cluster: the daemon's address and the container's token.
        api_url = os.environ.get("GANTRY_API_URL") or None
        if api_url:
            return cls(url=api_url, token=os.environ.get("GANTRY_API_TOKEN") or None)
        return cls(default_socket_path())

    @property
    def target(self) -> str:
        """Where the daemon is expected: the URL, or the socket path."""
        return self.url or self.socket_path or ""

    def __repr__(self) -> str:
        return f"Client({self.target!r})"

    def _connection(self, timeout: float) -> http.client.HTTPConnection:
        if self.socket_path is not None:
            return _UnixConnection(self.socket_path, timeout)
        if self._scheme == "https":
            # Always TLS for https://, verified: never plain HTTP with the token in it.
            return http.client.HTTPSConnection(self._host, self._port, timeout=timeout, context=self._ssl)
        return http.client.HTTPConnection(self._host, self._port, timeout=timeout)

    def _tls_error(self, err: ssl.SSLError) -> Error:
        """A certificate the CA does not vouch for, or TLS against plain HTTP: say which, and the setting to change."""
        if isinstance(err, ssl.SSLCertVerificationError):
            by = f"the CA from {self._ca_source}" if self._ca_source else "none of the system's CAs (no CA was given)"
            return Error(
                f"the gantry daemon at {self.target} presented a certificate that {by} vouches for "
                f"({err.verify_message or err}); give the CA that signed it: GANTRY_CA_CERT=FILE or Client(ca_cert=FILE)"
            )
        return Error(f"TLS with the gantry daemon at {self.target} failed ({err}); if it serves plain HTTP, use an http:// URL")

    def request(
        self,
        method: str,
        path: str,
        body: Any = None,
        *,
        wait_s: float = 0.0,
        headers: Optional[Dict[str, str]] = None,
        answer_headers: Optional[Dict[str, str]] = None,
    ) -> Tuple[int, Any]:
        """Sends one request and returns (HTTP status, parsed JSON body); raises only when no answer came.

        ``wait_s``: how long the daemon may hold the request (a ``?wait=`` poll); the socket allows
        that much more time before it gives up. ``headers``: more request headers.
        ``answer_headers``: filled with the answer's headers (names in lower case), when given.
        """
        headers = {"Accept": "application/json", **(headers or {})}
        if self.token and self.url:
            headers["Authorization"] = f"Bearer {self.token}"
        payload: Optional[bytes] = None
        if body is not None:
            payload = json.dumps(body, allow_nan=False, separators=(",", ":")).encode("utf-8")
            headers["Content-Type"] = "application/json"
        timeout = wait_s + _REQUEST_MARGIN_S
        conn = self._connection(timeout)
        try:
            with _no_answer_as(self, method, path, timeout):
                conn.request(method, (self._prefix if self.url else "") + path, body=payload, headers=headers)
                res = conn.getresponse()
                status, raw = res.status, res.read()
                if answer_headers is not None:
                    answer_headers.update((name.lower(), value) for name, value in res.getheaders())
        finally:
            conn.close()
        return status, _parsed(raw)

    def stream_lines(self, method: str, path: str, body: Any, *, wait_s: float) -> Iterator[Any]:
        """Sends one request and yields the NDJSON lines of its answer as they arrive (raises for a non-2xx answer)."""
        headers = {"Accept": "application/x-ndjson", "Content-Type": "application/json"}
        if self.token and self.url:
            headers["Authorization"] = f"Bearer {self.token}"
        payload = json.dumps(body, allow_nan=False, separators=(",", ":")).encode("utf-8")
        conn = self._connection(wait_s + _REQUEST_MARGIN_S)
        try:
            with _no_answer_as(self, method, path, wait_s + _REQUEST_MARGIN_S):
                conn.request(method, (self._prefix if self.url else "") + path, body=payload, headers=headers)
                res = conn.getresponse()
            if not 200 <= res.status < 300:
                raise error_from_api(res.status, _parsed(res.read()), self.target)
            while True:
                try:
                    line = res.readline()
                except (OSError, http.client.HTTPException) as err:
                    raise Error(f"the gantry daemon at {self.target} broke off {method} {path}: {err}") from err
                if not line:
                    return
                if line.strip():
                    yield json.loads(line)
        finally:
            conn.close()

    def send_stream(
        self,
        method: str,
        path: str,
        body: Union[BinaryIO, Iterable[bytes]],
        *,
        length: Optional[int] = None,
        headers: Optional[Dict[str, str]] = None,
    ) -> Tuple[int, Any]:
        """Sends one request whose body streams from ``body`` (a binary file object, read ``STREAM_CHUNK``
        bytes at a time, or an iterable of bytes chunks), as ``application/octet-stream``, and returns
        (HTTP status, parsed JSON answer); raises only when no answer came.

        ``length``: the body's size in bytes, sent as Content-Length (the body must then be exactly
        that long); without it the body goes chunked. Whatever reading ``body`` raises is raised as it is.
        """
        hdrs = {"Accept": "application/json", "Content-Type": "application/octet-stream", **(headers or {})}
        if self.token and self.url:
            hdrs["Authorization"] = f"Bearer {self.token}"
        if length is not None:
            hdrs["Content-Length"] = str(length)
        chunks = read_chunks(body) if hasattr(body, "read") else body
        conn = self._connection(_REQUEST_MARGIN_S)
        try:
            with _no_answer_as(self, method, path, _REQUEST_MARGIN_S):
                try:
                    conn.request(method, (self._prefix if self.url else "") + path, body=_Guarded(chunks), headers=hdrs)
                except (BrokenPipeError, ConnectionResetError):
                    pass  # the daemon answered (a refusal) before it took the whole body: its answer is read below
                res = conn.getresponse()
                status, raw = res.status, res.read()
        except _BodyFailed as failed:
            raise failed.error from None
        finally:
            conn.close()
        return status, _parsed(raw)

    def stream_bytes(self, method: str, path: str, *, headers: Optional[Dict[str, str]] = None) -> "ByteStream":
        """Sends one request and returns its answer's body as an iterator of bytes chunks, read from the
        connection as the iterator is advanced (at most ``STREAM_CHUNK`` bytes each). An answer that is
        not 2xx raises the matching ``gantry.exception`` class at once, before anything is iterated."""
        hdrs = {"Accept": "application/octet-stream, application/json", **(headers or {})}
        if self.token and self.url:
            hdrs["Authorization"] = f"Bearer {self.token}"
        conn = self._connection(_REQUEST_MARGIN_S)
        try:
            with _no_answer_as(self, method, path, _REQUEST_MARGIN_S):
                conn.request(method, (self._prefix if self.url else "") + path, headers=hdrs)
                res = conn.getresponse()
            if not 200 <= res.status < 300:
                try:
                    raw = res.read()
                except (OSError, http.client.HTTPException):
                    raw = b""
                raise error_from_api(res.status, _parsed(raw), self.target)
        except BaseException:
            conn.close()
            raise
        return ByteStream(conn, res, f"{method} {path}", self.target)

    def json(
        self,
        method: str,
        path: str,
        body: Any = None,
        *,
        wait_s: float = 0.0,
        headers: Optional[Dict[str, str]] = None,
        answer_headers: Optional[Dict[str, str]] = None,
    ) -> Any:
        """Like ``request``, but raises the matching ``gantry.exception`` class for an answer that is not 2xx."""
        status, parsed = self.request(method, path, body, wait_s=wait_s, headers=headers, answer_headers=answer_headers)
        if not 200 <= status < 300:
            raise error_from_api(status, parsed, self.target)
        return parsed


def read_chunks(fileobj: BinaryIO, size: int = STREAM_CHUNK) -> Iterator[bytes]:
    """A binary file object's bytes from where it stands to its end, ``size`` bytes at a time (never all at once)."""
    while True:
        chunk = fileobj.read(size)
        if not chunk:
            return
        if not isinstance(chunk, (bytes, bytearray, memoryview)):
            raise TypeError(f"a body to stream must be a binary file object, but read() gave {type(chunk).__name__}")
        yield bytes(chunk)


class _BodyFailed(Exception):
    """Carries what reading a streamed body raised out of ``http.client`` (told apart from the connection's own errors)."""

    def __init__(self, error: BaseException) -> None:
        super().__init__(str(error))
        self.error = error


class _Guarded:
    """An iterable body whose own failures are wrapped in ``_BodyFailed``."""

    def __init__(self, chunks: Iterable[bytes]) -> None:
        self._chunks = chunks

    def __iter__(self) -> Iterator[bytes]:
        it = iter(self._chunks)
        while True:
            try:
                chunk = next(it)
            except StopIteration:
                return
            except Exception as err:
                raise _BodyFailed(err) from err
            yield chunk


class ByteStream:
    """An answer's body as an iterator of bytes chunks, read as it is advanced; ``close()`` (or the end
    of a ``with`` block, or the end of the body) lets the connection go."""

    def __init__(self, conn: http.client.HTTPConnection, res: http.client.HTTPResponse, what: str, target: str) -> None:
        self._conn: Optional[http.client.HTTPConnection] = conn
        self._res = res
        self._what = what
        self._target = target
        #: The answer's Content-Length, when it gave one.
        self.length: Optional[int] = res.length
        #: The answer's headers, names in lower case.
        self.headers: Dict[str, str] = {name.lower(): value for name, value in res.getheaders()}

    def __iter__(self) -> "ByteStream":
        return self

    def __next__(self) -> bytes:
        if self._conn is None:
            raise StopIteration
        try:
            chunk = self._res.read1(STREAM_CHUNK)
        except (OSError, http.client.HTTPException) as err:
            self.close()
            raise Error(f"the gantry daemon at {self._target} broke off {self._what}: {err}") from err
        if chunk:
            return chunk
        short = self._res.length  # bytes still owed by the Content-Length (None when chunked: http.client checks those)
        self.close()
        if short:
            raise Error(f"the gantry daemon at {self._target} broke off {self._what}: {short} bytes of the answer never came")
        raise StopIteration

    def close(self) -> None:
        conn, self._conn = self._conn, None
        if conn is not None:
            conn.close()

    def __enter__(self) -> "ByteStream":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    def __del__(self) -> None:
        self.close()


def error_from_api(status: int, body: Any, target: str) -> Error:
    """The exception for an error answer ``{"error": {"code", "message"}}``, by its code."""
    detail = body.get("error") if isinstance(body, dict) else None
    code = detail.get("code") if isinstance(detail, dict) else None
    message = detail.get("message") if isinstance(detail, dict) else None
    if not isinstance(message, str) or not message:
        message = f"the gantry daemon at {target} answered HTTP {status}"
    cls = _ERRORS.get(code, Error) if isinstance(code, str) else Error
    err = cls(message)
    if isinstance(code, str):
        err.code = code
    if isinstance(detail, dict) and isinstance(detail.get("errno"), str):
        err.errno_name = detail["errno"]  # a sandbox file error's (ENOENT, EACCES, EISDIR…)
    return err
