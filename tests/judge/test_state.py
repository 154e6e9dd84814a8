"""The state machine and incidents, on synthetic series with ``now`` passed in.

A series is a string, one letter a round 60 s apart: ``U`` up, ``G`` degraded, ``D`` down,
``M`` down inside maintenance, ``m`` up inside maintenance.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from monitor.judge.diagnose import Diagnosis, Layer, Verdict
from monitor.judge.incidents import IncidentChange, OpenIncident, follow
from monitor.judge.maintenance import Window
from monitor.judge.state import Health, MonitorState, Observation, Policy, State, _fold, step
from monitor.models import Cause

T0 = datetime(2026, 11, 20, 12, 0, tzinfo=UTC)
ROUND = timedelta(seconds=60)
NO_CONFIRM = Policy(confirm=False)
LETTERS = {
    "U": (Health.UP, False),
    "G": (Health.DEGRADED, False),
    "D": (Health.DOWN, False),
    "M": (Health.DOWN, True),
    "m": (Health.UP, True),
}
SHORT = {State.UP: "U", State.DEGRADED: "G", State.DOWN: "D", State.MAINTENANCE: "M"}
SHORT[State.UNKNOWN] = "?"
_DIAGNOSES = {
    Health.UP: Diagnosis(Verdict.UP, Cause.OK, Layer.NONE, "every probe answered", ""),
    Health.DEGRADED: Diagnosis(
        Verdict.DEGRADED, Cause.CONNECT_REFUSED, Layer.ORIGIN, "origin a fails", "start it"
    ),
    Health.DOWN: Diagnosis(
        Verdict.ORIGIN_FAULT, Cause.CONNECT_REFUSED, Layer.ORIGIN, "origin a refuses", "start it"
    ),
}


@dataclass
class Run:
    """What feeding a series produced."""

    states: str = ""
    changes: list[IncidentChange] = field(default_factory=list)
    confirms: int = 0
    final: MonitorState = field(default_factory=MonitorState)
    incident: OpenIncident | None = None

    @property
    def opened(self) -> int:
        return sum(c.opens for c in self.changes)

    @property
    def closed(self) -> int:
        return sum(c.closes for c in self.changes)

    @property
    def events(self) -> list[str]:
        return [e.event for c in self.changes for e in c.entries if e.event]


def feed(
    series: str,
    policy: Policy = NO_CONFIRM,
    state: MonitorState | None = None,
    incident: OpenIncident | None = None,
    confirm_with: str | None = None,
    start: datetime = T0,
) -> Run:
    """Feed ``series``; when the machine asks for a re-check, the letter at the same place
    in ``confirm_with`` (or the same letter) is the re-check's result."""
    run = Run(final=state or MonitorState(), incident=incident)
    for index, letter in enumerate(series):
        now = start + index * ROUND
        run = _one(run, letter, now, policy, confirmation=False)
        if run.states.endswith("c"):
            again = (confirm_with or series)[index]
            run.states = run.states[:-1]
            run = _one(run, again, now + timedelta(seconds=1), policy, confirmation=True)
    return run


def _one(run: Run, letter: str, now: datetime, policy: Policy, confirmation: bool) -> Run:
    health, maintenance = LETTERS[letter]
    seen = Observation(now, health, maintenance, confirmation)
    stepped = step(run.final, seen, policy)
    change = follow(run.incident, stepped, _DIAGNOSES[health], now)
    if change is not None:
        run.changes.append(change)
        run.incident = None if change.closes else change.incident
    run.final = stepped.state
    if stepped.confirm:
        run.confirms += 1
        run.states += "c"
    else:
        run.states += SHORT[stepped.state.state]
    return run


