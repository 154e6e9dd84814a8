"""Prometheus metrics: one object owning every series, on a registry passed in.

Probe series use blackbox_exporter's names so its dashboards work unchanged; labels are
configured names only (monitor, role, origin, phase) and closed sets (kind, cause, state,
verdict), never URLs or error text. Every series of a monitor can be dropped at once
(:meth:`Metrics.forget_monitor`), so a site removed from the config leaves no stale series.
"""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, Info
from prometheus_client.metrics import MetricWrapperBase

from monitor import __version__
from monitor.diagnose import Verdict
from monitor.models import Kind, ProbeResult

STATES = ("up", "degraded", "down", "maintenance", "unknown")
"""What ``monitor_state`` reports, one series per state (1 for the current one)."""
VERDICTS = tuple(verdict.value for verdict in Verdict)

# A site's round holds several kinds of probe of one role (its HTTP edge, its TLS check):
# ``kind`` keeps their series apart.
_PROBE_LABELS = ("monitor", "role", "origin", "kind")
_HTTP_LABELS = ("monitor", "role", "origin")
# Web latencies: from a fast local answer to a cache's multi-second first-byte timeout.
LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)
# The per-site histogram keeps the phases people chart percentiles of (connect, time to
# first byte, total): every phase more costs each site 15 series on every scrape.
HISTOGRAM_PHASES = ("connect", "processing", "total")
# The HTTP probe describes a followed redirect chain in its target, e.g. ", 2 redirects to".


