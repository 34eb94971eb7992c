"""``gantry run`` on the Python side (python/gantry/_run.py), without a daemon: which entrypoint or
function ``FILE::NAME`` picks, how its parameters become options (types, defaults, flags, required
ones, refusals naming the option and its type), ``--help``, and what Ctrl-C does to the calls the
run spawned (a fake daemon answers in the child process).
"""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path
from typing import Any, Dict, List, Optional, Tuple

import pytest

from gantry import _run
from gantry._client import Client
from helpers import ROOT

pytestmark = pytest.mark.no_daemon

APP = '''
from typing import Optional
import gantry

app = gantry.App("run-opts")


@app.function()
def square(x: int) -> int:
    return x * x


@app.local_entrypoint()
def main(n: int, label: str = "x", ratio: float = 0.5, verbose: bool = False, batch_size: Optional[int] = None):
    """Prints what it was given."""
    print(repr((n, label, ratio, verbose, batch_size)))


@app.local_entrypoint()
async def later(when=3):
    print("later", repr(when))
'''


@pytest.fixture(autouse=True)
def on_the_deploying_machine(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("GANTRY_CONTAINER_ID", raising=False)


def write(tmp_path: Path, source: str, name: str = "run_app.py") -> str:
    path = tmp_path / name
    path.write_text(textwrap.dedent(source))
    return str(path)


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> Tuple[int, str, str]:
    code = _run.main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


@pytest.fixture
def app(tmp_path: Path) -> str:
    return write(tmp_path, APP)


def test_options_take_their_types_from_annotations_and_defaults(app: str, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = run(capsys, f"{app}::main", "--n", "4", "--label=y", "--ratio", "2.5", "--verbose", "--batch-size", "8")
    assert (code, err) == (0, "")
    assert out.strip() == "(4, 'y', 2.5, True, 8)"
    code, out, _ = run(capsys, f"{app}::main", "--n", "-3", "--no-verbose", "--batch_size", "1")
    assert code == 0 and out.strip() == "(-3, 'x', 0.5, False, 1)"


def test_an_async_entrypoint_and_an_untyped_parameter_typed_by_its_default(app: str, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(capsys, f"{app}::later", "--when", "7")
    assert code == 0 and out.strip() == "later 7"


@pytest.mark.parametrize(
    "args, message",
    [
        (["--n", "four"], "--n takes an int, got 'four'"),
        (["--n", "1", "--ratio", "fast"], "--ratio takes a float, got 'fast'"),
        (["--n", "1", "--verbose=maybe"], "--verbose is a bool flag: give --verbose or --no-verbose, not 'maybe'"),
        ([], "the entrypoint main needs --n (int)"),
        (["--n"], "--n needs a value (int)"),
        (["--n", "1", "--data", "x"], "the entrypoint main has no option --data (it takes: --n (int), --label (str), --ratio (float), --verbose (bool), --batch-size (int))"),
        (["--n", "1", "extra"], "unexpected argument 'extra': the entrypoint main takes options by name"),
        (["--n", "1", "--detach"], "gantry run's own options (--detach, --no-deploy) and gantry's (--json, --url …) go before the file"),
    ],
)
def test_bad_options_are_refused_naming_the_option_and_its_type(app: str, capsys: pytest.CaptureFixture[str], args: List[str], message: str) -> None:
    code, out, err = run(capsys, f"{app}::main", *args)
    assert code == 2 and out == ""
    assert message in err
    assert err.startswith("Error: ") and err.count("\n") == 1


def test_help_lists_the_options_with_types_and_defaults(app: str, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(capsys, f"{app}::main", "--help")
    assert code == 0
    assert f"usage: gantry run {app}::main --n INT [--label STR] [--ratio FLOAT] [--verbose / --no-verbose] [--batch-size INT]" in out
    assert "Runs the local entrypoint main of app run-opts here." in out
    assert "Prints what it was given." in out
    assert "\n  --n INT                   int, required\n" in out
    assert "\n  --label STR               str, default 'x'\n" in out
    assert "\n  --verbose / --no-verbose  bool, default False\n" in out
    assert "\n  --batch-size INT          int, default None\n" in out
    # --help wins over options that would be refused
    assert run(capsys, f"{app}::main", "--nope", "-h")[0] == 0


def test_several_entrypoints_without_a_name_are_named(app: str, capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = run(capsys, app)
    assert code == 2
    assert f"has 2 local entrypoints (later, main): name one, e.g. gantry run {app}::later" in err


def test_an_unknown_name_lists_entrypoints_and_functions(app: str, capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = run(capsys, f"{app}::cube")
    assert code == 2
    assert "has no local entrypoint or function named 'cube' (local entrypoints: later, main; functions: square)" in err


def test_a_function_takes_its_parameters_as_options(app: str, capsys: pytest.CaptureFixture[str]) -> None:
    # --check: the name and the options only (what gantry run asks before it deploys)
    assert run(capsys, "--check", f"{app}::square", "--x", "3") == (0, "", "")
    code, _, err = run(capsys, "--check", f"{app}::square", "--x", "three")
    assert code == 2 and "--x takes an int, got 'three'" in err
    code, out, _ = run(capsys, f"{app}::square", "--help")
    assert code == 0
    assert "Runs the function square of app run-opts remotely, with these options as its arguments, and prints its result." in out


def test_a_function_runs_remotely_and_its_result_is_printed(app: str, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> None:
    seen: List[Tuple[Tuple[Any, ...], Dict[str, Any]]] = []

    def remote(self: Any, *args: Any, **kwargs: Any) -> int:
        seen.append((args, kwargs))
        return kwargs["x"] ** 2

    from gantry.functions import Function

    monkeypatch.setattr(Function, "is_generator", property(lambda self: False))
    monkeypatch.setattr(Function, "remote", remote)
    code, out, _ = run(capsys, f"{app}::square", "--x", "3")
    assert code == 0 and out == "9\n"
    assert seen == [((), {"x": 3})]


def test_the_one_function_of_a_file_without_entrypoints_is_the_target(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    one = write(tmp_path, 'import gantry\napp = gantry.App("one-fn")\n@app.function()\ndef f(y: float = 1.0):\n    return y\n', "one_fn.py")
    assert run(capsys, "--check", one, "--y", "2") == (0, "", "")
    two = write(tmp_path, 'import gantry\napp = gantry.App("two-fn")\n@app.function()\ndef f():\n    pass\n@app.function()\ndef g():\n    pass\n', "two_fn.py")
    code, _, err = run(capsys, two)
    assert code == 2 and f"has no local entrypoint and 2 functions (f, g): name one, e.g. gantry run {two}::f" in err
    none = write(tmp_path, 'import gantry\napp = gantry.App("no-fn")\n', "no_fn.py")
    code, _, err = run(capsys, none)
    assert code == 2 and "has no local entrypoint: mark one with @app.local_entrypoint()" in err


def test_a_parameter_of_another_type_cannot_be_given(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = write(tmp_path, 'from typing import List\nimport gantry\napp = gantry.App("lists")\n@app.local_entrypoint()\ndef main(xs: List[int] = []):\n    print("ran")\n', "lists.py")
    assert run(capsys, path)[:2] == (0, "ran\n")
    code, _, err = run(capsys, path, "--xs", "1")
    assert code == 2 and "--xs is a parameter of type List, which gantry run cannot take from the command line" in err


def test_an_entrypoint_that_raises_exits_1_with_its_traceback(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = write(tmp_path, 'import gantry\napp = gantry.App("raises")\n@app.local_entrypoint()\ndef main():\n    raise ValueError("boom")\n', "raises.py")
    code, _, err = run(capsys, path)
    assert code == 1 and "ValueError: boom" in err and "Traceback" in err


class FakeClient:
    def __init__(self, statuses: Dict[str, int]) -> None:
        self.statuses = statuses
        self.cancelled: List[str] = []

    def request(self, method: str, path: str, body: Any = None, **_: Any) -> Tuple[int, Any]:
        call_id = path.split("/")[3]
        self.cancelled.append(call_id)
        return self.statuses.get(call_id, 200), {}


def test_spawned_calls_are_tracked_through_the_client_and_forgotten_once_seen_finished(monkeypatch: pytest.MonkeyPatch) -> None:
    answers = {
        ("POST", "/v1/apps/a/functions/f/calls"): {"call_id": "fc-1"},
        ("POST", "/v1/apps/a/functions/f/calls/batch"): {"call_ids": ["fc-2", "fc-3"]},
        ("GET", "/v1/calls/fc-2?wait=0.000"): {"status": "succeeded"},
        ("GET", "/v1/calls/fc-3?wait=0.000"): {"status": "running"},
        ("GET", "/v1/apps/a/functions/f"): {"name": "f"},
    }
    monkeypatch.setattr(Client, "request", lambda self, method, path, *a, **k: (200, answers[(method, path)]))
    tracker = _run.SpawnedCalls()
    tracker.install()
    try:
        client = Client(socket_path="/nonexistent.sock")
        for method, path in answers:
            client.json(method, path)
    finally:
        tracker.uninstall()
    assert sorted(tracker.calls) == ["fc-1", "fc-3"]
    assert Client.json is not None and "tracker" not in Client.json.__code__.co_freevars
    fake = FakeClient({"fc-1": 409, "fc-3": 500})
    tracker.calls = {"fc-1": fake, "fc-3": fake, "fc-4": fake}  # type: ignore[dict-item]
    assert tracker.cancel_all() == (1, 1)  # fc-4 cancelled, fc-1 had finished, fc-3 failed
    assert sorted(fake.cancelled) == ["fc-1", "fc-3", "fc-4"]


INTERRUPTED_APP = '''
import json, os, sys, time
import gantry
from gantry._client import Client

LOG = os.environ["RUN_TEST_LOG"]
app = gantry.App("interrupted")


@app.function()
def slow(x):
    return x


def fake_request(self, method, path, body=None, **kwargs):
    with open(LOG, "a") as f:
        f.write(f"{method} {path}\\n")
    if path.endswith("/calls"):
        return 200, {"call_id": "fc-" + str(body["args"][0]).zfill(26)}
    if path.endswith("/cancel"):
        return 200, {}
    return 200, {"name": "slow", "runtime": "typescript"}


Client.request = fake_request


@app.local_entrypoint()
def main():
    slow.spawn(1)
    slow.spawn(2)
    print("spawned", flush=True)
    time.sleep(60)
'''


def interrupt_run(tmp_path: Path, *flags: str, sig: int = signal.SIGINT, twice: bool = False) -> Tuple[int, str, List[str]]:
    path = write(tmp_path, INTERRUPTED_APP, "interrupted_app.py")
    log = tmp_path / "requests.log"
    env = {k: v for k, v in os.environ.items() if not k.startswith("GANTRY_")}
    env.update(PYTHONPATH=str(ROOT / "python"), RUN_TEST_LOG=str(log), GANTRY_HOME=str(tmp_path))
    child = subprocess.Popen([sys.executable, "-m", "gantry._run", *flags, path], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        assert child.stdout is not None
        assert child.stdout.readline().strip() == "spawned"
        child.send_signal(sig)
        if twice:  # one Ctrl-C on a terminal: from the terminal, and from gantry run
            child.send_signal(sig)
        _, err = child.communicate(timeout=30)
    finally:
        if child.poll() is None:
            child.kill()
    return child.returncode, err, log.read_text().splitlines()


def test_ctrl_c_cancels_the_calls_the_run_spawned(tmp_path: Path) -> None:
    code, err, requests = interrupt_run(tmp_path)
    assert code == 130
    assert "interrupted: cancelling the 2 call(s) this run spawned" in err and "cancelled 2 call(s)" in err
    cancels = sorted(r for r in requests if r.endswith("/cancel"))
    assert cancels == [f"POST /v1/calls/fc-{'1'.zfill(26)}/cancel", f"POST /v1/calls/fc-{'2'.zfill(26)}/cancel"]


def test_one_ctrl_c_delivered_twice_at_once_cancels_once(tmp_path: Path) -> None:
    code, err, requests = interrupt_run(tmp_path, twice=True)
    assert code == 130 and "cancelled 2 call(s)" in err and "interrupted again" not in err
    assert sum(r.endswith("/cancel") for r in requests) == 2


def test_sigterm_is_an_interrupt_too(tmp_path: Path) -> None:
    code, err, requests = interrupt_run(tmp_path, sig=signal.SIGTERM)
    assert code == 130 and "cancelled 2 call(s)" in err
    assert sum(r.endswith("/cancel") for r in requests) == 2


def test_with_detach_ctrl_c_leaves_the_calls_running(tmp_path: Path) -> None:
    code, err, requests = interrupt_run(tmp_path, "--detach")
    assert code == 130
    assert "interrupted (--detach): the 2 call(s) this run spawned and did not see finish go on" in err
    assert not any(r.endswith("/cancel") for r in requests)
