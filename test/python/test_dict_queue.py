"""Dicts and Queues on the Python side (python/gantry/_dict.py, _queue.py, _dq.py), without a daemon:
how keys and values travel (JSON when JSON holds them exactly, else pickled), the name, partition and
size rules of protocol/dicts-queues.ts, pickling a handle, and the requests the client sends, checked
against a fake daemon on a unix socket: bodies, skip_if_exists, waits cut into requests the daemon
holds (get, put, iterate), queue.Empty and queue.Full, update chunking, ephemeral heartbeats.
"""
from __future__ import annotations

import asyncio
import base64
import collections
import datetime
import decimal
import enum
import http.server
import json
import os
import pickle
import queue
import threading
from dataclasses import dataclass, field
from typing import Any, Callable, Dict, Iterator, List, Optional, Tuple
from urllib.parse import parse_qsl, unquote, urlsplit

import pytest

import gantry as modal
import gantry._dq as gdq
import gantry._ephemeral as gephemeral
from gantry._values import decode_value, encode_value, json_exact
from gantry.exception import DeserializationError, Error, InvalidError, NotFoundError, RequestSizeError, SerializationError
from helpers import fake_daemon_on_socket, wait_until

pytestmark = pytest.mark.no_daemon


@pytest.fixture(autouse=True)
def no_container(monkeypatch: pytest.MonkeyPatch) -> None:
    """Outside a container (conftest clears the client's own variables)."""
    for name in ("GANTRY_API_SOCKET", "GANTRY_API_URL", "GANTRY_API_TOKEN", "GANTRY_CONTAINER_ID"):
        monkeypatch.delenv(name, raising=False)


# --- A fake daemon on a unix socket ----------------------------------------------------------------


@dataclass
class Req:
    method: str
    path: str
    query: Dict[str, str]
    body: Any


Reply = Tuple[int, Any]


def view(name: str, **more: Any) -> Dict[str, Any]:
    return {"name": name, "created_at": "2024-01-01T00:00:00.000Z", "ephemeral": False, "expires_at": None, "len": 0, **more}


def in_turn(*replies: Reply) -> Callable[[Req], Reply]:
    """A route answering ``replies`` one after another (the last one again after that)."""
    left = list(replies)
    lock = threading.Lock()

    def route(req: Req) -> Reply:
        with lock:
            return left.pop(0) if len(left) > 1 else left[0]

    return route


@dataclass
class FakeDaemon:
    home: str
    #: Names GET /v1/dicts/NAME and /v1/queues/NAME know.
    known: set = field(default_factory=lambda: {"data", "jobs"})
    requests: List[Req] = field(default_factory=list)
    #: (METHOD, path) → a reply, or a function of the request giving one.
    routes: Dict[Tuple[str, str], Any] = field(default_factory=dict)
    #: Set at the end of a test: long-polls the fake holds stop waiting.
    released: threading.Event = field(default_factory=threading.Event)

    @property
    def socket(self) -> str:
        return os.path.join(self.home, "gantry.sock")

    def of(self, method: str, path: Optional[str] = None) -> List[Req]:
        return [r for r in self.requests if r.method == method and (path is None or r.path == path)]

    def hold(self, seconds: float) -> None:
        """Holds a request as the daemon would while it waits (long-poll) for nothing to happen."""
        self.released.wait(seconds)

    def reply(self, req: Req) -> Reply:
        route = self.routes.get((req.method, req.path))
        if route is not None:
            return route(req) if callable(route) else route
        parts = req.path.split("/")
        if req.method == "GET" and len(parts) == 4 and parts[2] in ("dicts", "queues"):
            what = "Dict" if parts[2] == "dicts" else "Queue"
            if parts[3] in self.known:
                return 200, view(parts[3])
            return 404, {"error": {"code": "not_found", "message": f"no {what} named {parts[3]}"}}
        return 200, {}


class _Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *args: Any) -> None:
        pass

    def address_string(self) -> str:
        return "unix"

    def _any(self) -> None:
        fake: FakeDaemon = self.server.fake  # type: ignore[attr-defined]
        split = urlsplit(self.path)
        raw = self.rfile.read(int(self.headers.get("content-length") or 0))
        req = Req(self.command, unquote(split.path), dict(parse_qsl(split.query, keep_blank_values=True)), json.loads(raw) if raw else None)
        fake.requests.append(req)
        status, answer = fake.reply(req)
        data = json.dumps(answer).encode()
        self.send_response(status)
        self.send_header("Connection", "close")
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    do_GET = do_POST = do_PUT = do_DELETE = _any


