"""Incidents across a crash: SIGKILL while a site is down, fix it, start again."""

from __future__ import annotations

import asyncio
import signal
import socket
import sqlite3
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
from aiohttp import web

from tests.support.localsite import serve, start_daemon


class Switchable:
    """A site that answers 503 until it is fixed."""

    def __init__(self) -> None:
        self.broken = True

    async def handle(self, _: web.Request) -> web.Response:
        if self.broken:
            return web.Response(status=503, text="down for a while")
        return web.Response(text="hello")


@pytest.fixture
async def site() -> AsyncIterator[tuple[Switchable, str]]:
    switch = Switchable()
    async with serve(switch.handle) as url:
        yield switch, url


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def _incidents(db: Path) -> list[tuple[str, str | None, float | None]]:
    if not db.exists():
        return []
    with sqlite3.connect(db) as conn:
        try:
            rows = conn.execute("SELECT opened_at, closed_at, duration_s FROM incidents")
            return list(rows.fetchall())
        except sqlite3.OperationalError:  # the schema is not there yet
            return []


async def _until(what: str, check: object, seconds: float = 20.0) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + seconds
    while loop.time() < deadline:
        if callable(check) and check():
            return
        await asyncio.sleep(0.1)
    raise AssertionError(f"timed out waiting for {what}")


async def test_sigkill_while_down_then_fixed_closes_the_incident_once(
    site: tuple[Switchable, str], tmp_path: Path
) -> None:
    switch, url = site
    db = tmp_path / "monitor.db"
    config = tmp_path / "config.yaml"
    config.write_text(
        f"""
storage:
  url: sqlite+aiosqlite:///{db}
server:
  listen: 127.0.0.1:{_free_port()}
defaults:
  interval: 1s
  timeout: 400ms
  failure_threshold: 2
sites:
  - name: shop
    url: {url}
""",
        encoding="utf-8",
    )
    first_log, second_log = tmp_path / "first.log", tmp_path / "second.log"
    first = await start_daemon(config, first_log)
    try:
        await _until("an open incident", lambda: any(c is None for _, c, _ in _incidents(db)))
    finally:
        first.send_signal(signal.SIGKILL)
        await first.wait()
    switch.broken = False
    await asyncio.sleep(1.5)  # the site is fixed while no daemon watches
    restarted_at = datetime.now(UTC)
    second = await start_daemon(config, second_log)
    try:
        await _until("the incident closed", lambda: all(c for _, c, _ in _incidents(db)))
        await asyncio.sleep(2.5)  # more healthy rounds: nothing more may happen
        second.send_signal(signal.SIGTERM)
        # SIGTERM: what is asserted is a clean exit; 30 s is only how long to wait for it
        # on a starved machine (the daemon's own grace: 5 s for rounds, 4 s for the store).
        assert await asyncio.wait_for(second.wait(), timeout=30) == 0
    finally:
        if second.returncode is None:
            second.kill()
            await second.wait()
    [(opened, closed, duration)] = _incidents(db)
    assert closed is not None
    assert duration is not None
    opened_at, closed_at = _time(opened), _time(closed)
    assert duration == pytest.approx((closed_at - opened_at).total_seconds())
    # Closed by the first round after the restart, however slowly the daemon started:
    # counted in rounds, not seconds.
    after = [(time, ok) for time, ok in _results(db) if time >= restarted_at]
    assert after
    assert all(ok for _, ok in after)
    assert sum(time <= closed_at for time, _ in after) == 1
    output = second_log.read_text(encoding="utf-8")
    assert "Traceback" not in output
    assert output.count("event=incident.closed") == 1
    assert "event=incident.opened" not in output
    assert "event=state.restored monitors=1 open_incidents=1" in output
    with sqlite3.connect(db) as conn:
        events = conn.execute("SELECT kind, event FROM incident_events ORDER BY seq").fetchall()
    assert events == [("opened", "down"), ("changed", "recovered"), ("closed", None)]


def _results(db: Path) -> list[tuple[datetime, bool]]:
    """Every stored result's time and ok, oldest first."""
    with sqlite3.connect(db) as conn:
        rows = conn.execute("SELECT time, ok FROM check_results ORDER BY time").fetchall()
    return [(_time(time), bool(ok)) for time, ok in rows]


def _time(text: str) -> datetime:
    parsed = datetime.fromisoformat(text)
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)  # SQLite keeps naive UTC
