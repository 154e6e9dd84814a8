"""Pure: when the delivery worker passes, reads the outbox, and tries a failed send again."""

from __future__ import annotations

from datetime import datetime, timedelta

from monitor.alerts.outbox import Outlook
from monitor.engine.scheduler import next_tick

POLL = 1.0  # seconds between passes when nothing wakes the worker (or the scheduler's tick)
# Seconds between looks at an outbox no other process writes, when nothing is due sooner.
# A look costs two queries at least; every second, that was half of an idle daemon's CPU.
LOOK_ALONE = 60.0
FIRST_RETRY = 5.0  # seconds after the first failed send; doubling, up to ...
MAX_RETRY = 600.0
EARLY = POLL / 10  # seconds: how early a pass may run (timer rounding)


def to_next_pass(now: float, every: float = POLL, look_at: float | None = None) -> float:
    """Seconds from ``now`` (Unix time) to the next pass when nothing wakes the worker: the
    next multiple of ``every``, where the scheduler's tick falls too (``every`` is the
    tick), so an idle daemon wakes once a tick instead of two or three times; a pass that
    ran just before that time counts as its. Sooner when the outbox is to be read sooner,
    at ``look_at`` (a row falls due: a retry, an escalation, a reminder)."""
    wait = next_tick(now, every) - now
    if wait < EARLY:
        wait += every
    if look_at is not None and 0 < look_at - now < wait:
        return look_at - now
    return wait


def retry_delay(attempts: int) -> float:
    """Seconds to wait after ``attempts`` failed sends: 5, 10, 20, ... up to 10 min."""
    return min(FIRST_RETRY * 2.0 ** min(attempts - 1, 10), MAX_RETRY)


def next_look(now: datetime, outlook: Outlook, every: float) -> datetime:
    """When the outbox must be read again if nothing wakes the worker: when its earliest
    pending row falls due, at once while rows are held (the canary may be well again by
    the next pass), and at the latest ``every`` seconds after ``now``."""
    if outlook.held:
        return now
    latest = now + timedelta(seconds=every)
    if outlook.next_try_at is None:
        return latest
    return min(latest, outlook.next_try_at)
