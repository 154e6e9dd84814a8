"""Pure: one round of a monitor, judged against its history.

``assess`` takes the round's results, the monitor's tracked history and ``now``, and
returns the diagnosis (made ``degraded`` by a latency regression the trends see), the
state machine's step, the incident change and the trend signals. ``Tracker`` keeps the
tracked history of every monitor in memory; storing it is the caller's business.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime
from urllib.parse import urlsplit

from monitor.judge import trends, trendwords
from monitor.judge.alerting import Route
from monitor.judge.diagnose import Diagnosis, Layer, Verdict, diagnose
from monitor.judge.incidents import IncidentChange, OpenIncident, follow
from monitor.judge.routing import Routed, routed
from monitor.judge.state import Health, MonitorState, Observation, Policy, Step, step
from monitor.judge.trends import TrendSettings, TrendSignal, TrendState
from monitor.models import Cause, Kind, ProbeResult, Role

SeriesKey = tuple[str, str, str]
"""A latency series of a monitor: (role, origin name or "", phase)."""


@dataclass(frozen=True, slots=True)
class Tracking:
    """How a monitor's rounds are judged: the state machine's policy and the trend settings."""

    policy: Policy = field(default_factory=Policy)
    trend: TrendSettings = field(default_factory=TrendSettings)


@dataclass(frozen=True, slots=True)
class Tracked:
    """What is remembered of a monitor between rounds."""

    state: MonitorState = field(default_factory=MonitorState)
    incident: OpenIncident | None = None
    trends: Mapping[SeriesKey, TrendState] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class Assessment:
    tracked: Tracked
    diagnosis: Diagnosis
    step: Step
    change: IncidentChange | None
    signals: tuple[tuple[SeriesKey, TrendSignal], ...] = ()

    @property
    def changed(self) -> bool:
        """Whether the state row or the incident must be stored."""
        s = self.step
        return (
            s.transition is not None
            or self.change is not None
            or s.flapping_started
            or s.flapping_ended
        )


def assess(
    tracked: Tracked,
    results: Sequence[ProbeResult],
    now: datetime,
    tracking: Tracking,
    window: str | None = None,
    confirmation: bool = False,
) -> Assessment:
    """Judge one round (at ``now``) of a monitor; ``window`` names the maintenance window
    it is in, if any; ``confirmation`` marks the immediate re-check of a failed round."""
    found = diagnose(results)
    series, signals = _update_trends(tracked.trends, results, now, tracking.trend)
    found = _with_trend(found, signals, tracking.trend)
    health = _health(found.verdict)
    maintenance = window is not None or found.verdict is Verdict.MAINTENANCE
    shown = diagnose(results, window) if window is not None and health is not Health.UP else found
    seen = Observation(now, health, maintenance=maintenance, confirmation=confirmation)
    stepped = step(tracked.state, seen, tracking.policy)
    change = follow(tracked.incident, stepped, shown, now)
    if change is not None:
        change = _with_round(change, results)
    incident = tracked.incident if change is None else change.incident
    if change is not None and change.closes:
        incident = None
    new = Tracked(stepped.state, incident, series)
    return Assessment(new, shown, stepped, change, signals)


def _with_round(change: IncidentChange, results: Sequence[ProbeResult]) -> IncidentChange:
    """The entries, with what the round measured: phase timings and failing addresses."""
    timings = tuple(_timing_line(r) for r in results if r.kind is Kind.HTTP)
    addresses = tuple(dict.fromkeys(a for r in results if not r.ok for a in _address(r)))
    entries = tuple(replace(e, timings=timings, addresses=addresses) for e in change.entries)
    return replace(change, entries=entries)


def _timing_line(result: ProbeResult) -> str:
    who = "edge" if result.role is Role.EDGE else f"origin {result.origin}"
    names = {"processing": "TTFB"}
    parts = [
        f"{names.get(phase, phase)} {seconds * 1000:.0f} ms"
        for phase, seconds in result.phases.items()
        if seconds is not None
    ]
    parts.append(f"total {result.phases.total * 1000:.0f} ms")
    status = f"{result.status}" if result.status is not None else result.cause.value
    return f"{who}: {status}; " + ", ".join(parts)


def _address(result: ProbeResult) -> tuple[str, ...]:
    if result.peer_ip:
        return (result.peer_ip,)
    host = urlsplit(result.target).hostname if "://" in result.target else None
    return (host,) if host else ()


def _health(verdict: Verdict) -> Health:
    if verdict is Verdict.UP:
        return Health.UP
    if verdict is Verdict.DEGRADED:
        return Health.DEGRADED
    return Health.DOWN


def _update_trends(
    known: Mapping[SeriesKey, TrendState],
    results: Sequence[ProbeResult],
    now: datetime,
    settings: TrendSettings,
) -> tuple[dict[SeriesKey, TrendState], tuple[tuple[SeriesKey, TrendSignal], ...]]:
    """Feed every passing HTTP probe's tracked phases into its series: a failure's timing
    says how long we waited, not how fast the target is, so it never enters a baseline."""
    series = dict(known)
    if not settings.enabled:
        return series, ()
    signals: list[tuple[SeriesKey, TrendSignal]] = []
    for key, seconds in _samples(results, settings.phases):
        state, signal = trends.update(series.get(key), seconds, now, settings)
        series[key] = state
        signals.append((key, signal))
    return series, tuple(signals)


def _samples(
    results: Iterable[ProbeResult], phases: Iterable[str]
) -> Iterator[tuple[SeriesKey, float]]:
    for result in results:
        if not result.ok or result.kind is not Kind.HTTP:
            continue
        for phase in phases:
            seconds = result.phases.total if phase == "total" else getattr(result.phases, phase)
            if seconds is not None:
                yield (result.role.value, result.origin or "", phase), seconds


def _with_trend(
    found: Diagnosis, signals: Sequence[tuple[SeriesKey, TrendSignal]], settings: TrendSettings
) -> Diagnosis:
    """An otherwise healthy round is ``degraded`` while one of its series has regressed:
    ``trends`` holds a regression only while the recent level is high (``min_factor`` and
    ``min_delta`` over the baseline), so "slower than usual" is always true of it."""
    regressed = sorted(
        ((key, signal) for key, signal in signals if signal.regressed),
        key=lambda pair: -pair[1].ratio,
    )
    if found.verdict is not Verdict.UP or not regressed:
        return found
    said = tuple(trendwords.describe(s, _who(key), key[2], settings) for key, s in regressed)
    (role, _, phase), worst = regressed[0]
    ahead = trendwords.forecast(worst, _who(regressed[0][0]), phase, settings)
    hint = ahead + "; " if ahead else ""
    hint += "find what changed (a deploy, load, a slow database or dependency) before it fails"
    layer = Layer.EDGE if role == Role.EDGE.value else Layer.ORIGIN
    summary = f"slower than usual: {said[0]}"
    return Diagnosis(Verdict.DEGRADED, Cause.SLOW, layer, summary, hint, said)


def _who(key: SeriesKey) -> str:
    role, origin, _ = key
    return "edge" if role == Role.EDGE.value else f"origin {origin}"


class Tracker:
    """Every monitor's tracked history, in memory, and the one way to update it."""

    def __init__(self, tracking: Mapping[str, Tracking]) -> None:
        self._tracking = dict(tracking)
        self._tracked: dict[str, Tracked] = {}

    def reconfigure(self, tracking: Mapping[str, Tracking]) -> None:
        """New settings; monitors no longer configured are forgotten (not their storage)."""
        self._tracking = dict(tracking)
        for monitor in [m for m in self._tracked if m not in self._tracking]:
            del self._tracked[monitor]

    def restore(self, monitor: str, tracked: Tracked) -> None:
        self._tracked[monitor] = tracked

    def get(self, monitor: str) -> Tracked:
        return self._tracked.get(monitor) or Tracked()

    def assess(
        self,
        monitor: str,
        results: Sequence[ProbeResult],
        now: datetime,
        window: str | None = None,
        confirmation: bool = False,
    ) -> Assessment:
        tracking = self._tracking.get(monitor) or Tracking()
        found = assess(self.get(monitor), results, now, tracking, window, confirmation)
        self._tracked[monitor] = found.tracked
        return found

    def items(self) -> Iterator[tuple[str, Tracked]]:
        return iter(list(self._tracked.items()))

    def baselines(self) -> list[Baseline]:
        return [
            Baseline(monitor, key, state)
            for monitor, tracked in self._tracked.items()
            for key, state in tracked.trends.items()
        ]

    @property
    def open_incidents(self) -> int:
        return sum(t.incident is not None for t in self._tracked.values())


@dataclass(frozen=True, slots=True)
class StateRecord:
    """What the store keeps of one assessed round that changed something: the state, the
    incident change, and the alerts its entries send (stored with them, in one go)."""

    monitor: str
    time: datetime
    state: MonitorState
    change: IncidentChange | None = None
    alerts: tuple[Routed, ...] = ()

    @classmethod
    def of(
        cls, monitor: str, now: datetime, found: Assessment, routes: Sequence[Route] = ()
    ) -> StateRecord:
        change = found.change
        alerts = () if change is None else routed(monitor, change, routes)
        return cls(monitor, now, found.tracked.state, change, alerts)


@dataclass(frozen=True, slots=True)
class Baseline:
    """One latency series' trend state, as the store keeps it."""

    monitor: str
    key: SeriesKey
    state: TrendState
