"""The daemon's own series (scheduler, probes in flight, store, alerts, config, build).

They are prometheus_client objects on a registry of their own, written by
``generate_latest``; there are few of them, whatever the number of sites.
"""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, Info

from monitor import __version__
from monitor.metrics.families import LATENCY_BUCKETS


class DaemonMetrics:
    """The daemon-wide series, on :attr:`daemon_registry`."""

    def __init__(self) -> None:
        self.daemon_registry = CollectorRegistry()
        self._add_daemon_series(self.daemon_registry)

    def count_missed(self, runs: int) -> None:
        """Planned runs that never ran; also kept as a plain number, so the self-check
        reads it without collecting the registry (which costs time in the number of sites)."""
        self.missed_runs.inc(runs)
        self.missed_runs_seen += runs

    def _add_daemon_series(self, registry: CollectorRegistry) -> None:
        self.missed_runs_seen = 0
        self.incidents_open = Gauge(
            "monitor_incidents_open", "Incidents open now", registry=registry
        )
        self.missed_runs = Counter(
            "monitor_scheduler_missed_runs",
            "Planned checks that never ran (too late, coalesced, or the last one still running)",
            registry=registry,
        )
        self.scheduler_lag = Histogram(
            "monitor_scheduler_lag_seconds",
            "Time from a check's planned start to when it started, in seconds",
            buckets=(0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1.0, 5.0, 15.0, 60.0),
            registry=registry,
        )
        self.scheduler_beat = Gauge(
            "monitor_scheduler_beat_seconds",
            "Checks are planned on multiples of this many seconds (0: each on its own)",
            registry=registry,
        )
        self.probes_in_flight = Gauge(
            "monitor_probes_in_flight", "Probes running now", registry=registry
        )
        self.probes_in_flight_limit = Gauge(
            "monitor_probes_in_flight_limit",
            "The most probes that run at once (server.max_probes_in_flight; 0: no cap)",
            registry=registry,
        )
        self.probe_slot_waits = Counter(
            "monitor_probe_slot_waits",
            "Probes that waited for a slot under server.max_probes_in_flight",
            registry=registry,
        )
        self.probe_slot_wait = Counter(
            "monitor_probe_slot_wait_seconds",
            "Time probes waited for a slot, in seconds (not part of any probe's duration)",
            registry=registry,
        )
        self.store_write = Histogram(
            "monitor_store_write_seconds",
            "Time to write one batch of results to the store, in seconds",
            buckets=LATENCY_BUCKETS,
            registry=registry,
        )
        self.store_written = Counter(
            "monitor_store_written_results", "Results written to the store", registry=registry
        )
        self.store_dropped = Counter(
            "monitor_store_dropped_results",
            "Results the database refused for good (each one is logged)",
            registry=registry,
        )
        self.store_pending = Gauge(
            "monitor_store_pending_results",
            "Finished results not yet written to the store",
            registry=registry,
        )
        self.alerts = Counter(
            "monitor_alerts",
            "Alert deliveries, by notifier, event and outcome",
            ("notifier", "event", "outcome"),
            registry=registry,
        )
        self.outbox_pending = Gauge(
            "monitor_outbox_pending", "Alerts waiting in the outbox for delivery", registry=registry
        )
        self.config_reload_ok = Gauge(
            "monitor_config_last_reload_successful",
            "Whether the last attempt to load the config succeeded",
            registry=registry,
        )
        self.config_reload_time = Gauge(
            "monitor_config_last_reload_success_timestamp_seconds",
            "When the config was last loaded successfully, in Unix seconds",
            registry=registry,
        )
        Info("monitor_build", "Version of the monitor daemon", registry=registry).info(
            {"version": __version__}
        )

    def set_incidents_open(self, count: int) -> None:
        self.incidents_open.set(count)

    def observe_alert(self, notifier: str, event: str, outcome: str) -> None:
        self.alerts.labels(notifier, event, outcome).inc()

    def set_outbox_pending(self, n: int) -> None:
        self.outbox_pending.set(n)

    def config_reloaded(self, ok: bool) -> None:
        """Record an attempt to load the config (the start-up load included)."""
        self.config_reload_ok.set(1 if ok else 0)
        if ok:
            self.config_reload_time.set_to_current_time()

    def observe_slot_wait(self, seconds: float) -> None:
        self.probe_slot_waits.inc()
        self.probe_slot_wait.inc(seconds)

    def observe_store_write(self, seconds: float, rows: int) -> None:
        self.store_write.observe(seconds)
        self.store_written.inc(rows)
