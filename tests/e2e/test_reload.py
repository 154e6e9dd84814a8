"""SIGHUP: the config read again and applied to a running daemon, or refused whole."""

from __future__ import annotations

import asyncio
import signal
import socket
from pathlib import Path

import aiohttp
from aiohttp import web
from prometheus_client import CollectorRegistry

from monitor.engine.scheduler import CheckScheduler
from monitor.metrics.registry import Metrics
from monitor.models import Monitor, Site
from tests.support.localsite import serve, start_daemon


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def _config(db: Path, port: int, sites: dict[str, str]) -> str:
    listed = "".join(f"  - name: {name}\n    url: {url}\n" for name, url in sites.items())
    return (
        f"storage:\n  url: sqlite+aiosqlite:///{db}\nserver:\n  listen: 127.0.0.1:{port}\n"
        f"defaults:\n  interval: 1s\n  timeout: 400ms\nsites:\n{listed}"
    )


async def _metrics(base: str) -> str:
    try:
        async with aiohttp.ClientSession() as session, session.get(f"{base}/metrics") as resp:
            return await resp.text()
    except aiohttp.ClientConnectionError:
        return ""


async def _until(base: str, present: list[str], absent: list[str], seconds: float = 15) -> str:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + seconds
    text = ""
    while loop.time() < deadline:
        text = await _metrics(base)
        if all(p in text for p in present) and not any(a in text for a in absent):
            return text
        await asyncio.sleep(0.2)
    raise AssertionError(f"metrics never had {present} without {absent}:\n{text[-2000:]}")


async def test_sighup_adds_and_removes_sites_and_refuses_a_broken_config(tmp_path: Path) -> None:
    async def hello(_: web.Request) -> web.Response:
        return web.Response(text="hello")

    port = _free_port()
    base = f"http://127.0.0.1:{port}"
    config, log = tmp_path / "config.yaml", tmp_path / "daemon.log"
    async with serve(hello) as url:
        config.write_text(_config(tmp_path / "m.db", port, {"old": url, "kept": url}))
        proc = await start_daemon(config, log)
        try:
            await _until(
                base, ['probe_success{monitor="old",role="edge",origin="",kind="http"}'], []
            )
            config.write_text(_config(tmp_path / "m.db", port, {"kept": url, "new": url}))
            proc.send_signal(signal.SIGHUP)
            text = await _until(
                base,
                ['probe_success{monitor="new",role="edge",origin="",kind="http"}'],
                ['monitor="old"'],
            )
            assert "monitor_config_last_reload_successful 1.0" in text
            config.write_text(config.read_text() + "  - name: broken\n    interval: 5\n")
            proc.send_signal(signal.SIGHUP)
            text = await _until(base, ["monitor_config_last_reload_successful 0.0"], [])
            assert 'monitor="new"' in text  # still running on the last good config
            proc.send_signal(signal.SIGTERM)
            # SIGTERM: what is asserted is a clean exit; 30 s is only how long to wait for it
            # on a starved machine (the daemon's own grace: 5 s for rounds, 4 s for the store).
            assert await asyncio.wait_for(proc.wait(), timeout=30) == 0
        finally:
            if proc.returncode is None:
                proc.kill()
                await proc.wait()
    output = log.read_text(encoding="utf-8")
    assert "event=config.reloaded monitors=2 added=1 removed=1" in output
    assert "event=config.reload_failed" in output
    assert "config.yaml:13: sites[2].url: is required" in output  # file, line, field
    assert "Traceback" not in output


async def test_replacing_monitors_keeps_unchanged_jobs_and_drops_gone_ones() -> None:
    def site(name: str, interval: float = 60.0) -> Site:
        return Site(name=name, url=f"http://{name}.test/", interval=interval, timeout=5.0)

    async def run_round(_: Monitor) -> None:
        return None

    scheduler = CheckScheduler([site("a"), site("b")], run_round, Metrics(CollectorRegistry()))
    removed = scheduler.replace_monitors([site("b", 30.0), site("c")])
    assert removed == ("a",)
    assert sorted(scheduler.monitors) == ["b", "c"]
    assert scheduler.monitors["b"].interval == 30.0
    assert scheduler.longest_interval == 60.0