class Metrics:
    """Every series the daemon exports, registered on ``registry``."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self.registry = registry
        self._add_probe_series(registry)
        self._add_state_series(registry)
        self._add_daemon_series(registry)
        self._per_monitor: tuple[MetricWrapperBase, ...] = (
            *self._probe_series,
            *self._state_series,
        )
        self._last_state: dict[str, tuple[str, str]] = {}

    def _add_probe_series(self, registry: CollectorRegistry) -> None:
        self.probe_success = Gauge(
            "probe_success", "Whether the last probe succeeded", _PROBE_LABELS, registry=registry
        )
        self.probe_duration = Gauge(
            "probe_duration_seconds",
            "How long the last probe took, in seconds",
            _PROBE_LABELS,
            registry=registry,
        )
        self.probe_dns_lookup = Gauge(
            "probe_dns_lookup_time_seconds",
            "Time the last probe spent resolving the name, in seconds (0 when not resolved)",
            _PROBE_LABELS,
            registry=registry,
        )
        self.probe_ip_protocol = Gauge(
            "probe_ip_protocol",
            "IP version the last probe connected over: 4 or 6 (0 before a connection)",
            _PROBE_LABELS,
            registry=registry,
        )
        self.probe_ssl_earliest_cert_expiry = Gauge(
            "probe_ssl_earliest_cert_expiry",
            "Expiry of the peer certificate seen by the last probe, in Unix seconds",
            _PROBE_LABELS,
            registry=registry,
        )
        self.probe_http_duration = Gauge(
            "probe_http_duration_seconds",
            "Duration of each HTTP phase of the last probe, in seconds",
            (*_HTTP_LABELS, "phase"),
            registry=registry,
        )
        self.probe_http_status_code = Gauge(
            "probe_http_status_code",
            "HTTP status code of the last probe (0 when no response came)",
            _HTTP_LABELS,
            registry=registry,
        )
        self.probe_http_content_length = Gauge(
            "probe_http_content_length",
            "Content-Length of the last response, else the bytes read (-1 when unknown)",
            _HTTP_LABELS,
            registry=registry,
        )
        self.probe_http_redirects = Gauge(
            "probe_http_redirects",
            "Redirects the last probe followed",
            _HTTP_LABELS,
            registry=registry,
        )
        self.check_duration = Histogram(
            "monitor_check_duration_seconds",
            "Duration of each HTTP phase and of the whole request, of probes that got an "
            "answer, in seconds",
            ("monitor", "role", "phase"),
            buckets=LATENCY_BUCKETS,
            registry=registry,
        )
        self.cert_expiry = Gauge(
            "monitor_cert_expiry_seconds",
            "Time left until the peer certificate expires, from the last probe, in seconds",
            _HTTP_LABELS,
            registry=registry,
        )
        self.checks = Counter(
            "monitor_checks",
            "Checks finished, by result (success or failure) and cause",
            (*_PROBE_LABELS, "result", "cause"),
            registry=registry,
        )
        self._probe_series: tuple[MetricWrapperBase, ...] = (
            self.probe_success,
            self.probe_duration,
            self.probe_dns_lookup,
            self.probe_ip_protocol,
            self.probe_ssl_earliest_cert_expiry,
            self.probe_http_duration,
            self.probe_http_status_code,
            self.probe_http_content_length,
            self.probe_http_redirects,
            self.check_duration,
            self.cert_expiry,
            self.checks,
        )

    def _add_state_series(self, registry: CollectorRegistry) -> None:
        self.up = Gauge(
            "monitor_up",
            "Whether the monitor is up: 0 when down, 1 otherwise; absent while unknown",
            ("monitor",),
            registry=registry,
        )
        self.state = Gauge(
            "monitor_state",
            "The monitor's state: 1 for the current state, 0 for the others",
            ("monitor", "state"),
            registry=registry,
        )
        self.verdict = Gauge(
            "monitor_verdict",
            "The last round's verdict: 1 for the current verdict, 0 for the others",
            ("monitor", "verdict"),
            registry=registry,
        )
        self.latency_baseline = Gauge(
            "monitor_latency_baseline_seconds",
            "Usual latency of a phase (its baseline), in seconds",
            (*_HTTP_LABELS, "phase"),
            registry=registry,
        )
        self.latency_ratio = Gauge(
            "monitor_latency_ratio",
            "Latency of a phase now, over its baseline",
            (*_HTTP_LABELS, "phase"),
            registry=registry,
        )
        self._state_series: tuple[MetricWrapperBase, ...] = (
            self.up,
            self.state,
            self.verdict,
            self.latency_baseline,
            self.latency_ratio,
        )

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

    def observe_probe(self, result: ProbeResult) -> None:
        """Record one finished probe."""
        where = (result.monitor, result.role.value, result.origin or "")
        labels = (*where, result.kind.value)
        self.probe_success.labels(*labels).set(1 if result.ok else 0)
        self.probe_duration.labels(*labels).set(result.phases.total)
        self.probe_dns_lookup.labels(*labels).set(result.phases.resolve or 0.0)
        self.probe_ip_protocol.labels(*labels).set(_ip_protocol(result.peer_ip))
        if result.cert_not_after is not None:
            expiry = result.cert_not_after.timestamp()
            self.probe_ssl_earliest_cert_expiry.labels(*labels).set(expiry)
            left = (result.cert_not_after - result.time).total_seconds()
            self.cert_expiry.labels(*where).set(left)
        if result.kind is Kind.HTTP:
            self._observe_http(where, result)
        outcome = "success" if result.ok else "failure"
        self.checks.labels(*labels, outcome, result.cause.value).inc()

    def _observe_http(self, where: tuple[str, str, str], result: ProbeResult) -> None:
        self.probe_http_status_code.labels(*where).set(result.status or 0)
        self.probe_http_content_length.labels(*where).set(_content_length(result))
        self.probe_http_redirects.labels(*where).set(result.redirects)
        for phase, seconds in result.phases.items():
            # blackbox_exporter reports a phase never reached as 0, so sums stay clean.
            self.probe_http_duration.labels(*where, phase).set(seconds or 0.0)
        if result.status is None:
            return  # a refused connection's 1 ms or a timeout's limit is no site's latency
        monitor, role, _ = where
        phases = result.phases
        for phase in HISTOGRAM_PHASES:
            seconds = phases.total if phase == "total" else getattr(phases, phase)
            if seconds is not None:
                self.check_duration.labels(monitor, role, phase).observe(seconds)

    def observe_state(self, monitor: str, state: str, verdict: str) -> None:
        """Set the monitor's state and verdict (one-hot); ``monitor_up`` is absent while
        the state is ``unknown``, 0 when ``down`` and 1 otherwise."""
        if state not in STATES or verdict not in VERDICTS:
            raise ValueError(f"unknown state {state!r} or verdict {verdict!r}")
        if self._last_state.get(monitor) == (state, verdict):
            return  # the usual round: nothing changed, so nothing to write
        self._last_state[monitor] = (state, verdict)
        for name in STATES:
            self.state.labels(monitor, name).set(1 if name == state else 0)
        for name in VERDICTS:
            self.verdict.labels(monitor, name).set(1 if name == verdict else 0)
        if state == "unknown":
            self.up.remove(monitor)
        else:
            self.up.labels(monitor).set(0 if state == "down" else 1)

    def set_incidents_open(self, count: int) -> None:
        self.incidents_open.set(count)

    def observe_trend(
        self, monitor: str, role: str, origin: str, phase: str, baseline: float, ratio: float
    ) -> None:
        """Record a phase's latency baseline (seconds) and now-over-baseline ratio;
        ``origin`` is ``""`` for the edge, as on the probe series."""
        self.latency_baseline.labels(monitor, role, origin, phase).set(baseline)
        self.latency_ratio.labels(monitor, role, origin, phase).set(ratio)

    def observe_alert(self, notifier: str, event: str, outcome: str) -> None:
        self.alerts.labels(notifier, event, outcome).inc()

    def set_outbox_pending(self, n: int) -> None:
        self.outbox_pending.set(n)

    def config_reloaded(self, ok: bool) -> None:
        """Record an attempt to load the config (the start-up load included)."""
        self.config_reload_ok.set(1 if ok else 0)
        if ok:
            self.config_reload_time.set_to_current_time()

    def forget_monitor(self, monitor: str) -> None:
        """Drop every series labelled with ``monitor`` (it left the config)."""
        for metric in self._per_monitor:
            metric.remove_by_labels({"monitor": monitor})
        self._last_state.pop(monitor, None)

    def observe_store_write(self, seconds: float, rows: int) -> None:
        self.store_write.observe(seconds)
        self.store_written.inc(rows)


def _ip_protocol(peer_ip: str | None) -> int:
    if peer_ip is None:
        return 0
    return 6 if ":" in peer_ip else 4


def _content_length(result: ProbeResult) -> int:
    """The Content-Length header, else the bytes read; -1 when the body was cut short."""
    for name, value in result.headers:
        if name.lower() == "content-length" and value.isdigit():
            return int(value)
    return -1 if result.body_truncated else len(result.body)
