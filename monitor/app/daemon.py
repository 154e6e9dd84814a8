"""``monitor run``: wire config, store, probes, scheduler and web together, and stop cleanly."""

from __future__ import annotations

import asyncio
import gc
import logging
import signal
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from functools import partial
from pathlib import Path
from typing import Any

from aiohttp import web
from prometheus_client import CollectorRegistry, disable_created_metrics

from monitor import logs
from monitor.alerts import selfcheck
from monitor.alerts.apprise_send import Channels
from monitor.alerts.delivery import Delivery
from monitor.alerts.outbox import Outbox
from monitor.alerts.timing import LOOK_ALONE, POLL
from monitor.app.reload import Reloader
from monitor.app.shard import Shard, narrow
from monitor.app.web import HealthReport, make_app
from monitor.config.load import Config
from monitor.engine.judging import Baselines, Judge
from monitor.engine.runner import Runner
from monitor.engine.scheduler import CheckScheduler
from monitor.errors import NotifyError, StoreError
from monitor.judge.tracker import StateRecord, Tracked, Tracker
from monitor.metrics.registry import Metrics
from monitor.probes import Clients, make_clients
from monitor.probes.slots import ProbeSlots, auto_limit, files_needed, open_files_limit
from monitor.store import BatchWriter, SqlStore, Store

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
    daemon = await Daemon.build(narrow(config, shard), shard)
    if daemon is None or not await daemon.start(path):
        return 1
    await daemon.run(stop)
    return await daemon.stop()


@dataclass(frozen=True, slots=True)
class Parts:
    """What a running daemon is made of, in the order ``Daemon.build`` makes them."""

    store: Store
    tracker: Tracker
    metrics: Metrics
    writers: Writers
    judge: Judge
    clients: Clients
    slots: ProbeSlots
    runner: Runner
    scheduler: CheckScheduler
    delivery: Delivery
    baselines: Baselines
    web_runner: web.AppRunner


class Daemon:
    """One run of ``monitor run``: ``build`` its parts, ``start``, ``run`` until told, ``stop``."""

    def __init__(self, config: Config, shard: Shard, parts: Parts) -> None:
        """``config`` is already narrowed to ``shard``."""
        self.config = config
        self.parts = parts
        self._shard = shard
        self._settled: asyncio.Task[None] | None = None

    @classmethod
    async def build(cls, config: Config, shard: Shard) -> Daemon | None:
        """Open the store and take up the stored state, then make the other parts;
        None (and the reason logged) when the store or a notifier fails."""
        store = SqlStore(config.storage.url)
        tracker = Tracker(config.tracking)
        try:
            await store.upgrade()
            await store.register_monitors([monitor.name for monitor in config.monitors])
            _restore(tracker, await store.load_tracked(), config)
        except StoreError as exc:
            url = config.storage.display_url
            logs.event(log, "store.unavailable", logging.ERROR, url=url, error=str(exc))
            await store.close()
            return None
        try:
            channels = Channels(config.alerts.notifiers, config.alerts.timeout)
        except NotifyError as exc:
            logs.event(log, "alerts.bad_notifier", logging.ERROR, error=str(exc))
            await store.close()
            return None
        return cls(config, shard, _assemble(config, shard, store, tracker, channels))

    async def start(self, path: Path | None) -> bool:
        """Listen, then start writing, delivering and firing checks; False (and the
        parts closed) when the port is taken. With ``path``, SIGHUP reloads it."""
        parts, config = self.parts, self.config
        await parts.web_runner.setup()
        try:
            await web.TCPSite(parts.web_runner, config.server.host, config.server.port).start()
        except OSError as exc:
            listen = f"{config.server.host}:{config.server.port}"
            logs.event(
                log, "server.listen_failed", logging.ERROR, listen=listen, error=exc.strerror
            )
            await _close_all(parts.web_runner, parts.clients, parts.store)
            return False
        if path is not None:
            shard = self._shard
            _reload_on_sighup(Reloader(path, config, parts, lambda whole: narrow(whole, shard)))
        parts.writers.results.start()
        parts.writers.states.start()
        parts.delivery.start()
        parts.baselines.start()
        # What start-up built (config, states, baselines) lives as long as the daemon: keep it
        # out of the collector's full passes, which otherwise walk every site's objects.
        gc.collect()
        gc.freeze()
        gc.set_threshold(*GC_THRESHOLDS)
        parts.scheduler.start()
        self._settled = asyncio.get_running_loop().create_task(
            _freeze_when_settled(_first_rounds(config, parts.scheduler))
        )
        logs.event(
            log,
            "daemon.started",
            monitors=len(config.monitors),
            beat=f"{parts.scheduler.beat:g}s",
            max_probes_in_flight=parts.slots.limit,
            listen=f"{config.server.host}:{config.server.port}",
            store=config.storage.display_url,
        )
        return True

    async def run(self, stop: asyncio.Event) -> None:
        """Check, store and alert until ``stop`` is set."""
        await stop.wait()

    async def stop(self) -> int:
        """Stop firing, let rounds and writes finish within their grace, close every part;
        return the exit code: 1 when results were left unwritten."""
        parts = self.parts
        if self._settled is not None:
            self._settled.cancel()
        writers = (parts.writers.results, parts.writers.states)
        stopped = await _shut_down(parts.scheduler, parts.runner, writers, parts.delivery)
        await parts.baselines.close()
        await _close_all(parts.web_runner, parts.clients, parts.store)
        level = logging.INFO if stopped.clean else logging.ERROR
        logs.event(
            log,
            "daemon.stopped",
            level,
            unfinished_rounds=stopped.unfinished_rounds,
            unwritten_results=stopped.unwritten_results,
        )
        return 0 if stopped.clean else 1


