"""LoadShare: the batch a free worker takes follows the load, up and down, exactly."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from vidrec.serving.batching import LoadShare


class Clock:
    def __init__(self) -> None:
        self.t = 0.0

    def __call__(self) -> float:
        return self.t


def test_each_worker_takes_its_part_of_the_clients() -> None:
    clock = Clock()
    share = LoadShare(max_batch=32, decay_s=1.0, clock=clock)
    assert share(16, 2) == 8  # 16 clients, 2 workers: batches of 8
    clock.t += 0.002
    assert share(3, 2) == 8  # a worker just answered its 8: they are on their way back
    assert share(17, 2) == 9 and share(16, 1) == 17  # the peak, not the moment
    assert share(16, 0) == 17  # no worker alive: never a division by zero


def test_the_share_follows_the_load_down_and_keeps_to_max_batch() -> None:
    clock = Clock()
    share = LoadShare(max_batch=8, decay_s=1.0, clock=clock)
    assert share(100, 2) == 8  # a burst: capped
    assert share.concurrent
    for _ in range(60):  # one request at a time for 6 s
        clock.t += 0.1
        last = share(1, 2)
    assert last == 1 and not share.concurrent  # a lone request is served alone, at once


def test_a_lone_request_after_idle_is_a_batch_of_one() -> None:
    share = LoadShare(max_batch=16, clock=Clock())
    assert share(1, 2) == 1 and not share.concurrent


@given(st.lists(st.tuples(st.floats(0, 5), st.integers(0, 200), st.integers(0, 8)), max_size=50),
       st.integers(1, 64))  # fmt: skip
def test_the_share_is_always_between_one_and_max_batch(steps, max_batch) -> None:
    clock = Clock()
    share = LoadShare(max_batch=max_batch, clock=clock)
    for dt, in_system, workers in steps:
        clock.t += dt
        assert 1 <= share(in_system, workers) <= max_batch


@pytest.mark.parametrize("args", [(0, 1.0), (4, 0.0)])
def test_bad_settings_are_refused(args) -> None:
    with pytest.raises(ValueError):
        LoadShare(*args)
