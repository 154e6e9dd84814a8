"""``monitor run``: wire config, store, probes, scheduler and web together, and stop cleanly."""

from __future__ import annotations

import asyncio
import gc
import logging
import signal
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import aiohttp
from aiohttp import web
from prometheus_client import CollectorRegistry, disable_created_metrics

from monitor import logs
from monitor.alerts import selfcheck
from monitor.alerts.apprise_send import Channels
from monitor.alerts.delivery import LOOK_ALONE, POLL, Delivery
from monitor.alerts.outbox import Outbox
from monitor.app.reload import Reloader
from monitor.app.shard import Shard, narrow
from monitor.app.web import HealthReport, make_app
from monitor.config.load import Config
from monitor.engine.judging import Judge
from monitor.engine.runner import Runner
from monitor.engine.scheduler import CheckScheduler
from monitor.errors import NotifyError, StoreError
from monitor.judge.state import Health, State
from monitor.judge.tracker import StateRecord, Tracked, Tracker
from monitor.metrics.registry import Metrics
from monitor.probes import make_session
from monitor.probes.slots import ProbeSlots, auto_limit, files_needed, open_files_limit
from monitor.store import BatchWriter, SqlStore

WHOLE = Shard()  # one process runs every monitor

# The collector's full pass walks every object that is not frozen, 0.1-0.9 s at 50,000
# sites: Python's default (after 10 young passes, if old objects grew by a quarter) made
# 25 of them in the first minute and one every 2-8 s after. 100 young passes instead.
# A check leaves no cycles, so its objects die by reference counts; what a young pass
# walks is mostly what lives on (queued results, each site's new state). After 10,000
# new objects instead of 700, a 50,000-site worker spent 9.6 ms a second collecting
# instead of 33 (bench/run.py --gc-stats), in passes of about 7 ms.
GC_THRESHOLDS = (10_000, 10, 100)

# Under load, results are written about twice a second in large transactions.
RESULTS_LINGER = 0.5
# After a quiet spell, the first result waits this long for the others of its beat (their
# replies arrive within about 15 ms): one transaction and one wake-up for all of them.
RESULTS_GATHER = 0.05

log = logging.getLogger("monitor.daemon")

# SIGTERM must end the process within 10 s: rounds get 5 s to finish, the store 4 s to flush.
IN_FLIGHT_GRACE = 5.0
FLUSH_GRACE = 4.0
BASELINE_SAVE_INTERVAL = 300.0  # seconds


@dataclass(frozen=True, slots=True)
class Stopped:
    unfinished_rounds: int
    unwritten_results: int

    @property
    def clean(self) -> bool:
        return self.unwritten_results == 0


