"""The delivery worker: sends the outbox's due alerts through Apprise and settles each row.

One task wakes with the scheduler's tick (every second, or once a beat when the beat is
longer), at once after the store wrote alerts or a send ended, and when a row falls due,
to check the daemon's own health, and reads the outbox when it may hold work: when woken,
when its earliest pending row falls due, on every pass while rows are held, and besides
every ``look_every`` seconds (every second when other processes write the outbox too). It reads
the due rows, decides their fate (``routing.disposition``), composes messages (``content.compose``:
grouped in a storm, held while the canary fails), applies each notifier's rate limit and
hands the messages to that notifier's *lane*: a task that sends them one after another and
marks each message's rows sent (or due again later, with backoff) the moment its send
returns. Lanes of different notifiers run side by side, so a slow SMTP server holds up
only its own notifier. A row a lane works on is not read again until it is settled.

Exactly once: a row is marked sent in the transaction right after its send returns; only
a crash between the two (or a send that timed out here but arrived later) repeats an
alert, and every message carries a ``ref`` a receiver can deduplicate on.

The daemon's own alerts (``selfcheck``) and the canary notices do not live in the outbox:
the store may be what is broken. They are kept in memory and sent with retries.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from typing import Protocol

from monitor import logs
from monitor.alerts import content, selfcheck
from monitor.alerts.apprise_send import Channels
from monitor.alerts.lanes import Lanes, Send
from monitor.alerts.outbox import DueAlert, Outbox, Outlook, Settle, Status
from monitor.alerts.ratelimit import RateLimit
from monitor.engine.scheduler import next_tick
from monitor.errors import NotifyError, StoreError
from monitor.judge import routing
from monitor.judge.alerting import AlertSettings, Event, Message, PendingAlert

log = logging.getLogger("monitor.alerts")

POLL = 1.0  # seconds between passes when nothing wakes the worker (or the scheduler's tick)
# Seconds between looks at an outbox no other process writes, when nothing is due sooner.
# A look costs two queries at least; every second, that was half of an idle daemon's CPU.
LOOK_ALONE = 60.0
FIRST_RETRY = 5.0  # seconds after the first failed send; doubling, up to ...
MAX_RETRY = 600.0


EARLY = POLL / 10  # seconds: how early a pass may run (timer rounding)
_EARLY = timedelta(seconds=EARLY)


def to_next_pass(now: float, every: float = POLL, look_at: float | None = None) -> float:
    """Seconds from ``now`` (Unix time) to the next pass when nothing wakes the worker: the
    next multiple of ``every``, where the scheduler's tick falls too (``every`` is the
    tick), so an idle daemon wakes once a tick instead of two or three times; a pass that
    ran just before that time counts as its. Sooner when the outbox is to be read sooner,
    at ``look_at`` (a row falls due: a retry, an escalation, a reminder)."""
    wait = next_tick(now, every) - now
    if wait < EARLY:
        wait += every
    if look_at is not None and 0 < look_at - now < wait:
        return look_at - now
    return wait


def retry_delay(attempts: int) -> float:
    """Seconds to wait after ``attempts`` failed sends: 5, 10, 20, ... up to 10 min."""
    return min(FIRST_RETRY * 2.0 ** min(attempts - 1, 10), MAX_RETRY)


def next_look(now: datetime, outlook: Outlook, every: float) -> datetime:
    """When the outbox must be read again if nothing wakes the worker: when its earliest
    pending row falls due, at once while rows are held (the canary may be well again by
    the next pass), and at the latest ``every`` seconds after ``now``."""
    if outlook.held:
        return now
    latest = now + timedelta(seconds=every)
    if outlook.next_try_at is None:
        return latest
    return min(latest, outlook.next_try_at)


class AlertMetrics(Protocol):
    def observe_alert(self, notifier: str, event: str, outcome: str) -> None: ...

    def set_outbox_pending(self, n: int) -> None: ...


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


class Delivery:
    """Sends the outbox (and the daemon's own alerts) through ``channels``; ``failing``
    says whether a monitor (the canary) fails now."""

    def __init__(
        self,
        outbox: Outbox | None,
        channels: Channels,
        settings: AlertSettings,
        metrics: AlertMetrics,
        failing: Callable[[str], bool] = lambda _: False,
        vitals: Vitals | None = None,
        who: str = "",
        look_every: float = POLL,
        pass_every: Callable[[], float] = lambda: POLL,
    ) -> None:
        """Without an ``outbox`` only the daemon's own alerts are sent (a worker other
        than the one that delivers); ``who`` ends their titles (e.g. "worker 1/2").
        ``look_every``: the longest time between two reads of the outbox; POLL when
        other processes write it, since nothing wakes this worker for their rows.
        ``pass_every``: the seconds between passes now (the scheduler's tick), unless the
        outbox is to be read sooner."""
        self._look_every = look_every
        self._pass_every = pass_every
        self._next_look = datetime.min.replace(tzinfo=UTC)
        self._outbox = outbox
        self._who = who
        self._channels = channels
        self._settings = settings
        self._metrics = metrics
        self._failing = failing
        self._vitals = vitals
        self._self_state: selfcheck.SelfState | None = None
        self._pending = 0  # the outbox's pending rows when last counted
        self._limits: dict[str, RateLimit] = {}
        self._lanes = Lanes(on_done=self.wake)  # a lane's rows may be due again
        self._busy: set[int] = set()  # rows a lane works on or whose settling failed
        self._settled_in_read: set[int] = set()  # rows settled since the last read began
        self._unsettled: list[tuple[Settle, PendingAlert]] = []  # the store was away
        self._direct: list[_Direct] = []
        self._noticed: set[str] = set()  # notifiers told of the canary in this outage
        self._woken = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    def reconfigure(self, channels: Channels, settings: AlertSettings) -> None:
        self._channels, self._settings = channels, settings

    def wake(self) -> None:
        """Look at the outbox now: the store has just written alerts, or a send ended."""
        self._woken.set()

    def start(self) -> None:
        self._task = asyncio.get_running_loop().create_task(self._run(), name="alert-delivery")

    # The timeout bounds waiting for sends in flight, not the call.
    async def close(self, timeout: float) -> None:  # noqa: ASYNC109
        """Stop reading the outbox, give sends in flight ``timeout`` seconds, then settle
        what they sent. A send cut off here may still arrive: it is sent again at start."""
        if self._task is not None:
            self._task.cancel()
            await asyncio.wait({self._task})
        cut = await self._lanes.close(timeout)
        if cut:
            logs.event(log, "alerts.sends_cut_off", logging.WARNING, notifiers=cut)
        try:
            await self._flush()
        except StoreError as exc:
            logs.event(log, "alerts.unsettled", logging.ERROR, rows=len(self._busy), error=exc)

    async def _run(self) -> None:
        failures = 0
        while True:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._woken.wait(), self._to_next_pass(time.time()))
            now = datetime.now(UTC)
            if self._woken.is_set():
                # Look now, and on every pass after until a look gets to its end.
                self._next_look = now
            self._woken.clear()
            try:
                # A pass may run a little before the time a look was due at.
                await self.run_once(now, look=now + _EARLY >= self._next_look)
            except StoreError as exc:
                error = str(exc)
            except Exception as exc:  # our bug: keep the worker (and the outbox) alive
                log.exception("delivering alerts failed unexpectedly")
                error = f"{type(exc).__name__}: {exc}"
            else:
                failures = 0
                continue
            failures += 1
            delay = retry_delay(failures) / 5  # 1 s, 2 s, ... up to 2 min
            logs.event(log, "alerts.store_failed", logging.WARNING, error=error, retry_in=delay)
            await asyncio.sleep(delay)

    def _to_next_pass(self, now: float) -> float:
        """Seconds to the next pass: on the tick, at least every ``look_every`` seconds
        while there is an outbox to read, and when a row in it falls due."""
        if self._outbox is None:
            return to_next_pass(now, self._pass_every())
        every = min(self._pass_every(), self._look_every)
        return to_next_pass(now, every, self._next_look.timestamp())

    async def run_once(self, now: datetime, look: bool = True) -> None:
        """One pass at ``now``: self alerts, then (with ``look``) the due rows of the
        outbox. Sends start in lanes and settle when they return (``idle`` waits)."""
        self._check_self(now)
        self._dispatch_direct(now)
        if self._outbox is None or not look:
            return
        await self._flush()
        canary = self._settings.canary is not None and self._failing(self._settings.canary)
        if not canary:
            self._noticed.clear()
        # A lane may settle a row while this reads it (still pending): not sent again.
        self._settled_in_read = settled_in_read = set[int]()
        due = [
            d
            for d in await self._outbox.due(now, with_held=not canary)
            if d.alert.id not in self._busy and d.alert.id not in settled_in_read
        ]
        settled, offered = self._triage(due, now)
        composed = content.compose(offered, now, self._settings, canary)
        settled += [Settle(i, Status.HELD, now) for i in composed.held]
        await self._settle(settled, {d.alert.id: d.alert for d in due})
        self._dispatch(composed.messages, {d.alert.id: d.alert for d in due}, now)
        self._dispatch_direct(now)  # a canary notice composed here: sent now, not next pass
        outlook = await self._outbox.outlook()
        self._pending = outlook.unsettled
        self._next_look = next_look(now, outlook, self._look_every)
        self._metrics.set_outbox_pending(self._pending)

    async def idle(self) -> None:
        """Wait until no lane is sending."""
        await self._lanes.idle()

    def _triage(
        self, due: Sequence[DueAlert], now: datetime
    ) -> tuple[list[Settle], list[PendingAlert]]:
        """Rows settled without sending, and rows to compose messages of."""
        settled: list[Settle] = []
        offered: list[PendingAlert] = []
        for d in due:
            alert = d.alert
            if alert.notifier not in self._channels:
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

    def _dispatch(
        self, messages: Sequence[Message], alerts: dict[int, PendingAlert], now: datetime
    ) -> None:
        """Start a lane for each idle notifier with the messages its rate limit lets go."""
        sends: dict[str, list[Send]] = {}
        for message in messages:
            notifier = message.notifier
            if notifier in self._lanes:
                continue  # its rows stay pending and are composed again next pass
            if not message.alert_ids:  # a canary notice: once per notifier per outage
                if notifier not in self._noticed:
                    self._noticed.add(notifier)
                    self._direct.append(_direct(message, now))
                continue
            limit = self._limits.get(notifier) or RateLimit()
            note = limit.summary()
            allowed, self._limits[notifier] = limit.allow(now, self._settings)
            if not allowed:
                continue
            rows = [alerts[i] for i in message.alert_ids]
            self._busy.update(message.alert_ids)
            body, markdown = _noted(message.body, note), _noted(message.markdown, note)
            send = Send(message.title, body, markdown, _tone(rows), self._settler(message, rows))
            sends.setdefault(notifier, []).append(send)
        for notifier, queued in sends.items():
            self._lanes.start(self._channels, notifier, queued, now)

    def _settler(
        self, message: Message, rows: list[PendingAlert]
    ) -> Callable[[NotifyError | None, datetime], Awaitable[None]]:
        async def settle(error: NotifyError | None, at: datetime) -> None:
            settled = [self._outcome(row, error, at) for row in rows]
            _log_send(message, rows, error)
            await self._settle(settled, {row.id: row for row in rows})

        return settle

    def _outcome(self, row: PendingAlert, error: NotifyError | None, at: datetime) -> Settle:
        if error is None:
            routes = self._settings.routes
            again = routing.next_reminder(row.event, row.facts.monitor, row.notifier, at, routes)
            return Settle(row.id, Status.SENT, at, reminder_at=again)
        age = (at - row.due_at).total_seconds()
        if error.permanent or age >= self._settings.max_age:
            return Settle(row.id, Status.FAILED, at, str(error))
        retry = at + timedelta(seconds=retry_delay(row.attempts + 1))
        return Settle(row.id, Status.PENDING, at, str(error), next_try_at=retry)

    async def _settle(self, settled: Sequence[Settle], rows: dict[int, PendingAlert]) -> None:
        """Settle rows now, or keep them (busy) until the store takes them."""
        if self._outbox is None:
            return  # no rows were read
        try:
            await self._outbox.settle(settled)
        except StoreError:
            self._unsettled.extend((one, rows[one.id]) for one in settled)
            self._busy.update(one.id for one in settled)
            raise
        done = sum(one.status not in (Status.PENDING, Status.HELD) for one in settled)
        self._pending = max(0, self._pending - done)
        self._metrics.set_outbox_pending(self._pending)
        for one in settled:
            self._busy.discard(one.id)
            self._settled_in_read.add(one.id)
            row = rows[one.id]
            outcome = "retry" if one.status is Status.PENDING else one.status.value
            self._metrics.observe_alert(row.notifier, row.event.value, outcome)
            if one.status in (Status.HELD, Status.RESOLVED, Status.FAILED):
                logs.event(
                    log,
                    f"alert.{one.status.value}",
                    logging.WARNING if one.status is Status.FAILED else logging.INFO,
                    monitor=row.facts.monitor,
                    alert=row.event.value,
                    notifier=row.notifier,
                    why=one.error,
                )

    async def _flush(self) -> None:
        """Settle what earlier passes could not (the store was away)."""
        if self._unsettled:
            pairs, self._unsettled = self._unsettled, []
            await self._settle([one for one, _ in pairs], {one.id: row for one, row in pairs})

    def _check_self(self, now: datetime) -> None:
        if self._vitals is None:
            return
        vitals = self._vitals(now, self._pending)
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
        named = self._settings.self_notify
        return tuple(n.name for n in self._settings.notifiers) if named is None else named

    def _dispatch_direct(self, now: datetime) -> None:
        """Start lanes for the messages kept in memory that are due, oldest first."""
        waiting: list[_Direct] = []
        for direct in self._direct:
            if direct.notifier not in self._channels:
                continue  # the notifier is gone (reloaded config): nobody to tell
            due = direct.next_try_at is None or direct.next_try_at <= now
            if not due or direct.notifier in self._lanes:
                waiting.append(direct)
                continue
            self._lanes.start(self._channels, direct.notifier, [self._direct_send(direct)], now)
        self._direct = waiting

    def _direct_send(self, direct: _Direct) -> Send:
        async def settle(error: NotifyError | None, at: datetime) -> None:
            outcome = "sent"
            if error is not None:
                attempts = direct.attempts + 1
                if error.permanent or (at - direct.since).total_seconds() >= self._settings.max_age:
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


def _direct(message: Message, now: datetime) -> _Direct:
    """A canary notice, kept in memory like a self alert."""
    return _Direct(message.notifier, message.title, message.body, message.markdown, "warning", now)


def _tone(rows: Sequence[PendingAlert]) -> str:
    events = {row.event for row in rows}
    if events & {Event.DOWN, Event.REMINDER}:
        return "failure"
    if events & {Event.DEGRADED, Event.FLAPPING}:
        return "warning"
    return "success" if events == {Event.RECOVERED} else "info"


def _noted(text: str, note: str | None) -> str:
    return text if note is None else f"{text}\n\n{note}"


def _resolved_why(event: Event) -> str:
    if event is Event.RECOVERED:
        return "the notifier was never told of the problem"
    if event is Event.REMINDER:
        return "the incident closed, or the monitor is no longer down"
    return "the incident closed before the alert was due"


def _log_send(message: Message, rows: Sequence[PendingAlert], error: NotifyError | None) -> None:
    monitors = ",".join(dict.fromkeys(r.facts.monitor for r in rows))
    events = ",".join(dict.fromkeys(r.event.value for r in rows))
    if error is None:
        logs.event(log, "alert.sent", notifier=message.notifier, events=events, monitors=monitors)
    else:
        logs.event(
            log,
            "alert.not_sent",
            logging.WARNING,
            notifier=message.notifier,
            events=events,
            monitors=monitors,
            attempts=max(r.attempts for r in rows) + 1,
            error=str(error),
        )
