"""The Store on SQLAlchemy 2.0 async: SQLite (aiosqlite) by default, PostgreSQL (asyncpg)."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Callable, Iterable, Iterator, Sequence
from contextlib import asynccontextmanager, contextmanager
from datetime import datetime
from typing import Any

from alembic.util import CommandError
from sqlalchemy import Dialect, RowMapping, event, select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.exc import DataError, DBAPIError, IntegrityError, StatementError
from sqlalchemy.ext.asyncio import AsyncConnection, create_async_engine

from monitor.errors import StoreError
from monitor.judge.tracker import Baseline, StateRecord, Tracked
from monitor.models import PHASES, Cause, Kind, Phases, ProbeResult, Role
from monitor.store import migrate, states
from monitor.store.tables import EVIDENCE_BODY, check_results, monitors

# Per connection: WAL lets readers work during a write; NORMAL is durable enough with WAL;
# busy_timeout makes a second writer (a connection, a worker) wait for the write lock
# instead of failing at once; a write that still fails is retried by its BatchWriter.
_SQLITE_PRAGMAS = (
    "PRAGMA journal_mode=WAL",
    "PRAGMA synchronous=NORMAL",
    "PRAGMA busy_timeout=15000",
    "PRAGMA foreign_keys=ON",
)


class SqlStore:
    """A Store on one SQLAlchemy URL, e.g. ``sqlite+aiosqlite:///monitor.db`` (relative to
    the working directory) or ``postgresql+asyncpg://user:password@host/db``.

    Results of a monitor that was never registered register it on the way.
    """

    def __init__(self, url: str) -> None:
        self._engine = create_async_engine(url)
        if self._engine.dialect.name == "sqlite":
            event.listen(self._engine.sync_engine, "connect", _set_sqlite_pragmas)
        self._monitor_ids: dict[str, int] = {}
        self._insert = _ResultInsert(self._engine.dialect)

    async def upgrade(self) -> None:
        with _translated("upgrading the schema"):
            await migrate.upgrade(self._engine)

    async def register_monitors(self, names: Sequence[str]) -> None:
        with _translated("registering monitors"):
            async with self._engine.begin() as conn:
                ids = await _ensure_monitors(conn, names)
        self._monitor_ids.update(ids)  # only once committed: a rollback would void the ids

    async def write_results(self, results: Sequence[ProbeResult]) -> None:
        if not results:
            return
        unknown = {r.monitor for r in results} - self._monitor_ids.keys()
        with _translated(f"writing {len(results)} results"):
            async with self._engine.begin() as conn:
                new_ids = await _ensure_monitors(conn, sorted(unknown))
                known = self._monitor_ids
                insert = self._insert
                rows = [
                    insert.params(_values(r, new_ids.get(r.monitor) or known[r.monitor]))
                    for r in results
                ]
                await conn.exec_driver_sql(insert.sql, rows)
        self._monitor_ids.update(new_ids)

    async def fetch_results(self, monitor: str, limit: int = 100) -> list[ProbeResult]:
        query = (
            select(check_results, monitors.c.name)
            .join(monitors)
            .where(monitors.c.name == monitor)
            .order_by(check_results.c.time.desc(), check_results.c.id.desc())
            .limit(limit)
        )
        with _translated(f"reading results of {monitor!r}"):
            async with self._engine.connect() as conn:
                rows = (await conn.execute(query)).mappings().all()
        return [_result(row) for row in rows]

    async def write_states(self, records: Sequence[StateRecord]) -> None:
        if not records:
            return
        with _translated(f"writing {len(records)} state changes"):
            async with self._engine.begin() as conn:
                ids = await _ensure_monitors(conn, sorted({r.monitor for r in records}))
                await states.write_records(conn, records, ids)
        self._monitor_ids.update(ids)

    async def write_baselines(self, baselines: Sequence[Baseline], now: datetime) -> None:
        if not baselines:
            return
        with _translated(f"writing {len(baselines)} latency baselines"):
            async with self._engine.begin() as conn:
                ids = await _ensure_monitors(conn, sorted({b.monitor for b in baselines}))
                await states.write_baselines(conn, baselines, ids, now)

    async def load_tracked(self) -> dict[str, Tracked]:
        with _translated("reading monitor states"):
            async with self._engine.connect() as conn:
                rows = (await conn.execute(select(monitors.c.id, monitors.c.name))).all()
                return await states.load_tracked(conn, {id_: name for id_, name in rows})

    async def fetch_incidents(self, monitor: str) -> list[dict[str, Any]]:
        """Every incident of ``monitor``, oldest first, each with its ``events``."""
        with _translated(f"reading incidents of {monitor!r}"):
            async with self._engine.connect() as conn:
                return await states.fetch_incidents(conn, monitor)

    @asynccontextmanager
    async def transaction(self, action: str) -> AsyncIterator[AsyncConnection]:
        """A connection in a transaction, committed at the end; a database error becomes
        a StoreError that names ``action``. For the stores of other modules (the outbox)."""
        with _translated(action):
            async with self._engine.begin() as conn:
                yield conn

    async def close(self) -> None:
        await self._engine.dispose()


@contextmanager
def _translated(action: str) -> Iterator[None]:
    """The one place where database and driver errors become StoreError."""
    try:
        yield
    except DBAPIError as exc:
        rejected = isinstance(exc, DataError | IntegrityError) and not exc.connection_invalidated
        raise StoreError(f"{action}: {_driver_message(exc)}", permanent=rejected) from exc
    except (StatementError, UnicodeError) as exc:  # a value no database could take
        raise StoreError(f"{action}: {type(exc).__name__}: {exc}", permanent=True) from exc
    except (OSError, CommandError) as exc:  # connect failures; a revision we do not know
        raise StoreError(f"{action}: {type(exc).__name__}: {exc}") from exc


def _driver_message(exc: DBAPIError) -> str:
    """The driver's most specific error and its message, without SQLAlchemy's additions
    (the SQL and its parameters, which can be thousands of rows)."""
    orig: BaseException = exc.orig if exc.orig is not None else exc
    specific = orig.__cause__ or orig  # asyncpg's own error hides behind a DBAPI adapter
    return f"{type(specific).__name__}: {orig}"


NAMES_A_QUERY = 10_000
"""Names looked up in one query: PostgreSQL takes at most 32,767 parameters a statement,
and a worker of a 100,000-site daemon registers 50,000 names at once."""


async def _ensure_monitors(conn: AsyncConnection, names: Iterable[str]) -> dict[str, int]:
    """Insert the monitors that are missing, race-free, and return the ids of ``names``."""
    names = list(names)
    if not names:
        return {}
    await conn.execute(_insert_or_ignore(conn.dialect.name), [{"name": name} for name in names])
    ids: dict[str, int] = {}
    for start in range(0, len(names), NAMES_A_QUERY):
        chunk = names[start : start + NAMES_A_QUERY]
        query = select(monitors.c.name, monitors.c.id).where(monitors.c.name.in_(chunk))
        ids.update({name: id_ for name, id_ in (await conn.execute(query)).all()})
    return ids


def _insert_or_ignore(dialect: str) -> postgresql.Insert | sqlite.Insert:
    """INSERT ... ON CONFLICT (name) DO NOTHING: two processes registering one name both win."""
    if dialect == "postgresql":
        return postgresql.insert(monitors).on_conflict_do_nothing(index_elements=["name"])
    return sqlite.insert(monitors).on_conflict_do_nothing(index_elements=["name"])


# check_results' columns as one result fills them (in the table's order, which the compiled
# INSERT then keeps), in the order _values gives them.
_RESULT_COLUMNS = (
    "monitor_id",
    "time",
    "role",
    "origin",
    "ok",
    "cause",
    "detail",
    "status",
    *(f"{phase}_s" for phase in PHASES),
    "total_s",
    "peer_ip",
    "kind",
    "target",
    "peer_port",
    "tls_version",
    "cert_not_after",
    "signature",
    "headers",
    "body",
)


def _values(result: ProbeResult, monitor_id: int) -> list[Any]:
    """One result's values for _RESULT_COLUMNS, in that order."""
    return [
        monitor_id,
        result.time,
        result.role.value,
        result.origin,
        result.ok,
        result.cause.value,
        _storable(result.detail),
        result.status,
        *(seconds for _, seconds in result.phases.items()),
        result.phases.total,
        result.peer_ip,
        result.kind.value,
        _storable(result.target),
        result.peer_port,
        result.tls_version,
        result.cert_not_after,
        *_evidence(result),
    ]


