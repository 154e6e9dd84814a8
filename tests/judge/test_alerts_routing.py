"""Routing, escalation and reminders, pure: every case gets its times passed in."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from monitor.judge import facts
from monitor.judge.alerting import Event, Route
from monitor.judge.diagnose import Diagnosis, Layer, Verdict
from monitor.judge.incidents import Entry, IncidentChange, OpenIncident
from monitor.judge.routing import (
    Disposition,
    Told,
    disposition,
    next_reminder,
    route,
    routed,
)
from monitor.judge.state import State
from monitor.models import Cause

T0 = datetime(2026, 11, 21, 9, 0, tzinfo=UTC)
MIN = timedelta(minutes=1)

SLACK = Route(
    notify=("ops-slack",),
    events=(Event.DOWN, Event.DEGRADED, Event.RECOVERED, Event.FLAPPING),
    reminder=1800.0,
)
ONCALL = Route(
    notify=("oncall",), events=(Event.DOWN, Event.RECOVERED), sites=("shop*",), after=600.0
)
HOOK = Route(notify=("hook",), events=(Event.DOWN,), sites=("blog",))
ISSUE = (SLACK, ONCALL, HOOK)  # the routes of the issue's example, plus a hook


@pytest.mark.parametrize(
    ("event", "monitor", "at", "expected"),
    [
        pytest.param(
            Event.DOWN,
            "shop",
            T0,
            [("ops-slack", T0), ("oncall", T0 + 10 * MIN)],
            id="down-now-and-escalated-at-opened+after",
        ),
        pytest.param(
            Event.DOWN,
            "shop-eu",
            T0 + 15 * MIN,
            [("ops-slack", T0 + 15 * MIN), ("oncall", T0 + 15 * MIN)],
            id="down-later-than-after-is-due-at-once",
        ),
        pytest.param(
            Event.DOWN, "blog", T0, [("hook", T0), ("ops-slack", T0)], id="a-name-not-a-glob"
        ),
        pytest.param(Event.DEGRADED, "shop", T0, [("ops-slack", T0)], id="events-filter-degraded"),
        pytest.param(Event.FLAPPING, "blog", T0, [("ops-slack", T0)], id="flapping"),
        pytest.param(
            Event.RECOVERED,
            "shop",
            T0 + 5 * MIN,
            [("ops-slack", T0 + 5 * MIN)],
            id="recovered-before-escalation-skips-oncall",
        ),
        pytest.param(
            Event.RECOVERED,
            "shop",
            T0 + 12 * MIN,
            [("ops-slack", T0 + 12 * MIN), ("oncall", T0 + 12 * MIN)],
            id="recovered-after-escalation-tells-oncall",
        ),
        pytest.param(
            Event.RECOVERED,
            "blog",
            T0 + MIN,
            [("ops-slack", T0 + MIN)],
            id="recovered-not-in-events-of-hook",
        ),
        pytest.param(Event.DOWN, "api", T0, [("ops-slack", T0)], id="no-glob-matches"),
    ],
)
def test_route(
    event: Event, monitor: str, at: datetime, expected: list[tuple[str, datetime]]
) -> None:
    got = route(event, monitor, T0, at, ISSUE)
    assert sorted(got) == sorted(expected)


def test_a_notifier_in_two_routes_is_due_at_the_earliest_and_once() -> None:
    late = Route(notify=("ops-slack",), after=300.0)
    assert route(Event.DOWN, "shop", T0, T0, (late, SLACK)) == [("ops-slack", T0)]


def test_recoveries_go_to_notifiers_told_of_the_problem_by_any_route() -> None:
    problems = Route(notify=("hook",), events=(Event.DOWN,), after=120.0)
    recoveries = Route(notify=("hook", "chat"), events=(Event.RECOVERED,))
    assert route(Event.RECOVERED, "shop", T0, T0 + MIN, (recoveries,)) == []
    assert route(Event.RECOVERED, "shop", T0, T0 + MIN, (problems, recoveries)) == []
    both = (problems, recoveries)
    assert route(Event.RECOVERED, "shop", T0, T0 + 3 * MIN, both) == [("hook", T0 + 3 * MIN)]


@pytest.mark.parametrize(
    ("event", "due", "closed", "still_down", "told", "expected"),
    [
        pytest.param(Event.DOWN, T0, None, True, Told.NOTHING, Disposition.SEND, id="down-open"),
        pytest.param(
            Event.DOWN,
            T0 + 10 * MIN,
            T0 + 5 * MIN,
            False,
            Told.NOTHING,
            Disposition.RESOLVED,
            id="escalation-after-close-is-resolved",
        ),
        pytest.param(
            Event.DOWN,
            T0,
            T0 + 5 * MIN,
            False,
            Told.NOTHING,
            Disposition.SEND,
            id="due-while-open-sent-however-late",
        ),
        pytest.param(
            Event.REMINDER,
            T0 + 30 * MIN,
            None,
            True,
            Told.NOTHING,
            Disposition.SEND,
            id="reminder-still-down",
        ),
        pytest.param(
            Event.REMINDER,
            T0 + 30 * MIN,
            None,
            False,
            Told.NOTHING,
            Disposition.RESOLVED,
            id="reminder-no-longer-down",
        ),
        pytest.param(
            Event.REMINDER,
            T0 + 30 * MIN,
            T0 + 20 * MIN,
            False,
            Told.NOTHING,
            Disposition.RESOLVED,
            id="reminder-after-close",
        ),
        pytest.param(
            Event.RECOVERED, T0, T0, False, Told.SENT, Disposition.SEND, id="recovered-told"
        ),
        pytest.param(
            Event.RECOVERED,
            T0,
            T0,
            False,
            Told.PENDING,
            Disposition.WAIT,
            id="recovered-waits-for-the-down",
        ),
        pytest.param(
            Event.RECOVERED,
            T0,
            T0,
            False,
            Told.NOTHING,
            Disposition.RESOLVED,
            id="recovered-never-told",
        ),
    ],
)
def test_disposition(
    event: Event,
    due: datetime,
    closed: datetime | None,
    still_down: bool,
    told: Told,
    expected: Disposition,
) -> None:
    assert disposition(event, due, closed, still_down, told) is expected


@pytest.mark.parametrize(
    ("event", "monitor", "notifier", "expected"),
    [
        pytest.param(Event.DOWN, "shop", "ops-slack", T0 + 30 * MIN, id="down-reminds"),
        pytest.param(Event.REMINDER, "shop", "ops-slack", T0 + 30 * MIN, id="reminder-repeats"),
        pytest.param(Event.DOWN, "shop", "oncall", None, id="route-without-reminder"),
        pytest.param(Event.DEGRADED, "shop", "ops-slack", None, id="only-down-reminds"),
        pytest.param(Event.RECOVERED, "shop", "ops-slack", None, id="never-after-recovery"),
    ],
)
def test_next_reminder(
    event: Event, monitor: str, notifier: str, expected: datetime | None
) -> None:
    assert next_reminder(event, monitor, notifier, T0, ISSUE) == expected


def test_the_shortest_reminder_of_the_routes_wins() -> None:
    often = Route(notify=("ops-slack",), events=(Event.DOWN,), reminder=300.0)
    assert next_reminder(Event.DOWN, "shop", "ops-slack", T0, (SLACK, often)) == T0 + 5 * MIN


DOWN = Diagnosis(
    Verdict.ORIGIN_FAULT,
    Cause.CONNECT_REFUSED,
    Layer.ORIGIN,
    "origin a fails (connection refused), so the edge fails too",
    "origin a: start it",
    ("edge: 503 [server: Varnish]",),
)
UP = Diagnosis(Verdict.UP, Cause.OK, Layer.NONE, "every probe answered as expected", "")


def test_each_entry_with_an_event_routes_with_its_facts() -> None:
    later = T0 + 7 * MIN
    change = IncidentChange(
        OpenIncident(T0, State.DOWN),
        (
            Entry(later, "changed", State.UP, "recovered", UP),
            Entry(later, "closed", State.UP, None, UP),
        ),
        closes=True,
    )
    [alert] = routed("shop", change, ISSUE)
    assert (alert.entry, alert.notifier, alert.event, alert.due_at) == (
        0,
        "ops-slack",
        Event.RECOVERED,
        later,
    )
    assert alert.facts.closed_at == later
    assert alert.facts.opened_at == T0


def test_facts_survive_their_json() -> None:
    entry = Entry(
        T0,
        "opened",
        State.DOWN,
        "down",
        DOWN,
        timings=("edge: 503; connect 1 ms, total 2 ms",),
        addresses=("127.0.0.9",),
    )
    told = facts.facts_of("shop", entry, T0)
    assert facts.from_json(facts.to_json(told)) == told
    assert told.addresses == ("127.0.0.9",)
    assert told.evidence == DOWN.evidence
    reminder = facts.reminder_of(told, T0 + 30 * MIN)
    assert (reminder.event, reminder.time, reminder.opened_at) == (
        Event.REMINDER,
        T0 + 30 * MIN,
        T0,
    )
