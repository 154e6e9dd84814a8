"""Pure: how many messages one notifier may send, as a token bucket.

The bucket holds up to ``settings.rate_limit`` tokens and refills continuously, the whole
capacity per ``settings.rate_period`` seconds; a new bucket is full. Each message sent
takes a token. When none is left, ``allow`` answers False, which means *not now*: the
rows of that message stay pending in the outbox and are composed and offered again on a
later pass, so the rate limit delays alerts but never drops them (``max_age`` still ends
rows that stay undelivered too long).

While the bucket refuses, it remembers since when, and the most messages refused at one
instant: the worker asks once per message with one ``now`` per pass, and the same messages
come back on every pass, so the size of one pass's refusals is the backlog, where a sum of
refusals would count one message many times. The worker appends ``summary()`` (read
before the allowed call) to the message it sends next::

    note = limit.summary()
    allowed, limit = limit.allow(now, settings)
    if allowed:
        send(message, note)

``rate_limit`` must be at least 1 (the config parser checks): with 0 nothing is ever sent.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import datetime

from monitor.judge.alerting import AlertSettings


@dataclass(frozen=True, slots=True)
class RateLimit:
    """One notifier's bucket; ``RateLimit()`` is a full one."""

    tokens: float = math.inf  # capped at the capacity when next asked
    last: datetime | None = None  # when last asked
    suppressed: int = 0  # the most messages refused at one instant since the last sent
    refused_now: int = 0  # messages refused at ``last``
    since: datetime | None = None  # the first refusal since the last message sent

    def allow(self, now: datetime, settings: AlertSettings) -> tuple[bool, RateLimit]:
        """Whether one message may go at ``now``, and the bucket after the answer."""
        capacity = float(settings.rate_limit)
        elapsed = 0.0 if self.last is None else max(0.0, (now - self.last).total_seconds())
        tokens = min(capacity, self.tokens + elapsed * capacity / settings.rate_period)
        if tokens >= 1.0:
            return True, RateLimit(tokens - 1.0, now)
        refused = self.refused_now + 1 if now == self.last else 1
        since = self.since or now
        return False, RateLimit(tokens, now, max(self.suppressed, refused), refused, since)

    def summary(self) -> str | None:
        """What the rate limit held back since the last message sent, or None if nothing."""
        if self.since is None:
            return None
        plural = "" if self.suppressed == 1 else "s"
        return (
            f"rate limit: up to {self.suppressed} message{plural} waited at once since "
            f"{self.since.strftime('%Y-%m-%d %H:%M:%S %Z').rstrip()}; they stay queued and "
            "follow as the limit allows"
        )