class _ResultInsert:
    """check_results' INSERT compiled once for a dialect, with each column's own bind
    processor (SQLAlchemy's, as ``conn.execute`` would apply them): a batch then goes to
    the driver's executemany without SQLAlchemy's per-row work (7 of the 25 µs of CPU a
    result cost on SQLite). Both drivers the config allows take positional parameters."""

    def __init__(self, dialect: Dialect) -> None:
        compiled = check_results.insert().compile(
            dialect=dialect, column_keys=list(_RESULT_COLUMNS)
        )
        self.sql = str(compiled)
        if tuple(compiled.positiontup or ()) != _RESULT_COLUMNS:  # _values' order is the SQL's
            raise StoreError(f"unexpected INSERT parameters for {dialect.name}: {self.sql}")
        self._processors = [
            (i, process)
            for i, name in enumerate(_RESULT_COLUMNS)
            if (process := _bind_processor(name, dialect)) is not None
        ]

    def params(self, values: list[Any]) -> tuple[Any, ...]:
        """The driver's parameters for one result's _values."""
        for i, process in self._processors:
            try:
                values[i] = process(values[i])
            except (ValueError, TypeError) as exc:  # as SQLAlchemy reports a bad value
                raise StatementError(str(exc), None, None, exc) from exc
        return tuple(values)


