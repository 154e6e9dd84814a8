"""Pure: what a state machine step means for the monitor's incident.

A transition into ``down`` or ``degraded`` opens an incident carrying the round's verdict,
cause, layer and evidence; later transitions append to its timeline; recovery closes it
with its duration. While the monitor flaps, transitions only append: flapping opens one
incident (if none is open) and holds it open until the monitor calms down. Inside
maintenance nothing opens; a monitor still failing when its window ends opens one then.

Each timeline entry carries the alert event it stands for (``down``, ``degraded``,
``recovered``, ``flapping``), or none: alerting routes on those names.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from monitor.judge.diagnose import Diagnosis
from monitor.judge.state import State, Step


@dataclass(frozen=True, slots=True)
class OpenIncident:
    """The incident a monitor has open: enough to append to it and to close it."""

    opened_at: datetime
    state: State  # the state that opened it
    flapping: bool = False


@dataclass(frozen=True, slots=True)
class Entry:
    """One line of an incident's timeline."""

    time: datetime
    kind: str  # opened, changed, flapping, calm, closed
    state: State
    event: str | None  # the alert it stands for, or None
    diagnosis: Diagnosis
    timings: tuple[str, ...] = ()  # the round's phase timings, one line per probe
    addresses: tuple[str, ...] = ()  # where the failing probes connected (or tried to)


@dataclass(frozen=True, slots=True)
class IncidentChange:
    """What to store: the entries of this step, and whether they open or close it."""

    incident: OpenIncident  # the incident the entries belong to
    entries: tuple[Entry, ...]
    opens: bool = False
    closes: bool = False


_PROBLEMS = (State.DOWN, State.DEGRADED)


def follow(
    open_: OpenIncident | None, step: Step, diagnosis: Diagnosis, time: datetime
) -> IncidentChange | None:
    """The incident change ``step`` (of the round at ``time``) makes, or None."""
    state = step.state.state
    if open_ is None:
        return _maybe_open(step, state, time, diagnosis)
    entries: list[Entry] = []
    if step.flapping_started:
        entries.append(Entry(time, "flapping", state, "flapping", diagnosis))
    if step.transition is not None:
        event = _event(step.transition.previous, state) if not step.state.flapping else None
        entries.append(Entry(time, "changed", state, event, diagnosis))
    if step.flapping_ended:
        entries.append(Entry(time, "calm", state, None, diagnosis))
    if state is State.UP and not step.state.flapping and entries:
        entries[-1:] = [*entries[-1:], Entry(time, "closed", state, None, diagnosis)]
        return IncidentChange(open_, tuple(entries), closes=True)
    if not entries:
        return None
    flapping = open_.flapping or step.flapping_started
    return IncidentChange(OpenIncident(open_.opened_at, open_.state, flapping), tuple(entries))


def _maybe_open(
    step: Step, state: State, time: datetime, diagnosis: Diagnosis
) -> IncidentChange | None:
    if step.flapping_started:
        shown = state if state in _PROBLEMS else State.DOWN
        incident = OpenIncident(time, shown, flapping=True)
        entry = Entry(time, "opened", state, "flapping", diagnosis)
        return IncidentChange(incident, (entry,), opens=True)
    if step.transition is None or state not in _PROBLEMS:
        return None
    incident = OpenIncident(time, state)
    entry = Entry(time, "opened", state, state.value, diagnosis)
    return IncidentChange(incident, (entry,), opens=True)


def _event(previous: State, current: State) -> str | None:
    if current is State.UP:
        return "recovered"
    if current is State.DOWN:
        return "down"
    if current is State.DEGRADED and previous is not State.DOWN:
        return "degraded"
    return None
