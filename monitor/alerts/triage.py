"""Pure: what becomes of the outbox's due rows, before a send and after it.

Before: a row is settled without a send (its notifier is gone, its incident closed) or
offered to ``content.compose``. After: a sent row is done (or due again as a reminder); a
failed one is tried again with backoff, until the failure is permanent or the row too old.
"""

from __future__ import annotations

from collections.abc import Container, Sequence
from datetime import datetime, timedelta

from monitor.alerts.outbox import DueAlert, Settle, Status
from monitor.alerts.timing import retry_delay
from monitor.errors import NotifyError
from monitor.judge import routing
from monitor.judge.alerting import AlertSettings, Event, PendingAlert


def triage(
    due: Sequence[DueAlert], now: datetime, notifiers: Container[str]
) -> tuple[list[Settle], list[PendingAlert]]:
    """Rows settled without sending, and rows to compose messages of; ``notifiers``: the
    configured ones."""
    settled: list[Settle] = []
    offered: list[PendingAlert] = []
    for d in due:
        alert = d.alert
        if alert.notifier not in notifiers:
            error = f"no notifier named {alert.notifier!r} is configured (any more)"
            settled.append(Settle(alert.id, Status.FAILED, now, error))
            continue
        fate = routing.disposition(alert.event, alert.due_at, d.closed_at, d.still_down, d.told)
        stale = d.held and d.closed_at is not None and alert.event is not Event.RECOVERED
        if fate is routing.Disposition.SEND and stale:
            error = "held while the canary failed; the incident closed meanwhile"
            settled.append(Settle(alert.id, Status.RESOLVED, now, error))
        elif fate is routing.Disposition.RESOLVED:
            settled.append(Settle(alert.id, Status.RESOLVED, now, _resolved_why(alert.event)))
        elif fate is routing.Disposition.SEND:
            offered.append(alert)
    return settled, offered


def after_send(
    row: PendingAlert, error: NotifyError | None, at: datetime, settings: AlertSettings
) -> Settle:
    """How ``row`` is settled when the send of its message returned at ``at``."""
    if error is None:
        routes = settings.routes
        again = routing.next_reminder(row.event, row.facts.monitor, row.notifier, at, routes)
        return Settle(row.id, Status.SENT, at, reminder_at=again)
    age = (at - row.due_at).total_seconds()
    if error.permanent or age >= settings.max_age:
        return Settle(row.id, Status.FAILED, at, str(error))
    retry = at + timedelta(seconds=retry_delay(row.attempts + 1))
    return Settle(row.id, Status.PENDING, at, str(error), next_try_at=retry)


def tone(rows: Sequence[PendingAlert]) -> str:
    """How a message of ``rows`` looks (Apprise's notify type)."""
    events = {row.event for row in rows}
    if events & {Event.DOWN, Event.REMINDER}:
        return "failure"
    if events & {Event.DEGRADED, Event.FLAPPING}:
        return "warning"
    return "success" if events == {Event.RECOVERED} else "info"


def noted(text: str, note: str | None) -> str:
    """``text`` with the rate limit's ``note`` (if any) below it."""
    return text if note is None else f"{text}\n\n{note}"


def _resolved_why(event: Event) -> str:
    if event is Event.RECOVERED:
        return "the notifier was never told of the problem"
    if event is Event.REMINDER:
        return "the incident closed, or the monitor is no longer down"
    return "the incident closed before the alert was due"
