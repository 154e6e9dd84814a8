"""What fires rounds: every monitor on its own grid, driven by one APScheduler 3.x job.

Each monitor fires on a fixed grid, ``offset + k * interval`` seconds after the Unix epoch,
with a stable offset derived from its name. The grid spreads monitors evenly over their
interval, survives restarts, and lets a run know when it was planned, so lag and missed
runs are measured rather than guessed.

One APScheduler interval job (the tick, every second, or once a beat when the beat is
longer) plans the grid points of the next two ticks and arms event-loop timers for them.
APScheduler's own per-job machinery (a job store kept sorted, datetimes, an executor,
events) cost 80-240 µs a run and was a quarter of a check's CPU with thousands of
monitors; a loop timer costs a few µs.

Runs are planned on a beat (``server.beat``; 0 plans each at its own grid point): a
monitor's run is planned at the first multiple of the beat at or after its grid point, and
one loop timer fires all the runs of a beat. The beat is a tenth of the shortest interval
at most, so a run is planned less than a tenth of an interval after its grid point and the
spacing of a monitor's runs stays within a beat of its interval (exact when the beat divides
it). Lag is measured from the beat: how late the loop started a run, not the grid's
rounding. With many runs a beat, one wake-up of the loop starts tens of checks whose
answers then arrive together, instead of one wake-up per check; the CPU of a check falls
by a quarter at 100,000 sites and by more than half at 1,000 (README, Performance). By
default (``auto``) the beat is chosen from the daemon's rate of runs: the longest of
BEAT_STEPS at which a beat starts at most RUNS_PER_BEAT runs. What APScheduler gave is
kept: a monitor whose last round still runs is skipped and counted missed
(``max_instances=1``), a run later than half an interval is dropped and counted
(``misfire_grace_time``), several missed points make one run (``coalesce``).
"""

from __future__ import annotations

import asyncio
import bisect
import hashlib
import math
import time
from collections.abc import Awaitable, Callable, Iterable, Iterator, Sequence
from datetime import UTC, datetime

from apscheduler.schedulers.asyncio import AsyncIOScheduler
from apscheduler.triggers.interval import IntervalTrigger

from monitor.metrics.registry import Metrics
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


TICK = 1.0  # seconds between two plannings, at least (once a beat when it is longer)
HORIZON = 2  # each planning arms the timers of this many ticks ahead
# The beats ``auto`` chooses from, in seconds: each divides 5 s, so the runs of a monitor
# whose interval is a multiple of 5 s stay exactly one interval apart.
BEAT_STEPS = (0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0)
RUNS_PER_BEAT = 50  # what ``auto`` aims for; 100,000 sites on two workers start ~42 a beat
BEAT_SHARE = 10  # a beat is at most this fraction of the shortest interval (1/10)


Point = tuple[float, str, float]  # (planned time, monitor name, its interval then)


def choose_beat(configured: float | None, intervals: Iterable[float]) -> float:
    """The beat of a daemon whose monitors have ``intervals``, in seconds (0: none).

    ``configured`` None is ``auto``: the longest of BEAT_STEPS that divides every interval
    (so each monitor's runs stay exactly one interval apart) and at which one beat plans at
    most RUNS_PER_BEAT runs; the shortest step when even it plans more; and when no step
    divides every interval, the longest that fits. Either way the beat is at most a tenth
    of the shortest interval.
    """
    intervals = list(intervals)
    if not intervals:
        return BEAT_STEPS[0] if configured is None else configured
    cap = min(intervals) / BEAT_SHARE
    if configured is not None:
        return min(configured, cap)
    wanted = min(RUNS_PER_BEAT / sum(1.0 / interval for interval in intervals), cap)
    fitting = [step for step in BEAT_STEPS if step <= wanted]
    if not fitting:
        return min(BEAT_STEPS[0], cap)
    distinct = set(intervals)
    dividing = [step for step in fitting if all(_divides(step, i) for i in distinct)]
    return (dividing or fitting)[-1]


def _divides(step: float, interval: float) -> bool:
    """Whether ``interval`` is a whole number of ``step``s (to a microsecond)."""
    return abs(interval / step - round(interval / step)) * step < 1e-6


def tick_every(beat: float) -> float:
    """Seconds between two plannings: a second, or a beat when the beat is longer, so an
    idle loop wakes once a beat (10 idle sites: 0.74 ms of CPU a second, not 1.15)."""
    return max(TICK, beat)


