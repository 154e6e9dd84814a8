"""A virtual clock for code that fires on wall-clock times (the scheduler and APScheduler).

``VirtualClock.run(main)`` runs ``main`` on an event loop whose time moves only when the
loop has nothing ready to run: a wait for a timer returns at once, with the clock moved to
the timer's time. A test of "fires on its beat" then sees every run at exactly its time,
however loaded the machine, and seconds of waiting take microseconds. ``install`` makes the
scheduler's ``time.time()`` and APScheduler's ``datetime.now()`` read this clock.

For code that waits on timers only: while a thread works (a send, ``getaddrinfo``) the
loop would jump past the time it takes, so such waits are not for this loop.
"""

from __future__ import annotations

import asyncio
import selectors
from collections.abc import Coroutine
from datetime import datetime, tzinfo
from typing import Any, Self, TypeVar

import pytest

T = TypeVar("T")


class _Selector(selectors.DefaultSelector):
    """Returns ready I/O at once; instead of blocking until a timer, moves the clock to it."""

    def __init__(self, clock: VirtualClock) -> None:
        super().__init__()
        self._clock = clock

    def select(self, timeout: float | None = None) -> list[tuple[selectors.SelectorKey, int]]:
        ready = super().select(0)
        if ready or timeout == 0:
            return ready
        if timeout is None:  # no timer at all: only I/O (a thread's wake-up) can come
            return super().select(None)
        self._clock.advance(timeout)
        return []


class _Loop(asyncio.SelectorEventLoop):
    def __init__(self, clock: VirtualClock) -> None:
        self._clock = clock
        super().__init__(_Selector(clock))

    def time(self) -> float:
        return self._clock.monotonic()


class VirtualClock:
    """Wall time ``start`` (Unix seconds) when the loop starts, moving only with the loop."""

    def __init__(self, start: float) -> None:
        self._start = start
        self._elapsed = 0.0

    def time(self) -> float:
        """Unix time now, like ``time.time()``."""
        return self._start + self._elapsed

    def monotonic(self) -> float:
        """Seconds since the start, like ``time.monotonic()`` (and the loop's time)."""
        return self._elapsed

    def advance(self, seconds: float) -> None:
        self._elapsed += max(0.0, seconds)

    def install(self, monkeypatch: pytest.MonkeyPatch) -> None:
        """Make the scheduler and APScheduler read this clock for the test."""
        clock = self

        class Now(datetime):
            @classmethod
            def now(cls, tz: tzinfo | None = None) -> Self:
                return cls.fromtimestamp(clock.time(), tz)

        monkeypatch.setattr("monitor.engine.scheduler.time", self)
        monkeypatch.setattr("apscheduler.schedulers.base.datetime", Now)

    def run(self, main: Coroutine[Any, Any, T]) -> T:
        """Run ``main`` to its end on a loop that keeps this clock's time."""
        with asyncio.Runner(loop_factory=lambda: _Loop(self)) as runner:
            return runner.run(main)