async def run_daemon(
    config: Config,
    stop: asyncio.Event | None = None,
    path: Path | None = None,
    shard: Shard = WHOLE,
) -> int:
    """Run until ``stop`` is set (or SIGTERM/SIGINT); return the process exit code.
    With the config's ``path``, SIGHUP reads it again and applies it. A ``shard`` of
    several runs only its own monitors (see :mod:`monitor.app.shard`)."""
    stop = stop or _stop_on_signals()
    config = narrow(config, shard)
    store = SqlStore(config.storage.url)
    tracker = Tracker(config.tracking)
    try:
        await store.upgrade()
        await store.register_monitors([monitor.name for monitor in config.monitors])
        _restore(tracker, await store.load_tracked(), config)
    except StoreError as exc:
        logs.event(
            log, "store.unavailable", logging.ERROR, url=config.storage.display_url, error=str(exc)
        )
        await store.close()
        return 1
    try:
        channels = Channels(config.alerts.notifiers, config.alerts.timeout)
    except NotifyError as exc:
        logs.event(log, "alerts.bad_notifier", logging.ERROR, error=str(exc))
        await store.close()
        return 1
    # blackbox_exporter has no *_created series; they would only double the series count.
    disable_created_metrics()  # type: ignore[no-untyped-call]
    registry = CollectorRegistry()
    metrics = Metrics(registry, site_histograms=config.server.site_histograms)
    writer = BatchWriter(
        store.write_results,
        on_written=metrics.observe_store_write,
        on_dropped=metrics.store_dropped.inc,
        linger=RESULTS_LINGER,
        gather=RESULTS_GATHER,
    )

    def vitals(now: datetime, pending: int) -> selfcheck.Vitals:
        missed = float(metrics.missed_runs_seen)
        healthy = writer.healthy and states.healthy
        return selfcheck.Vitals(
            now, healthy, writer.last_error or states.last_error, missed, pending
        )

    async def write_states(records: Sequence[StateRecord]) -> None:
        await store.write_states(records)
        if any(record.alerts for record in records):
            delivery.wake()  # send them now, not at the next poll

    states: BatchWriter[StateRecord] = BatchWriter(
        write_states, batch_size=100, what="state changes"
    )
    metrics.store_pending.set_function(lambda: writer.pending + states.pending)
    metrics.set_incidents_open(tracker.open_incidents)
    metrics.config_reloaded(True)
    judge = Judge(tracker, config.maintenance, states, metrics, config.alerts.routes)
    session = make_session()
    slots = _probe_slots(config.server.max_probes_in_flight, metrics)
    runner = Runner(session, writer, metrics, judge, slots)
    scheduler = CheckScheduler(config.monitors, runner.run_round, metrics, beat=config.server.beat)
    delivery = Delivery(
        Outbox(store) if shard.delivers else None,
        channels,
        config.alerts,
        metrics,
        lambda name: _failing(tracker, name),
        vitals,
        who="" if shard.whole else f"worker {shard.label}",
        look_every=LOOK_ALONE if shard.whole else POLL,
        pass_every=lambda: scheduler.tick,  # one wake-up of the loop for both
    )

    def health() -> HealthReport:
        firing = scheduler.running and scheduler.firing_recently()
        healthy = writer.healthy and states.healthy
        return HealthReport(firing, healthy, writer.last_error or states.last_error)

    web_runner = web.AppRunner(make_app(metrics.pages, health), access_log=None)
    await web_runner.setup()
    try:
        await web.TCPSite(web_runner, config.server.host, config.server.port).start()
    except OSError as exc:
        listen = f"{config.server.host}:{config.server.port}"
        logs.event(log, "server.listen_failed", logging.ERROR, listen=listen, error=exc.strerror)
        await _close_all(web_runner, session, store)
        return 1
    if path is not None:
        alerts = _AlertsReload(judge, delivery)
        reloader = Reloader(
            path,
            config,
            scheduler,
            tracker,
            judge,
            metrics,
            store,
            (alerts,),
            lambda whole: narrow(whole, shard),
        )
        _reload_on_sighup(reloader)
    writer.start()
    states.start()
    delivery.start()
    baselines = Baselines(store, tracker)
    baselines.start()
    # What start-up built (config, states, baselines) lives as long as the daemon: keep it
    # out of the collector's full passes, which otherwise walk every site's objects.
    gc.collect()
    gc.freeze()
    gc.set_threshold(*GC_THRESHOLDS)
    scheduler.start()
    # A monitor's first round is planned within its interval plus a beat, and ends in time.
    longest = max((m.interval + m.timeout for m in config.monitors), default=0.0)
    first_rounds = longest + scheduler.beat + 1.0
    settled = asyncio.get_running_loop().create_task(_freeze_when_settled(first_rounds))
    logs.event(
        log,
        "daemon.started",
        monitors=len(config.monitors),
        beat=f"{scheduler.beat:g}s",
        max_probes_in_flight=slots.limit,
        listen=f"{config.server.host}:{config.server.port}",
        store=config.storage.display_url,
    )
    await stop.wait()
    settled.cancel()
    stopped = await _shut_down(scheduler, runner, (writer, states), delivery)
    await baselines.close()
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


async def _shut_down(
    scheduler: CheckScheduler,
    runner: Runner,
    writers: tuple[BatchWriter[Any], ...],
    delivery: Delivery,
) -> Stopped:
    scheduler.stop_firing()
    unfinished = await runner.wait_in_flight(IN_FLIGHT_GRACE)
    scheduler.shutdown()  # cancels rounds that outlived the grace: they have no result
    # Alerts not sent by then stay in the outbox and go after the next start.
    left, _ = await asyncio.gather(
        asyncio.gather(*(w.close(FLUSH_GRACE) for w in writers)), delivery.close(FLUSH_GRACE)
    )
    return Stopped(unfinished_rounds=unfinished, unwritten_results=sum(left))


