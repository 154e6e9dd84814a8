"""The Store contract, run against every backend (SQLite and a real PostgreSQL)."""

from __future__ import annotations

import asyncio
import dataclasses
import sys
import threading
from asyncio.subprocess import PIPE
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import Connection, Engine, event, inspect, select, text
from sqlalchemy.ext.asyncio import AsyncConnection, create_async_engine

from monitor.errors import StoreError
from monitor.models import Cause, Kind, Phases, ProbeResult, Role
from monitor.store import SqlStore, Store
from monitor.store.migrate import alembic_config
from monitor.store.tables import metadata, monitors
from tests.support.postgres import free_port, fresh_database

REPO = Path(__file__).resolve().parents[2]
T0 = datetime(2024, 5, 1, 12, 0, tzinfo=UTC)


def probe(monitor: str = "shop", *, second: int = 0, **changes: Any) -> ProbeResult:
    """A healthy edge result of ``monitor`` at ``second`` seconds past T0, with changes."""
    healthy = ProbeResult(
        monitor=monitor,
        role=Role.EDGE,
        origin=None,
        time=T0 + timedelta(seconds=second),
        ok=True,
        cause=Cause.OK,
        status=200,
        peer_ip="192.0.2.10",
        phases=Phases(resolve=0.004, connect=0.021, processing=0.15, transfer=0.002, total=0.177),
    )
    return dataclasses.replace(healthy, **changes)


@asynccontextmanager
async def connect(url: str) -> AsyncIterator[AsyncConnection]:
    """A connection of our own, to look at the database behind the store's back."""
    engine = create_async_engine(url)
    try:
        async with engine.connect() as conn:
            yield conn
    finally:
        await engine.dispose()


async def monitor_names(url: str) -> list[str]:
    async with connect(url) as conn:
        return list((await conn.execute(select(monitors.c.name).order_by("name"))).scalars())


async def test_upgrade_creates_the_schema_and_repeating_it_changes_nothing(store_url: str) -> None:
    store = SqlStore(store_url)
    await store.upgrade()
    await store.register_monitors(["shop"])
    await store.upgrade()
    await store.close()

    async with connect(store_url) as conn:
        tables = await conn.run_sync(lambda sync: set(inspect(sync).get_table_names()))
        version = (await conn.execute(text("SELECT version_num FROM alembic_version"))).all()
    assert tables == {
        "alembic_version",
        "monitors",
        "check_results",
        "monitor_states",
        "incidents",
        "incident_events",
        "latency_baselines",
        "alert_outbox",
    }
    assert version == [("0005",)]
    assert await monitor_names(store_url) == ["shop"]


async def test_migrations_build_exactly_the_tables_of_the_code(
    store: SqlStore, store_url: str
) -> None:
    def differences(conn: Connection) -> list[Any]:
        return list(compare_metadata(MigrationContext.configure(conn), metadata))

    async with connect(store_url) as conn:
        assert await conn.run_sync(differences) == []


UPGRADE_IN_A_PROCESS = """
import asyncio, sys
from monitor.store import SqlStore
from monitor.store.migrate import alembic_config

async def main(url: str) -> None:
    store = SqlStore(url)
    print("ready", flush=True)
    sys.stdin.readline()  # then all start at once
    await store.upgrade()
    await store.close()

asyncio.run(main(sys.argv[1]))
"""


async def start_daemon(url: str) -> asyncio.subprocess.Process:
    return await asyncio.create_subprocess_exec(
        sys.executable,
        "-c",
        UPGRADE_IN_A_PROCESS,
        url,
        cwd=REPO,
        stdin=PIPE,
        stdout=PIPE,
        stderr=PIPE,
    )


@pytest.mark.postgres
async def test_daemons_sharing_postgresql_upgrade_it_once(postgres_url: str) -> None:
    # Separate processes, as in production: Alembic keeps per-process global state.
    async with fresh_database(postgres_url) as url:
        daemons = [await start_daemon(url) for _ in range(4)]
        for daemon in daemons:
            assert daemon.stdout is not None
            assert await daemon.stdout.readline() == b"ready\n"
        outputs = await asyncio.gather(*(daemon.communicate(b"go\n") for daemon in daemons))
        errors = [stderr.decode() for _, stderr in outputs]
        async with connect(url) as conn:
            versions = (await conn.execute(text("SELECT version_num FROM alembic_version"))).all()
    assert errors == ["", "", "", ""]
    assert versions == [("0005",)]


async def test_more_monitors_than_a_statement_takes_parameters(
    store: SqlStore, store_url: str
) -> None:
    """PostgreSQL takes at most 32,767 parameters a statement; one worker of a 100,000-site
    daemon registers 50,000 names at start (it failed there: 'the number of query
    arguments cannot exceed 32767')."""
    names = [f"site-{i:05d}" for i in range(40_000)]
    await store.register_monitors(names)
    await store.write_results([probe(names[0]), probe(names[-1])])
    registered = await monitor_names(store_url)
    assert len(registered) == 40_000
    assert registered[0] == names[0]
    assert registered[-1] == names[-1]
    assert len(await store.fetch_results(names[-1])) == 1