def next_tick(now: float, every: float) -> float:
    """The first multiple of ``every`` (Unix time) after ``now``: ticks fall on whole
    seconds, or on the beats when longer, and the delivery worker's passes with them."""
    return (math.floor(now / every) + 1) * every


def by_beat(points: Iterable[Point], beat: float) -> dict[int, list[Point]]:
    """``points`` grouped by the beat they fire on, the first multiple of ``beat`` at or
    after their planned time, keyed by the multiple's index; in their order within one."""
    beats: dict[int, list[Point]] = {}
    for point in points:
        beats.setdefault(math.ceil(point[0] / beat), []).append(point)
    return beats


class Grid:
    """Which monitors have grid points in a window of time (pure)."""

    def __init__(self, offsets: dict[str, tuple[float, float]]) -> None:
        """``offsets``: name -> (offset, interval)."""
        by_interval: dict[float, list[tuple[float, str]]] = {}
        for name, (offset, interval) in offsets.items():
            by_interval.setdefault(interval, []).append((offset, name))
        self._groups = [(interval, sorted(points)) for interval, points in by_interval.items()]

    def due(self, start: float, end: float) -> Iterator[tuple[float, str]]:
        """Every (planned time, name) with ``start <= planned < end``."""
        for interval, points in self._groups:
            begin = start
            cycle = math.floor(begin / interval)
            while cycle * interval < end:
                base = cycle * interval
                low = bisect.bisect_left(points, (begin - base,))
                high = bisect.bisect_left(points, (end - base,))
                for offset, name in points[low:high]:
                    yield base + offset, name
                cycle += 1


