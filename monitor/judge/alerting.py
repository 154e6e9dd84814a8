"""Values shared by alert routing, content and delivery (pure: no I/O here).

An incident's timeline entries carry alert events (``down``, ``degraded``, ``recovered``,
``flapping``); routing turns each into outbox rows (one per notifier), stored in the same
transaction as the entry; the delivery worker reads due rows, composes messages (grouped
in a storm, held when the canary fails) and sends them through Apprise.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum


class Event(StrEnum):
    """What an alert is about. ``reminder`` repeats ``down``; ``self`` is the daemon's own."""

    DOWN = "down"
    DEGRADED = "degraded"
    RECOVERED = "recovered"
    FLAPPING = "flapping"
    REMINDER = "reminder"
    SELF = "self"


ROUTABLE = (Event.DOWN, Event.DEGRADED, Event.RECOVERED, Event.FLAPPING)
"""Events a route may name in its ``events:`` list."""


@dataclass(frozen=True, slots=True)
class Notifier:
    name: str
    url: str  # an Apprise URL with secrets filled in: never log it


@dataclass(frozen=True, slots=True)
class Route:
    """One entry of ``alerts:``: who hears of which events of which sites, when."""

    notify: tuple[str, ...]  # notifier names
    events: tuple[Event, ...] = ROUTABLE
    sites: tuple[str, ...] = ("*",)  # names or globs
    after: float = 0.0  # seconds: escalate only if still unresolved this long after opening
    reminder: float | None = None  # seconds: repeat while still down


@dataclass(frozen=True, slots=True)
class Templates:
    """``str.format`` templates over the fields of ``AlertFacts`` (plus a few derived ones)."""

    title: str = "[{event_upper}] {monitor}: {summary}"
    body: str = ""  # empty: the built-in body


@dataclass(frozen=True, slots=True)
class AlertSettings:
    notifiers: tuple[Notifier, ...] = ()
    routes: tuple[Route, ...] = ()
    templates: Templates = field(default_factory=Templates)
    canary: str | None = None  # a monitor that is always up unless our own network fails
    group_window: float = 30.0  # seconds: alerts this close together may be grouped
    group_min: int = 3  # this many sites with one cause or origin address: one message
    rate_limit: int = 20  # messages per notifier ...
    rate_period: float = 3600.0  # ... per this many seconds; beyond it, one summary
    max_age: float = 86400.0  # seconds: stop retrying an alert this old, and record it
    timeout: float = 30.0  # seconds for one delivery attempt
    self_notify: tuple[str, ...] | None = None  # who hears of the daemon's own trouble: all


@dataclass(frozen=True, slots=True)
class AlertFacts:
    """What an alert says: stored with the outbox row (as JSON), so a restart loses nothing."""

    monitor: str
    event: Event
    state: str  # the monitor's state after the entry: down, degraded, up, ...
    verdict: str
    cause: str
    layer: str
    summary: str
    hint: str
    evidence: tuple[str, ...]  # status lines, telling headers, as diagnose gives them
    timings: tuple[str, ...]  # one line per probe: "edge: connect 2 ms, TTFB 1004 ms, ..."
    addresses: tuple[str, ...]  # the origin addresses involved (for grouping a storm)
    opened_at: datetime  # the incident's start
    time: datetime  # when this event happened
    closed_at: datetime | None = None  # on recovery


@dataclass(frozen=True, slots=True)
class PendingAlert:
    """An outbox row that is due: what delivery works on."""

    id: int
    notifier: str
    incident_id: int
    event: Event
    seq: int
    due_at: datetime
    created_at: datetime
    attempts: int
    facts: AlertFacts


@dataclass(frozen=True, slots=True)
class Message:
    """One message to send to one notifier; it settles every outbox row in ``alert_ids``."""

    notifier: str
    title: str
    body: str  # plain text
    markdown: str  # the same, for channels that render Markdown
    alert_ids: tuple[int, ...]
