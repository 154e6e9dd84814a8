"""A round: probe a monitor's targets at once, then hand every result to the store, the
metrics and the log. The one place that reads the wall clock for results."""

from __future__ import annotations

import asyncio
import logging
import time
from datetime import UTC, datetime
from typing import Protocol

from monitor import logs
from monitor.engine.judging import Judge
from monitor.engine.plan import PlannedProbe, plan_round
from monitor.hostport import redacted_url
from monitor.metrics.registry import Metrics
from monitor.models import DnsCheck, HttpTarget, IcmpCheck, Monitor, ProbeResult
from monitor.probes import Clients, run_probe
from monitor.probes.slots import ProbeSlots

log = logging.getLogger("monitor.check")

NO_CAP = ProbeSlots(0)


class ResultSink(Protocol):
    def submit(self, result: ProbeResult) -> None: ...


async def probe_round(
    clients: Clients,
    monitor: Monitor,
    time: datetime,
    slots: ProbeSlots = NO_CAP,
) -> list[ProbeResult]:
    """Run every probe of ``monitor``'s round concurrently, each once ``slots`` has room
    for it; results in plan order."""
    planned = plan_round(monitor, time)
    outcomes: list[ProbeResult | BaseException]
    if len(planned) == 1:  # most rounds: no task to make and gather
        try:
            outcomes = [await slots.run(run_probe, clients, planned[0].ctx, planned[0].spec)]
        except Exception as exc:  # what gather(return_exceptions=True) would hand back
            outcomes = [exc]
    else:
        outcomes = await asyncio.gather(
            *(slots.run(run_probe, clients, p.ctx, p.spec) for p in planned),
            return_exceptions=True,
        )
    results: list[ProbeResult] = []
    for probe, outcome in zip(planned, outcomes, strict=True):
        if isinstance(outcome, ProbeResult):
            results.append(outcome)
        elif isinstance(outcome, Exception):
            # A bug of ours in one probe must not cost the round its other results.
            shown = _shown(probe)
            log.error("probe of %s (%s) failed: %r", monitor.name, shown, outcome, exc_info=outcome)
        else:
            raise outcome  # cancellation and other BaseExceptions go on up
    return results


def _shown(probe: PlannedProbe) -> str:
    """A probe as a log line may name it: its kind and target, with no URL's userinfo and
    none of the request's credentials or headers (a spec's repr holds them all)."""
    spec = probe.spec
    where = "" if probe.ctx.origin is None else f"origin {probe.ctx.origin}, "
    if isinstance(spec, HttpTarget):
        origin = spec.origin
        if origin is not None and origin.url is not None:
            target = redacted_url(origin.url)
        elif origin is not None:
            target = f"{redacted_url(spec.site.url)} via {origin.address}"
        else:
            target = redacted_url(spec.site.url)
        return f"{where}http {target}"
    if isinstance(spec, DnsCheck):
        return f"{where}dns {spec.record} {spec.query}"
    if isinstance(spec, IcmpCheck):
        return f"{where}icmp {spec.host}"
    kind = type(spec).__name__.removesuffix("Check").lower()  # tcp or tls
    return f"{where}{kind} {spec.host}:{spec.port}"


class Runner:
    """Runs rounds and keeps track of those in flight, so a shutdown can let them finish.

    With a ``judge``, each round is judged, and a failed round of a healthy monitor is
    checked again at once when the state machine asks (and the interval leaves time).
    ``slots`` caps the probes running at once, over every round.
    """

    def __init__(
        self,
        clients: Clients,
        sink: ResultSink,
        metrics: Metrics,
        judge: Judge | None = None,
        slots: ProbeSlots = NO_CAP,
    ) -> None:
        self._clients = clients
        self._slots = slots
        self._sink = sink
        self._metrics = metrics
        self._judge = judge
        self._in_flight: set[asyncio.Task[object]] = set()

    async def run_round(self, monitor: Monitor) -> list[ProbeResult]:
        task = asyncio.current_task()
        if task is not None:
            self._in_flight.add(task)
        try:
            return await self._round(monitor)
        finally:
            if task is not None:
                self._in_flight.discard(task)

    async def _round(self, monitor: Monitor) -> list[ProbeResult]:
        started = time.monotonic()
        results = await self._probe(monitor)
        if self._judge is None or not results:
            return results
        found = self._judge.judge(monitor.name, results, results[0].time)
        if not found.step.confirm:
            return results
        if time.monotonic() - started + monitor.timeout > monitor.interval * 0.9:
            # No time for a re-check before the next round: this round counts as it is.
            self._judge.judge(monitor.name, results, results[0].time, confirmation=True)
            return results
        again = await self._probe(monitor)
        if again:
            self._judge.judge(monitor.name, again, again[0].time, confirmation=True)
        return [*results, *again]

    async def _probe(self, monitor: Monitor) -> list[ProbeResult]:
        results = await probe_round(self._clients, monitor, datetime.now(UTC), self._slots)
        for result in results:
            self._record(result)
        return results

    def _record(self, result: ProbeResult) -> None:
        self._sink.submit(result)
        self._metrics.observe_probe(result)
        level = logging.INFO if not result.ok else logging.DEBUG
        if not log.isEnabledFor(level):
            return  # a passing check at the default level: not even the fields are built
        logs.event(
            log,
            "check.finished",
            level,
            monitor=result.monitor,
            role=result.role.value,
            origin=result.origin,
            kind=result.kind.value,
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
