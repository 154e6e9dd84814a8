"""SIGHUP: read the config file again and apply it without a restart.

A config that does not load is refused as a whole: the daemon keeps running on the old
one, logs why (file, line, field) and sets ``monitor_config_last_reload_successful`` to 0.
A good one replaces sites, checks, state and trend settings, maintenance windows, and
the notifiers, routes and alerting settings at once; a site that is gone stops being
checked and loses its metric series (its history stays in the store). ``storage`` and
``server`` are read only at start-up.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path
from typing import Protocol

from monitor import logs
from monitor.alerts.apprise_send import Channels
from monitor.config.load import Config, check_notifiers, load_config
from monitor.engine.judging import Judge
from monitor.engine.scheduler import CheckScheduler
from monitor.errors import ConfigError, NotifyError, StoreError
from monitor.judge.alerting import AlertSettings
from monitor.judge.tracker import Tracker

log = logging.getLogger("monitor.daemon")


class ReloadMetrics(Protocol):
    def config_reloaded(self, ok: bool) -> None: ...

    def forget_monitor(self, monitor: str) -> None: ...


class Registry(Protocol):
    async def register_monitors(self, names: list[str]) -> None: ...


class AlertSender(Protocol):
    def reconfigure(self, channels: Channels, settings: AlertSettings) -> None: ...


class Running(Protocol):
    """The parts of a running daemon that a reload reconfigures."""

    @property
    def scheduler(self) -> CheckScheduler: ...

    @property
    def tracker(self) -> Tracker: ...

    @property
    def judge(self) -> Judge: ...

    @property
    def metrics(self) -> ReloadMetrics: ...

    @property
    def store(self) -> Registry: ...

    @property
    def delivery(self) -> AlertSender: ...


class Reloader:
    """Applies a newly read config to the running parts."""

    def __init__(
        self,
        path: Path,
        config: Config,
        running: Running,
        narrow: Callable[[Config], Config] = lambda config: config,
    ) -> None:
        """``narrow`` turns the file's config into this process's share of it (a
        worker's monitors); ``config`` is already narrowed."""
        self.config = config
        self._narrow = narrow
        self._path = path
        self._scheduler = running.scheduler
        self._tracker = running.tracker
        self._judge = running.judge
        self._metrics = running.metrics
        self._store = running.store
        self._delivery = running.delivery

    async def reload(self) -> bool:
        try:
            whole = load_config(self._path)
            check_notifiers(str(self._path), whole)
            new = self._narrow(whole)
            await self._store.register_monitors([m.name for m in new.monitors])
        except (ConfigError, StoreError) as exc:
            logs.event(log, "config.reload_failed", logging.ERROR, error=str(exc))
            self._metrics.config_reloaded(False)
            return False
        self._apply(new)
        self._metrics.config_reloaded(True)
        return True

    def _apply(self, new: Config) -> None:
        old = self.config
        removed = self._scheduler.replace_monitors(new.monitors)
        self._tracker.reconfigure(new.tracking)
        self._judge.reconfigure(new.maintenance)
        for name in removed:
            self._metrics.forget_monitor(name)
        self._apply_alerts(new.alerts)
        ignored = [
            key
            for key, before, after in (
                ("storage", old.storage, new.storage),
                ("server", old.server, new.server),
            )
            if before != after
        ]
        if ignored:
            logs.event(log, "config.restart_needed", logging.WARNING, keys=",".join(ignored))
        self.config = new
        known = {m.name for m in old.monitors}
        added = sum(m.name not in known for m in new.monitors)
        logs.event(
            log,
            "config.reloaded",
            monitors=len(new.monitors),
            added=added,
            removed=len(removed),
            beat=f"{self._scheduler.beat:g}s",
        )

    def _apply_alerts(self, settings: AlertSettings) -> None:
        """The notifiers, routes and alerting settings; the old ones stay if the
        notifiers do not load (``monitor validate`` would have said so)."""
        try:
            channels = Channels(settings.notifiers, settings.timeout)
        except NotifyError as exc:
            logs.event(log, "alerts.reload_failed", logging.ERROR, error=str(exc))
            return
        self._judge.route_to(settings.routes)
        self._delivery.reconfigure(channels, settings)
