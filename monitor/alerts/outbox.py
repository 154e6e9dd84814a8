"""The outbox in SQL: the alerts that are due, and how the delivery worker settles each.

A row is ``pending`` until it is settled: ``sent``, ``failed`` (gave up: too old, or the
notifier is gone), ``resolved`` (no longer worth sending) or ``held`` (kept back while the
canary says our own network is down; once it is up again a held row is sent if its
incident is still open, else resolved). Settling checks the row is still unsettled, so
two workers (or a retried settle) cannot settle one row twice. Rows are written by
``monitor.store.states`` in the transaction of the incident entries they are about.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import Any

from sqlalchemy import RowMapping, and_, case, func, or_, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncConnection

from monitor.judge import facts
from monitor.judge.alerting import Event, PendingAlert
from monitor.judge.routing import PROBLEMS, Told
from monitor.judge.state import State
from monitor.store import Store
from monitor.store.tables import alert_outbox, incidents, monitor_states


class Status(StrEnum):
    PENDING = "pending"
    SENT = "sent"
    FAILED = "failed"
    HELD = "held"
    RESOLVED = "resolved"


_OPEN = (Status.PENDING.value, Status.HELD.value)
_TOLD_OF = tuple(e.value for e in (*PROBLEMS, Event.REMINDER))


@dataclass(frozen=True, slots=True)
class DueAlert:
    """A due row with what deciding its fate needs."""

    alert: PendingAlert
    held: bool  # held back by the canary before
    closed_at: datetime | None  # when its incident closed
    still_down: bool  # its monitor's state is down
    told: Told  # for a recovery: what the notifier heard of the problem


@dataclass(frozen=True, slots=True)
class Outlook:
    """The unsettled rows at a glance."""

    unsettled: int  # pending or held
    held: bool  # some are held back by the canary
    next_try_at: datetime | None  # the earliest pending row's; None without pending rows


@dataclass(frozen=True, slots=True)
class Settle:
    """How one row ends (or, ``PENDING`` with ``next_try_at``, when it is tried again)."""

    id: int
    status: Status
    at: datetime
    error: str | None = None
    next_try_at: datetime | None = None  # a retry
    reminder_at: datetime | None = None  # sent: remind then, while still down


class Outbox:
    """The outbox rows of one store."""

    def __init__(self, store: Store) -> None:
        self._store = store

    async def due(self, now: datetime, *, with_held: bool, limit: int = 500) -> list[DueAlert]:
        """Pending rows due at ``now``, oldest first, and held ones when ``with_held``."""
        wanted = and_(alert_outbox.c.status == Status.PENDING, alert_outbox.c.next_try_at <= now)
        if with_held:
            wanted = or_(wanted, alert_outbox.c.status == Status.HELD)
        query = (
            select(alert_outbox, incidents.c.closed_at, monitor_states.c.state)
            .join(incidents, alert_outbox.c.incident_id == incidents.c.id)
            .outerjoin(monitor_states, monitor_states.c.monitor_id == incidents.c.monitor_id)
            .where(wanted)
            .order_by(alert_outbox.c.due_at, alert_outbox.c.id)
            .limit(limit)
        )
        async with self._store.transaction("reading due alerts") as conn:
            rows = (await conn.execute(query)).mappings().all()
            return [await _due(conn, row) for row in rows]

    async def settle(self, settled: Sequence[Settle]) -> None:
        """Settle rows in one transaction; rows settled already are left alone."""
        if not settled:
            return
        async with self._store.transaction(f"settling {len(settled)} alerts") as conn:
            for one in settled:
                await _settle(conn, one)

    async def outlook(self) -> Outlook:
        """How many rows are unsettled, whether any is held, and when one is due next."""
        row = alert_outbox.c
        pending = row.status == Status.PENDING
        query = select(
            func.count(),
            func.count(case((row.status == Status.HELD, 1))),
            func.min(case((pending, row.next_try_at))),
        ).where(row.status.in_(_OPEN))
        async with self._store.transaction("counting pending alerts") as conn:
            count, held, next_try_at = (await conn.execute(query)).one()
            return Outlook(count, held > 0, next_try_at)


async def _due(conn: AsyncConnection, row: RowMapping) -> DueAlert:
    alert = PendingAlert(
        id=row["id"],
        notifier=row["notifier"],
        incident_id=row["incident_id"],
        event=Event(row["event"]),
        seq=row["seq"],
        due_at=row["due_at"],
        created_at=row["created_at"],
        attempts=row["attempts"],
        facts=facts.from_json(row["facts"]),
    )
    told = await _told(conn, alert) if alert.event is Event.RECOVERED else Told.NOTHING
    held = row["status"] == Status.HELD
    return DueAlert(alert, held, row["closed_at"], row["state"] == State.DOWN, told)


async def _told(conn: AsyncConnection, recovery: PendingAlert) -> Told:
    """What became of the problem alerts due to the notifier before ``recovery``."""
    query = select(alert_outbox.c.status).where(
        alert_outbox.c.incident_id == recovery.incident_id,
        alert_outbox.c.notifier == recovery.notifier,
        alert_outbox.c.event.in_(_TOLD_OF),
        alert_outbox.c.due_at <= recovery.due_at,
    )
    statuses = set((await conn.execute(query)).scalars())
    if statuses & set(_OPEN):
        return Told.PENDING
    return Told.SENT if Status.SENT in statuses else Told.NOTHING


async def _settle(conn: AsyncConnection, one: Settle) -> None:
    row = alert_outbox.c
    values: dict[str, Any] = {"status": one.status.value}
    if one.status is Status.SENT:
        values |= {"sent_at": one.at, "attempts": row.attempts + 1}
    elif one.status in (Status.PENDING, Status.FAILED):
        values |= {"attempts": row.attempts + 1, "last_error": one.error}
        if one.next_try_at is not None:
            values["next_try_at"] = one.next_try_at
    elif one.error is not None:
        values["last_error"] = one.error
    change = update(alert_outbox).where(row.id == one.id, row.status.in_(_OPEN)).values(values)
    done = await conn.execute(change)
    if done.rowcount and one.reminder_at is not None:
        await _remind(conn, one.id, one.reminder_at)


async def _remind(conn: AsyncConnection, sent_id: int, at: datetime) -> None:
    """Queue the next reminder of the alert ``sent_id`` at ``at``, unless one is queued."""
    sent = (await conn.execute(select(alert_outbox).where(alert_outbox.c.id == sent_id))).one()
    chain = (
        alert_outbox.c.incident_id == sent.incident_id,
        alert_outbox.c.notifier == sent.notifier,
        alert_outbox.c.event == Event.REMINDER.value,
    )
    if await conn.scalar(select(func.count()).where(*chain, alert_outbox.c.status.in_(_OPEN))):
        return
    seq = (await conn.scalar(select(func.max(alert_outbox.c.seq)).where(*chain))) or 0
    row = {
        "incident_id": sent.incident_id,
        "notifier": sent.notifier,
        "event": Event.REMINDER.value,
        "seq": seq + 1,
        "due_at": at,
        "created_at": sent.sent_at,
        "status": Status.PENDING.value,
        "attempts": 0,
        "next_try_at": at,
        "facts": facts.to_json(facts.reminder_of(facts.from_json(sent.facts), at)),
    }
    insert = postgresql.insert if conn.dialect.name == "postgresql" else sqlite.insert
    keys = ["incident_id", "event", "notifier", "seq"]
    await conn.execute(insert(alert_outbox).on_conflict_do_nothing(index_elements=keys), row)
