"""``monitor run``: wire config, store, probes, scheduler and web together, and stop cleanly."""

from __future__ import annotations

import asyncio
import logging
import signal
from dataclasses import dataclass

import aiohttp
from aiohttp import web
from prometheus_client import CollectorRegistry, disable_created_metrics

from monitor import logs
from monitor.config import Config
from monitor.errors import StoreError
from monitor.metrics import Metrics
from monitor.probes import make_session
from monitor.runner import Runner
from monitor.scheduler import CheckScheduler
from monitor.store import BatchWriter, SqlStore
from monitor.web import Health, make_app

log = logging.getLogger("monitor.daemon")

# SIGTERM must end the process within 10 s: rounds get 5 s to finish, the store 4 s to flush.
IN_FLIGHT_GRACE = 5.0
FLUSH_GRACE = 4.0


@dataclass(frozen=True, slots=True)
class Stopped:
    unfinished_rounds: int
    unwritten_results: int

    @property
    def clean(self) -> bool:
        return self.unwritten_results == 0


async def run_daemon(config: Config, stop: asyncio.Event | None = None) -> int:
    """Run until ``stop`` is set (or SIGTERM/SIGINT); return the process exit code."""
    stop = stop or _stop_on_signals()
    store = SqlStore(config.storage.url)
    try:
        await store.upgrade()
        await store.register_monitors([monitor.name for monitor in config.monitors])
    except StoreError as exc:
        logs.event(
            log, "store.unavailable", logging.ERROR, url=config.storage.display_url, error=str(exc)
        )
        await store.close()
        return 1
    # blackbox_exporter has no *_created series; they would only double the series count.
    disable_created_metrics()  # type: ignore[no-untyped-call]
    registry = CollectorRegistry()
    metrics = Metrics(registry)
    writer = BatchWriter(
        store, on_written=metrics.observe_store_write, on_dropped=metrics.store_dropped.inc
    )
    metrics.store_pending.set_function(lambda: writer.pending)
    session = make_session()
    runner = Runner(session, writer, metrics)
    scheduler = CheckScheduler(config.monitors, runner.run_round, metrics)

    def health() -> Health:
        firing = scheduler.running and scheduler.firing_recently()
        return Health(firing, writer.healthy, writer.last_error)

    web_runner = web.AppRunner(make_app(registry, health), access_log=None)
    await web_runner.setup()
    try:
        await web.TCPSite(web_runner, config.server.host, config.server.port).start()
    except OSError as exc:
        listen = f"{config.server.host}:{config.server.port}"
        logs.event(log, "server.listen_failed", logging.ERROR, listen=listen, error=exc.strerror)
        await _close_all(web_runner, session, store)
        return 1
    writer.start()
    scheduler.start()
    logs.event(
        log,
        "daemon.started",
        monitors=len(config.monitors),
        listen=f"{config.server.host}:{config.server.port}",
        store=config.storage.display_url,
    )
    await stop.wait()
    stopped = await _shut_down(scheduler, runner, writer)
    await _close_all(web_runner, session, store)
    level = logging.INFO if stopped.clean else logging.ERROR
    logs.event(
        log,
        "daemon.stopped",
        level,
        unfinished_rounds=stopped.unfinished_rounds,
        unwritten_results=stopped.unwritten_results,
    )
    return 0 if stopped.clean else 1


async def _shut_down(scheduler: CheckScheduler, runner: Runner, writer: BatchWriter) -> Stopped:
    scheduler.stop_firing()
    unfinished = await runner.wait_in_flight(IN_FLIGHT_GRACE)
    scheduler.shutdown()  # cancels rounds that outlived the grace: they have no result
    unwritten = await writer.close(FLUSH_GRACE)
    return Stopped(unfinished_rounds=unfinished, unwritten_results=unwritten)


async def _close_all(
    web_runner: web.AppRunner, session: aiohttp.ClientSession, store: SqlStore
) -> None:
    await web_runner.cleanup()
    await session.close()
    await store.close()


def _stop_on_signals() -> asyncio.Event:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    return stop