@pytest.mark.parametrize(
    ("policy", "series", "states"),
    [
        pytest.param(NO_CONFIRM, "UUDDDUU", "UUUUDDU", id="three-down-then-two-up"),
        pytest.param(NO_CONFIRM, "UUDDUDDU", "UUUUUUUU", id="never-three-in-a-row"),
        pytest.param(NO_CONFIRM, "DDDD", "??DD", id="new-site-failing-from-the-start"),
        pytest.param(NO_CONFIRM, "UDDDUDUU", "UUUDDDDU", id="recovery-needs-two-in-a-row"),
        pytest.param(
            Policy(confirm=False, failure_threshold=1, recovery_threshold=1),
            "UDUD",
            "UDUD",
            id="hair-trigger",
        ),
        pytest.param(
            Policy(confirm=False, failure_threshold=3, failure_window=5),
            "UDUDUDU",
            "UUUUUDD",
            id="three-of-the-last-five",
        ),
        pytest.param(
            Policy(confirm=False, failure_threshold=3, failure_window=5),
            "UDUUDUUD",
            "UUUUUUUU",
            id="two-of-five-is-not-enough",
        ),
        pytest.param(
            Policy(confirm=False, recovery_threshold=3), "DDDUUUU", "??DDDUU", id="recover-in-three"
        ),
        pytest.param(NO_CONFIRM, "UGGGUU", "UUUGGU", id="degraded-after-three-bad"),
        pytest.param(NO_CONFIRM, "UGDGU", "UUUGG", id="bad-rounds-mixed-make-degraded"),
        pytest.param(NO_CONFIRM, "UGGGDDD", "UUUGGGD", id="degraded-then-down"),
        pytest.param(NO_CONFIRM, "DDDGGU", "??DDGG", id="down-to-degraded-when-down-ends"),
        pytest.param(NO_CONFIRM, "UUMMMU", "UUMMMU", id="maintenance-shown-while-inside"),
        pytest.param(NO_CONFIRM, "UMMMMD", "UMMMMD", id="down-the-moment-maintenance-ends"),
        pytest.param(NO_CONFIRM, "UmmU", "UMMU", id="maintenance-while-up"),
    ],
)
def test_thresholds(policy: Policy, series: str, states: str) -> None:
    assert feed(series, policy).states == states


def test_a_failure_of_an_up_site_is_rechecked_and_a_blip_never_counts() -> None:
    policy = Policy()  # confirm on
    series = "U" * 10 + "D" + "U" * 10 + "D" + "U" * 10
    run = feed(series, policy, confirm_with="U" * len(series))
    assert run.confirms == 2
    assert run.states == "U" * len(series)
    assert run.opened == 0


def test_failing_one_round_in_three_is_flapping_even_when_rechecks_pass() -> None:
    run = feed("UUD" * 10, Policy(), confirm_with="U" * 30)
    assert run.states == "U" * 30
    assert run.events == ["flapping"]


def test_a_confirmed_outage_goes_down_after_the_threshold() -> None:
    run = feed("UDDDDU", Policy(), confirm_with="UDDDDU")
    # Rounds 2-4 each failed twice (round, re-check): only the re-checks count.
    assert run.confirms == 3
    assert run.states == "UUUDDD"
    assert run.events == ["down"]


def test_no_recheck_once_the_site_is_down() -> None:
    run = feed("DDDDD", Policy())
    assert run.confirms == 0  # unknown, then down: nothing to confirm


@pytest.mark.parametrize(
    ("policy", "confirm_with"),
    [
        pytest.param(NO_CONFIRM, None, id="round-by-round"),
        pytest.param(Policy(), "U" * 100, id="rechecks-pass"),
        pytest.param(
            Policy(confirm=False, failure_window=4, failure_threshold=2), None, id="k-of-n"
        ),
    ],
)
def test_alternating_200_and_503_is_one_incident(policy: Policy, confirm_with: str | None) -> None:
    run = feed("UD" * 50, policy, confirm_with=confirm_with)
    assert run.opened == 1
    assert run.closed == 0
    assert "flapping" in run.events or run.events == ["down"]


def test_flapping_holds_then_closes_once_it_calms_down() -> None:
    run = feed("UD" * 10 + "U" * 30, NO_CONFIRM)
    assert run.opened == 1
    assert run.closed == 1
    kinds = [e.kind for c in run.changes for e in c.entries]
    assert kinds[0] == "opened"
    assert kinds[-2:] == ["calm", "closed"]
    assert run.events == ["flapping"]
    assert not run.final.flapping


def test_hair_trigger_flapping_is_held_after_a_few_incidents() -> None:
    policy = Policy(confirm=False, failure_threshold=1, recovery_threshold=1)
    run = feed("UD" * 50, policy)
    # Before the flapping rule can know, each change is an incident; then it holds.
    assert run.opened <= policy.flap_threshold // 2 + 1
    assert run.incident is not None
    assert run.incident.flapping