async def _freeze_when_settled(after: float) -> None:
    """Once every monitor has had its first round, move what the rounds built and keep
    (each site's state, series, baselines: millions of objects at 100,000 sites) out of the
    collector's full passes. Left in, they were walked every 2-8 s, 0.6 s each time at
    50,000 sites, stalling every check in flight."""
    await asyncio.sleep(after)
    gc.collect(1)  # the young garbage; what is older is mostly what stays
    gc.freeze()


def _probe_slots(configured: int | None, metrics: Metrics) -> ProbeSlots:
    """The cap on probes at once: as configured, or (``auto``) from the open-files limit
    this process runs with (``monitor run`` raised it to the hard limit)."""
    open_files = open_files_limit()
    limit = auto_limit(open_files) if configured is None else configured
    if configured is not None and 0 <= open_files < files_needed(configured):
        logs.event(
            log,
            "probes.cap_above_open_files",
            logging.WARNING,
            max_probes_in_flight=configured,
            open_files=open_files,
            auto=auto_limit(open_files),
        )
    slots = ProbeSlots(limit, metrics.observe_slot_wait)
    metrics.probes_in_flight_limit.set(limit)
    metrics.probes_in_flight.set_function(lambda: slots.in_flight)
    return slots


def _failing(tracker: Tracker, monitor: str) -> bool:
    """Whether ``monitor`` (the canary) fails: it is not up, or its last round was not. So
    the canary holds pages back from its first failure, before the sites count as down."""
    state = tracker.get(monitor).state
    return state.state in _FAILING or state.last_seen in (Health.DOWN, Health.DEGRADED)


_FAILING = (State.DOWN, State.DEGRADED)


class _AlertsReload:
    """Applies a reloaded config's notifiers, routes and alerting settings."""

    def __init__(self, judge: Judge, delivery: Delivery) -> None:
        self._judge = judge
        self._delivery = delivery

    def __call__(self, config: Config) -> None:
        settings = config.alerts
        try:
            channels = Channels(settings.notifiers, settings.timeout)
        except NotifyError as exc:  # `monitor validate` would have said so
            logs.event(log, "alerts.reload_failed", logging.ERROR, error=str(exc))
            return
        self._judge.route_to(settings.routes)
        self._delivery.reconfigure(channels, settings)


def _restore(tracker: Tracker, stored: dict[str, Tracked], config: Config) -> None:
    """Take up each configured monitor's stored state, open incident and baselines."""
    for monitor in config.monitors:
        if monitor.name in stored:
            tracker.restore(monitor.name, stored[monitor.name])
    restored = sum(monitor.name in stored for monitor in config.monitors)
    logs.event(log, "state.restored", monitors=restored, open_incidents=tracker.open_incidents)


class Baselines:
    """Saves the latency baselines now and then, and at the end, so they outlive restarts."""

    def __init__(self, store: SqlStore, tracker: Tracker) -> None:
        self._store = store
        self._tracker = tracker
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self._task = asyncio.get_running_loop().create_task(self._every(), name="baselines")

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.wait({self._task})
        await self.save()

    async def save(self) -> None:
        try:
            await self._store.write_baselines(self._tracker.baselines(), datetime.now(UTC))
        except StoreError as exc:
            logs.event(log, "baselines.not_saved", logging.WARNING, error=str(exc))

    async def _every(self) -> None:
        while True:
            await asyncio.sleep(BASELINE_SAVE_INTERVAL)
            await self.save()


async def _close_all(
    web_runner: web.AppRunner, session: aiohttp.ClientSession, store: SqlStore
) -> None:
    await web_runner.cleanup()
    await session.close()
    await store.close()


def _reload_on_sighup(reloader: Reloader) -> None:
    tasks: set[asyncio.Task[bool]] = set()

    def reload() -> None:
        task = asyncio.get_running_loop().create_task(reloader.reload(), name="reload")
        tasks.add(task)  # keep a reference until it is done
        task.add_done_callback(tasks.discard)

    asyncio.get_running_loop().add_signal_handler(signal.SIGHUP, reload)


def _stop_on_signals() -> asyncio.Event:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    return stop
