"""Messages sent from memory, not from the outbox: the daemon's own alerts, canary notices.

The store may be what is broken, so these are kept in memory and tried again (with
backoff) until ``max_age``. A canary notice goes to each notifier once per outage.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import datetime, timedelta

from monitor import logs
from monitor.alerts import selfcheck
from monitor.alerts.apprise_send import Channels
from monitor.alerts.lanes import Lanes, Send
from monitor.alerts.ledger import AlertMetrics
from monitor.alerts.timing import retry_delay
from monitor.errors import NotifyError
from monitor.judge.alerting import AlertSettings, Event, Message

log = logging.getLogger("monitor.alerts")

Vitals = Callable[[datetime, int], selfcheck.Vitals]
"""The daemon's vitals at a time, given the outbox's pending count."""


@dataclass(frozen=True, slots=True)
class _Direct:
    """A message sent from memory (a self alert, a canary notice), tried until max_age."""

    notifier: str
    title: str
    body: str
    markdown: str
    tone: str
    since: datetime
    attempts: int = 0
    next_try_at: datetime | None = None


class FromMemory:
    """The messages kept in memory, sent in ``lanes``; ``settings`` gives the settings now.
    With ``vitals`` the daemon's own health is checked; ``who`` ends those alerts' titles."""

    def __init__(
        self,
        lanes: Lanes,
        metrics: AlertMetrics,
        settings: Callable[[], AlertSettings],
        vitals: Vitals | None,
        who: str,
    ) -> None:
        self._lanes = lanes
        self._metrics = metrics
        self._settings = settings
        self._vitals = vitals
        self._who = who
        self._self_state: selfcheck.SelfState | None = None
        self._direct: list[_Direct] = []
        self._noticed: set[str] = set()  # notifiers told of the canary in this outage

    def check_self(self, now: datetime, pending: int) -> None:
        """Keep a message for each change in the daemon's own health (``pending``: the
        outbox's pending rows)."""
        if self._vitals is None:
            return
        vitals = self._vitals(now, pending)
        self._self_state, alerts = selfcheck.check(
            self._self_state, vitals, selfcheck.SelfSettings()
        )
        for alert in alerts:
            logs.event(log, "self.alert", problem=alert.problem, active=alert.active)
            tone = "warning" if alert.active else "success"
            title = f"{alert.title} ({self._who})" if self._who else alert.title
            for notifier in self._self_notifiers():
                self._direct.append(_Direct(notifier, title, alert.body, alert.body, tone, now))

    def _self_notifiers(self) -> tuple[str, ...]:
        settings = self._settings()
        named = settings.self_notify
        return tuple(n.name for n in settings.notifiers) if named is None else named

    def notice(self, message: Message, now: datetime) -> None:
        """Keep a canary notice, unless its notifier was told in this outage."""
        if message.notifier not in self._noticed:
            self._noticed.add(message.notifier)
            self._direct.append(_notice(message, now))

    def outage_over(self) -> None:
        """The canary is well: tell each notifier of its next outage."""
        self._noticed.clear()

    def dispatch(self, now: datetime, channels: Channels) -> None:
        """Start lanes for the messages kept that are due, oldest first."""
        waiting: list[_Direct] = []
        for direct in self._direct:
            if direct.notifier not in channels:
                continue  # the notifier is gone (reloaded config): nobody to tell
            due = direct.next_try_at is None or direct.next_try_at <= now
            if not due or direct.notifier in self._lanes:
                waiting.append(direct)
                continue
            self._lanes.start(channels, direct.notifier, [self._send(direct)], now)
        self._direct = waiting

    def _send(self, direct: _Direct) -> Send:
        async def settle(error: NotifyError | None, at: datetime) -> None:
            outcome = "sent"
            if error is not None:
                attempts = direct.attempts + 1
                max_age = self._settings().max_age
                if error.permanent or (at - direct.since).total_seconds() >= max_age:
                    outcome = "failed"
                else:
                    outcome = "retry"
                    retry = at + timedelta(seconds=retry_delay(attempts))
                    self._direct.append(replace(direct, attempts=attempts, next_try_at=retry))
            self._metrics.observe_alert(direct.notifier, Event.SELF.value, outcome)
            logs.event(
                log,
                "alert.sent" if error is None else f"alert.{outcome}",
                logging.INFO if error is None else logging.WARNING,
                notifier=direct.notifier,
                alert=Event.SELF.value,
                title=direct.title,
                error=None if error is None else str(error),
            )

        return Send(direct.title, direct.body, direct.markdown, direct.tone, settle)


def _notice(message: Message, now: datetime) -> _Direct:
    """A canary notice, kept in memory like a self alert."""
    return _Direct(message.notifier, message.title, message.body, message.markdown, "warning", now)
