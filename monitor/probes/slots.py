"""The cap on probes running at once, shared by every probe of one daemon process.

Each running probe holds a socket, sometimes more (a name's addresses raced, a DNS check
asking several resolvers), so a daemon with more probes in flight than open files allowed
would see ``EMFILE`` and blame the targets for it. With a cap, a probe past it waits for a
slot instead; the wait is not the target's: the probe's clock and its time limit start
once it holds a slot, and the wait is counted apart (``on_wait``). The round's time, on
its results, stays when the round started.
"""

from __future__ import annotations

import asyncio
import resource
from collections.abc import Awaitable, Callable
from time import perf_counter
from typing import ParamSpec, TypeVar

P = ParamSpec("P")
R = TypeVar("R")

RESERVED_FILES = 256
"""Open files kept for everything but probes: the database, /metrics scrapes, logs,
alert channels."""
FILES_PER_PROBE = 2  # a connection, and a second one while two addresses race (most
# probes hold one; a name with many addresses or a DNS check with many resolvers, more)


def auto_limit(open_files: int) -> int:
    """The cap for a process allowed ``open_files`` descriptors (RLIMIT_NOFILE's soft
    limit); 0, no cap, when the limit is unlimited."""
    if open_files == resource.RLIM_INFINITY or open_files < 0:
        return 0
    return max(16, (open_files - RESERVED_FILES) // FILES_PER_PROBE)


def files_needed(limit: int) -> int:
    """Open files a cap of ``limit`` probes is planned to need (0: no cap, no plan)."""
    return limit * FILES_PER_PROBE + RESERVED_FILES if limit else 0


def open_files_limit() -> int:
    """This process's soft limit on open files."""
    return resource.getrlimit(resource.RLIMIT_NOFILE)[0]


class ProbeSlots:
    """At most ``limit`` probes at once (0: no cap). ``on_wait(seconds)`` hears of every
    probe that had to wait for a slot, once it has one."""

    def __init__(self, limit: int, on_wait: Callable[[float], None] | None = None) -> None:
        if limit < 0:
            raise ValueError("limit must be 0 (no cap) or more")
        self.limit = limit
        self.in_flight = 0
        self._free = asyncio.Semaphore(limit) if limit > 0 else None
        self._on_wait = on_wait

    async def run(self, probe: Callable[P, Awaitable[R]], *args: P.args, **kwargs: P.kwargs) -> R:
        """``await probe(*args, **kwargs)`` once a slot is free; it is called only then."""
        free = self._free
        waited: float | None = None
        if free is not None:
            if free.locked():
                started = perf_counter()
                await free.acquire()  # cancelled while waiting: no slot taken
                waited = perf_counter() - started
            else:
                await free.acquire()  # the usual case: a slot at once, nothing to time
        self.in_flight += 1
        try:
            if waited is not None and self._on_wait is not None:
                self._on_wait(waited)
            return await probe(*args, **kwargs)
        finally:
            self.in_flight -= 1
            if free is not None:
                free.release()
