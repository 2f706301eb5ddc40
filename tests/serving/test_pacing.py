"""The pace of bulk work in a serving process (``serving.pacing``)."""

from __future__ import annotations

import asyncio

import pytest

import serving.pacing
from serving.pacing import Pace


class _Clock:
    """A clock that moves only when told, and the sleeps asked of it."""

    def __init__(self) -> None:
        self.now = 0.0
        self.slept: list[float] = []

    def perf_counter(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.slept.append(round(seconds, 6))


@pytest.fixture()
def clock(monkeypatch) -> _Clock:
    fake = _Clock()
    monkeypatch.setattr(serving.pacing, "time", fake)
    return fake


def test_work_rests_after_each_slice_for_the_others_share(clock) -> None:
    pace = Pace(0.25, slice_s=0.01)  # the work a quarter of the time: three times as long at rest
    clock.now = 0.004
    pace()  # within the slice: no rest yet
    clock.now = 0.012
    pace()
    clock.now = 0.015
    pace()
    clock.now = 0.03
    pace()
    assert clock.slept == [0.036, 0.054]


def test_a_whole_share_never_rests_and_a_share_must_be_one_of_the_time(clock) -> None:
    pace = Pace(1.0)
    clock.now = 5.0
    pace()
    assert clock.slept == []
    for share in (0.0, -0.5, 1.5):
        with pytest.raises(ValueError, match="share"):
            Pace(share)


def test_work_on_an_event_loops_thread_never_rests(clock) -> None:
    """Resting on the loop would stop the very requests it leaves time to."""
    pace = Pace(0.5, slice_s=0.0)

    async def on_the_loop() -> None:
        clock.now = 1.0
        pace()

    asyncio.run(on_the_loop())
    assert clock.slept == []
    clock.now = 2.0
    pace()  # off the loop: it rests for the work since it last did
    assert clock.slept == [2.0]
