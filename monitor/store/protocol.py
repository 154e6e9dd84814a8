"""The Store protocol: what the daemon, the outbox and the CLI ask of a database."""

from __future__ import annotations

from collections.abc import Sequence
from contextlib import AbstractAsyncContextManager
from datetime import datetime
from typing import Any, Protocol

from sqlalchemy.ext.asyncio import AsyncConnection

from monitor.judge.tracker import Baseline, StateRecord, Tracked
from monitor.models import ProbeResult


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

    async def write_states(self, records: Sequence[StateRecord]) -> None:
        """Store monitors' states with their incident entries and outbox rows, in one go."""

    async def write_baselines(self, baselines: Sequence[Baseline], now: datetime) -> None:
        """Store the latency baselines of the trend detector."""

    async def load_tracked(self) -> dict[str, Tracked]:
        """Every monitor's stored state and baselines, by monitor name."""

    async def fetch_incidents(self, monitor: str) -> list[dict[str, Any]]:
        """Every incident of ``monitor``, oldest first, each with its ``events``."""

    def transaction(self, action: str) -> AbstractAsyncContextManager[AsyncConnection]:
        """A connection in a transaction, committed at the end (for the outbox's queries)."""

    async def close(self) -> None:
        """Release connections; the store cannot be used afterwards."""