@pytest.fixture
def fake(monkeypatch: pytest.MonkeyPatch) -> Iterator[FakeDaemon]:
    with fake_daemon_on_socket(FakeDaemon, _Handler, monkeypatch, "gdq-") as daemon:
        yield daemon


def pickled(v: Any) -> Dict[str, str]:
    return {"pickled": base64.b64encode(pickle.dumps(v, protocol=4)).decode()}


# --- How values travel -----------------------------------------------------------------------------


class Colour(enum.IntEnum):
    RED = 1


class Text(str):
    pass


def same(a: Any, b: Any) -> bool:
    """Equal, and of the same types all the way down."""
    if type(a) is not type(b):
        return False
    if isinstance(a, list):
        return len(a) == len(b) and all(same(x, y) for x, y in zip(a, b))
    if isinstance(a, dict):
        return a.keys() == b.keys() and all(same(a[k], b[k]) for k in a)
    return a == b


JSON_EXACT = [
    "",
    "héllo, 世界 😀",
    "nul \0 and newline \n",
    True,
    False,
    None,
    0,
    -1,
    2**53 - 1,
    -(2**53 - 1),
    0.5,
    -1e-7,
    1.5e-300,
    [],
    {},
    [1, "a", None, [0.25, False]],
    {"a": {"b": [True, 3]}, "": 1},
]


@pytest.mark.parametrize("value", JSON_EXACT, ids=repr)
def test_values_json_holds_exactly_go_as_json_and_read_back_the_same_in_any_language(value: Any) -> None:
    wire = encode_value(value, "v")
    assert wire == {"value": value} and json_exact(value)
    # What TypeScript (or another Python) reads from the JSON text is the same value, of the same types.
    assert same(json.loads(json.dumps(wire))["value"], value)
    assert same(decode_value(json.loads(json.dumps(wire)), "v"), value)


cyclic: List[Any] = [1]
cyclic.append(cyclic)

PICKLED = [
    1.0,  # integral: JSON would bring it back as the int 1
    -0.0,
    1e300,
    float("inf"),
    2**53,
    -(2**53),
    10**30,
    (1, 2),
    b"bytes",
    bytearray(b"ba"),
    {1, 2},
    frozenset({"a"}),
    {1: "int key"},
    {"a": (1,)},
    [1.0],
    [b"x"],
    collections.OrderedDict(a=1),
    collections.defaultdict(int, a=1),
    Colour.RED,
    Text("a str subclass"),
    "lone \ud800 surrogate",
    {"key \udc00": 1},
    datetime.datetime(2024, 1, 2, 3, 4, 5),
    decimal.Decimal("1.1"),
    complex(1, 2),
    range(3),
]


@pytest.mark.parametrize("value", PICKLED, ids=repr)
def test_other_values_are_pickled_and_round_trip_with_their_types(value: Any) -> None:
    wire = encode_value(value, "v")
    assert set(wire) == {"pickled"} and not json_exact(value)
    back = decode_value(json.loads(json.dumps(wire)), "v")
    assert back == value and type(back) is type(value)


def test_nan_and_cycles_are_pickled_too() -> None:
    nan = decode_value(encode_value(float("nan"), "v"), "v")
    assert nan != nan
    back = decode_value(encode_value(cyclic, "v"), "v")
    assert back[0] == 1 and back[1] is back


def test_a_value_that_does_not_pickle_is_named() -> None:
    with pytest.raises(SerializationError, match=r"Dict value \(function\) cannot be pickled"):
        gdq._wire(lambda: 1, "Dict value")
    with pytest.raises(SerializationError, match=r"lock"):
        encode_value(threading.Lock(), "the value")


def test_what_does_not_decode_says_so() -> None:
    with pytest.raises(DeserializationError, match="does not unpickle here"):
        decode_value({"pickled": base64.b64encode(b"not a pickle").decode()}, "an item")
    with pytest.raises(DeserializationError, match="neither"):
        decode_value({"other": 1}, "an item")


