"""BatchWriter against a real SQLite store, and against one that fails on purpose."""

from __future__ import annotations

import asyncio
import dataclasses
import logging
from collections.abc import AsyncIterator, Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from monitor.errors import StoreError
from monitor.models import Cause, ProbeResult, Role
from monitor.store import BatchWriter, SqlStore
from monitor.store.writer import retry_delay

T0 = datetime(2024, 5, 1, 12, 0, tzinfo=UTC)


def probe(second: int) -> ProbeResult:
    """The result of monitor "shop" ``second`` seconds after T0."""
    time = T0 + timedelta(seconds=second)
    return ProbeResult(
        monitor="shop", role=Role.EDGE, origin=None, time=time, ok=True, cause=Cause.OK
    )


class FailingStore:
    """A Store whose first ``failures`` writes raise StoreError; the rest reach SQLite."""

    def __init__(self, store: SqlStore, failures: int) -> None:
        self.store = store
        self.failures_left = failures
        self.attempts: list[list[ProbeResult]] = []
        self.failed = asyncio.Event()

    async def write_results(self, results: Sequence[ProbeResult]) -> None:
        self.attempts.append(list(results))
        if self.failures_left > 0:
            self.failures_left -= 1
            self.failed.set()
            raise StoreError("database is locked")
        await self.store.write_results(results)

    async def upgrade(self) -> None:
        await self.store.upgrade()

    async def register_monitors(self, names: Sequence[str]) -> None:
        await self.store.register_monitors(names)

    async def fetch_results(self, monitor: str, limit: int = 100) -> list[ProbeResult]:
        return await self.store.fetch_results(monitor, limit)

    async def close(self) -> None:
        await self.store.close()


@pytest.fixture
async def store(tmp_path: Path) -> AsyncIterator[SqlStore]:
    store = SqlStore(f"sqlite+aiosqlite:///{tmp_path / 'monitor.db'}")
    await store.upgrade()
    await store.register_monitors(["shop"])
    yield store
    await store.close()


async def test_everything_submitted_is_written_in_batches(store: SqlStore) -> None:
    writes: list[tuple[float, int]] = []
    writer = BatchWriter(
        store.write_results, batch_size=1000, on_written=lambda s, n: writes.append((s, n))
    )
    writer.start()
    for second in range(5000):
        writer.submit(probe(second))
    assert writer.pending == 5000

    assert await writer.close(timeout=30) == 0

    assert [rows for _, rows in writes] == [1000] * 5
    assert all(seconds > 0 for seconds, _ in writes)
    assert writer.pending == 0
    assert writer.healthy
    written = await store.fetch_results("shop", limit=10_000)
    assert written == [probe(second) for second in reversed(range(5000))]


class Written:
    """An ``on_written`` that keeps each batch's row count and can be waited on."""

    def __init__(self) -> None:
        self.rows: list[int] = []
        self._changed = asyncio.Event()

    def __call__(self, seconds: float, rows: int) -> None:
        self.rows.append(rows)
        self._changed.set()

    async def until(self, batches: int, within: float = 10.0) -> None:
        """Until ``batches`` batches are written (``within`` seconds, or the test fails)."""
        async with asyncio.timeout(within):
            while len(self.rows) < batches:
                self._changed.clear()
                await self._changed.wait()


async def test_rows_submitted_during_a_write_go_into_the_next_batch(store: SqlStore) -> None:
    rows: list[int] = []
    writer = BatchWriter(store.write_results, on_written=lambda _, n: rows.append(n))
    writer.start()
    writer.submit(probe(0))
    await asyncio.sleep(0)  # the writer takes the first row and starts writing
    writer.submit(probe(1))
    writer.submit(probe(2))

    assert await writer.close(timeout=30) == 0
    assert rows == [1, 2]


async def test_with_linger_rows_arriving_soon_after_a_write_share_one_batch(
    store: SqlStore,
) -> None:
    written = Written()
    rows = written.rows
    writer = BatchWriter(store.write_results, on_written=written, linger=0.3)
    writer.start()
    writer.submit(probe(0))
    await written.until(1, within=0.3)  # the first row after idle is written at once
    assert rows == [1]
    for second in range(1, 21):
        writer.submit(probe(second))
        await asyncio.sleep(0)  # one by one, as replies arrive
    assert rows == [1]  # the other twenty wait for the linger to pass
    await written.until(2)
    assert rows == [1, 20]

    writer.submit(probe(21))
    assert await writer.close(timeout=30) == 0  # the linger since the last write is over
    assert rows == [1, 20, 1]
    assert len(await store.fetch_results("shop", limit=100)) == 22


