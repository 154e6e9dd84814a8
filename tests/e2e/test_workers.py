"""``monitor run --workers N``: the sharing (pure tables), then real processes end to end."""

from __future__ import annotations

import asyncio
import math
import os
import re
import signal
import socket
import sqlite3
import subprocess
import sys
from collections import Counter
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, replace
from pathlib import Path

import aiohttp
import pytest
from aiohttp import web

from monitor.app.shard import Shard, narrow, owner
from monitor.cli import main
from monitor.config.load import load_config
from tests.support.localsite import daemon_config, serve, start_daemon
from tests.support.receivers import Webhook, free_port, webhook

NAMES = [f"site-{i}" for i in range(20_000)]


@pytest.mark.parametrize(
    ("text", "shard"), [("0/1", Shard(0, 1)), ("0/2", Shard(0, 2)), ("3/4", Shard(3, 4))]
)
def test_a_shard_reads_as_index_of_count(text: str, shard: Shard) -> None:
    assert Shard.parse(text) == shard


@pytest.mark.parametrize("text", ["2/2", "0/0", "1", "-1/2", "a/2", "1/2/3", "", "/2"])
def test_a_bad_shard_is_refused(text: str) -> None:
    with pytest.raises(ValueError, match="expected I/N"):
        Shard.parse(text)


def test_every_name_has_one_owner_and_the_shares_are_even() -> None:
    for count in (2, 3, 4):
        members = [str(i) for i in range(count)]
        shares = Counter(owner(name, members) for name in NAMES)
        assert set(shares) == set(members)
        even = len(NAMES) / count
        spread = math.sqrt(len(NAMES) * (1 / count) * (1 - 1 / count))  # binomial
        for share in shares.values():  # as even as chance allows: within 4 deviations
            assert abs(share - even) < 4 * spread


def test_one_more_worker_moves_only_what_it_takes() -> None:
    """From 2 workers to 3, a name either stays or goes to the new one: about a third move."""
    before = {name: owner(name, ["0", "1"]) for name in NAMES}
    after = {name: owner(name, ["0", "1", "2"]) for name in NAMES}
    moved = [name for name in NAMES if before[name] != after[name]]
    assert all(after[name] == "2" for name in moved)
    assert abs(len(moved) / len(NAMES) - 1 / 3) < 0.02


def test_the_sharing_does_not_depend_on_order_or_process() -> None:
    """The same owner for the same name whatever the list of members looks like (no salt)."""
    assert owner("shop", ["0", "1"]) == owner("shop", ["1", "0"])
    assert [owner(n, ["0", "1"]) for n in NAMES[:50]] == [owner(n, ["1", "0"]) for n in NAMES[:50]]


def test_narrow_gives_each_worker_its_sites_its_port_and_the_canary_to_worker_0(
    tmp_path: Path,
) -> None:
    path = tmp_path / "config.yaml"
    sites = "".join(f"\n  - {{name: {name}, url: 'http://127.0.0.1/'}}" for name in NAMES[:40])
    path.write_text(
        f"""
server:
  listen: 127.0.0.1:9100
sites:{sites}
checks:
  - {{name: uplink, kind: tcp, host: 127.0.0.1, port: 9}}
alerting:
  canary: uplink
""",
        encoding="utf-8",
    )
    config = load_config(path)
    parts = [narrow(config, Shard(i, 3)) for i in range(3)]
    names = [sorted(m.name for m in part.monitors) for part in parts]
    assert sorted(n for share in names for n in share) == sorted([*NAMES[:40], "uplink"])
    assert all(share for share in names)  # nobody idle with 40 sites
    assert "uplink" in names[0]
    assert [part.server.port for part in parts] == [9100, 9101, 9102]
    assert narrow(config, Shard()) is config
    assert narrow(replace(config, alerts=replace(config.alerts, canary=None)), Shard(1, 3))


@pytest.mark.parametrize(
    ("argv", "says"),
    [
        (["--workers", "2", "--shard", "0/2"], "do not go together"),
        (["--shard", "2/2"], "expected I/N"),
        (["--workers", "0"], "1 or more"),
    ],
)
def test_bad_worker_options_are_usage_errors(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], argv: list[str], says: str
) -> None:
    path = tmp_path / "config.yaml"
    path.write_text("sites:\n  - {name: a, url: 'http://127.0.0.1/'}\n", encoding="utf-8")
    try:
        code: object = main(["run", "-c", str(path), *argv])
    except SystemExit as exit:  # argparse's own refusal
        code = exit.code
    assert code == 2
    assert says in capsys.readouterr().err


