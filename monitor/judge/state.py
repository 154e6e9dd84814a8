"""Pure: the per-monitor state machine. Rounds' health in, state and transitions out.

Each round of a monitor is observed as ``up``, ``degraded`` or ``down`` (from its
diagnosis and latency trend), and as inside maintenance or not. ``step`` folds one
observation into the monitor's state:

- leaving ``up`` takes ``failure_threshold`` bad rounds (in a row, or among the last
  ``failure_window`` rounds when that is set); ``down`` when that many were down,
  ``degraded`` when they were bad but not that many down;
- coming back takes ``recovery_threshold`` passing rounds in a row;
- when an ``up`` monitor first fails, ``confirm`` asks for an immediate re-check and the
  failed round is not counted: only the re-check is, so one lost packet is no failing round;
- flapping: more than ``flap_threshold`` changes of observed health within ``flap_window``
  seconds raise the ``flapping`` flag; it drops when the window holds no more than half
  that many changes (hysteresis, so it does not flap itself);
- inside a maintenance window (or while the site announces maintenance with 503 and
  Retry-After) the state shown is ``maintenance``, but the health underneath is still
  computed, so the state is right the moment the window ends;
- a state restored after a restart is ``restored``: its history is gone, and the first
  counted round decides whether a ``down`` or ``degraded`` monitor recovered meanwhile;
  the first round after a maintenance window decides the same way, so a site back up as
  its window closes is not paged for what it did inside.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from enum import StrEnum


class State(StrEnum):
    UP = "up"
    DEGRADED = "degraded"
    DOWN = "down"
    MAINTENANCE = "maintenance"
    UNKNOWN = "unknown"  # no result yet


class Health(StrEnum):
    """What one round showed."""

    UP = "up"
    DEGRADED = "degraded"
    DOWN = "down"


@dataclass(frozen=True, slots=True)
class Policy:
    """The thresholds of the state machine; the config keys have the same names."""

    failure_threshold: int = 3
    recovery_threshold: int = 2
    failure_window: int | None = None  # None: failure_threshold bad rounds in a row
    confirm: bool = True
    flap_threshold: int = 5
    flap_window: float = 600.0  # seconds

    @property
    def window(self) -> int:
        """How many recent rounds the failure rule looks at."""
        return self.failure_window or self.failure_threshold

    @property
    def kept(self) -> int:
        """How many recent rounds the state keeps: enough for either rule."""
        return max(self.window, self.recovery_threshold)


@dataclass(frozen=True, slots=True)
class Observation:
    time: datetime
    health: Health
    maintenance: bool = False
    confirmation: bool = False  # the immediate re-check of a failed round


@dataclass(frozen=True, slots=True)
class MonitorState:
    health_state: State = State.UNKNOWN  # what the rounds say, maintenance or not
    since: datetime | None = None  # when ``state`` last changed
    maintenance: bool = False
    recent: tuple[Health, ...] = ()  # counted rounds, newest last, at most Policy.kept
    last_seen: Health | None = None  # the newest observation, counted or not
    flips: tuple[datetime, ...] = ()  # changes of observed health inside the flap window
    flapping: bool = False
    restored: bool = False  # loaded after a restart: the next counted round decides

    @property
    def state(self) -> State:
        return State.MAINTENANCE if self.maintenance else self.health_state

    def to_json(self) -> dict[str, object]:
        return {
            "health_state": self.health_state.value,
            "since": None if self.since is None else self.since.isoformat(),
            "maintenance": self.maintenance,
            "last_seen": None if self.last_seen is None else self.last_seen.value,
            "flips": [flip.isoformat() for flip in self.flips],
            "flapping": self.flapping,
        }

    @classmethod
    def restore(cls, data: Mapping[str, object]) -> MonitorState:
        """The state saved by ``to_json``, marked ``restored``; ValueError when malformed."""
        try:
            since, last_seen, flips = data["since"], data["last_seen"], data["flips"]
            return cls(
                health_state=State(str(data["health_state"])),
                since=None if since is None else datetime.fromisoformat(str(since)),
                maintenance=bool(data["maintenance"]),
                last_seen=None if last_seen is None else Health(str(last_seen)),
                flips=tuple(datetime.fromisoformat(str(f)) for f in _as_list(flips)),
                flapping=bool(data["flapping"]),
                restored=True,
            )
        except (KeyError, TypeError) as exc:
            raise ValueError(f"malformed monitor state: {exc!r}") from None


def _as_list(value: object) -> list[object]:
    if not isinstance(value, list):
        raise TypeError(f"expected a list, got {type(value).__name__}")
    return value


@dataclass(frozen=True, slots=True)
class Transition:
    time: datetime
    previous: State
    current: State


@dataclass(frozen=True, slots=True)
class Step:
    state: MonitorState
    transition: Transition | None = None
    confirm: bool = False  # re-check at once; this round was not counted
    flapping_started: bool = False
    flapping_ended: bool = False


def step(state: MonitorState, seen: Observation, policy: Policy) -> Step:
    """Fold one observation into ``state``."""
    if _steady(state, seen, policy):
        return Step(state)  # what _fold gives, without building it again (most rounds)
    return _fold(state, seen, policy)


def _steady(state: MonitorState, seen: Observation, policy: Policy) -> bool:
    """An up monitor whose kept rounds were all up, with no flips in the flap window and
    no maintenance, seeing up again: the fold changes nothing."""
    return (
        seen.health is Health.UP
        and not seen.maintenance
        and state.health_state is State.UP
        and state.last_seen is Health.UP
        and not (state.maintenance or state.restored or state.flapping or state.flips)
        and len(state.recent) == policy.kept
        and state.recent.count(Health.UP) == len(state.recent)
    )


def _fold(state: MonitorState, seen: Observation, policy: Policy) -> Step:
    flips = _flips(state, seen, policy)
    flapping = _flapping(state.flapping, len(flips), policy)
    noted = replace(state, last_seen=seen.health, flips=flips, flapping=flapping)
    started, ended = flapping and not state.flapping, state.flapping and not flapping
    if _needs_confirmation(state, seen, policy):
        return Step(noted, confirm=True, flapping_started=started, flapping_ended=ended)
    recent = (*state.recent, seen.health)[-policy.kept :]
    if state.restored or (state.maintenance and not seen.maintenance):
        health_state = _after_restart(state.health_state, seen.health, recent, policy)
    else:
        health_state = _decide(state.health_state, recent, policy)
    new = replace(
        noted,
        health_state=health_state,
        maintenance=seen.maintenance,
        recent=recent,
        restored=False,
    )
    transition = None
    if new.state is not state.state:
        new = replace(new, since=seen.time)
        transition = Transition(seen.time, state.state, new.state)
    return Step(new, transition, flapping_started=started, flapping_ended=ended)


def _needs_confirmation(state: MonitorState, seen: Observation, policy: Policy) -> bool:
    return (
        policy.confirm
        and not seen.confirmation
        and seen.health is not Health.UP
        and state.health_state is State.UP
    )


def _decide(current: State, recent: tuple[Health, ...], policy: Policy) -> State:
    window = recent[-policy.window :]
    downs = sum(h is Health.DOWN for h in window)
    bad = sum(h is not Health.UP for h in window)
    tail = recent[-policy.recovery_threshold :]
    full_tail = len(tail) == policy.recovery_threshold
    if downs >= policy.failure_threshold:
        return State.DOWN
    if current in (State.UP, State.UNKNOWN):
        if bad >= policy.failure_threshold:
            return State.DEGRADED
        return State.UP if recent[-1] is Health.UP else current
    if full_tail and all(h is Health.UP for h in tail):
        return State.UP
    if current is State.DOWN and full_tail and Health.DOWN not in tail:
        return State.DEGRADED
    return current


def _after_restart(
    current: State, health: Health, recent: tuple[Health, ...], policy: Policy
) -> State:
    """The first counted round after a restart or a maintenance window: a recovery that
    happened meanwhile is taken at once; anything worse goes through the usual thresholds."""
    better = {Health.UP: State.UP, Health.DEGRADED: State.DEGRADED}
    if current is State.DOWN and health in better:
        return better[health]
    if current is State.DEGRADED and health is Health.UP:
        return State.UP
    return _decide(current, recent, policy)


def _flips(state: MonitorState, seen: Observation, policy: Policy) -> tuple[datetime, ...]:
    horizon = seen.time - timedelta(seconds=policy.flap_window)
    flips = [flip for flip in state.flips if flip > horizon]
    if state.last_seen is not None and seen.health is not state.last_seen:
        flips.append(seen.time)
    # Only the count matters, up to one past the threshold: keep the state bounded.
    return tuple(flips[-(policy.flap_threshold + 1) :])


def _flapping(was: bool, changes: int, policy: Policy) -> bool:
    if not was:
        return changes > policy.flap_threshold
    return changes > policy.flap_threshold // 2
