"""The delivery worker's books on outbox rows: it settles them and tracks those in flight.

A row a lane works on is *busy* and not read again until settled. When the store refuses
a settling, the rows stay busy and are kept here until a later pass settles them
(``flush``). A lane may settle a row while a pass reads the outbox: the row still reads as
pending, so the rows settled since the read began are known too and not sent again.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Sequence
from typing import Protocol

from monitor import logs
from monitor.alerts.outbox import Outbox, Settle, Status
from monitor.errors import NotifyError, StoreError
from monitor.judge.alerting import Message, PendingAlert

log = logging.getLogger("monitor.alerts")


class AlertMetrics(Protocol):
    def observe_alert(self, notifier: str, event: str, outcome: str) -> None: ...

    def set_outbox_pending(self, n: int) -> None: ...


class Ledger:
    """Settles rows in ``outbox`` (none: no rows are read here) and counts them."""

    def __init__(self, outbox: Outbox | None, metrics: AlertMetrics) -> None:
        self._outbox = outbox
        self._metrics = metrics
        self.pending = 0  # the outbox's pending rows when last counted
        self.busy: set[int] = set()  # rows a lane works on or whose settling failed
        self._settled_in_read: set[int] = set()  # rows settled since the last read began
        self._unsettled: list[tuple[Settle, PendingAlert]] = []  # the store was away

    def hold(self, ids: Iterable[int]) -> None:
        """Mark rows busy: a lane works on them."""
        self.busy.update(ids)

    def begin_read(self) -> set[int]:
        """The rows settled from now on, while the outbox is read."""
        self._settled_in_read = settled_in_read = set[int]()
        return settled_in_read

    def count(self, pending: int) -> None:
        """The outbox holds ``pending`` unsettled rows now."""
        self.pending = pending
        self._metrics.set_outbox_pending(pending)

    async def settle(self, settled: Sequence[Settle], rows: dict[int, PendingAlert]) -> None:
        """Settle rows now, or keep them (busy) until the store takes them."""
        if self._outbox is None:
            return  # no rows were read
        try:
            await self._outbox.settle(settled)
        except StoreError:
            self._unsettled.extend((one, rows[one.id]) for one in settled)
            self.busy.update(one.id for one in settled)
            raise
        done = sum(one.status not in (Status.PENDING, Status.HELD) for one in settled)
        self.pending = max(0, self.pending - done)
        self._metrics.set_outbox_pending(self.pending)
        for one in settled:
            self.busy.discard(one.id)
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

    async def flush(self) -> None:
        """Settle what earlier passes could not (the store was away)."""
        if self._unsettled:
            pairs, self._unsettled = self._unsettled, []
            await self.settle([one for one, _ in pairs], {one.id: row for one, row in pairs})


def log_send(message: Message, rows: Sequence[PendingAlert], error: NotifyError | None) -> None:
    """Log how the send of ``message`` (of outbox ``rows``) ended."""
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