# --- real processes --------------------------------------------------------------------

OK_SITES = [f"ok-{i}" for i in range(8)]
DOWN_SITES = [f"down-{i}" for i in range(4)]


async def _hello(_: web.Request) -> web.Response:
    return web.Response(text="hello")


async def _broken(_: web.Request) -> web.Response:
    return web.Response(status=503, text="backend fetch failed", headers={"Server": "Varnish"})


def _config(tmp_path: Path, port: int, ok: str, broken: str, hook: str, extra: str = "") -> Path:
    sites = "".join(f"\n  - {{name: {n}, url: '{ok}{n}'}}" for n in OK_SITES)
    sites += "".join(f"\n  - {{name: {n}, url: '{broken}{n}'}}" for n in DOWN_SITES)
    body = f"""
sites:{sites}{extra}
notifiers:
  hook: {{url: "{hook}"}}
alerts:
  - notify: [hook]
alerting:
  group_window: 100ms
  group_min: 100
"""
    return daemon_config(tmp_path, body, listen=port)


@dataclass
class Running:
    """``monitor run --workers 2`` on the sites above, and what it runs against."""

    daemon: asyncio.subprocess.Process
    log: Path
    port: int  # worker 0's; worker 1 listens on the next
    ok: str
    broken: str
    hook: Webhook

    def pids(self) -> list[int]:
        """The workers' process ids, from the parent's log."""
        found = re.search(r"event=workers.started .*pids=\"?([\d,]+)", self.log.read_text())
        assert found is not None
        return [int(pid) for pid in found.group(1).split(",")]


@asynccontextmanager
async def two_workers(tmp_path: Path) -> AsyncIterator[Running]:
    """Two workers, every site exported by one of them before this yields."""
    port = _two_ports()
    async with serve(_hello) as ok, serve(_broken) as broken, webhook() as hook:
        path = _config(tmp_path, port, ok, broken, hook.url)
        log = tmp_path / "daemon.log"
        daemon = await start_daemon(path, log, "--workers", "2")
        try:
            await _shares([port, port + 1], len(OK_SITES) + len(DOWN_SITES))
            yield Running(daemon, log, port, ok, broken, hook)
        finally:
            if daemon.returncode is None:
                daemon.kill()
                await daemon.wait()


def _two_ports() -> int:
    """A free port whose next one is free too (worker 1 listens there)."""
    for _ in range(50):
        port = free_port()
        with socket.socket() as sock:
            try:
                sock.bind(("127.0.0.1", port + 1))
            except OSError:
                continue
        return port
    raise AssertionError("no two free ports in a row")


async def _exported(session: aiohttp.ClientSession, port: int) -> set[str]:
    """The monitors a worker exports probe_success for ({} while it does not answer)."""
    try:
        async with session.get(f"http://127.0.0.1:{port}/metrics") as resp:
            text = await resp.text()
    except aiohttp.ClientConnectionError:
        return set()
    return set(re.findall(r'^probe_success\{monitor="([^"]+)"', text, re.MULTILINE))


async def _shares(ports: list[int], want: int, seconds: float = 60.0) -> list[set[str]]:
    """Each worker's exported monitors, once ``want`` of them are exported in all."""
    async with aiohttp.ClientSession() as session, asyncio.timeout(seconds):
        while True:
            shares = [await _exported(session, port) for port in ports]
            if sum(len(share) for share in shares) >= want:
                return shares
            await asyncio.sleep(0.2)


def _stored_monitors(db: Path) -> Counter[str]:
    """How many results each monitor has in the store."""
    with sqlite3.connect(db) as conn:
        rows = conn.execute(
            "SELECT m.name, count(*) FROM check_results r JOIN monitors m ON m.id = r.monitor_id "
            "GROUP BY m.name"
        ).fetchall()
    return Counter(dict(rows))


async def _stop(daemon: asyncio.subprocess.Process, sig: int = signal.SIGTERM) -> int:
    daemon.send_signal(sig)
    try:
        return await asyncio.wait_for(daemon.wait(), timeout=15)
    finally:
        if daemon.returncode is None:
            daemon.kill()
            await daemon.wait()


