"""Reading the daemon's database from outside: the stored rounds of a time window, the row
count and the bytes per stored result, for SQLite (sqlite3, read-only) and PostgreSQL
(psql)."""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Protocol

from postgres import Server

# Rounds are the edge results: a site's re-check after a failure has a later time of its
# own, and is told apart from a round by its planned time (see case.lags).
_ROUNDS = (
    "SELECT m.name, {time}, r.total_s, r.cause"
    " FROM check_results r JOIN monitors m ON m.id = r.monitor_id"
    " WHERE r.role = 'edge' AND r.time >= {lo} AND r.time < {hi}"
)


@dataclass(frozen=True, slots=True)
class Size:
    rows: int
    bytes: int
    how: str  # what was measured

    @property
    def per_row(self) -> float:
        return self.bytes / self.rows if self.rows else float("nan")


class StoreView(Protocol):
    url: str

    def rounds(self, lo: float, hi: float) -> list[tuple[str, float, float, str]]:
        """(monitor, start time, seconds the probe took, cause) of the edge results in
        [lo, hi)."""
        ...

    def count_before(self, t: float) -> int: ...

    def size(self) -> Size: ...


class SqliteView:
    def __init__(self, path: Path) -> None:
        self.path = path
        self.url = f"sqlite+aiosqlite:///{path}"

    def _connect(self) -> sqlite3.Connection:
        return sqlite3.connect(f"file:{self.path}?mode=ro", uri=True, timeout=30)

    def rounds(self, lo: float, hi: float) -> list[tuple[str, float, float, str]]:
        sql = _ROUNDS.format(time="r.time", lo="?", hi="?")
        with self._connect() as db:
            rows = db.execute(sql, (_sqlite_time(lo), _sqlite_time(hi))).fetchall()
        return [(name, _epoch(text), took, cause) for name, text, took, cause in rows]

    def count_before(self, t: float) -> int:
        with self._connect() as db:
            sql = "SELECT count(*) FROM check_results WHERE time < ?"
            count: int = db.execute(sql, (_sqlite_time(t),)).fetchone()[0]
            return count

    def size(self) -> Size:
        """Once the daemon has stopped: fold the WAL in, then table and index pages (dbstat)
        or else the whole file."""
        with sqlite3.connect(self.path) as db:
            db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
            rows = db.execute("SELECT count(*) FROM check_results").fetchone()[0]
            try:
                used = db.execute(
                    "SELECT sum(pgsize) FROM dbstat WHERE name = 'check_results'"
                    " OR name IN (SELECT name FROM sqlite_master"
                    " WHERE type = 'index' AND tbl_name = 'check_results')"
                ).fetchone()[0]
                return Size(rows, int(used), "dbstat: check_results and its indexes")
            except sqlite3.OperationalError:
                return Size(rows, self.path.stat().st_size, "database file after checkpoint")


class PostgresView:
    def __init__(self, server: Server, database: str) -> None:
        self.server = server
        self.database = database
        self.url = server.create_database(database)

    def rounds(self, lo: float, hi: float) -> list[tuple[str, float, float, str]]:
        sql = _ROUNDS.format(
            time="extract(epoch FROM r.time)",
            lo=f"to_timestamp({lo!r})",
            hi=f"to_timestamp({hi!r})",
        )
        out = self.server.psql(self.database, sql)
        rows = (line.split("|") for line in out.splitlines())
        return [(name, float(t), float(took), cause) for name, t, took, cause in rows]

    def count_before(self, t: float) -> int:
        sql = f"SELECT count(*) FROM check_results WHERE time < to_timestamp({t!r})"
        return int(self.server.psql(self.database, sql))

    def size(self) -> Size:
        out = self.server.psql(
            self.database,
            "SELECT count(*), pg_total_relation_size('check_results') FROM check_results",
        )
        rows, used = (int(v) for v in out.split("|"))
        return Size(rows, used, "pg_total_relation_size(check_results): heap, indexes, TOAST")


def _sqlite_time(t: float) -> str:
    """The text SQLAlchemy stores for a UTC time in SQLite, which compares in time order."""
    return datetime.fromtimestamp(t, UTC).strftime("%Y-%m-%d %H:%M:%S.%f")


def _epoch(text: str) -> float:
    return datetime.fromisoformat(text).replace(tzinfo=UTC).timestamp()
