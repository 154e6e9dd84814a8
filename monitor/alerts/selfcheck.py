"""Pure: the daemon's own trouble, from vitals sampled by the runner.

Three problems, each alerted once when it starts and once when it ends (``active`` False),
never repeated while it lasts:

- ``store_unwritable``: the store has failed for at least ``store_grace`` seconds;
  resolved at the first healthy sample.
- ``missed_runs``: the scheduler's missed-runs counter rose by at least
  ``missed_runs_threshold`` within ``missed_runs_window`` seconds; resolved once a whole
  window passes without any rise.
- ``outbox_backlog``: the outbox's pending rows rose across the last ``backlog_samples``
  samples (kept at least ``backlog_spacing`` seconds apart) and the latest is above
  ``backlog_threshold``; a backlog that is high but flat is not a new problem. Resolved
  once pending is back to the threshold or below.

A counter that goes down (the daemon restarted) counts as no rise.

The monitor's own network is watched besides by the canary, a monitor of the config:
while it fails (``canary_failing``), site alerts are held back.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from itertools import pairwise

from monitor.alerts.content import human_duration
from monitor.judge.state import Health, State
from monitor.judge.tracker import Tracker

STORE, MISSED, BACKLOG = "store_unwritable", "missed_runs", "outbox_backlog"
_Rise = tuple[datetime, float]  # when the missed-runs counter rose, and by how much
_Sample = tuple[datetime, int]  # when, and how many rows were pending in the outbox


@dataclass(frozen=True, slots=True)
class SelfSettings:
    store_grace: float = 60.0  # seconds
    missed_runs_window: float = 300.0  # seconds
    missed_runs_threshold: float = 1.0  # runs
    backlog_threshold: int = 100  # pending rows
    backlog_samples: int = 3
    backlog_spacing: float = 60.0  # seconds between the samples compared


@dataclass(frozen=True, slots=True)
class Vitals:
    time: datetime
    store_healthy: bool
    store_error: str | None
    missed_runs_total: float
    outbox_pending: int


@dataclass(frozen=True, slots=True)
class SelfAlert:
    problem: str  # "store_unwritable" | "missed_runs" | "outbox_backlog"
    active: bool  # False: resolved
    title: str
    body: str


@dataclass(frozen=True, slots=True)
class SelfState:
    """What the next check needs of the past."""

    active: frozenset[str] = frozenset()  # the problems alerted and not yet resolved
    store_failing_since: datetime | None = None
    missed_runs_total: float = 0.0
    missed_rises: tuple[_Rise, ...] = ()  # within the window
    backlog: tuple[_Sample, ...] = ()  # the last samples, the spacing apart


def check(
    state: SelfState | None, vitals: Vitals, settings: SelfSettings
) -> tuple[SelfState, tuple[SelfAlert, ...]]:
    """The state after ``vitals``, and the alerts for problems that start or end with them."""
    before = state or SelfState(missed_runs_total=vitals.missed_runs_total)
    failing_since = None if vitals.store_healthy else before.store_failing_since or vitals.time
    rises = _rises(before, vitals, settings)
    backlog = _sampled(before.backlog, vitals, settings)
    found = (  # None: neither clearly on nor clearly off, so as it was
        _store(before.store_failing_since, vitals, settings),
        _missed(rises, settings),
        _backlog(backlog, vitals, settings),
    )
    changed = tuple(a for a in found if a is not None and a.active != (a.problem in before.active))
    on = {a.problem for a in changed if a.active}
    off = {a.problem for a in changed if not a.active}
    active = (before.active - off) | on
    after = SelfState(active, failing_since, vitals.missed_runs_total, rises, backlog)
    return after, changed


def _store(
    failing_since: datetime | None, vitals: Vitals, settings: SelfSettings
) -> SelfAlert | None:
    """On once the store has failed for the grace, off at the first healthy sample."""
    failing = (vitals.time - (failing_since or vitals.time)).total_seconds()
    if vitals.store_healthy:
        after = f" after failing for {human_duration(failing)}" if failing_since else ""
        body = f"the store works again{after}; results of that time may be missing"
        return SelfAlert(STORE, False, "[SELF] the store is writable again", body)
    if failing < settings.store_grace:
        return None
    body = (
        f"the store has failed for {human_duration(failing)}: "
        f"{vitals.store_error or 'no error given'}. Results, incidents and alerts are not "
        "being saved: check the database (is it up, its disk space, permissions and "
        "credentials)."
    )
    return SelfAlert(STORE, True, "[SELF] the monitor cannot write to its store", body)


def _rises(before: SelfState, vitals: Vitals, settings: SelfSettings) -> tuple[_Rise, ...]:
    """The rises of the missed-runs counter within the window, this sample's included."""
    start = vitals.time - timedelta(seconds=settings.missed_runs_window)
    kept = tuple(r for r in before.missed_rises if r[0] > start)
    rise = vitals.missed_runs_total - before.missed_runs_total
    return (*kept, (vitals.time, rise)) if rise > 0 else kept


def _missed(rises: tuple[_Rise, ...], settings: SelfSettings) -> SelfAlert | None:
    """On when the window's rises reach the threshold, off when the window has none."""
    missed = sum(by for _, by in rises)
    runs = f"{missed:g} check run{'' if missed == 1 else 's'}"
    window = human_duration(settings.missed_runs_window)
    if not rises:
        body = f"no scheduled check was missed in the last {window}"
        return SelfAlert(MISSED, False, "[SELF] checks run on time again", body)
    if missed < settings.missed_runs_threshold:
        return None
    body = (
        f"missed in the last {window}: {runs}. A run is missed when it starts late or is "
        "skipped because the previous one has not finished: check the host's CPU and load, "
        "and checks whose timeouts are longer than their interval."
    )
    return SelfAlert(MISSED, True, f"[SELF] the monitor missed {runs}", body)


def _sampled(
    kept: tuple[_Sample, ...], vitals: Vitals, settings: SelfSettings
) -> tuple[_Sample, ...]:
    """The last samples of outbox pending, at least the spacing apart."""
    if kept and (vitals.time - kept[-1][0]).total_seconds() < settings.backlog_spacing:
        return kept
    return (*kept, (vitals.time, vitals.outbox_pending))[-settings.backlog_samples :]


def _backlog(
    samples: tuple[_Sample, ...], vitals: Vitals, settings: SelfSettings
) -> SelfAlert | None:
    """On when pending rose across every sample kept to above the threshold; off at or
    below the threshold."""
    pending = vitals.outbox_pending
    if pending <= settings.backlog_threshold:
        body = f"{pending} alerts wait in the outbox now"
        return SelfAlert(BACKLOG, False, "[SELF] the alert outbox is draining again", body)
    counts = [n for _, n in samples]
    full = len(counts) == settings.backlog_samples
    if not full or any(a >= b for a, b in pairwise(counts)):
        return None
    span = human_duration((samples[-1][0] - samples[0][0]).total_seconds())
    body = (
        f"alerts are not getting out: pending rose {' → '.join(map(str, counts))} over {span}. "
        "Check the notifiers (URLs, credentials, their rate limits) and the network."
    )
    return SelfAlert(
        BACKLOG, True, f"[SELF] the alert outbox is backing up: {pending} pending", body
    )


def canary_failing(tracker: Tracker, monitor: str) -> bool:
    """Whether ``monitor`` (the canary) fails: it is not up, or its last round was not. So
    the canary holds pages back from its first failure, before the sites count as down."""
    state = tracker.get(monitor).state
    return state.state in _FAILING or state.last_seen in (Health.DOWN, Health.DEGRADED)


_FAILING = (State.DOWN, State.DEGRADED)