async def test_with_gather_a_burst_after_idle_shares_one_batch(store: SqlStore) -> None:
    written = Written()
    rows = written.rows
    writer = BatchWriter(store.write_results, on_written=written, linger=0.3, gather=0.2)
    writer.start()
    for second in range(10):  # the replies of one beat, one by one
        writer.submit(probe(second))
        await asyncio.sleep(0)
    assert rows == []  # the first waits for the others
    await written.until(1)
    assert rows == [10]
    writer.submit(probe(10))
    assert await writer.close(timeout=30) == 0  # closing writes at once
    assert rows == [10, 1]
    assert len(await store.fetch_results("shop", limit=100)) == 11


async def test_a_failing_store_loses_nothing_and_keeps_order(
    store: SqlStore, caplog: pytest.LogCaptureFixture
) -> None:
    failing = FailingStore(store, failures=1)
    writer = BatchWriter(failing.write_results, batch_size=3)
    writer.start()
    for second in range(5):
        writer.submit(probe(second))

    await failing.failed.wait()
    assert not writer.healthy
    assert writer.last_error == "database is locked"
    assert writer.pending == 5

    assert await writer.close(timeout=30) == 0
    assert writer.healthy
    assert writer.last_error is None
    first_batch = [probe(0), probe(1), probe(2)]
    assert failing.attempts == [first_batch, first_batch, [probe(3), probe(4)]]
    assert await store.fetch_results("shop") == [probe(s) for s in (4, 3, 2, 1, 0)]
    [warning] = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert warning.name == "monitor.store"
    assert "writing 3 results failed" in warning.getMessage()


async def test_close_gives_up_on_a_dead_store_and_counts_what_is_left(store: SqlStore) -> None:
    failing = FailingStore(store, failures=1_000_000)
    writer = BatchWriter(failing.write_results, batch_size=2)
    writer.start()
    for second in range(5):
        writer.submit(probe(second))

    assert await writer.close(timeout=0.2) == 5
    assert not writer.healthy
    assert writer.pending == 5


async def test_close_without_start_reports_the_rows_never_written(store: SqlStore) -> None:
    writer = BatchWriter(store.write_results)
    writer.submit(probe(0))
    assert await writer.close(timeout=1) == 1


@pytest.mark.parametrize(
    ("failures", "seconds"),
    [(1, 0.5), (2, 1.0), (3, 2.0), (6, 16.0), (7, 30.0), (10_000, 30.0)],
)
def test_retries_back_off_exponentially_up_to_30_seconds(failures: int, seconds: float) -> None:
    assert retry_delay(failures) == seconds


class RefusesOneRow(FailingStore):
    """A store that refuses, for good, any batch holding a result whose detail is "bad"."""

    async def write_results(self, results: Sequence[ProbeResult]) -> None:
        if any(r.detail == "bad" for r in results):
            raise StoreError("value too long", permanent=True)
        await self.store.write_results(results)


async def test_a_row_the_database_refuses_is_dropped_alone(store: SqlStore) -> None:
    dropped: list[None] = []
    writer = BatchWriter(
        RefusesOneRow(store, 0).write_results, on_dropped=lambda: dropped.append(None)
    )
    results = [probe(i) for i in range(5)]
    results[2] = dataclasses.replace(results[2], detail="bad")
    writer.start()
    for r in results:
        writer.submit(r)
    assert await writer.close(5.0) == 0
    stored = await store.fetch_results("shop")
    assert sorted(r.time for r in stored) == [r.time for i, r in enumerate(results) if i != 2]
    assert len(dropped) == 1
    assert writer.healthy


class Buggy(FailingStore):
    """A store with a bug of ours: the first write raises something that is no StoreError."""

    async def write_results(self, results: Sequence[ProbeResult]) -> None:
        self.attempts.append(list(results))
        if len(self.attempts) == 1:
            self.failed.set()
            raise RuntimeError("bug")
        await self.store.write_results(results)


async def test_an_unexpected_error_keeps_the_rows_and_the_writer_alive(
    store: SqlStore, caplog: pytest.LogCaptureFixture
) -> None:
    buggy = Buggy(store, 0)
    writer = BatchWriter(buggy.write_results)
    writer.start()
    writer.submit(probe(0))
    async with asyncio.timeout(5):
        await buggy.failed.wait()  # the writer notes the error before this test runs on
    assert not writer.healthy
    assert writer.last_error == "RuntimeError: bug"
    assert await writer.close(5.0) == 0
    assert len(await store.fetch_results("shop")) == 1
    assert "failed unexpectedly" in caplog.text


async def test_text_no_database_takes_is_stored_escaped(store: SqlStore) -> None:
    # aiohttp hands undecodable header bytes over as surrogates; DNS TXT may hold NUL.
    odd = dataclasses.replace(probe(0), detail="X-Cache: \udcff\udcfeMISS", target="a\x00b")
    await store.write_results([odd])
    [stored] = await store.fetch_results("shop")
    assert (stored.detail, stored.target) == ("X-Cache: \\udcff\\udcfeMISS", "a\\x00b")
