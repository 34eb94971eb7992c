"""Classes' parameters and options on the caller's side (python/gantry/cls.py), without a daemon:
what the deploy request declares, Modal's errors for bad instances, with_options, and .local()."""
from __future__ import annotations

import pytest

import gantry as modal
from gantry.cls import check_params, declared_params, instantiate

pytestmark = pytest.mark.no_daemon


def make_app(name: str = "cls-unit") -> modal.App:
    return modal.App(name)


def test_declares_typed_parameters_with_their_defaults_and_skips_init_false() -> None:
    app = make_app("cls-declare")

    @app.cls()
    class Model:
        size: int = modal.parameter(default=2)
        name: str = modal.parameter()
        blob: bytes = modal.parameter(default=b"\x01")
        on: bool = modal.parameter(default=True)
        cache: str = modal.parameter(default="", init=False)

        @modal.method()
        def run(self) -> int:
            return self.size

    (entry,) = [f for f in app.manifest() if f["name"] == "Model"]
    assert entry["options"]["cls"]["params"] == [
        {"name": "blob", "type": "bytes", "default": {"bytes": "AQ=="}},
        {"name": "name", "type": "str"},
        {"name": "on", "type": "bool", "default": True},
        {"name": "size", "type": "int", "default": 2},
    ]


@pytest.mark.parametrize("annotation", ["float", "list", None])
def test_a_parameter_needs_one_of_the_four_types(annotation: str) -> None:
    ns: dict = {"p": modal.parameter(default=1), "run": modal.method()(lambda self: 1)}
    if annotation:
        ns["__annotations__"] = {"p": annotation}
    klass = type("Bad", (), ns)
    with pytest.raises(modal.exception.InvalidError, match="parameter p needs a type, one of int, str, bytes, bool"):
        declared_params(klass)


def test_a_default_of_the_wrong_type_is_a_type_error_at_definition() -> None:
    klass = type("Bad", (), {"__annotations__": {"p": "int"}, "p": modal.parameter(default="one")})
    with pytest.raises(TypeError, match="parameter p takes int, got str 'one' as its default"):
        declared_params(klass)


DECLARED = [{"name": "size", "type": "int", "default": 1}, {"name": "flag", "type": "bool"}]


@pytest.mark.parametrize(
    "args, kwargs, error, message",
    [
        ((1,), {"flag": True}, modal.exception.InvalidError, "keyword only"),
        ((), {"size": 2}, modal.exception.InvalidError, "missing parameter flag, which has no default"),
        ((), {"flag": True, "nope": 1}, modal.exception.InvalidError, "unknown parameter nope: it takes size, flag"),
        ((), {"flag": 1}, TypeError, "parameter flag takes bool, got int 1"),
        ((), {"flag": True, "size": True}, TypeError, "parameter size takes int, got bool"),
        ((), {"flag": True, "size": 2**60}, modal.exception.InvalidError, r"within ±2\^53"),
    ],
)
def test_bad_instances_raise_modals_errors_naming_the_parameter(args: tuple, kwargs: dict, error: type, message: str) -> None:
    with pytest.raises(error, match=message):
        check_params("Model", DECLARED, args, kwargs)


def test_instances_carry_bytes_as_base64_and_get_them_back_as_bytes() -> None:
    sent = check_params("Model", [{"name": "b", "type": "bytes"}], (), {"b": b"\x00\xff"})
    assert sent == {"b": {"bytes": "AP8="}}

    class Plain:
        b: bytes = modal.parameter()
        other: int = modal.parameter(default=5, init=False)

    obj = instantiate(Plain, sent)
    assert obj.b == b"\x00\xff" and obj.other == 5


def test_local_calls_use_the_instances_parameters_and_run_enter_once() -> None:
    app = make_app("cls-local")
    entered = []

    @app.cls()
    class Model:
        size: int = modal.parameter(default=1)

        @modal.enter()
        def load(self) -> None:
            entered.append(self.size)

        @modal.method()
        def times(self, x: int) -> int:
            return x * self.size

    m = Model(size=3)
    assert m.times.local(2) == 6 and m.times.local(3) == 9 and Model().times.local(2) == 2
    assert entered == [3, 1]


def test_with_options_takes_modals_names_and_refuses_the_rest_naming_them() -> None:
    app = make_app("cls-options")

    @app.cls()
    class Model:
        @modal.method()
        def run(self) -> None:
            return None

    tuned = Model.with_options(gpu=["H100", "A100"], max_containers=2, scaledown_window=10, retries=modal.Retries(max_retries=2))
    assert tuned._options == {"gpu": ["H100", "A100"], "maxContainers": 2, "scaledownWindow": 10, "retries": {"maxRetries": 2, "backoffCoefficient": 2.0, "initialDelay": 1.0, "maxDelay": 60.0}}
    assert Model._options == {}  # the class itself keeps its own pool
    assert Model.with_concurrency(max_inputs=8)._options == {"maxInputs": 8}
    with pytest.raises(modal.exception.InvalidError, match=r"with_options\(volumes=...\) is not supported by gantry"):
        Model.with_options(volumes={})
    with pytest.raises(modal.exception.InvalidError, match="with_batching"):
        Model.with_batching(max_batch_size=2, wait_ms=10)


@pytest.mark.parametrize("decorator", [modal.method(), modal.enter(), modal.exit()])
def test_class_decorators_on_a_plain_function_raise_invalid_error(decorator) -> None:
    app = make_app("cls-misuse")

    with pytest.raises(modal.exception.InvalidError, match="marks a method of an @app.cls class, not a function under @app.function"):

        @app.function()
        @decorator
        def f() -> None:
            return None


def test_batched_on_a_plain_function_is_fine() -> None:
    app = make_app("cls-batched-fn")

    @app.function()
    @modal.batched(max_batch_size=2, wait_ms=10)
    def f(xs: list) -> list:
        return xs

    assert [e["options"]["batched"] for e in app.manifest()] == [{"maxBatchSize": 2, "waitMs": 10}]
