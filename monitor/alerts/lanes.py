"""One lane per notifier: a task that sends that notifier's messages one after another.

Lanes of different notifiers run side by side, so a slow channel (an SMTP server, or
Apprise's 5.5 s between two e-mails of one notifier) holds up only its own messages. Each
message's outcome is handed to its ``settle`` the moment its send returns.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from monitor import logs
from monitor.alerts.apprise_send import Channels
from monitor.errors import NotifyError, StoreError

log = logging.getLogger("monitor.alerts")


@dataclass(frozen=True, slots=True)
class Send:
    """A message for a lane, and what to do with the outcome (None: sent) at its time."""

    title: str
    body: str
    markdown: str
    tone: str
    settle: Callable[[NotifyError | None, datetime], Awaitable[None]]


class Lanes:
    """The running lanes; ``on_done`` is called whenever one ends."""

    def __init__(self, on_done: Callable[[], None]) -> None:
        self._on_done = on_done
        self._tasks: dict[str, asyncio.Task[None]] = {}

    def __contains__(self, notifier: object) -> bool:
        """Whether ``notifier``'s lane is busy."""
        return notifier in self._tasks

    def start(
        self, channels: Channels, notifier: str, sends: Sequence[Send], now: datetime
    ) -> None:
        """Send ``sends`` to ``notifier`` in order (the notifier must be idle); their
        times are ``now`` plus the time the lane has taken."""
        lane = self._lane(channels, notifier, list(sends), now)
        task = asyncio.get_running_loop().create_task(lane, name=f"alerts-{notifier}")
        self._tasks[notifier] = task
        task.add_done_callback(lambda _: self._done(notifier))

    async def idle(self) -> None:
        """Wait until no lane is sending."""
        while self._tasks:
            await asyncio.wait(set(self._tasks.values()))

    # The timeout bounds waiting for sends in flight, not the call.
    async def close(self, timeout: float) -> int:  # noqa: ASYNC109
        """Give the lanes ``timeout`` seconds, then cancel them; returns how many were cut
        off (a send cut off may still arrive: Apprise's thread cannot be stopped)."""
        tasks = set(self._tasks.values())
        if not tasks:
            return 0
        _, cut = await asyncio.wait(tasks, timeout=timeout)
        for task in cut:
            task.cancel()
        await asyncio.wait(tasks)
        return len(cut)

    def _done(self, notifier: str) -> None:
        del self._tasks[notifier]
        self._on_done()

    @staticmethod
    async def _lane(channels: Channels, notifier: str, sends: list[Send], now: datetime) -> None:
        loop = asyncio.get_running_loop()
        started = loop.time()
        for send in sends:
            try:
                await channels.send(notifier, send.title, send.body, send.markdown, send.tone)
                error = None
            except NotifyError as exc:
                error = exc
            at = now + timedelta(seconds=loop.time() - started)
            try:
                await send.settle(error, at)
            except StoreError as exc:  # kept to be settled later: see Delivery._settle
                logs.event(log, "alerts.store_failed", logging.WARNING, error=str(exc))
            except Exception:  # our bug: say so, and let the lane's other messages go
                log.exception("settling an alert sent to %s failed", notifier)
