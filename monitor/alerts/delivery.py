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

The parts: ``timing`` (when to pass, look, retry), ``triage`` (each row's fate, before a
send and after), ``ledger`` (settling rows, and which are in flight), ``direct`` (the
messages kept in memory), ``lanes`` (sending).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable, Sequence
from datetime import UTC, datetime, timedelta

from monitor import logs
from monitor.alerts import content
from monitor.alerts.apprise_send import Channels
from monitor.alerts.direct import FromMemory, Vitals
from monitor.alerts.lanes import Lanes, Send
from monitor.alerts.ledger import AlertMetrics, Ledger, log_send
from monitor.alerts.outbox import Outbox, Settle, Status
from monitor.alerts.ratelimit import RateLimit
from monitor.alerts.timing import EARLY, POLL, next_look, retry_delay, to_next_pass
from monitor.alerts.triage import after_send, noted, tone, triage
from monitor.errors import NotifyError, StoreError
from monitor.judge.alerting import AlertSettings, Message, PendingAlert

log = logging.getLogger("monitor.alerts")

_EARLY = timedelta(seconds=EARLY)


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
        self._channels = channels
        self._settings = settings
        self._failing = failing
        self._limits: dict[str, RateLimit] = {}
        self._lanes = Lanes(on_done=self.wake)  # a lane's rows may be due again
        self._ledger = Ledger(outbox, metrics)
        self._memory = FromMemory(self._lanes, metrics, lambda: self._settings, vitals, who)
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
            await self._ledger.flush()
        except StoreError as exc:
            rows = len(self._ledger.busy)
            logs.event(log, "alerts.unsettled", logging.ERROR, rows=rows, error=exc)

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
        self._memory.check_self(now, self._ledger.pending)
        self._memory.dispatch(now, self._channels)
        if self._outbox is None or not look:
            return
        await self._ledger.flush()
        canary = self._settings.canary is not None and self._failing(self._settings.canary)
        if not canary:
            self._memory.outage_over()
        # A lane may settle a row while this reads it (still pending): not sent again.
        settled_in_read = self._ledger.begin_read()
        due = [
            d
            for d in await self._outbox.due(now, with_held=not canary)
            if d.alert.id not in self._ledger.busy and d.alert.id not in settled_in_read
        ]
        settled, offered = triage(due, now, self._channels)
        composed = content.compose(offered, now, self._settings, canary)
        settled += [Settle(i, Status.HELD, now) for i in composed.held]
        await self._ledger.settle(settled, {d.alert.id: d.alert for d in due})
        self._dispatch(composed.messages, {d.alert.id: d.alert for d in due}, now)
        # A canary notice composed in this pass goes out now, in a lane idle() waits for.
        self._memory.dispatch(now, self._channels)
        outlook = await self._outbox.outlook()
        self._ledger.count(outlook.unsettled)
        self._next_look = next_look(now, outlook, self._look_every)

    async def idle(self) -> None:
        """Wait until no lane is sending."""
        await self._lanes.idle()

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
                self._memory.notice(message, now)
                continue
            limit = self._limits.get(notifier) or RateLimit()
            note = limit.summary()
            allowed, self._limits[notifier] = limit.allow(now, self._settings)
            if not allowed:
                continue
            rows = [alerts[i] for i in message.alert_ids]
            self._ledger.hold(message.alert_ids)
            body, markdown = noted(message.body, note), noted(message.markdown, note)
            send = Send(message.title, body, markdown, tone(rows), self._settler(message, rows))
            sends.setdefault(notifier, []).append(send)
        for notifier, queued in sends.items():
            self._lanes.start(self._channels, notifier, queued, now)

    def _settler(
        self, message: Message, rows: list[PendingAlert]
    ) -> Callable[[NotifyError | None, datetime], Awaitable[None]]:
        async def settle(error: NotifyError | None, at: datetime) -> None:
            settled = [after_send(row, error, at, self._settings) for row in rows]
            log_send(message, rows, error)
            await self._ledger.settle(settled, {row.id: row for row in rows})

        return settle