def _assemble(
    config: Config, shard: Shard, store: Store, tracker: Tracker, channels: Channels
) -> Parts:
    """Make the parts on top of the opened store, each from those made before it."""
    # blackbox_exporter has no *_created series; they would only double the series count.
    disable_created_metrics()  # type: ignore[no-untyped-call]
    metrics = Metrics(CollectorRegistry(), site_histograms=config.server.site_histograms)
    writers = Writers(store, metrics)
    metrics.store_pending.set_function(writers.pending)
    metrics.set_incidents_open(tracker.open_incidents)
    metrics.config_reloaded(True)
    judge = Judge(tracker, config.maintenance, writers.states, metrics, config.alerts.routes)
    clients = make_clients()
    slots = _probe_slots(config.server.max_probes_in_flight, metrics)
    runner = Runner(clients, writers.results, metrics, judge, slots)
    scheduler = CheckScheduler(config.monitors, runner.run_round, metrics, beat=config.server.beat)
    delivery = Delivery(
        Outbox(store) if shard.delivers else None,
        channels,
        config.alerts,
        metrics,
        partial(selfcheck.canary_failing, tracker),
        partial(_vitals, writers, metrics),
        who="" if shard.whole else f"worker {shard.label}",
        look_every=LOOK_ALONE if shard.whole else POLL,
        pass_every=lambda: scheduler.tick,  # one wake-up of the loop for both
    )
    # The one cycle: delivery reads the writers' health, and stored alerts wake delivery.
    writers.wake_on_alerts(delivery.wake)
    app = make_app(metrics.pages, partial(_health, scheduler, writers))
    return Parts(
        store,
        tracker,
        metrics,
        writers,
        judge,
        clients,
        slots,
        runner,
        scheduler,
        delivery,
        Baselines(store, tracker),
        web.AppRunner(app, access_log=None),
    )


class Writers:
    """The two batch writers, seen as one store by ``/healthz`` and the self-check."""

    def __init__(self, store: Store, metrics: Metrics) -> None:
        self._store = store
        self._wake: Callable[[], None] | None = None
        self.results = BatchWriter(
            store.write_results,
            on_written=metrics.observe_store_write,
            on_dropped=metrics.store_dropped.inc,
            linger=RESULTS_LINGER,
            gather=RESULTS_GATHER,
        )
        self.states: BatchWriter[StateRecord] = BatchWriter(
            self._write_states, batch_size=100, what="state changes"
        )

    def wake_on_alerts(self, wake: Callable[[], None]) -> None:
        """Call ``wake`` once state changes with alerts are stored (the delivery worker
        sends them now, not at its next poll). Set before the writers start."""
        self._wake = wake

    @property
    def healthy(self) -> bool:
        return self.results.healthy and self.states.healthy

    @property
    def last_error(self) -> str | None:
        return self.results.last_error or self.states.last_error

    def pending(self) -> int:
        return self.results.pending + self.states.pending

    async def _write_states(self, records: Sequence[StateRecord]) -> None:
        await self._store.write_states(records)
        if self._wake is not None and any(record.alerts for record in records):
            self._wake()


def _vitals(writers: Writers, metrics: Metrics, now: datetime, pending: int) -> selfcheck.Vitals:
    missed = float(metrics.missed_runs_seen)
    return selfcheck.Vitals(now, writers.healthy, writers.last_error, missed, pending)


def _health(scheduler: CheckScheduler, writers: Writers) -> HealthReport:
    firing = scheduler.running and scheduler.firing_recently()
    return HealthReport(firing, writers.healthy, writers.last_error)


def _first_rounds(config: Config, scheduler: CheckScheduler) -> float:
    """Seconds until every monitor has had its first round: one is planned within its
    interval plus a beat, and ends in time."""
    longest = max((m.interval + m.timeout for m in config.monitors), default=0.0)
    return longest + scheduler.beat + 1.0


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


def _restore(tracker: Tracker, stored: dict[str, Tracked], config: Config) -> None:
    """Take up each configured monitor's stored state, open incident and baselines."""
    for monitor in config.monitors:
        if monitor.name in stored:
            tracker.restore(monitor.name, stored[monitor.name])
    restored = sum(monitor.name in stored for monitor in config.monitors)
    logs.event(log, "state.restored", monitors=restored, open_incidents=tracker.open_incidents)


async def _close_all(web_runner: web.AppRunner, clients: Clients, store: Store) -> None:
    await web_runner.cleanup()
    await clients.close()
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
