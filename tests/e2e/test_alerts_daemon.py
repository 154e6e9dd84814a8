"""Alerts end to end: the daemon as a process, a webhook receiver, SIGKILL at the worst times."""

from __future__ import annotations

import asyncio
import signal
import sqlite3
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from aiohttp import web

from tests.support.localsite import daemon_config as config
from tests.support.localsite import serve, start_daemon
from tests.support.receivers import Webhook, free_port, webhook


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


def outbox(db: Path) -> list[tuple[str, str, str, int]]:
    """(notifier, event, status, attempts) of every outbox row, oldest first."""
    if not db.exists():
        return []
    with sqlite3.connect(db) as conn:
        try:
            query = "SELECT notifier, event, status, attempts FROM alert_outbox ORDER BY id"
            return list(conn.execute(query).fetchall())
        except sqlite3.OperationalError:  # the schema is not there yet
            return []


async def until(what: str, check: object, seconds: float = 20.0) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + seconds
    while loop.time() < deadline:
        if callable(check) and check():
            return
        await asyncio.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}")


async def stop(daemon: asyncio.subprocess.Process) -> int:
    daemon.send_signal(signal.SIGTERM)
    try:
        # SIGTERM: what is asserted is a clean exit; 30 s is only how long to wait for it
        # on a starved machine (the daemon's own grace: 5 s for rounds, 4 s for the store).
        return await asyncio.wait_for(daemon.wait(), timeout=30)
    finally:
        if daemon.returncode is None:
            daemon.kill()
            await daemon.wait()


async def kill(daemon: asyncio.subprocess.Process) -> None:
    daemon.send_signal(signal.SIGKILL)
    await daemon.wait()


def titles(hook: Webhook) -> list[str]:
    return [payload["title"].split(":")[0] for payload in hook.received]


@pytest.mark.parametrize("before_kill", ["not-yet-due", "receiver-refused"])
async def test_sigkill_between_storing_and_sending_then_restart_sends_it_once(
    site: tuple[Switchable, str], tmp_path: Path, before_kill: str
) -> None:
    switch, url = site
    db = tmp_path / "monitor.db"
    escalated = before_kill == "not-yet-due"
    async with webhook(up=escalated) as hook:
        path = config(
            tmp_path,
            f"""
sites:
  - name: shop
    url: {url}
notifiers:
  hook: {{url: "{hook.url}"}}
alerts:
  - notify: [hook]
    events: [down]
    {"after: 3s" if escalated else ""}
  - notify: [hook]
    events: [recovered]
alerting:
  group_window: 200ms
""",
        )
        # Stored and due in 3 s, or tried once and refused: either way not sent yet.
        stored = ("hook", "down", "pending", 0 if escalated else 1)
        first = await start_daemon(path, tmp_path / "first.log")
        try:
            await until("the alert stored", lambda: outbox(db) == [stored])
        finally:
            await kill(first)
        assert hook.received == []
        if escalated:
            await asyncio.sleep(3)  # due while no daemon runs
        else:
            await hook.up()
        second = await start_daemon(path, tmp_path / "second.log")
        try:
            await hook.wait(1)
            await asyncio.sleep(3)  # three more polls: nothing more
            assert titles(hook) == ["[DOWN] shop"]
            switch.broken = False
            await hook.wait(2)
            assert await stop(second) == 0
        finally:
            if second.returncode is None:
                await kill(second)
    assert titles(hook) == ["[DOWN] shop", "[RECOVERED] shop"]
    attempts = 1 if escalated else 2
    assert outbox(db) == [("hook", "down", "sent", attempts), ("hook", "recovered", "sent", 1)]
    log = (tmp_path / "second.log").read_text(encoding="utf-8")
    assert "Traceback" not in log
    assert log.count("event=alert.sent") == 2


async def test_sigkill_after_sending_does_not_send_it_again(
    site: tuple[Switchable, str], tmp_path: Path
) -> None:
    _, url = site
    db = tmp_path / "monitor.db"
    async with webhook() as hook:
        path = config(
            tmp_path,
            f"""
sites:
  - name: shop
    url: {url}
notifiers:
  hook: {{url: "{hook.url}"}}
alerts:
  - notify: [hook]
alerting:
  group_window: 200ms
""",
        )
        first = await start_daemon(path, tmp_path / "first.log")
        try:
            await until("the alert sent", lambda: outbox(db) == [("hook", "down", "sent", 1)])
        finally:
            await kill(first)
        second = await start_daemon(path, tmp_path / "second.log")
        try:
            await until("the restart", lambda: "event=daemon.started" in _log(tmp_path))
            await asyncio.sleep(4)  # four polls of the outbox
            assert await stop(second) == 0
        finally:
            if second.returncode is None:
                await kill(second)
    assert titles(hook) == ["[DOWN] shop"]
    assert outbox(db) == [("hook", "down", "sent", 1)]


