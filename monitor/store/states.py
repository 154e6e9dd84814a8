"""Storing monitor states, incidents and latency baselines (SQL), on a connection given.

Incidents are found by their natural key (monitor, opened_at), so a write that is retried
after a failure finds what it wrote before instead of opening a second incident.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import RowMapping, func, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncConnection

from monitor.judge import facts
from monitor.judge.incidents import Entry, IncidentChange, OpenIncident
from monitor.judge.state import MonitorState, State
from monitor.judge.tracker import Baseline, SeriesKey, StateRecord, Tracked
from monitor.judge.trends import TrendState
from monitor.store.tables import (
    alert_outbox,
    incident_events,
    incidents,
    latency_baselines,
    monitor_states,
    monitors,
)


async def write_records(
    conn: AsyncConnection, records: Sequence[StateRecord], ids: dict[str, int]
) -> None:
    """Store the states of ``records`` (one statement for all: the first round of 100,000
    sites makes 100,000 of them) and the incident changes they carry, in order."""
    rows = [{"monitor_id": ids[record.monitor], **_state_values(record)} for record in records]
    if rows:
        values = [name for name in rows[0] if name != "monitor_id"]
        await conn.execute(_upsert(conn, monitor_states, ["monitor_id"], values), rows)
    for record in records:
        if record.change is not None:
            written = await _write_change(conn, record.change, ids[record.monitor])
            if written is not None:
                await _queue_alerts(conn, record, *written)


def _state_values(record: StateRecord) -> dict[str, Any]:
    state = record.state
    return {
        "state": state.state.value,
        "since": state.since,
        "flapping": state.flapping,
        "data": json.dumps(state.to_json()),
        "updated_at": record.time,
    }


async def _write_change(
    conn: AsyncConnection, change: IncidentChange, monitor_id: int
) -> tuple[int, int] | None:
    """Store the change; returns its incident's id and the seq before its first entry, or
    None when the change is stored already (a write repeated after a lost commit reply)."""
    incident_id = await _incident_id(conn, monitor_id, change.incident.opened_at)
    if incident_id is None:
        incident_id = await _open(conn, change, monitor_id)
    elif await _stored(conn, incident_id, change.entries[0]):
        return None
    elif change.incident.flapping:
        flag = update(incidents).where(incidents.c.id == incident_id).values(flapping=True)
        await conn.execute(flag)
    query = select(func.max(incident_events.c.seq)).where(
        incident_events.c.incident_id == incident_id
    )
    seq = (await conn.scalar(query)) or 0
    rows = [_entry_row(incident_id, seq + i, e) for i, e in enumerate(change.entries, 1)]
    await conn.execute(incident_events.insert(), rows)
    if change.closes:
        closed = change.entries[-1].time
        duration = (closed - change.incident.opened_at).total_seconds()
        done = update(incidents).where(incidents.c.id == incident_id)
        await conn.execute(done.values(closed_at=closed, duration_s=duration))
    return incident_id, seq


async def _queue_alerts(
    conn: AsyncConnection, record: StateRecord, incident_id: int, seq: int
) -> None:
    """Put the record's alerts in the outbox, in the transaction of their entries: each
    keyed by its entry's seq, so a write that is repeated cannot queue an alert twice."""
    if not record.alerts:
        return
    rows = [
        {
            "incident_id": incident_id,
            "notifier": alert.notifier,
            "event": alert.event.value,
            "seq": seq + 1 + alert.entry,
            "due_at": alert.due_at,
            "created_at": record.time,
            "status": "pending",
            "attempts": 0,
            "next_try_at": alert.due_at,
            "facts": facts.to_json(alert.facts),
        }
        for alert in record.alerts
    ]
    insert = postgresql.insert if conn.dialect.name == "postgresql" else sqlite.insert
    keys = ["incident_id", "event", "notifier", "seq"]
    await conn.execute(insert(alert_outbox).on_conflict_do_nothing(index_elements=keys), rows)


async def _stored(conn: AsyncConnection, incident_id: int, first: Entry) -> bool:
    """Whether the entry is in the timeline already: one round makes one entry of a kind."""
    query = select(incident_events.c.id).where(
        incident_events.c.incident_id == incident_id,
        incident_events.c.time == first.time,
        incident_events.c.kind == first.kind,
    )
    return (await conn.scalar(query.limit(1))) is not None