def _bind_processor(column: str, dialect: Dialect) -> Callable[[Any], Any] | None:
    column_type = check_results.c[column].type
    return column_type.dialect_impl(dialect).bind_processor(dialect)


def _evidence(result: ProbeResult) -> tuple[str | None, str | None, bytes | None]:
    """What a failing probe saw, for explaining it later (signature, headers as JSON,
    body); nothing for a passing one."""
    if result.ok:
        return None, None, None
    headers = [[_storable(name), _storable(value)] for name, value in result.headers]
    return (
        result.signature,
        json.dumps(headers, ensure_ascii=False),
        result.body[:EVIDENCE_BODY],
    )


def _storable(text: str) -> str:
    """Text every database takes: a target's bytes (undecodable header values, NUL in a DNS
    TXT answer) are written as escapes instead of failing the whole batch."""
    if text.isascii() and "\x00" not in text:
        return text
    safe = text.encode("utf-8", "backslashreplace").decode("utf-8")
    return safe.replace("\x00", "\\x00")


def _result(row: RowMapping) -> ProbeResult:
    phases = Phases(**{phase: row[f"{phase}_s"] for phase in PHASES}, total=row["total_s"])
    return ProbeResult(
        monitor=row["name"],
        role=Role(row["role"]),
        origin=row["origin"],
        time=row["time"],
        ok=row["ok"],
        cause=Cause(row["cause"]),
        detail=row["detail"],
        status=row["status"],
        peer_ip=row["peer_ip"],
        phases=phases,
        kind=Kind(row["kind"]),
        target=row["target"],
        peer_port=row["peer_port"],
        tls_version=row["tls_version"],
        cert_not_after=row["cert_not_after"],
        signature=row["signature"],
        headers=tuple((n, v) for n, v in json.loads(row["headers"] or "[]")),
        body=row["body"] or b"",
    )


def _set_sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    cursor = dbapi_connection.cursor()
    for pragma in _SQLITE_PRAGMAS:
        cursor.execute(pragma)
    cursor.close()