class CheckScheduler:
    """Fires ``run_round(monitor)`` for every monitor on its grid, measuring lag and misses."""

    def __init__(
        self,
        monitors: Sequence[Monitor],
        run_round: RunRound,
        metrics: Metrics,
        beat: float | None = None,
    ) -> None:
        """``beat``: seconds, 0 for none, or None to choose it from the rate of runs."""
        self._run_round = run_round
        self._configured_beat = beat
        self.beat: float  # set by replace_monitors, below
        self.tick = 0.0  # seconds between plannings: set by replace_monitors too
        self._metrics = metrics
        self.monitors: dict[str, Monitor] = {}
        self._offsets: dict[str, tuple[float, float]] = {}
        self._last_planned: dict[str, float] = {}
        self._busy: set[str] = set()
        self._tasks: set[asyncio.Task[object]] = set()
        self._planned_until: float | None = None
        self._scheduler = AsyncIOScheduler(timezone=UTC)
        self.last_fire = time.monotonic()
        self._paused = False
        self.replace_monitors(monitors)

    def replace_monitors(self, monitors: Sequence[Monitor]) -> tuple[str, ...]:
        """Fire ``monitors`` from now on: new ones (and those with a new interval) from
        their next grid point, the others as before; returns the names no longer fired."""
        now = time.time()
        wanted = {monitor.name: monitor for monitor in monitors}
        removed = tuple(name for name in self.monitors if name not in wanted)
        # New, or on a new grid (a new interval: the last run on the old one missed nothing).
        joining = [
            name
            for name, monitor in wanted.items()
            if name not in self.monitors or self.monitors[name].interval != monitor.interval
        ]
        for name in (*removed, *joining):
            self._last_planned.pop(name, None)
        self.monitors = wanted
        self._offsets = {
            name: (start_offset(name, monitor.interval), monitor.interval)
            for name, monitor in wanted.items()
        }
        self._grid = Grid(self._offsets)
        self.beat = choose_beat(self._configured_beat, (m.interval for m in monitors))
        self._metrics.scheduler_beat.set(self.beat)
        self.longest_interval = max((m.interval for m in monitors), default=0.0)
        self._join(joining, now)
        self._retick(tick_every(self.beat))
        return removed

    def _join(self, names: Sequence[str], now: float) -> None:
        """Arm the points of ``names`` from ``now`` to where the ticks so far planned
        (without them): they run from their next grid point, not after the plan's end."""
        if self._planned_until is not None and not self._paused:
            joined = Grid({name: self._offsets[name] for name in names})
            self._arm(joined.due(now, self._planned_until))

    def _retick(self, every: float) -> None:
        """Tick every ``every`` seconds from the next multiple of it on."""
        changed = every != self.tick
        self.tick = every
        if changed and self._scheduler.get_job("tick") is not None:
            # A shorter tick comes before the old plan's end. A longer one is a beat, and
            # its first planning falls on the first beat after now: the points between
            # the old plan's end and it run on that beat too, so none is late.
            self._scheduler.reschedule_job("tick", trigger=self._tick_trigger())

    def _tick_trigger(self) -> IntervalTrigger:
        first = datetime.fromtimestamp(next_tick(time.time(), self.tick), UTC)
        return IntervalTrigger(seconds=self.tick, start_date=first, timezone=UTC)

    async def _tick(self) -> None:
        self._plan()

    def _plan(self) -> None:
        """Arm a loop timer for every grid point from where the last tick stopped to
        HORIZON ticks ahead (a late tick catches up; a point passed is fired at once)."""
        if self._paused:
            return
        now = time.time()
        start = now if self._planned_until is None else self._planned_until
        # After a stall, points later than any misfire grace are not worth a timer.
        start = max(start, now - self.longest_interval / 2 - self.tick - self.beat)
        # Never back: after a reload to a shorter tick, the old plan reaches further.
        end = max(now + HORIZON * self.tick, start)
        self._arm(self._grid.due(start, end))
        self._planned_until = end

    def _arm(self, due: Iterable[tuple[float, str]]) -> None:
        """Arm the loop timers of the grid points ``due``: one a beat."""
        loop = asyncio.get_running_loop()
        then = loop.time() - time.time()  # loop clock minus wall clock
        offsets = self._offsets
        points = ((planned, name, offsets[name][1]) for planned, name in due)
        if self.beat > 0:
            for index, beat_points in by_beat(points, self.beat).items():
                at = index * self.beat
                loop.call_at(at + then, self._fire_beat, at, beat_points)
        else:  # each point a beat of its own
            for point in points:
                loop.call_at(point[0] + then, self._fire_beat, point[0], [point])

    def _fire_beat(self, at: float, points: list[Point]) -> None:
        """Fire the runs planned on the beat at ``at`` (their grid points are at or before
        it); the only timer callback, so the one place that never starts a run early."""
        early = at - time.time()
        if early > 0:  # loop timers round to the millisecond: keep the beat together
            asyncio.get_running_loop().call_later(early + 0.0005, self._fire_beat, at, points)
            return
        for _, name, interval in points:
            self._fire(name, at, interval)

    def _fire(self, name: str, planned: float, interval: float) -> None:
        monitor = self.monitors.get(name)
        if monitor is None or self._paused or monitor.interval != interval:
            return  # removed, shutting down, or armed before its interval changed
        previous = self._last_planned.get(name)
        if previous is not None and planned - previous < interval / 2:
            return  # armed again (removed and added back, perhaps on another beat)

        now = time.time()
        self.last_fire = time.monotonic()
        missed = missed_between(previous, planned, interval)
        self._last_planned[name] = planned
        if name in self._busy or now - planned > misfire_grace(interval):
            self._metrics.count_missed(missed + 1)  # this point is lost too
            return
        if missed:
            self._metrics.count_missed(missed)
        self._metrics.scheduler_lag.observe(now - planned)
        self._busy.add(name)
        task = asyncio.get_running_loop().create_task(self._run(monitor), name=f"round {name}")
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _run(self, monitor: Monitor) -> None:
        try:
            await self._run_round(monitor)
        finally:
            self._busy.discard(monitor.name)

    @property
    def running(self) -> bool:
        return bool(self._scheduler.running) and not self._paused

    def start(self) -> None:
        self.last_fire = time.monotonic()
        self._plan()  # the next HORIZON ticks; the tick goes on from there
        # Ticks on multiples of the tick (whole seconds, or the beats when longer), where
        # the delivery worker's passes fall too: one wake-up of the loop for all of them.
        self._scheduler.add_job(
            self._tick,
            self._tick_trigger(),
            id="tick",
            coalesce=True,
            max_instances=1,
            misfire_grace_time=None,  # a late tick still plans: it catches up
        )
        self._scheduler.start()

    def stop_firing(self) -> None:
        """Stop starting new rounds; rounds already running go on."""
        self._paused = True
        self._scheduler.pause()

    def shutdown(self) -> None:
        """Stop, cancelling the rounds still running (the caller waited for them first)."""
        self._paused = True
        self._scheduler.shutdown(wait=False)
        for task in self._tasks:
            task.cancel()

    def firing_recently(self) -> bool:
        """Whether some monitor fired within the longest interval (plus slack for the grid)."""
        return time.monotonic() - self.last_fire <= self.longest_interval * 1.5 + 5