async def test_registering_monitors_is_idempotent(store: SqlStore, store_url: str) -> None:
    await store.register_monitors(["shop", "blog"])
    await store.register_monitors(["blog", "shop"])
    await store.register_monitors(["api", "blog"])
    await store.register_monitors([])
    assert await monitor_names(store_url) == ["api", "blog", "shop"]


async def test_two_stores_registering_the_same_monitors_at_once(
    store: SqlStore, store_url: str
) -> None:
    other = SqlStore(store_url)
    names = [f"site-{i}" for i in range(50)]
    await asyncio.gather(store.register_monitors(names), other.register_monitors(names[::-1]))
    await other.write_results([probe("site-7")])
    await other.close()
    await store.write_results([probe("site-7", second=1)])
    assert await monitor_names(store_url) == sorted(names)
    assert len(await store.fetch_results("site-7")) == 2


async def test_results_come_back_as_written_newest_first(store: SqlStore) -> None:
    paris = timezone(timedelta(hours=2))
    edge = probe(second=10, time=(T0 + timedelta(seconds=10)).astimezone(paris))
    origin_down = probe(
        second=10,
        role=Role.ORIGIN,
        origin="origin-1",
        ok=False,
        cause=Cause.CONNECT_REFUSED,
        detail="connect to 198.51.100.7:443: connection refused",
        status=None,
        peer_ip=None,
        phases=Phases(resolve=0.003, total=0.004),
    )
    older = probe(second=0, cause=Cause.SLOW, detail="took 2.1 s")
    tls = probe(
        second=10,
        kind=Kind.TLS,
        target="shop.test:443",
        status=None,
        peer_port=443,
        tls_version="TLSv1.3",
        cert_not_after=datetime(2027, 1, 31, 23, 59, 59, tzinfo=UTC),
        phases=Phases(connect=0.001, tls=0.004, total=0.005),
    )
    await store.register_monitors(["shop"])
    await store.write_results([older, edge, origin_down, tls, probe("other", second=99)])

    fetched = await store.fetch_results("shop")

    assert fetched == [tls, origin_down, edge, older]  # same time: the later write comes first
    assert [r.time.tzinfo for r in fetched] == [UTC, UTC, UTC, UTC]
    assert fetched[2].time == T0 + timedelta(seconds=10)
    assert await store.fetch_results("shop", limit=1) == [tls]
    assert await store.fetch_results("nobody") == []


async def test_results_of_an_unregistered_monitor_register_it(
    store: SqlStore, store_url: str
) -> None:
    await store.write_results([probe("new-site")])
    assert await monitor_names(store_url) == ["new-site"]
    assert await store.fetch_results("new-site") == [probe("new-site")]


async def test_a_failed_write_leaves_no_monitor_behind(store: SqlStore, store_url: str) -> None:
    naive = probe("new-site", time=datetime(2024, 5, 1, 12, 0))
    with pytest.raises(StoreError, match="naive datetime") as refused:
        await store.write_results([naive])
    assert refused.value.permanent  # the same rows would fail again: the writer drops them
    assert await monitor_names(store_url) == []
    await store.write_results([probe("new-site")])  # no stale id was cached
    assert await monitor_names(store_url) == ["new-site"]


@pytest.fixture
def statements() -> Iterator[list[tuple[str, bool]]]:
    """Every SQL statement any engine sends, with its executemany flag; "COMMIT" for commits."""
    sent: list[tuple[str, bool]] = []

    def on_execute(_c: Any, _cur: Any, statement: str, _p: Any, _ctx: Any, many: bool) -> None:
        sent.append((statement, many))

    def on_commit(_conn: Any) -> None:
        sent.append(("COMMIT", False))

    event.listen(Engine, "before_cursor_execute", on_execute)
    event.listen(Engine, "commit", on_commit)
    yield sent
    event.remove(Engine, "before_cursor_execute", on_execute)
    event.remove(Engine, "commit", on_commit)


async def test_5000_results_take_one_statement_in_one_transaction(
    store: SqlStore, statements: list[tuple[str, bool]]
) -> None:
    await store.register_monitors(["shop"])
    statements.clear()

    await store.write_results([probe(second=i) for i in range(5000)])

    inserts = [many for sql, many in statements if sql.startswith("INSERT INTO check_results")]
    assert inserts == [True]
    assert [sql for sql, _ in statements].count("COMMIT") == 1
    fetched = await store.fetch_results("shop", limit=10_000)
    assert len(fetched) == 5000
    assert fetched[0] == probe(second=4999)


