"""Batches rows (results, state changes) into few transactions and keeps them through
database outages."""

from __future__ import annotations

import asyncio
import logging
import math
import time
from collections import deque
from collections.abc import Awaitable, Callable, Sequence
from itertools import islice
from typing import Generic, TypeVar

from monitor.errors import StoreError

logger = logging.getLogger("monitor.store")

FIRST_RETRY_DELAY = 0.5  # seconds
MAX_RETRY_DELAY = 30.0  # seconds


def retry_delay(failures: int) -> float:
    """Seconds to wait after ``failures`` failed writes in a row: 0.5, 1, 2, ... up to 30."""
    # The exponent is capped (2**10 * 0.5 s is well past 30 s) so long outages cannot overflow.
    return min(FIRST_RETRY_DELAY * 2.0 ** min(failures - 1, 10), MAX_RETRY_DELAY)


T = TypeVar("T")


class BatchWriter(Generic[T]):
    """Queues rows in memory and writes them in batches from one task, with ``write``.

    A failed batch stays at the head of the queue and is retried with backoff until it is
    written, so nothing is dropped and order is kept. ``on_written(seconds, rows)`` is
    called after each successful write. With ``linger``, a batch that is not full waits
    until ``linger`` seconds have passed since the previous write began: under load, few
    large transactions instead of one per row. With ``gather``, a row that finds the queue
    empty waits that long for the rows arriving with it (the replies of one beat), so they
    share its transaction; without, when idle, a row is written at once.
    """

    def __init__(
        self,
        write: Callable[[Sequence[T]], Awaitable[None]],
        *,
        what: str = "results",
        batch_size: int = 1000,
        on_written: Callable[[float, int], None] | None = None,
        on_dropped: Callable[[], None] | None = None,
        linger: float = 0.0,
        gather: float = 0.0,
    ) -> None:
        self._linger = linger
        self._gather = gather
        self._last_write = -math.inf
        self._first_arrived = -math.inf  # when a row last found the queue empty
        self._write = write
        self._what = what
        self._batch_size = batch_size
        self._on_written = on_written
        self._queue: deque[T] = deque()
        self._arrived = asyncio.Event()
        self._closing = False
        self._task: asyncio.Task[None] | None = None
        self._last_error: str | None = None
        self._on_dropped = on_dropped

    @property
    def pending(self) -> int:
        """Rows submitted but not written yet, including the batch being written."""
        return len(self._queue)

    @property
    def healthy(self) -> bool:
        """True unless the last write attempt failed or the writing task is gone."""
        task_gone = self._task is not None and self._task.done() and not self._closing
        return self._last_error is None and not task_gone

    @property
    def last_error(self) -> str | None:
        """Why the last write attempt failed; None once a write succeeds."""
        return self._last_error

    def submit(self, row: T) -> None:
        """Queue one row; never blocks."""
        if not self._queue:
            self._first_arrived = time.monotonic()
        self._queue.append(row)
        self._arrived.set()

    def start(self) -> None:
        """Start the task that writes; call from inside the running event loop."""
        self._task = asyncio.get_running_loop().create_task(self._drain(), name="store-writer")

    # The timeout bounds the flush, not the call: close still reports what it left behind.
    async def close(self, timeout: float) -> int:  # noqa: ASYNC109
        """Write what can be written within ``timeout`` seconds, stop, and return how many
        rows were left unwritten (0 normally).

        An unexpected exception that ended the writing task is raised here.
        """
        self._closing = True
        self._arrived.set()
        task = self._task
        if task is not None:
            await asyncio.wait({task}, timeout=timeout)
            task.cancel()  # does nothing when it finished on its own
            await asyncio.wait({task})
            if not task.cancelled():
                task.result()
        return len(self._queue)

    async def _drain(self) -> None:
        failures = 0
        while self._queue or not self._closing:
            if not self._queue:
                self._arrived.clear()
                await self._arrived.wait()
                continue
            due = max(self._last_write + self._linger, self._first_arrived + self._gather)
            wait = due - time.monotonic()
            if wait > 0 and len(self._queue) < self._batch_size and not self._closing:
                await asyncio.sleep(wait)
                continue
            self._last_write = time.monotonic()
            if await self._write_head():
                failures = 0
            else:
                failures += 1
                await asyncio.sleep(retry_delay(failures))

    async def _write_head(self) -> bool:
        """Write the oldest batch and drop it from the queue; False if the store failed."""
        batch = list(islice(self._queue, self._batch_size))
        started = time.perf_counter()
        try:
            await self._write(batch)
        except StoreError as exc:
            if exc.permanent:
                return await self._write_one_by_one(batch)
            logger.warning("writing %d %s failed, will retry: %s", len(batch), self._what, exc)
            self._last_error = str(exc)
            return False
        except Exception as exc:  # our bug: keep the rows and the writer alive, and say so
            logger.exception(
                "writing %d %s failed unexpectedly, will retry", len(batch), self._what
            )
            self._last_error = f"{type(exc).__name__}: {exc}"
            return False
        seconds = time.perf_counter() - started
        for _ in batch:
            self._queue.popleft()
        if self._last_error is not None:
            logger.info("writing %s works again", self._what)
            self._last_error = None
        if self._on_written is not None:
            self._on_written(seconds, len(batch))
        return True

    async def _write_one_by_one(self, batch: list[T]) -> bool:
        """The database refused something in ``batch``: write its rows singly and drop only
        those it refuses for good, so one bad row cannot block every row behind it."""
        for row in batch:
            try:
                await self._write([row])
            except StoreError as exc:
                if not exc.permanent:
                    self._last_error = str(exc)
                    return False
                logger.error("dropped a row the database refuses: %s: %s", row, exc)
                if self._on_dropped is not None:
                    self._on_dropped()
            self._queue.popleft()
        return True
