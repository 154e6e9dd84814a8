"""The jobs that fire rounds: one APScheduler 3.x interval job per monitor.

Each monitor fires on a fixed grid, ``offset + k * interval`` seconds after the Unix epoch,
with a stable offset derived from its name. The grid spreads monitors evenly over their
interval (thousands of jobs due in the same second would exceed APScheduler's misfire
grace and be dropped silently), survives restarts, and lets a run know when it was
planned, so lag and missed runs are measured rather than guessed.
"""

from __future__ import annotations

import hashlib
import math
import time
from collections.abc import Awaitable, Callable, Sequence
from datetime import UTC, datetime

from apscheduler.schedulers.asyncio import AsyncIOScheduler
from apscheduler.triggers.interval import IntervalTrigger

from monitor.metrics import Metrics
from monitor.models import Monitor

RunRound = Callable[[Monitor], Awaitable[object]]


def start_offset(name: str, interval: float) -> float:
    """A stable offset in [0, interval) for ``name``: the same on every start and host."""
    digest = hashlib.sha256(name.encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2**64 * interval


def planned_time(now: float, offset: float, interval: float) -> float:
    """The grid point at or before ``now``: when the run happening at ``now`` was due."""
    return offset + math.floor((now - offset) / interval) * interval


def missed_between(previous: float | None, planned: float, interval: float) -> int:
    """How many grid points between two runs never ran (0 for consecutive runs)."""
    if previous is None:
        return 0
    return max(0, round((planned - previous) / interval) - 1)


def misfire_grace(interval: float) -> int:
    """About half the interval: late runs still count, but never overlap the next one."""
    return max(1, int(interval / 2))


class CheckScheduler:
    """Fires ``run_round(monitor)`` for every monitor on its grid, measuring lag and misses."""

    def __init__(self, monitors: Sequence[Monitor], run_round: RunRound, metrics: Metrics) -> None:
        self._run_round = run_round
        self._metrics = metrics
        self._monitors = {monitor.name: monitor for monitor in monitors}
        self._offsets = {
            monitor.name: start_offset(monitor.name, monitor.interval) for monitor in monitors
        }
        self._last_planned: dict[str, float] = {}
        self._scheduler = AsyncIOScheduler(timezone=UTC)
        self.longest_interval = max((monitor.interval for monitor in monitors), default=0.0)
        self.last_fire = time.monotonic()
        self._paused = False
        for monitor in monitors:
            self._add_job(monitor)

    def replace_monitors(self, monitors: Sequence[Monitor]) -> tuple[str, ...]:
        """Fire ``monitors`` from now on: new ones join their grid, changed ones are
        re-planned, unchanged ones keep their jobs; returns the names no longer fired."""
        wanted = {monitor.name: monitor for monitor in monitors}
        removed = tuple(name for name in self._monitors if name not in wanted)
        for name in removed:
            self._drop(name)
        for name, monitor in wanted.items():
            if self._monitors.get(name) == monitor:
                continue
            if name in self._monitors:
                self._drop(name)
            self._monitors[name] = monitor
            self._offsets[name] = start_offset(name, monitor.interval)
            self._add_job(monitor)
        self.longest_interval = max((m.interval for m in monitors), default=0.0)
        return removed

    def _drop(self, name: str) -> None:
        self._scheduler.remove_job(name)
        del self._monitors[name]
        self._offsets.pop(name, None)
        self._last_planned.pop(name, None)

    def _add_job(self, monitor: Monitor) -> None:
        start = datetime.fromtimestamp(self._offsets[monitor.name], tz=UTC)
        self._scheduler.add_job(
            self._fire,
            IntervalTrigger(seconds=monitor.interval, start_date=start, timezone=UTC),
            args=(monitor,),
            id=monitor.name,
            name=monitor.name,
            coalesce=True,
            max_instances=1,
            misfire_grace_time=misfire_grace(monitor.interval),
        )

    async def _fire(self, monitor: Monitor) -> None:
        now = time.time()
        self.last_fire = time.monotonic()
        planned = planned_time(now, self._offsets[monitor.name], monitor.interval)
        self._metrics.scheduler_lag.observe(now - planned)
        missed = missed_between(self._last_planned.get(monitor.name), planned, monitor.interval)
        if missed:
            self._metrics.count_missed(missed)
        self._last_planned[monitor.name] = planned
        await self._run_round(monitor)

    @property
    def running(self) -> bool:
        return bool(self._scheduler.running) and not self._paused

    def start(self) -> None:
        self.last_fire = time.monotonic()
        self._scheduler.start()

    def stop_firing(self) -> None:
        """Stop starting new rounds; rounds already running go on."""
        self._paused = True
        self._scheduler.pause()

    def shutdown(self) -> None:
        # APScheduler 3.x cancels running coroutine jobs on shutdown: wait for them first.
        self._scheduler.shutdown(wait=False)

    def firing_recently(self) -> bool:
        """Whether some monitor fired within the longest interval (plus slack for the grid)."""
        return time.monotonic() - self.last_fire <= self.longest_interval * 1.5 + 5