def _log(tmp_path: Path) -> str:
    return (tmp_path / "second.log").read_text(encoding="utf-8")


async def _broken_edge(_: web.Request) -> web.Response:
    return web.Response(status=503, text="backend fetch failed", headers={"Server": "Varnish"})


async def test_ten_sites_behind_one_dead_origin_page_once(tmp_path: Path) -> None:
    dead = free_port()  # nothing listens there: every origin is refused
    async with serve(_broken_edge) as edge, webhook() as hook:
        sites = "".join(
            f"""
  - name: site-{i}
    url: {edge}
    origins:
      - name: app
        address: 127.0.0.1:{dead}
"""
            for i in range(10)
        )
        path = config(
            tmp_path,
            f"""
sites:{sites}
notifiers:
  hook: {{url: "{hook.url}"}}
alerts:
  - notify: [hook]
alerting:
  group_window: 3s
""",
        )
        daemon = await start_daemon(path, tmp_path / "daemon.log")
        try:
            await hook.wait(1)
            await asyncio.sleep(3)
            assert await stop(daemon) == 0
        finally:
            if daemon.returncode is None:
                await kill(daemon)
    [payload] = hook.received
    assert payload["title"].startswith("[DOWN] 10 sites down (")
    for i in range(10):
        assert f"site-{i}:" in payload["message"]
    assert {status for _, _, status, _ in outbox(tmp_path / "monitor.db")} == {"sent"}


async def test_a_failing_canary_means_no_site_pages(tmp_path: Path) -> None:
    dead = free_port()
    async with serve(_broken_edge) as edge, webhook() as hook:
        path = config(
            tmp_path,
            f"""
sites:
  - name: shop
    url: {edge}
  - name: blog
    url: {edge}
checks:
  - name: uplink
    kind: tcp
    host: 127.0.0.1
    port: {dead}
notifiers:
  hook: {{url: "{hook.url}"}}
alerts:
  - notify: [hook]
alerting:
  canary: uplink
  group_window: 3s
""",
        )
        daemon = await start_daemon(path, tmp_path / "daemon.log")
        try:
            await hook.wait(1)
            await asyncio.sleep(4)
            assert await stop(daemon) == 0
        finally:
            if daemon.returncode is None:
                await kill(daemon)
    [notice] = hook.received
    assert notice["title"].startswith("[CANARY] the monitor's own network looks down")
    assert "The canary uplink fails" in notice["message"]
    rows = outbox(tmp_path / "monitor.db")
    assert [status for _, _, status, _ in rows] == ["held"] * 3  # shop, blog, the canary


async def test_sighup_applies_new_notifiers_and_routes(
    site: tuple[Switchable, str], tmp_path: Path
) -> None:
    switch, url = site
    switch.broken = False
    listen = free_port()
    async with webhook() as old, webhook() as new:

        def write(name: str, hook: Webhook) -> Path:
            body = f"""
sites:
  - name: shop
    url: {url}
notifiers:
  {name}: {{url: "{hook.url}"}}
alerts:
  - notify: [{name}]
alerting:
  group_window: 200ms
"""
            return config(tmp_path, body, listen)

        path = write("old", old)
        daemon = await start_daemon(path, tmp_path / "daemon.log")
        try:
            await until("the start", lambda: "event=daemon.started" in _read(tmp_path))
            write("new", new)
            daemon.send_signal(signal.SIGHUP)
            await until("the reload", lambda: "event=config.reloaded" in _read(tmp_path))
            switch.broken = True
            await new.wait(1)
            assert await stop(daemon) == 0
        finally:
            if daemon.returncode is None:
                await kill(daemon)
    assert old.received == []
    assert titles(new) == ["[DOWN] shop"]


def _read(tmp_path: Path) -> str:
    return (tmp_path / "daemon.log").read_text(encoding="utf-8")
