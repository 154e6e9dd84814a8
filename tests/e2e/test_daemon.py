"""The daemon end to end, as a user runs it: a real process, real sites, SIGTERM."""

from __future__ import annotations

import asyncio
import os
import re
import signal
import socket
import sqlite3
import sys
from collections.abc import AsyncIterator
from pathlib import Path
from urllib.parse import urlsplit

import aiohttp
import pytest
from aiohttp import web


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@pytest.fixture
async def ok_site() -> AsyncIterator[str]:
    async def hello(_: web.Request) -> web.Response:
        return web.Response(text="hello")

    app = web.Application()
    app.router.add_get("/", hello)
    runner = web.AppRunner(app)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", 0).start()
    yield f"http://127.0.0.1:{runner.addresses[0][1]}/"
    await runner.cleanup()


async def _sample(session: aiohttp.ClientSession, base: str, series: str) -> float | None:
    try:
        async with session.get(f"{base}/metrics") as resp:
            text = await resp.text()
    except aiohttp.ClientConnectionError:
        return None
    match = re.search(rf"^{re.escape(series)} (\S+)$", text, re.MULTILINE)
    return float(match.group(1)) if match else None


def _series(site: str, role: str = "edge", origin: str = "", kind: str = "http") -> str:
    return f'probe_success{{monitor="{site}",role="{role}",origin="{origin}",kind="{kind}"}}'


async def _wait_for_metrics(base: str, series: list[str], deadline: float) -> dict[str, float]:
    loop = asyncio.get_running_loop()
    async with aiohttp.ClientSession() as session:
        while loop.time() < deadline:
            values = {s: await _sample(session, base, s) for s in series}
            if all(v is not None for v in values.values()):
                return {s: v for s, v in values.items() if v is not None}
            await asyncio.sleep(0.2)
    raise AssertionError(f"metrics never showed all of {series}")


async def test_daemon_checks_stores_exports_and_stops_cleanly(ok_site: str, tmp_path: Path) -> None:
    port = _free_port()
    closed = _free_port()  # bound then released: nothing listens there
    config = tmp_path / "config.yaml"
    config.write_text(
        f"""
storage:
  url: sqlite+aiosqlite:///{tmp_path}/monitor.db
server:
  listen: 127.0.0.1:{port}
defaults:
  interval: 1s
  timeout: 500ms
sites:
  - name: up
    url: {ok_site}
    origins:
      - name: same-server
        address: {urlsplit(ok_site).netloc}
    checks:
      - kind: tcp
  - name: refused
    url: http://127.0.0.1:{closed}/
  - name: nxdomain
    url: http://no-such-host.invalid/
""",
        encoding="utf-8",
    )
    log_path = tmp_path / "daemon.log"
    with log_path.open("wb") as log:
        proc = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "monitor",
            "run",
            "-c",
            str(config),
            "--log-level",
            "debug",  # a line for every check, not only the failed ones
            stdout=log,
            stderr=log,
            cwd=tmp_path,
            env={**os.environ, "PYTHONUNBUFFERED": "1"},
        )
        try:
            base = f"http://127.0.0.1:{port}"
            # Within two intervals of start-up (plus the interpreter's own start).
            deadline = asyncio.get_running_loop().time() + 10
            expected = {
                _series("up"): 1.0,
                _series("up", "origin", "same-server"): 1.0,
                _series("up", kind="tcp"): 1.0,
                _series("refused"): 0.0,
                _series("nxdomain"): 0.0,
            }
            values = await _wait_for_metrics(base, list(expected), deadline)
            assert values == expected
            async with aiohttp.ClientSession() as session, session.get(f"{base}/healthz") as resp:
                assert resp.status == 200, await resp.text()
            proc.send_signal(signal.SIGTERM)
            # SIGTERM: what is asserted is a clean exit; 30 s is only how long to wait for it
            # on a starved machine (the daemon's own grace: 5 s for rounds, 4 s for the store).
            exit_code = await asyncio.wait_for(proc.wait(), timeout=30)
        finally:
            if proc.returncode is None:
                proc.kill()
                await proc.wait()
    output = log_path.read_text(encoding="utf-8")
    assert exit_code == 0, output
    assert "Traceback" not in output
    finished = re.findall(
        r"event=check\.finished monitor=(\S+) role=(\S+) .*?kind=(\S+) .*?cause=(\S+)", output
    )
    with sqlite3.connect(tmp_path / "monitor.db") as db:
        rows = db.execute(
            "SELECT m.name, r.role, r.kind, r.cause FROM check_results r "
            "JOIN monitors m ON m.id = r.monitor_id"
        ).fetchall()
    # Every probe the daemon finished (and logged) is in the database, none twice.
    assert sorted(rows) == sorted(finished)
    assert set(rows) == {
        ("up", "edge", "http", "ok"),
        ("up", "origin", "http", "ok"),
        ("up", "edge", "tcp", "ok"),
        ("refused", "edge", "http", "connect_refused"),
        ("nxdomain", "edge", "http", "dns_nxdomain"),
    }
    assert "event=daemon.stopped" in output
    assert "unwritten_results=0" in output
