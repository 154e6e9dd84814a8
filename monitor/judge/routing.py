"""Pure: who hears of which alert, and when; and what becomes of a queued alert once due.

Routing happens when a round is judged: each timeline entry that stands for an alert
event becomes one ``Routed`` alert per notifier its routes name, stored with the entry.
A route's ``after`` escalates: its notifiers hear of the problem only at ``opened_at +
after``. Delivery asks ``disposition`` about each due row (an escalation whose incident
closed first is ``resolved``; a recovery nobody was told the problem of is too) and, once
a ``down`` (or a reminder) is sent, ``next_reminder`` says when to repeat it.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum
from fnmatch import fnmatchcase

from monitor.judge.alerting import AlertFacts, Event, Route
from monitor.judge.facts import facts_of
from monitor.judge.incidents import IncidentChange

PROBLEMS = (Event.DOWN, Event.DEGRADED, Event.FLAPPING)
"""The events that tell of a problem: a notifier told of one may hear of its recovery."""


@dataclass(frozen=True, slots=True)
class Routed:
    """One alert for one notifier, from entry ``entry`` (an index into the change's
    entries), due at ``due_at``."""

    entry: int
    notifier: str
    event: Event
    due_at: datetime
    facts: AlertFacts


def matches(monitor: str, sites: Sequence[str]) -> bool:
    """Whether ``monitor`` is one of ``sites`` (names or globs such as ``shop*``)."""
    return any(fnmatchcase(monitor, pattern) for pattern in sites)


def route(
    event: Event, monitor: str, opened_at: datetime, time: datetime, routes: Sequence[Route]
) -> list[tuple[str, datetime]]:
    """The notifiers that hear of ``event`` of ``monitor`` (at ``time``, in an incident
    opened at ``opened_at``), each with when it is due, sorted by notifier.

    A problem is due at once, or at ``opened_at + after`` for an escalating route; a
    notifier named by several routes is due at the earliest. A recovery goes only to
    notifiers some route had told of a problem by then (its ``after`` had come).
    """
    mine = [r for r in routes if matches(monitor, r.sites)]
    if event is Event.RECOVERED:
        told = {
            notifier
            for r in mine
            if any(e in r.events for e in PROBLEMS)
            and opened_at + timedelta(seconds=r.after) <= time
            for notifier in r.notify
        }
        named = {n for r in mine if Event.RECOVERED in r.events for n in r.notify}
        return [(notifier, time) for notifier in sorted(named & told)]
    due: dict[str, datetime] = {}
    for r in mine:
        if event not in r.events:
            continue
        at = max(time, opened_at + timedelta(seconds=r.after))
        for notifier in r.notify:
            if notifier not in due or at < due[notifier]:
                due[notifier] = at
    return sorted(due.items())


def routed(monitor: str, change: IncidentChange, routes: Sequence[Route]) -> tuple[Routed, ...]:
    """Every alert the entries of ``change`` send."""
    opened_at = change.incident.opened_at
    found: list[Routed] = []
    for index, entry in enumerate(change.entries):
        if entry.event is None:
            continue
        facts = facts_of(monitor, entry, opened_at)
        for notifier, due_at in route(facts.event, monitor, opened_at, entry.time, routes):
            found.append(Routed(index, notifier, facts.event, due_at, facts))
    return tuple(found)


class Told(StrEnum):
    """What became of the problem alerts a notifier was due to get before a recovery."""

    NOTHING = "nothing"  # none were sent (none due, or all held, failed or resolved)
    PENDING = "pending"  # one is still being tried
    SENT = "sent"


class Disposition(StrEnum):
    SEND = "send"
    WAIT = "wait"  # not yet: leave it pending
    RESOLVED = "resolved"  # never: settle it without sending


def disposition(
    event: Event, due_at: datetime, closed_at: datetime | None, still_down: bool, told: Told
) -> Disposition:
    """What to do with a due alert: the incident closed at ``closed_at`` (or is open), its
    monitor is ``still_down`` or not, and ``told`` says what its notifier heard before.

    An escalation that came due after the incident closed is resolved (the problem it
    escalates is gone); a problem that was due while open is sent however late. A
    reminder goes only while the incident is open and its monitor down. A recovery waits
    for the problem alerts before it and is resolved if none of them was sent.
    """
    if event is Event.RECOVERED:
        if told is Told.PENDING:
            return Disposition.WAIT
        return Disposition.SEND if told is Told.SENT else Disposition.RESOLVED
    if event is Event.REMINDER:
        return Disposition.SEND if closed_at is None and still_down else Disposition.RESOLVED
    if closed_at is not None and closed_at <= due_at:
        return Disposition.RESOLVED
    return Disposition.SEND


def reminder_interval(monitor: str, notifier: str, routes: Sequence[Route]) -> float | None:
    """Seconds between reminders of a ``down`` of ``monitor`` to ``notifier``: the shortest
    of the routes that send it one, or None when none does."""
    intervals = [
        r.reminder
        for r in routes
        if r.reminder is not None
        and notifier in r.notify
        and Event.DOWN in r.events
        and matches(monitor, r.sites)
    ]
    return min(intervals, default=None)


def next_reminder(
    event: Event, monitor: str, notifier: str, sent_at: datetime, routes: Sequence[Route]
) -> datetime | None:
    """When to remind ``notifier`` again after ``event`` was sent at ``sent_at``, or None."""
    if event not in (Event.DOWN, Event.REMINDER):
        return None
    interval = reminder_interval(monitor, notifier, routes)
    return None if interval is None else sent_at + timedelta(seconds=interval)