def test_incident_timeline_opens_appends_and_closes_with_duration() -> None:
    run = feed("UUUGGGDDDUUU", NO_CONFIRM)
    assert run.opened == 1
    assert run.closed == 1
    entries = [e for c in run.changes for e in c.entries]
    assert [(e.kind, e.event, e.state) for e in entries] == [
        ("opened", "degraded", State.DEGRADED),
        ("changed", "down", State.DOWN),
        ("changed", "recovered", State.UP),
        ("closed", None, State.UP),
    ]
    opened = run.changes[0].incident.opened_at
    assert opened == T0 + 5 * ROUND
    assert entries[-1].time - opened == 5 * ROUND
    assert entries[0].diagnosis.cause is Cause.CONNECT_REFUSED


def test_no_incident_inside_maintenance_and_one_when_it_ends_still_down() -> None:
    run = feed("UUMMMMMMDDUU", NO_CONFIRM)
    assert run.opened == 1
    assert run.changes[0].incident.opened_at == T0 + 8 * ROUND
    assert run.events == ["down", "recovered"]


def test_a_restart_takes_the_recovery_at_once_and_reopens_nothing() -> None:
    before = feed("UDDD", NO_CONFIRM)
    assert before.incident is not None
    restored = MonitorState.restore(before.final.to_json())
    after = feed("U", Policy(), state=restored, incident=before.incident, start=T0 + 60 * ROUND)
    assert after.states == "U"
    assert after.opened == 0
    assert after.closed == 1
    closing = after.changes[0].entries[-1]
    assert closing.time - before.incident.opened_at == (60 - 3) * ROUND


def test_a_restart_while_still_down_keeps_the_same_incident() -> None:
    before = feed("UDDD", NO_CONFIRM)
    restored = MonitorState.restore(before.final.to_json())
    after = feed("DDUU", Policy(), state=restored, incident=before.incident, start=T0 + 9 * ROUND)
    assert after.states == "DDDU"
    assert after.opened == 0
    assert after.closed == 1


def test_restore_refuses_malformed_state() -> None:
    with pytest.raises(ValueError, match="malformed"):
        MonitorState.restore({"health_state": "up"})


PARIS = ZoneInfo("Europe/Paris")
# Every night 23:30 Paris time, for three hours: crosses midnight.
NIGHTLY = Window(cron="30 23 * * *", duration=3 * 3600, timezone="Europe/Paris")


@pytest.mark.parametrize(
    ("start", "inside"),
    [
        # A plain night: 23:30 CET is 22:30 UTC; the window ends at 01:30 UTC.
        pytest.param(datetime(2026, 11, 20, 22, 0, tzinfo=UTC), (30, 210), id="plain-night"),
        # Summer time ends (25 Oct 2026, 03:00 CEST -> 02:00 CET): 23:30 CEST is 21:30 UTC.
        pytest.param(datetime(2026, 10, 24, 21, 0, tzinfo=UTC), (30, 210), id="clocks-go-back"),
        # Summer time starts (29 Mar 2026, 02:00 CET -> 03:00 CEST): 23:30 CET is 22:30 UTC.
        pytest.param(datetime(2026, 3, 28, 22, 0, tzinfo=UTC), (30, 210), id="clocks-go-forward"),
    ],
)
def test_a_nightly_window_across_midnight_and_dst_pages_nothing(
    start: datetime, inside: tuple[int, int]
) -> None:
    """Down from 10 minutes into the window to its end and on: no incident until the
    window is over, then one at once (maintenance computed the state all along)."""
    minutes = range(0, 240, 1)
    series = ""
    for minute in minutes:
        now = start + timedelta(minutes=minute)
        in_window = NIGHTLY.active(now)
        assert in_window == (inside[0] <= minute < inside[1]), now
        down = minute >= inside[0] + 10
        series += ("M" if down else "m") if in_window else ("D" if down else "U")
    run = feed(series, NO_CONFIRM, start=start)
    assert run.opened == 1
    assert run.changes[0].incident.opened_at == start + inside[1] * ROUND
    assert run.events == ["down"]


def test_states_are_bounded_however_long_the_series() -> None:
    run = feed("UD" * 500, NO_CONFIRM)
    assert len(run.final.recent) <= NO_CONFIRM.kept
    assert len(run.final.flips) <= NO_CONFIRM.flap_threshold + 1


# -- properties -------------------------------------------------------------------------

