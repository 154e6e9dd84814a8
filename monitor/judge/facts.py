"""Pure: what an alert says, taken from an incident's timeline entry, and its JSON form.

The facts are stored with each outbox row, so a restart (or a config change) never changes
what an alert that was already queued says.
"""

from __future__ import annotations

import json
from dataclasses import replace
from datetime import datetime
from typing import Any

from monitor.judge.alerting import AlertFacts, Event
from monitor.judge.incidents import Entry


def facts_of(monitor: str, entry: Entry, opened_at: datetime) -> AlertFacts:
    """The facts of ``entry`` (which stands for an alert event) of an incident opened then."""
    if entry.event is None:
        raise ValueError(f"entry {entry.kind!r} at {entry.time} stands for no alert")
    event = Event(entry.event)
    diagnosis = entry.diagnosis
    return AlertFacts(
        monitor=monitor,
        event=event,
        state=entry.state.value,
        verdict=diagnosis.verdict.value,
        cause=diagnosis.cause.value,
        layer=diagnosis.layer.value,
        summary=diagnosis.summary,
        hint=diagnosis.hint,
        evidence=diagnosis.evidence,
        timings=entry.timings,
        addresses=entry.addresses,
        opened_at=opened_at,
        time=entry.time,
        closed_at=entry.time if event is Event.RECOVERED else None,
    )


def reminder_of(facts: AlertFacts, time: datetime) -> AlertFacts:
    """The facts of a reminder, due at ``time``, of the alert ``facts`` describe."""
    return replace(facts, event=Event.REMINDER, time=time)


def to_json(facts: AlertFacts) -> str:
    data: dict[str, Any] = {
        "monitor": facts.monitor,
        "event": facts.event.value,
        "state": facts.state,
        "verdict": facts.verdict,
        "cause": facts.cause,
        "layer": facts.layer,
        "summary": facts.summary,
        "hint": facts.hint,
        "evidence": list(facts.evidence),
        "timings": list(facts.timings),
        "addresses": list(facts.addresses),
        "opened_at": facts.opened_at.isoformat(),
        "time": facts.time.isoformat(),
        "closed_at": None if facts.closed_at is None else facts.closed_at.isoformat(),
    }
    return json.dumps(data, ensure_ascii=False)


def from_json(text: str) -> AlertFacts:
    data = json.loads(text)
    closed = data["closed_at"]
    return AlertFacts(
        monitor=data["monitor"],
        event=Event(data["event"]),
        state=data["state"],
        verdict=data["verdict"],
        cause=data["cause"],
        layer=data["layer"],
        summary=data["summary"],
        hint=data["hint"],
        evidence=tuple(data["evidence"]),
        timings=tuple(data["timings"]),
        addresses=tuple(data["addresses"]),
        opened_at=datetime.fromisoformat(data["opened_at"]),
        time=datetime.fromisoformat(data["time"]),
        closed_at=None if closed is None else datetime.fromisoformat(closed),
    )