async def test_two_workers_share_the_sites_and_worker_0_pages_for_both(tmp_path: Path) -> None:
    every = {*OK_SITES, *DOWN_SITES}
    async with two_workers(tmp_path) as run:
        shares = await _shares([run.port, run.port + 1], len(every))
        await run.hook.wait(len(DOWN_SITES))
        await asyncio.sleep(1.5)  # a page sent twice would be in by now
        assert await _stop(run.daemon) == 0
        received = run.hook.received
    assert shares[0] | shares[1] == every
    assert not shares[0] & shares[1]
    expected = [{n for n in every if owner(n, ["0", "1"]) == str(i)} for i in (0, 1)]
    assert shares == expected
    paged = Counter(p["title"].split(":")[0].removeprefix("[DOWN] ") for p in received)
    assert paged == Counter(DOWN_SITES)  # every down site paged once, whichever worker
    assert {n for n in DOWN_SITES if n in expected[1]}  # worker 1 had some of them
    assert set(_stored_monitors(tmp_path / "monitor.db")) == every
    text = run.log.read_text(encoding="utf-8")
    assert "event=workers.started count=2" in text
    for worker in ("0/2", "1/2"):
        stopped = "event=daemon.stopped unfinished_rounds=0 unwritten_results=0"
        assert f"monitor.daemon[{worker}] {stopped}" in text
    assert "event=workers.stopped failed=0" in text
    assert "Traceback" not in text


async def test_sighup_reaches_every_worker_and_a_dead_worker_stops_the_set(
    tmp_path: Path,
) -> None:
    async with two_workers(tmp_path) as run:
        added = "".join(f"\n  - {{name: new-{i}, url: '{run.ok}new'}}" for i in range(6))
        _config(tmp_path, run.port, run.ok, run.broken, run.hook.url, extra=added)
        run.daemon.send_signal(signal.SIGHUP)
        ports = [run.port, run.port + 1]
        shares = await _shares(ports, len(OK_SITES) + len(DOWN_SITES) + 6)
        first, second = run.pids()
        os.kill(second, signal.SIGKILL)
        code = await asyncio.wait_for(run.daemon.wait(), timeout=15)
    new = {f"new-{i}" for i in range(6)}
    assert new <= shares[0] | shares[1]
    assert [share & new for share in shares] == [
        {n for n in new if owner(n, ["0", "1"]) == str(i)} for i in (0, 1)
    ]
    text = run.log.read_text(encoding="utf-8")
    assert "monitor.daemon[0/2] event=config.reloaded monitors=" in text
    assert "monitor.daemon[1/2] event=config.reloaded monitors=" in text
    assert code == 1
    assert "event=worker.exited worker=1 code=-9 asked=false" in text
    assert "monitor.daemon[0/2] event=daemon.stopped" in text  # stopped, not left behind
    with pytest.raises(ProcessLookupError):
        os.kill(first, 0)


async def test_workers_stop_when_the_parent_is_killed(tmp_path: Path) -> None:
    async with two_workers(tmp_path) as run:
        run.daemon.kill()
        await run.daemon.wait()
        await _until_gone(run.pids(), 15.0)
    text = run.log.read_text(encoding="utf-8")
    assert text.count("event=daemon.stopped unfinished_rounds=0 unwritten_results=0") == 2


async def _until_gone(pids: list[int], seconds: float) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + seconds
    while any(_alive(pid) for pid in pids):
        assert loop.time() < deadline, f"workers still running: {pids}"
        await asyncio.sleep(0.1)


def _alive(pid: int) -> bool:
    """Whether ``pid`` runs (a zombie of another parent counts as gone)."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except FileNotFoundError:
        return False
    return state != "Z"


def test_a_bad_config_stops_the_workers_before_they_start(tmp_path: Path) -> None:
    path = tmp_path / "config.yaml"
    path.write_text("sites:\n  - {name: a, url: 'http://127.0.0.1/', interval: soon}\n")
    done = subprocess.run(
        [sys.executable, "-m", "monitor", "run", "-c", str(path), "--workers", "2"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 2
    assert done.stderr.startswith(f"monitor: {path}:2: sites[0].interval: ")
    assert done.stderr.count("\n") == 1  # said once, by the check before any worker
    assert "Traceback" not in done.stderr
