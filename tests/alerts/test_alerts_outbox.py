"""The outbox on SQLite and a real PostgreSQL: rows written with their incident entries,
due when due, settled once, reminders chained."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from sqlalchemy import select

from monitor.alerts.outbox import Outbox, Outlook, Settle, Status
from monitor.judge.alerting import Event, Route
from monitor.judge.diagnose import Diagnosis, Layer, Verdict
from monitor.judge.incidents import Entry, IncidentChange, OpenIncident
from monitor.judge.routing import Told, routed
from monitor.judge.state import Health, MonitorState, State
from monitor.judge.tracker import StateRecord
from monitor.models import Cause
from monitor.store import SqlStore
from monitor.store.tables import alert_outbox, incident_events

T0 = datetime(2026, 11, 21, 9, 0, tzinfo=UTC)
MIN = timedelta(minutes=1)
SEC = timedelta(seconds=1)
ROUTES = (
    Route(notify=("chat",), reminder=1800.0),
    Route(notify=("pager",), events=(Event.DOWN, Event.RECOVERED), after=600.0),
)
DOWN = Diagnosis(
    Verdict.ORIGIN_FAULT,
    Cause.CONNECT_REFUSED,
    Layer.ORIGIN,
    "origin a fails (connection refused), so the edge fails too",
    "origin a: start it",
)
UP = Diagnosis(Verdict.UP, Cause.OK, Layer.NONE, "every probe answered as expected", "")


def down_at(time: datetime) -> StateRecord:
    state = MonitorState(State.DOWN, since=time, recent=(Health.DOWN,), last_seen=Health.DOWN)
    change = IncidentChange(
        OpenIncident(time, State.DOWN), (Entry(time, "opened", State.DOWN, "down", DOWN),), True
    )
    return StateRecord("shop", time, state, change, routed("shop", change, ROUTES))


def up_at(time: datetime, opened: datetime) -> StateRecord:
    state = MonitorState(State.UP, since=time, recent=(Health.UP,), last_seen=Health.UP)
    entries = (
        Entry(time, "changed", State.UP, "recovered", UP),
        Entry(time, "closed", State.UP, None, UP),
    )
    change = IncidentChange(OpenIncident(opened, State.DOWN), entries, closes=True)
    return StateRecord("shop", time, state, change, routed("shop", change, ROUTES))


async def rows(store: SqlStore) -> list[tuple[str, str, int, str]]:
    query = select(alert_outbox.c.notifier, alert_outbox.c.event, alert_outbox.c.seq)
    query = query.add_columns(alert_outbox.c.status).order_by(alert_outbox.c.id)
    async with store.transaction("test") as conn:
        return [tuple(row) for row in (await conn.execute(query)).all()]


async def test_alerts_are_stored_with_their_entry_and_a_repeated_write_adds_none(
    store: SqlStore,
) -> None:
    record = down_at(T0)
    await store.write_states([record])
    await store.write_states([record])  # as after a commit whose reply was lost
    assert await rows(store) == [("chat", "down", 1, "pending"), ("pager", "down", 1, "pending")]
    async with store.transaction("test") as conn:
        entries = (await conn.execute(select(incident_events.c.seq))).scalars().all()
    assert entries == [1]


async def test_due_rows_and_escalation_then_sent_once_with_a_reminder(store: SqlStore) -> None:
    outbox = Outbox(store)
    await store.write_states([down_at(T0)])
    [due] = await outbox.due(T0, with_held=False)  # the pager's turn comes at T0 + 10 min
    assert (due.alert.notifier, due.alert.event, due.closed_at, due.still_down) == (
        "chat",
        Event.DOWN,
        None,
        True,
    )
    assert due.alert.facts.summary == DOWN.summary
    sent = Settle(due.alert.id, Status.SENT, T0, reminder_at=T0 + 30 * MIN)
    await outbox.settle([sent])
    await outbox.settle([sent])  # settling twice changes nothing
    assert [d.alert.notifier for d in await outbox.due(T0 + 10 * MIN, with_held=False)] == ["pager"]
    reminders = [d.alert for d in await outbox.due(T0 + 30 * MIN, with_held=False)]
    assert [(a.notifier, a.event, a.seq) for a in reminders] == [
        ("pager", Event.DOWN, 1),
        ("chat", Event.REMINDER, 1),
    ]
    assert reminders[1].facts.time == T0 + 30 * MIN
    # the pager's first page (due at T0 + 10 min, now past) and the chat's next reminder
    assert await outbox.outlook() == Outlook(2, False, T0 + 10 * MIN)
    again = Settle(reminders[1].id, Status.SENT, T0 + 30 * MIN, reminder_at=T0 + 60 * MIN)
    await outbox.settle([again])
    assert ("chat", "reminder", 2, "pending") in await rows(store)


async def test_a_retry_waits_its_backoff_and_counts_attempts(store: SqlStore) -> None:
    outbox = Outbox(store)
    await store.write_states([down_at(T0)])
    [due] = await outbox.due(T0, with_held=False)
    retry = Settle(due.alert.id, Status.PENDING, T0, "500", next_try_at=T0 + 5 * SEC)
    await outbox.settle([retry])
    assert await outbox.due(T0 + 4 * SEC, with_held=False) == []
    [again] = await outbox.due(T0 + 5 * SEC, with_held=False)
    assert again.alert.attempts == 1
    await outbox.settle([Settle(due.alert.id, Status.FAILED, T0 + MIN, "gave up")])
    assert await outbox.outlook() == Outlook(1, False, T0 + 10 * MIN)  # the pager's row


async def test_a_recovery_waits_for_the_problem_alert_and_knows_if_it_was_told(
    store: SqlStore,
) -> None:
    outbox = Outbox(store)
    await store.write_states([down_at(T0)])
    await store.write_states([up_at(T0 + 15 * MIN, T0)])
    due = {
        (d.alert.notifier, d.alert.event): d
        for d in await outbox.due(T0 + 15 * MIN, with_held=False)
    }
    assert due["chat", Event.RECOVERED].told is Told.PENDING
    assert due["pager", Event.RECOVERED].told is Told.PENDING
    assert due["chat", Event.DOWN].closed_at == T0 + 15 * MIN
    await outbox.settle(
        [
            Settle(due["chat", Event.DOWN].alert.id, Status.SENT, T0 + 15 * MIN),
            Settle(due["pager", Event.DOWN].alert.id, Status.HELD, T0 + 15 * MIN),
        ]
    )
    after = {
        (d.alert.notifier, d.alert.event): d
        for d in await outbox.due(T0 + 15 * MIN, with_held=False)
    }
    assert after["chat", Event.RECOVERED].told is Told.SENT
    assert after["pager", Event.RECOVERED].told is Told.PENDING  # held is not settled yet
    assert ("pager", Event.DOWN) not in after
    held = await outbox.due(T0 + 15 * MIN, with_held=True)
    assert [d.held for d in held if d.alert.event is Event.DOWN] == [True]
    outlook = await outbox.outlook()
    assert (outlook.unsettled, outlook.held) == (3, True)  # two recoveries pending, a page held
    assert outlook.next_try_at == min(d.alert.due_at for d in after.values())