def test_a_key_or_value_over_one_mib_as_it_travels_is_refused_naming_the_limit() -> None:
    limit = gdq.VALUE_BYTES
    gdq._wire("x" * (limit - 2), "v")  # with its quotes: exactly 1 MiB of JSON
    with pytest.raises(RequestSizeError, match=r"1048577 bytes as JSON.*at most 1048576 bytes \(1 MiB\)"):
        gdq._wire("x" * (limit - 1), "Dict value")
    with pytest.raises(RequestSizeError, match="as JSON"):
        gdq._wire("é" * (limit // 2), "v")  # 1 MiB of characters, 2 MiB of UTF-8
    with pytest.raises(RequestSizeError, match=r"pickled \(base64\)"):
        gdq._wire(b"x" * limit, "v")
    assert issubclass(RequestSizeError, InvalidError)


# --- Names, partitions, handles ----------------------------------------------------------------------


@pytest.mark.parametrize("cls", [modal.Dict, modal.Queue], ids=["Dict", "Queue"])
@pytest.mark.parametrize("good", ["data", "my-dict_1.2", "x" * 63, "..a", "-"])
def test_names_are_letters_digits_and_dash_dot_underscore(cls: Any, good: str) -> None:
    assert cls.from_name(good).name == good


@pytest.mark.parametrize("cls", [modal.Dict, modal.Queue], ids=["Dict", "Queue"])
@pytest.mark.parametrize(
    "bad, rule",
    [("", "non-empty string"), (None, "non-empty string"), (5, "non-empty string"), ("x" * 64, "at most 63"), ("a b", "letters, digits"), ("a/b", "letters, digits"), (".", "letters, digits"), ("..", "letters, digits")],
)
def test_a_bad_name_is_refused_at_once_naming_the_rule(cls: Any, bad: Any, rule: str) -> None:
    with pytest.raises(InvalidError, match=rule) as caught:
        cls.from_name(bad)
    assert cls.__name__ in str(caught.value)
    with pytest.raises(InvalidError, match=rule):
        cls.objects.delete(bad)


@pytest.mark.parametrize("bad, rule", [("", "non-empty string"), (5, "non-empty string"), ("x" * 65, "65 bytes; at most 64"), ("€" * 22, "66 bytes; at most 64")])
def test_a_bad_partition_key_is_refused_before_anything_is_sent(fake: FakeDaemon, bad: Any, rule: str) -> None:
    q = modal.Queue.from_name("jobs")
    for call in (lambda: q.put(1, partition=bad), lambda: q.get(partition=bad), lambda: q.len(partition=bad), lambda: q.clear(partition=bad), lambda: q.iterate(partition=bad)):
        with pytest.raises(InvalidError, match=rule):
            call()
    assert fake.requests == []


def test_a_64_byte_partition_key_is_taken(fake: FakeDaemon) -> None:
    modal.Queue.from_name("jobs").put(1, partition="p" * 64)
    assert fake.of("POST", "/v1/queues/jobs/put")[0].body["partition"] == "p" * 64


@pytest.mark.parametrize("cls", [modal.Dict, modal.Queue], ids=["Dict", "Queue"])
def test_a_handle_pickles_to_its_name_without_asking_the_daemon(fake: FakeDaemon, cls: Any) -> None:
    handle = cls.from_name("made-on-use", create_if_missing=True)
    back = pickle.loads(pickle.dumps(("arg", handle), protocol=4))[1]
    assert type(back) is cls and back.name == "made-on-use" and back._create_if_missing and back._client is None
    assert repr(back) == f"{cls.__name__}.from_name('made-on-use')"
    assert bool(handle) and fake.requests == []  # a handle is truthy without a len() request


def test_an_unknown_name_says_how_to_create_it_on_first_use(fake: FakeDaemon) -> None:
    d = modal.Dict.from_name("nope")
    with pytest.raises(NotFoundError, match=r"create_if_missing=True"):
        d.get("a")
    with pytest.raises(NotFoundError, match=r"Queue\.from_name\('nope', create_if_missing=True\)"):
        modal.Queue.from_name("nope").len()


def test_create_if_missing_makes_it_on_first_use_and_asks_once(fake: FakeDaemon) -> None:
    fake.routes[("POST", "/v1/dicts")] = (201, view("fresh"))
    d = modal.Dict.from_name("fresh", create_if_missing=True)
    assert fake.requests == []
    d["a"] = 1
    d["b"] = 2
    assert [r.body for r in fake.of("POST", "/v1/dicts")] == [{"name": "fresh", "exist_ok": True}]
    assert len(fake.of("GET", "/v1/dicts/fresh")) == 1 and len(fake.of("POST", "/v1/dicts/fresh/put")) == 2


# --- Dict against the fake daemon --------------------------------------------------------------------


def test_dict_put_and_get_send_json_or_pickled_keys_and_values(fake: FakeDaemon) -> None:
    d = modal.Dict.from_name("data")
    d["a"] = 1
    d[(1, 2)] = b"x"
    puts = [r.body for r in fake.of("POST", "/v1/dicts/data/put")]
    assert puts == [
        {"key": {"value": "a"}, "value": {"value": 1}, "skip_if_exists": False},
        {"key": pickled((1, 2)), "value": pickled(b"x"), "skip_if_exists": False},
    ]
    fake.routes[("POST", "/v1/dicts/data/get")] = lambda req: (200, {"found": True, "value": pickled(b"x")} if "pickled" in req.body["key"] else {"found": False})
    assert d[(1, 2)] == b"x" and d.get((1, 2)) == b"x"
    with pytest.raises(KeyError):
        d["missing"]
    assert d.get("missing") is None and d.get("missing", 7) == 7
    assert fake.of("POST", "/v1/dicts/data/get")[-1].body == {"key": {"value": "missing"}}


def test_values_typescript_wrote_read_back_as_json(fake: FakeDaemon) -> None:
    fake.routes[("POST", "/v1/dicts/data/get")] = (200, {"found": True, "value": {"value": {"a": [1, 2.5, None], "b": "c"}}})
    assert modal.Dict.from_name("data")["k"] == {"a": [1, 2.5, None], "b": "c"}


def test_put_with_skip_if_exists_tells_whether_it_wrote(fake: FakeDaemon) -> None:
    fake.routes[("POST", "/v1/dicts/data/put")] = lambda req: (200, {"created": not req.body["skip_if_exists"]})
    d = modal.Dict.from_name("data")
    assert d.put("k", 1, skip_if_exists=True) is False
    assert d.put("k", 1) is True
    assert [r.body["skip_if_exists"] for r in fake.of("POST", "/v1/dicts/data/put")] == [True, False]


def test_an_oversized_value_is_refused_before_anything_is_sent(fake: FakeDaemon) -> None:
    d = modal.Dict.from_name("data")
    with pytest.raises(InvalidError, match=r"1 MiB"):
        d["k"] = "x" * gdq.VALUE_BYTES
    with pytest.raises(InvalidError, match=r"1 MiB"):
        d.update({"a": 1, "b": b"x" * gdq.VALUE_BYTES})
    assert fake.requests == []


def test_update_sends_chunks_of_at_most_10000_entries(fake: FakeDaemon) -> None:
    d = modal.Dict.from_name("data")
    d.update({f"k{i}": i for i in range(25_000)})
    chunks = [r.body["entries"] for r in fake.of("POST", "/v1/dicts/data/update")]
    assert [len(c) for c in chunks] == [10_000, 10_000, 5_000]
    assert chunks[0][0] == {"key": {"value": "k0"}, "value": {"value": 0}} and chunks[2][-1] == {"key": {"value": "k24999"}, "value": {"value": 24_999}}


def test_update_also_cuts_by_bytes(fake: FakeDaemon, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(gdq, "_REQUEST_BUDGET", 200)
    modal.Dict.from_name("data").update({f"k{i}": "v" * 60 for i in range(4)})
    assert [len(r.body["entries"]) for r in fake.of("POST", "/v1/dicts/data/update")] == [2, 2]


def test_update_takes_what_dict_update_takes_and_later_values_win(fake: FakeDaemon) -> None:
    d = modal.Dict.from_name("data")
    d.update([("a", 1), ("b", 2)], c=3, a=4)
    (entries,) = [r.body["entries"] for r in fake.of("POST", "/v1/dicts/data/update")]
    assert {e["key"]["value"]: e["value"]["value"] for e in entries} == {"a": 4, "b": 2, "c": 3} and len(entries) == 3
    d.update()
    d.update({})
    assert len(fake.of("POST", "/v1/dicts/data/update")) == 1
    with pytest.raises(ValueError, match="element #1 has length 3"):
        d.update([("a", 1), ("b", 2, 3)])


def test_keys_values_and_items_read_the_pages_in_turn(fake: FakeDaemon) -> None:
    pages = {
        None: {"items": [{"key": {"value": "a"}, "value": {"value": 1}}, {"key": pickled((1, 2)), "value": pickled({3})}], "next": 2},
        "2": {"items": [{"key": {"value": "c"}, "value": {"value": [0.5]}}], "next": None},
    }
    fake.routes[("GET", "/v1/dicts/data/items")] = lambda req: (200, pages[req.query.get("after")])
    d = modal.Dict.from_name("data")
    assert list(d.keys()) == ["a", (1, 2), "c"]
    assert list(d.values()) == [1, {3}, [0.5]]
    assert dict(d.items()) == {"a": 1, (1, 2): {3}, "c": [0.5]}
    assert list(d) == ["a", (1, 2), "c"]
    reads = fake.of("GET", "/v1/dicts/data/items")
    assert [r.query for r in reads[:2]] == [{"limit": "1000"}, {"limit": "1000", "after": "2"}]
    keys = d.keys()  # an iterator: pages are read as it is advanced
    assert len(fake.of("GET", "/v1/dicts/data/items")) == 8 and next(keys) == "a"


def test_pop_contains_len_clear_and_del(fake: FakeDaemon) -> None:
    fake.routes[("POST", "/v1/dicts/data/pop")] = lambda req: (200, {"found": True, "value": {"value": 5}} if req.body["key"] == {"value": "a"} else {"found": False})
    fake.routes[("POST", "/v1/dicts/data/contains")] = lambda req: (200, {"found": req.body["key"] == {"value": "a"}})
    fake.routes[("GET", "/v1/dicts/data/len")] = (200, {"len": 3})
    d = modal.Dict.from_name("data")
    assert d.pop("a") == 5
    with pytest.raises(KeyError):
        d.pop("b")
    with pytest.raises(KeyError):
        del d["b"]
    del d["a"]
    assert "a" in d and "b" not in d and d.contains("a")
    assert len(d) == 3 and d.len() == 3
    d.clear()
    assert len(fake.of("POST", "/v1/dicts/data/clear")) == 1 and len(fake.of("POST", "/v1/dicts/data/pop")) == 4


def test_info_is_the_daemons_view(fake: FakeDaemon) -> None:
    fake.routes[("GET", "/v1/dicts/data")] = (200, view("data", len=4))
    info = modal.Dict.from_name("data").info()
    assert (info.name, info.len, info.ephemeral, info.created_by) == ("data", 4, False, None)
    assert info.created_at == datetime.datetime(2024, 1, 1, tzinfo=datetime.timezone.utc)


def test_a_refused_pickled_value_raises_the_daemons_error(fake: FakeDaemon) -> None:
    message = "Dict data holds a value pickled by a function of app a: a function of app b may not unpickle it"
    fake.routes[("POST", "/v1/dicts/data/get")] = (403, {"error": {"code": "forbidden", "message": message}})
    with pytest.raises(Error, match="may not unpickle it") as caught:
        modal.Dict.from_name("data")["k"]
    assert caught.value.code == "forbidden"


@pytest.mark.parametrize("cls, route", [(modal.Dict, "dicts"), (modal.Queue, "queues")], ids=["Dict", "Queue"])
def test_objects_list_create_and_delete(fake: FakeDaemon, cls: Any, route: str) -> None:
    fake.routes[("GET", f"/v1/{route}")] = (200, {route: [view("a"), view("b")]})
    assert [h.name for h in cls.objects.list()] == ["a", "b"]
    assert [h.name for h in cls.objects.list(max_objects=1)] == ["a"]
    assert len(fake.of("GET")) == 2  # listed handles are hydrated already
    cls.objects.create("c")
    cls.objects.create("c", allow_existing=True)
    assert [r.body for r in fake.of("POST", f"/v1/{route}")] == [{"name": "c", "exist_ok": False}, {"name": "c", "exist_ok": True}]
    fake.routes[("DELETE", f"/v1/{route}/gone")] = (404, {"error": {"code": "not_found", "message": "no such one"}})
    cls.objects.delete("a")
    cls.delete("a")
    with pytest.raises(NotFoundError):
        cls.objects.delete("gone")
    cls.objects.delete("gone", allow_missing=True)
    cls.delete("gone", allow_missing=True)
    assert len(fake.of("DELETE", f"/v1/{route}/a")) == 2


# --- Queue against the fake daemon -------------------------------------------------------------------


def test_put_sends_values_partition_ttl_and_the_wait(fake: FakeDaemon) -> None:
    q = modal.Queue.from_name("jobs")
    q.put({"a": 1})
    q.put_many([1, (2,)], partition="p", partition_ttl=60)
    q.put("x", block=False)
    bodies = [r.body for r in fake.of("POST", "/v1/queues/jobs/put")]
    assert bodies == [
        {"values": [{"value": {"a": 1}}], "partition_ttl": 86400, "timeout": 50.0},
        {"values": [{"value": 1}, pickled((2,))], "partition_ttl": 60, "partition": "p", "timeout": 50.0},
        {"values": [{"value": "x"}], "partition_ttl": 86400},
    ]
    q.put_many([])
    assert len(fake.of("POST", "/v1/queues/jobs/put")) == 3


@pytest.mark.parametrize("ttl", [0, -1, 86401, "1", True])
def test_partition_ttl_is_above_0_and_at_most_a_day(fake: FakeDaemon, ttl: Any) -> None:
    with pytest.raises(InvalidError, match="partition_ttl"):
        modal.Queue.from_name("jobs").put(1, partition_ttl=ttl)
    assert fake.requests == []


QUEUE_FULL: Reply = (429, {"error": {"code": "queue_full", "message": "partition holds 5000 items; nothing was put"}})


def test_a_full_partition_raises_queue_full_at_once_without_block(fake: FakeDaemon) -> None:
    fake.routes[("POST", "/v1/queues/jobs/put")] = QUEUE_FULL
    with pytest.raises(queue.Full, match="5000 items"):
        modal.Queue.from_name("jobs").put(1, block=False)
    assert len(fake.of("POST", "/v1/queues/jobs/put")) == 1


def test_a_queue_out_of_partitions_raises_at_once_even_when_blocking(fake: FakeDaemon) -> None:
    message = "Queue jobs: the queue has 100000 partitions, the limit; nothing was put"
    fake.routes[("POST", "/v1/queues/jobs/put")] = (422, {"error": {"code": "limit_exceeded", "message": message}})
    with pytest.raises(modal.exception.ResourceExhaustedError, match="100000 partitions, the limit"):
        modal.Queue.from_name("jobs").put(1, partition="new")
    assert len(fake.of("POST", "/v1/queues/jobs/put")) == 1


def test_a_blocking_put_asks_again_until_there_is_room(fake: FakeDaemon) -> None:
    fake.routes[("POST", "/v1/queues/jobs/put")] = in_turn(QUEUE_FULL, QUEUE_FULL, (200, {"put": 1}))
    modal.Queue.from_name("jobs").put(1)
    assert [r.body["timeout"] for r in fake.of("POST", "/v1/queues/jobs/put")] == [50.0, 50.0, 50.0]


def test_a_put_with_a_timeout_waits_that_long_in_all_then_raises_queue_full(fake: FakeDaemon) -> None:
    def full_after_waiting(req: Req) -> Reply:
        fake.hold(req.body.get("timeout", 0))
        return QUEUE_FULL

    fake.routes[("POST", "/v1/queues/jobs/put")] = full_after_waiting
    with pytest.raises(queue.Full):
        modal.Queue.from_name("jobs").put(1, timeout=0.3)
    waits = [r.body.get("timeout", 0) for r in fake.of("POST", "/v1/queues/jobs/put")]
    assert 0 < waits[0] <= 0.3 and all(w <= 0.3 for w in waits)


def test_put_many_goes_in_requests_a_partition_can_hold(fake: FakeDaemon) -> None:
    modal.Queue.from_name("jobs").put_many(list(range(12_000)))
    chunks = [r.body["values"] for r in fake.of("POST", "/v1/queues/jobs/put")]
    assert [len(c) for c in chunks] == [10_000, 2_000]
    assert [v["value"] for c in chunks for v in c] == list(range(12_000))


def test_a_blocking_get_asks_again_until_a_value_comes(fake: FakeDaemon) -> None:
    fake.routes[("POST", "/v1/queues/jobs/get")] = in_turn((200, {"values": []}), (200, {"values": []}), (200, {"values": [pickled(("v", 1))]}))
    q = modal.Queue.from_name("jobs")
    assert q.get(timeout=30, partition="p") == ("v", 1)
    bodies = [r.body for r in fake.of("POST", "/v1/queues/jobs/get")]
    assert len(bodies) == 3 and all(b["n"] == 1 and b["partition"] == "p" and 0 < b["timeout"] <= 30 for b in bodies)
    fake.requests.clear()
    fake.routes[("POST", "/v1/queues/jobs/get")] = in_turn((200, {"values": []}), (200, {"values": [{"value": "w"}]}))
    assert q.get() == "w"
    assert [r.body for r in fake.of("POST", "/v1/queues/jobs/get")] == [{"n": 1, "timeout": 50.0}] * 2


def test_a_get_that_finds_nothing_in_time_raises_queue_empty(fake: FakeDaemon) -> None:
    def nothing_after_waiting(req: Req) -> Reply:
        fake.hold(req.body.get("timeout", 0))
        return 200, {"values": []}

    fake.routes[("POST", "/v1/queues/jobs/get")] = nothing_after_waiting
    q = modal.Queue.from_name("jobs")
    with pytest.raises(queue.Empty):
        q.get(timeout=0.2)
    assert all(0 <= r.body.get("timeout", 0) <= 0.2 for r in fake.of("POST", "/v1/queues/jobs/get"))
    with pytest.raises(queue.Empty):
        q.get_many(3, timeout=0)
    assert fake.of("POST", "/v1/queues/jobs/get")[-1].body == {"n": 3}


def test_a_non_blocking_get_on_an_empty_queue_returns_none_and_get_many_an_empty_list(fake: FakeDaemon) -> None:
    fake.routes[("POST", "/v1/queues/jobs/get")] = (200, {"values": []})
    q = modal.Queue.from_name("jobs")
    assert q.get(block=False) is None  # as Modal's Queue.get
    assert q.get_many(5, block=False) == []
    assert [r.body for r in fake.of("POST", "/v1/queues/jobs/get")] == [{"n": 1}, {"n": 5}]


def test_get_many_takes_at_most_1000_at_once(fake: FakeDaemon) -> None:
    fake.routes[("POST", "/v1/queues/jobs/get")] = (200, {"values": [{"value": 1}, {"value": 2}]})
    q = modal.Queue.from_name("jobs")
    assert q.get_many(5_000) == [1, 2]
    assert fake.of("POST", "/v1/queues/jobs/get")[0].body["n"] == 1000
    for bad in (0, -1, 1.5, True):
        with pytest.raises(InvalidError, match="n_values"):
            q.get_many(bad)
    with pytest.raises(InvalidError, match="timeout"):
        q.get(timeout=-1)


def test_len_and_clear_name_their_partition(fake: FakeDaemon) -> None:
    fake.routes[("GET", "/v1/queues/jobs/len")] = lambda req: (200, {"len": 9 if req.query["total"] == "1" else 2})
    q = modal.Queue.from_name("jobs")
    assert q.len() == 2 and q.len(partition="p") == 2 and q.len(total=True) == 9
    assert [r.query for r in fake.of("GET", "/v1/queues/jobs/len")] == [{"total": "0"}, {"total": "0", "partition": "p"}, {"total": "1"}]
    q.clear()
    q.clear(partition="p")
    q.clear(all=True)
    assert [r.body for r in fake.of("POST", "/v1/queues/jobs/clear")] == [{"all": False}, {"all": False, "partition": "p"}, {"all": True}]
    with pytest.raises(InvalidError, match="total"):
        q.len(partition="p", total=True)
    with pytest.raises(InvalidError, match="all"):
        q.clear(partition="p", all=True)


def test_iterate_reads_without_taking_and_stops_once_nothing_new_comes_in_item_poll_timeout(fake: FakeDaemon) -> None:
    def items(req: Req) -> Reply:
        after = int(req.query["after"])
        if after == 0:
            return 200, {"items": [{"seq": 1, "value": {"value": "a"}}, {"seq": 4, "value": pickled(("b",))}]}
        if after == 4:
            return 200, {"items": [{"seq": 7, "value": {"value": "c"}}]}
        fake.hold(float(req.query["wait"]))
        return 200, {"items": []}

    fake.routes[("GET", "/v1/queues/jobs/items")] = items
    q = modal.Queue.from_name("jobs")
    assert list(q.iterate(partition="p", item_poll_timeout=0.2)) == ["a", ("b",), "c"]
    reads = fake.of("GET", "/v1/queues/jobs/items")
    assert [r.query["after"] for r in reads[:3]] == ["0", "4", "7"] and all(r.query["partition"] == "p" and r.query["limit"] == "1000" for r in reads)
    assert all(0 <= float(r.query["wait"]) <= 0.2 for r in reads)
    assert not fake.of("POST", "/v1/queues/jobs/get")
    fake.requests.clear()
    assert list(q.iterate()) == ["a", ("b",), "c"]  # item_poll_timeout 0: stops as soon as it is caught up
    assert [r.query["wait"] for r in fake.of("GET", "/v1/queues/jobs/items")] == ["0", "0", "0"]


# --- Ephemeral ones, and the .aio forms --------------------------------------------------------------


@pytest.mark.parametrize("cls, route", [(modal.Dict, "dicts"), (modal.Queue, "queues")], ids=["Dict", "Queue"])
def test_an_ephemeral_one_heartbeats_while_the_block_runs_and_is_deleted_after(fake: FakeDaemon, monkeypatch: pytest.MonkeyPatch, cls: Any, route: str) -> None:
    monkeypatch.setattr(gephemeral, "_HEARTBEAT_INTERVAL_S", 0.01)
    fake.routes[("POST", f"/v1/{route}/ephemeral")] = (201, {**view("ephemeral-k3x9"), "ephemeral": True})
    thread_name = f"gantry-{cls.__name__.lower()}-heartbeat-ephemeral-k3x9"
    with cls.ephemeral() as obj:
        assert type(obj) is cls and obj.name == "ephemeral-k3x9"
        wait_until(lambda: fake.of("POST", f"/v1/{route}/ephemeral-k3x9/heartbeat") or None, "a heartbeat", timeout=10)
        assert [t for t in threading.enumerate() if t.name == thread_name]
        obj.clear()  # hydrated already: no GET of its view
    assert fake.of("DELETE", f"/v1/{route}/ephemeral-k3x9")
    assert not [t for t in threading.enumerate() if t.name == thread_name]
    assert not fake.of("GET", f"/v1/{route}/ephemeral-k3x9")


def test_an_ephemeral_dict_may_start_with_data_as_modals_did(fake: FakeDaemon) -> None:
    fake.routes[("POST", "/v1/dicts/ephemeral")] = (201, view("ephemeral-d"))
    with modal.Dict.ephemeral({"a": 1}):
        pass
    assert [r.body for r in fake.of("POST", "/v1/dicts/ephemeral-d/update")] == [{"entries": [{"key": {"value": "a"}, "value": {"value": 1}}]}]


def test_aio_forms(fake: FakeDaemon) -> None:
    fake.routes[("POST", "/v1/dicts/ephemeral")] = (201, view("eph-d"))
    fake.routes[("POST", "/v1/queues/ephemeral")] = (201, view("eph-q"))
    fake.routes[("POST", "/v1/dicts/eph-d/get")] = (200, {"found": True, "value": {"value": 1}})
    fake.routes[("GET", "/v1/dicts/eph-d/items")] = (200, {"items": [{"key": {"value": "a"}, "value": {"value": 1}}], "next": None})
    fake.routes[("POST", "/v1/queues/eph-q/get")] = (200, {"values": [{"value": 2}]})
    fake.routes[("GET", "/v1/queues/eph-q/items")] = lambda req: (200, {"items": [{"seq": 1, "value": {"value": 2}}] if req.query["after"] == "0" else []})
    fake.routes[("GET", "/v1/dicts")] = (200, {"dicts": [view("eph-d")]})

    async def main() -> Tuple[Any, ...]:
        async with modal.Dict.ephemeral() as d, modal.Queue.ephemeral.aio() as q:
            assert await d.put.aio("a", 1) is True
            await d.update.aio(b=2)
            got = await d.get.aio("a")
            keys = [k async for k in d.keys.aio()]
            pairs = [kv async for kv in d.items.aio()]
            await q.put.aio(2)
            await q.put_many.aio([3, 4], partition="p")
            taken = await q.get.aio()
            many = await q.get_many.aio(2)
            seen = [v async for v in q.iterate.aio()]
            listed = await modal.Dict.objects.list.aio()
            await modal.Queue.delete.aio("jobs")
            return got, keys, pairs, taken, many, seen, [h.name for h in listed]

    assert asyncio.run(main()) == (1, ["a"], [("a", 1)], 2, [2], [2], ["eph-d"])
    assert fake.of("DELETE", "/v1/dicts/eph-d") and fake.of("DELETE", "/v1/queues/eph-q") and fake.of("DELETE", "/v1/queues/jobs")
