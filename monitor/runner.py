"""A round: probe a site, then hand the result to the store, the metrics and the log.

The one place that reads the wall clock for results and does I/O in sequence.
"""

from __future__ import annotations

import asyncio
import logging
from datetime import UTC, datetime
from typing import Protocol

import aiohttp

from monitor import logs
from monitor.metrics import Metrics
from monitor.models import ProbeResult, Site
from monitor.probes import PROBES

log = logging.getLogger("monitor.check")


class ResultSink(Protocol):
    def submit(self, result: ProbeResult) -> None: ...


class Runner:
    """Runs rounds and keeps track of those in flight, so a shutdown can let them finish."""

    def __init__(self, session: aiohttp.ClientSession, sink: ResultSink, metrics: Metrics) -> None:
        self._session = session
        self._sink = sink
        self._metrics = metrics
        self._in_flight: set[asyncio.Task[object]] = set()

    async def run_round(self, site: Site) -> list[ProbeResult]:
        task = asyncio.current_task()
        if task is not None:
            self._in_flight.add(task)
        try:
            time = datetime.now(UTC)
            result = await PROBES["http"](self._session, site, time)
            self._record(result)
            return [result]
        finally:
            if task is not None:
                self._in_flight.discard(task)

    def _record(self, result: ProbeResult) -> None:
        self._sink.submit(result)
        self._metrics.observe_probe(result)
        logs.event(
            log,
            "check.finished",
            monitor=result.monitor,
            role=result.role.value,
            origin=result.origin,
            ok=result.ok,
            cause=result.cause.value,
            status=result.status,
            duration_ms=result.phases.total * 1000,
            detail=result.detail or None,
        )

    @property
    def in_flight(self) -> int:
        return len(self._in_flight)

    async def wait_in_flight(self, grace: float) -> int:
        """Wait up to ``grace`` seconds for running rounds; returns how many did not finish."""
        pending = set(self._in_flight)
        if not pending:
            return 0
        _, still_running = await asyncio.wait(pending, timeout=grace)
        return len(still_running)