outage = st.integers(min_value=3, max_value=12).map(lambda n: "D" * n)
healthy = st.tuples(st.integers(min_value=3, max_value=40), st.booleans()).map(
    lambda t: "U" * t[0] if not t[1] else "U" * (t[0] // 2) + "D" + "U" * (t[0] - t[0] // 2 + 2)
)


@settings(max_examples=200, deadline=None)
@given(st.lists(st.tuples(healthy, outage), min_size=1, max_size=6), st.booleans())
def test_incidents_never_outnumber_genuine_outages(
    segments: list[tuple[str, str]], confirm: bool
) -> None:
    """Healthy stretches (with at most one lost round, re-checked and passing) between
    genuine outages of three or more down rounds: never more incidents than outages."""
    series = "".join(a + b for a, b in segments) + "UUU"
    rechecks = series.replace("D", "U") if confirm else None
    if confirm:
        # A genuine outage fails its re-checks too; an isolated blip passes its re-check.
        rechecks = "".join(
            "D" if series[i] == "D" and _in_outage(series, i) else "U" for i in range(len(series))
        )
    run = feed(series, Policy(confirm=confirm), confirm_with=rechecks)
    assert run.opened <= len(segments)


def _in_outage(series: str, index: int) -> bool:
    start = index
    while start > 0 and series[start - 1] == "D":
        start -= 1
    end = index
    while end + 1 < len(series) and series[end + 1] == "D":
        end += 1
    return end - start + 1 >= 3


@settings(max_examples=100, deadline=None)
@given(st.text(alphabet="UGDMm", max_size=80), st.integers(1, 4), st.integers(1, 3))
def test_states_are_a_pure_function_of_the_input(series: str, fail: int, recover: int) -> None:
    policy = Policy(confirm=False, failure_threshold=fail, recovery_threshold=recover)
    first, second = feed(series, policy), feed(series, policy)
    assert first.states == second.states
    assert first.final == second.final
    assert [c.entries for c in first.changes] == [c.entries for c in second.changes]
    assert first.opened - first.closed in (0, 1)


_HEALTHS = st.sampled_from(list(Health))
_STATES = st.builds(
    MonitorState,
    health_state=st.sampled_from(list(State)),
    maintenance=st.booleans(),
    recent=st.lists(_HEALTHS, max_size=5).map(tuple),
    last_seen=st.none() | _HEALTHS,
    flips=st.lists(st.integers(0, 900).map(lambda s: T0 - timedelta(seconds=s)), max_size=2)
    .map(sorted)
    .map(tuple),
    flapping=st.booleans(),
    restored=st.booleans(),
)
_POLICIES = st.builds(
    Policy,
    failure_threshold=st.integers(1, 4),
    recovery_threshold=st.integers(1, 3),
    failure_window=st.none() | st.integers(1, 5),
    confirm=st.booleans(),
)


_STEADY = MonitorState(State.UP, last_seen=Health.UP)
_ONE_OFF: dict[str, dict[str, Any]] = {  # a steady state with one thing different
    "nothing": {},
    "maintenance": {"maintenance": True},
    "restored": {"restored": True},
    "flapping": {"flapping": True},
    "a flip": {"flips": (T0 - ROUND,)},
    "a flip leaving the flap window": {"flips": (T0 - 11 * ROUND,)},
    "degraded before": {"recent_last": Health.DEGRADED},
    "fewer rounds": {"recent_short": True},
    "last seen down": {"last_seen": Health.DOWN},
    "degraded now": {"health_state": State.DEGRADED},
}


def _near_steady(policy: Policy, off: str) -> MonitorState:
    change = dict(_ONE_OFF[off])
    recent = [Health.UP] * policy.kept
    if change.pop("recent_last", None):
        recent[-1] = Health.DEGRADED
    if change.pop("recent_short", None):
        recent = recent[1:]
    return replace(_STEADY, recent=tuple(recent), **change)


@st.composite
def _state_and_policy(draw: st.DrawFn) -> tuple[MonitorState, Policy]:
    policy = draw(_POLICIES)
    if draw(st.booleans()):
        return _near_steady(policy, draw(st.sampled_from(list(_ONE_OFF)))), policy
    return draw(_STATES), policy


@settings(max_examples=1500, deadline=None)
@given(_state_and_policy(), _HEALTHS, st.booleans(), st.booleans())
def test_the_steady_shortcut_gives_what_the_full_fold_gives(
    state_and_policy: tuple[MonitorState, Policy],
    health: Health,
    maintenance: bool,
    confirmation: bool,
) -> None:
    """``step`` skips the fold for an up monitor seeing up again; it must never change a
    result: random states, and steady ones with one thing different."""
    state, policy = state_and_policy
    seen = Observation(T0, health, maintenance, confirmation)
    assert step(state, seen, policy) == _fold(state, seen, policy)