async def test_a_database_that_lost_its_tables_raises_store_error(
    store: SqlStore, store_url: str
) -> None:
    await store.write_results([probe()])
    async with connect(store_url) as conn:
        await conn.execute(text("DROP TABLE check_results"))
        await conn.commit()

    with pytest.raises(StoreError, match=r"writing 1 results: .*check_results"):
        await store.write_results([probe(second=1)])
    with pytest.raises(StoreError, match="reading results of 'shop'"):
        await store.fetch_results("shop")


@pytest.mark.postgres
async def test_after_postgresql_drops_the_connections_one_write_fails_the_next_works(
    postgres_url: str,
) -> None:
    async with fresh_database(postgres_url) as url:
        store = SqlStore(url)
        await store.upgrade()
        await store.write_results([probe(second=0)])
        # What a server restart does to our connections; waits (5 s at most) until they are gone.
        async with connect(url) as conn:
            await conn.execute(
                text(
                    "SELECT pg_terminate_backend(pid, 5000) FROM pg_stat_activity"
                    " WHERE datname = current_database() AND pid <> pg_backend_pid()"
                )
            )

        with pytest.raises(StoreError, match="writing 1 results: "):
            await store.write_results([probe(second=1)])
        await store.write_results([probe(second=2)])

        assert await store.fetch_results("shop") == [probe(second=2), probe(second=0)]
        await store.close()


@pytest.mark.parametrize(
    ("url", "cause"),
    [
        pytest.param(
            "sqlite+aiosqlite:///{tmp}/no/such/dir/monitor.db",
            "OperationalError: unable to open database file",
            id="sqlite-missing-dir",
        ),
        pytest.param(
            "postgresql+asyncpg://postgres@127.0.0.1:{port}/db",
            "ConnectionRefusedError: ",
            id="postgres-refused",
        ),
    ],
)
async def test_an_unreachable_database_raises_store_error(
    url: str, cause: str, tmp_path: Path
) -> None:
    store = SqlStore(url.format(tmp=tmp_path, port=free_port()))
    with pytest.raises(StoreError, match=f"^upgrading the schema: {cause}"):
        await store.upgrade()
    with pytest.raises(StoreError, match=f"^writing 1 results: {cause}"):
        await store.write_results([probe()])
    await store.close()
    join_aiosqlite_threads()


def join_aiosqlite_threads() -> None:
    """aiosqlite stops a connection that failed to open on its worker thread, which then
    reports to the event loop: the loop must outlive it (omnilib/aiosqlite#241)."""
    for thread in threading.enumerate():
        if thread.name.endswith("(_connection_worker_thread)"):
            thread.join(timeout=5)


async def test_upgrading_from_0001_keeps_the_results_written_before(store_url: str) -> None:
    engine = create_async_engine(store_url)
    cfg = alembic_config()

    def to_0001(connection: Connection) -> None:
        cfg.attributes["connection"] = connection
        command.upgrade(cfg, "0001")

    async with engine.begin() as conn:
        await conn.run_sync(to_0001)
        await conn.execute(monitors.insert(), [{"name": "shop"}])
        await conn.execute(
            text(
                "INSERT INTO check_results (monitor_id, time, role, ok, cause, detail, total_s) "
                "SELECT id, :time, 'edge', true, 'ok', '', 0.1 FROM monitors"
            ),
            {"time": T0},
        )
    await engine.dispose()
    store = SqlStore(store_url)
    await store.upgrade()
    [old] = await store.fetch_results("shop")
    await store.close()
    assert (old.kind, old.target, old.tls_version, old.cert_not_after) == (
        Kind.HTTP,
        "",
        None,
        None,
    )
    assert old.ok
    assert old.phases.total == 0.1


async def test_failing_probes_keep_their_evidence_passing_ones_do_not(store: SqlStore) -> None:
    page = b"<h1>Error 503 Backend fetch failed</h1>" + b"x" * 10_000
    headers = (("Server", "Varnish"), ("X-Varnish", "12"), ("Retry-After", "5"))
    failing = probe(
        second=1,
        ok=False,
        cause=Cause.BACKEND_FETCH_FAILED,
        status=503,
        signature="varnish-backend-fetch-failed",
        headers=headers,
        body=page,
    )
    passing = probe(second=0, headers=(("Server", "nginx"),), body=b"<h1>shop</h1>")
    await store.write_results([passing, failing])
    newest, oldest = await store.fetch_results("shop")
    assert (newest.signature, newest.headers, newest.body) == (
        "varnish-backend-fetch-failed",
        headers,
        page[:4096],
    )
    assert (oldest.signature, oldest.headers, oldest.body) == (None, (), b"")


def test_the_sql_store_is_a_store() -> None:
    """The protocol names every public method of SqlStore (mypy checks their signatures)."""
    store: Store = SqlStore("sqlite+aiosqlite://")
    public = {name for name in dir(SqlStore) if not name.startswith("_")}
    promised = {name for name in dir(Store) if not name.startswith("_")}
    assert public == promised
    assert isinstance(store, SqlStore)
