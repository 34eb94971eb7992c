"""The agent's dynamic batching (runtime-images/python/gantry_batch.py), without a daemon."""
from __future__ import annotations

import sys
import threading
from pathlib import Path
from typing import Any, List

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "runtime-images" / "python"))

import gantry_batch  # noqa: E402

pytestmark = pytest.mark.no_daemon


def test_transpose_turns_each_inputs_arguments_into_lists() -> None:
    args, kwargs = gantry_batch.transpose([([1, "a"], {"k": True}), ([2, "b"], {"k": False})], "f")
    assert args == [[1, 2], ["a", "b"]] and kwargs == {"k": [True, False]}


def test_transpose_refuses_inputs_with_different_arguments_naming_the_function() -> None:
    with pytest.raises(TypeError, match="the inputs batched for f do not all pass the same arguments"):
        gantry_batch.transpose([([1], {}), ([1, 2], {})], "f")


@pytest.mark.parametrize("value, message", [("abc", "must return a list"), ([1], "returned 1 results for a batch of 2 inputs")])
def test_results_must_be_a_list_of_the_batch_length(value: Any, message: str) -> None:
    with pytest.raises((TypeError, ValueError), match=message):
        gantry_batch.results(value, 2, "f")
    assert gantry_batch.results((1, 2), 2, "f") == [1, 2]


def test_a_full_batch_runs_at_once_and_a_partial_one_after_the_wait() -> None:
    ran: List[List[int]] = []
    done = threading.Event()

    def run(batch: List[int]) -> None:
        ran.append(batch)
        if sum(len(b) for b in ran) == 5:
            done.set()

    b = gantry_batch.Batcher(3, 0.05, run)
    for i in range(5):
        b.add(i)
    assert ran[0] == [0, 1, 2]  # full: handed over by the add that filled it
    assert done.wait(5), "the partial batch was never run"
    assert ran[1] == [3, 4]
