"""Bulk work in a process that serves requests, paced so that the requests keep their share.

A worker answers ``/next`` on its event loop. Bulk work in another thread of the same process (a
district's roster read or written: hundreds of thousands of records) holds the interpreter, and
sharing it does not keep requests moving: each time the loop gives the interpreter up (a socket
call, a store read) it waits up to the switch interval (5 ms) to get it back, so a request of a
millisecond takes tens, and 200 requests a second fell seconds behind. Resting does: the bulk
work sleeps between slices, and the loop runs freely meanwhile. A Redis store is shared the same
way: it runs one command at a time, and a worker waits for its reads on the loop.
"""

from __future__ import annotations

import asyncio
import time

__all__ = ["Pace"]


class Pace:
    """Call it often during bulk work. Once the work has run ``slice_s`` since it last rested, it
    sleeps so that the work takes at most ``share`` of the time (1: it never sleeps)."""

    def __init__(self, share: float = 1.0, slice_s: float = 0.01):
        if not 0.0 < share <= 1.0:
            raise ValueError(f"a share of the time is in (0, 1], not {share}")
        self.rest = 1.0 / share - 1.0
        self.slice_s = slice_s
        self._since = time.perf_counter()

    def __call__(self) -> None:
        if self.rest <= 0.0:
            return
        ran = time.perf_counter() - self._since
        if ran >= self.slice_s and not _on_event_loop():
            time.sleep(ran * self.rest)
            self._since = time.perf_counter()


def _on_event_loop() -> bool:
    """Whether this thread runs an event loop: resting there would stop the requests the rest is
    for (bulk work belongs in a thread of its own; this keeps a mistake from stalling a worker)."""
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return False
    return True
