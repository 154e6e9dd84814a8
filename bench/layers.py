"""CPU per check of each layer of the daemon's path, in one process, against a local nginx.

Each line adds one layer to the one before: a bare aiohttp GET on a fresh connection; our
HTTP probe (phase timings, classification); the runner with metrics and the result queue;
the judge (diagnosis, state machine, trends); the SQLite store. Checks run 50 at a time,
so the event loop is always busy: this is the cost of the work itself, without the
scheduler or an idle loop's wake-ups (bench/run.py measures the whole daemon).

    python bench/layers.py [--checks 4000] [--loop uvloop|asyncio]
"""

from __future__ import annotations

import argparse
import asyncio
import resource
import tempfile
import time
from collections.abc import Awaitable, Callable, Sequence
from datetime import UTC, datetime
from pathlib import Path

import aiohttp
import targets
from prometheus_client import CollectorRegistry

from monitor.config.load import Config, load_config
from monitor.engine.judging import Judge
from monitor.engine.runner import Runner, probe_round
from monitor.judge.tracker import Tracker
from monitor.metrics.registry import Metrics
from monitor.models import Monitor, ProbeResult
from monitor.probes import make_clients
from monitor.store.sql import SqlStore
from monitor.store.writer import BatchWriter

SITES = 1000
AT_ONCE = 50


def _cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


async def _measure(label: str, one: Callable[[int], Awaitable[object]], checks: int) -> None:
    gate = asyncio.Semaphore(AT_ONCE)

    async def run(i: int) -> None:
        async with gate:
            await one(i)

    await asyncio.gather(*(run(i) for i in range(200)))  # warm up
    cpu, started = _cpu(), time.perf_counter()
    await asyncio.gather(*(run(i) for i in range(checks)))
    used, took = _cpu() - cpu, time.perf_counter() - started
    print(f"{label:34s} {used / checks * 1e6:7.1f} µs CPU a check   ({checks / took:,.0f}/s)")


class _Nowhere:
    def submit(self, _: object) -> None:
        return None


async def _layers(config: Config, checks: int, db: Path) -> None:
    monitors: Sequence[Monitor] = config.monitors

    def pick(i: int) -> Monitor:
        return monitors[i % len(monitors)]

    plain = aiohttp.ClientSession(connector=aiohttp.TCPConnector(force_close=True, limit=0))
    clients = make_clients()
    metrics = Metrics(CollectorRegistry())
    tracker = Tracker(config.tracking)
    judge = Judge(tracker, config.maintenance, _Nowhere(), metrics, config.alerts.routes)
    store = SqlStore(f"sqlite+aiosqlite:///{db}")
    await store.upgrade()
    await store.register_monitors([m.name for m in monitors])

    async def ignore(_: Sequence[ProbeResult]) -> None:
        return None

    queue: BatchWriter[ProbeResult] = BatchWriter(ignore, linger=0.5)
    stored: BatchWriter[ProbeResult] = BatchWriter(store.write_results, linger=0.5)
    queue.start()
    stored.start()
    try:

        async def bare(i: int) -> None:
            async with plain.get(pick(i).url) as response:
                await response.read()

        await _measure("bare aiohttp GET", bare, checks)
        await _measure(
            "+ our HTTP probe",
            lambda i: probe_round(clients, pick(i), datetime.now(UTC)),
            checks,
        )
        counted = Runner(clients, queue, metrics)
        await _measure("+ metrics, result queue", lambda i: counted.run_round(pick(i)), checks)
        judged = Runner(clients, queue, metrics, judge)
        await _measure("+ diagnosis, state, trends", lambda i: judged.run_round(pick(i)), checks)
        whole = Runner(clients, stored, metrics, judge)
        await _measure("+ SQLite store", lambda i: whole.run_round(pick(i)), checks)
    finally:
        await queue.close(10)
        await stored.close(10)
        await store.close()
        await plain.close()
        await clients.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--checks", type=int, default=4000)
    parser.add_argument("--loop", choices=("uvloop", "asyncio"), default="uvloop")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp, targets.nginx(Path(tmp), SITES, 2) as target:
        lines = ["sites:"]
        for i in range(SITES):
            name, url = target.site(i)
            lines.append(f"  - {{name: {name}, url: '{url}'}}")
        (Path(tmp) / "config.yaml").write_text("\n".join(lines) + "\n")
        config = load_config(str(Path(tmp) / "config.yaml"))
        work = _layers(config, args.checks, Path(tmp) / "bench.db")
        if args.loop == "uvloop":
            import uvloop

            uvloop.run(work)
        else:
            asyncio.run(work)


if __name__ == "__main__":
    main()
