"""Where results are kept: the Store interface, its SQL implementation, a batching writer."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

from monitor.models import ProbeResult
from monitor.store.sql import SqlStore
from monitor.store.writer import BatchWriter


class Store(Protocol):
    """The storage contract; every method raises StoreError when the database fails."""

    async def upgrade(self) -> None:
        """Migrate the schema to the newest revision; a no-op when it is current."""

    async def register_monitors(self, names: Sequence[str]) -> None:
        """Make sure a monitor row exists for each name; safe to repeat and to race."""

    async def write_results(self, results: Sequence[ProbeResult]) -> None:
        """Insert all results in one transaction; unknown monitors are registered on the way."""

    async def fetch_results(self, monitor: str, limit: int = 100) -> list[ProbeResult]:
        """The newest ``limit`` results of one monitor, newest first.

        Headers, body and failed expectations are not stored and come back empty.
        """

    async def close(self) -> None:
        """Release connections; the store cannot be used afterwards."""


__all__ = ["BatchWriter", "SqlStore", "Store"]
