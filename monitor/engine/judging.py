"""Judging a round and keeping what it learnt: ``Judge`` and ``Baselines``.

``Judge`` runs the pure rules on a round (diagnosis, trends, state, incident), then tells
the store, the metrics and the log; the state machine may ask for a re-check, which the
runner runs. ``Baselines`` saves what the rounds learnt of each site's latency now and then.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Protocol

from monitor import logs
from monitor.errors import StoreError
from monitor.judge.alerting import Route
from monitor.judge.maintenance import Window, window_at
from monitor.judge.state import State
from monitor.judge.tracker import Assessment, Baseline, StateRecord, Tracker
from monitor.models import ProbeResult

log = logging.getLogger("monitor.state")
daemon_log = logging.getLogger("monitor.daemon")  # the baselines' events, as before the move

BASELINE_SAVE_INTERVAL = 300.0  # seconds


class StateSink(Protocol):
    def submit(self, row: StateRecord) -> None: ...


class StateMetrics(Protocol):
    def observe_state(self, monitor: str, state: str, verdict: str) -> None: ...

    def set_incidents_open(self, count: int) -> None: ...

    def observe_trend(
        self, monitor: str, role: str, origin: str, phase: str, baseline: float, ratio: float
    ) -> None: ...


class Judge:
    """Judges every round of every monitor with one Tracker, and reports what changed;
    the incident entries that stand for alerts are routed to the notifiers of ``routes``."""

    def __init__(
        self,
        tracker: Tracker,
        windows: tuple[Window, ...],
        sink: StateSink,
        metrics: StateMetrics,
        routes: tuple[Route, ...] = (),
    ) -> None:
        self.tracker = tracker
        self._windows = windows
        self._sink = sink
        self._metrics = metrics
        self._routes = routes

    def reconfigure(self, windows: tuple[Window, ...]) -> None:
        self._windows = windows

    def route_to(self, routes: tuple[Route, ...]) -> None:
        """Route the alerts of the rounds judged from now on by ``routes``."""
        self._routes = routes

    def judge(
        self,
        monitor: str,
        results: Sequence[ProbeResult],
        now: datetime,
        confirmation: bool = False,
    ) -> Assessment:
        window = window_at(self._windows, monitor, now)
        named = None if window is None else window.describe()
        found = self.tracker.assess(monitor, results, now, named, confirmation)
        if found.changed:
            self._sink.submit(StateRecord.of(monitor, now, found, self._routes))
            _log(monitor, found)
        self._report(monitor, found)
        return found

    def _report(self, monitor: str, found: Assessment) -> None:
        state = found.tracked.state.state
        self._metrics.observe_state(monitor, state.value, found.diagnosis.verdict.value)
        if found.change is not None:
            self._metrics.set_incidents_open(self.tracker.open_incidents)
        for (role, origin, phase), signal in found.signals:
            if not signal.warming_up:
                self._metrics.observe_trend(
                    monitor, role, origin, phase, signal.baseline, signal.ratio
                )


def _log(monitor: str, found: Assessment) -> None:
    s, diagnosis = found.step, found.diagnosis
    if s.transition is not None:
        previous, current = s.transition.previous, s.transition.current
        # A site first seen up is no news (100,000 such lines at start-up): debug only.
        first_up = previous is State.UNKNOWN and current is State.UP
        logs.event(
            log,
            "state.changed",
            logging.DEBUG if first_up else logging.INFO,
            monitor=monitor,
            previous=previous.value,
            state=current.value,
            verdict=diagnosis.verdict.value,
            cause=diagnosis.cause.value,
            summary=diagnosis.summary,
        )
    if s.flapping_started or s.flapping_ended:
        logs.event(log, "state.flapping", monitor=monitor, flapping=s.state.flapping)
    change = found.change
    if change is not None and change.opens:
        opened = change.incident.opened_at.isoformat()
        logs.event(log, "incident.opened", monitor=monitor, opened_at=opened)
    if change is not None and change.closes:
        took = (change.entries[-1].time - change.incident.opened_at).total_seconds()
        logs.event(log, "incident.closed", monitor=monitor, duration_s=round(took, 3))


class BaselineStore(Protocol):
    async def write_baselines(self, baselines: Sequence[Baseline], now: datetime) -> None: ...


class Baselines:
    """Saves the latency baselines now and then, and at the end, so they outlive restarts."""

    def __init__(self, store: BaselineStore, tracker: Tracker) -> None:
        self._store = store
        self._tracker = tracker
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self._task = asyncio.get_running_loop().create_task(self._every(), name="baselines")

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.wait({self._task})
        await self.save()

    async def save(self) -> None:
        try:
            await self._store.write_baselines(self._tracker.baselines(), datetime.now(UTC))
        except StoreError as exc:
            logs.event(daemon_log, "baselines.not_saved", logging.WARNING, error=str(exc))

    async def _every(self) -> None:
        while True:
            await asyncio.sleep(BASELINE_SAVE_INTERVAL)
            await self.save()