async def _incident_id(conn: AsyncConnection, monitor_id: int, opened_at: datetime) -> int | None:
    query = select(incidents.c.id).where(
        incidents.c.monitor_id == monitor_id, incidents.c.opened_at == opened_at
    )
    found: int | None = await conn.scalar(query)
    return found


async def _open(conn: AsyncConnection, change: IncidentChange, monitor_id: int) -> int:
    first = change.entries[0].diagnosis
    row = {
        "monitor_id": monitor_id,
        "opened_at": change.incident.opened_at,
        "state": change.incident.state.value,
        "flapping": change.incident.flapping,
        "verdict": first.verdict.value,
        "cause": first.cause.value,
        "layer": first.layer.value,
        "summary": first.summary,
        "hint": first.hint,
        "evidence": json.dumps(list(first.evidence), ensure_ascii=False),
    }
    inserted = await conn.execute(incidents.insert().returning(incidents.c.id), row)
    new_id: int = inserted.scalar_one()
    return new_id


def _entry_row(incident_id: int, seq: int, entry: Entry) -> dict[str, Any]:
    return {
        "incident_id": incident_id,
        "seq": seq,
        "time": entry.time,
        "kind": entry.kind,
        "state": entry.state.value,
        "event": entry.event,
        "verdict": entry.diagnosis.verdict.value,
        "cause": entry.diagnosis.cause.value,
        "summary": entry.diagnosis.summary,
    }


async def write_baselines(
    conn: AsyncConnection, baselines: Sequence[Baseline], ids: dict[str, int], now: datetime
) -> None:
    """Every baseline in one statement (100,000 sites have more than that)."""
    if not baselines:
        return
    keys = ["monitor_id", "role", "origin", "phase"]
    rows = [
        {
            "monitor_id": ids[baseline.monitor],
            **dict(zip(keys[1:], baseline.key, strict=True)),
            "data": json.dumps(baseline.state.to_json()),
            "updated_at": now,
        }
        for baseline in baselines
    ]
    upsert = _upsert(conn, latency_baselines, keys, ["data", "updated_at"])
    await conn.execute(upsert, rows)


async def load_tracked(conn: AsyncConnection, names: dict[int, str]) -> dict[str, Tracked]:
    """Every stored monitor's state, open incident and baselines, by monitor name."""
    states = {
        row["monitor_id"]: MonitorState.restore(json.loads(row["data"]))
        for row in (await conn.execute(select(monitor_states))).mappings()
    }
    open_rows = await conn.execute(select(incidents).where(incidents.c.closed_at.is_(None)))
    open_ = {row["monitor_id"]: _open_incident(row) for row in open_rows.mappings()}
    series: dict[int, dict[SeriesKey, TrendState]] = {}
    for row in (await conn.execute(select(latency_baselines))).mappings():
        key = (row["role"], row["origin"], row["phase"])
        series.setdefault(row["monitor_id"], {})[key] = TrendState.from_json(
            json.loads(row["data"])
        )
    tracked: dict[str, Tracked] = {}
    for monitor_id in states.keys() | open_.keys() | series.keys():
        if monitor_id in names:
            state = states.get(monitor_id) or MonitorState(restored=True)
            tracked[names[monitor_id]] = Tracked(
                state, open_.get(monitor_id), series.get(monitor_id, {})
            )
    return tracked


def _open_incident(row: RowMapping) -> OpenIncident:
    return OpenIncident(row["opened_at"], State(row["state"]), row["flapping"])


def _upsert(
    conn: AsyncConnection, table: Any, keys: list[str], values: Iterable[str]
) -> postgresql.Insert | sqlite.Insert:
    insert = postgresql.insert if conn.dialect.name == "postgresql" else sqlite.insert
    statement = insert(table)
    changed = {name: statement.excluded[name] for name in values}
    return statement.on_conflict_do_update(index_elements=keys, set_=changed)


async def fetch_incidents(conn: AsyncConnection, monitor: str) -> list[dict[str, Any]]:
    query = (
        select(incidents)
        .join(monitors)
        .where(monitors.c.name == monitor)
        .order_by(incidents.c.opened_at)
    )
    found = [dict(row) for row in (await conn.execute(query)).mappings()]
    for incident in found:
        events = select(incident_events).where(incident_events.c.incident_id == incident["id"])
        rows = await conn.execute(events.order_by(incident_events.c.seq))
        incident["events"] = [dict(row) for row in rows.mappings()]
        incident["evidence"] = json.loads(incident["evidence"])
    return found
