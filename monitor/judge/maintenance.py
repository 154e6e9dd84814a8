"""Pure: planned maintenance windows, one-off or recurring, and whether one covers a
monitor at ``now``. Inside a window results are still recorded; nothing should page."""

from __future__ import annotations

import fnmatch
from dataclasses import dataclass
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

from apscheduler.triggers.cron import CronTrigger


@dataclass(frozen=True, slots=True)
class Window:
    """One window: ``start``-``end``, or every ``cron`` time for ``duration`` seconds."""

    sites: tuple[str, ...] = ("*",)  # names or globs of sites and checks
    start: datetime | None = None
    end: datetime | None = None
    cron: str | None = None  # five fields, read in ``timezone``
    duration: float = 0.0
    timezone: str = "UTC"

    def covers(self, monitor: str) -> bool:
        return any(fnmatch.fnmatchcase(monitor, pattern) for pattern in self.sites)

    def active(self, now: datetime) -> bool:
        if self.start is not None and self.end is not None:
            return self.start <= now < self.end
        if self.cron is None:
            return False
        # The first start at or after (now - duration): if it is not after now, and the
        # window it opened has not closed yet (the end is exclusive), we are inside.
        length = timedelta(seconds=self.duration)
        began = trigger(self.cron, self.timezone).get_next_fire_time(None, now - length)
        return began is not None and began <= now < began + length

    def describe(self) -> str:
        if self.start is not None and self.end is not None:
            return f"{self.start.isoformat()} to {self.end.isoformat()}"
        return f"'{self.cron}' ({self.timezone}) for {self.duration:g} s"


def trigger(cron: str, timezone: str) -> CronTrigger:
    """The cron expression as APScheduler reads it; raises ValueError for a bad one."""
    return CronTrigger.from_crontab(cron, timezone=ZoneInfo(timezone))


def window_at(windows: tuple[Window, ...], monitor: str, now: datetime) -> Window | None:
    """The first window that covers ``monitor`` at ``now``."""
    return next((w for w in windows if w.covers(monitor) and w.active(now)), None)
