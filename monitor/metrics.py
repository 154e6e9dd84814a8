"""Prometheus metrics: one object owning every series, on a registry passed in.

Probe series use blackbox_exporter's names so its dashboards work unchanged; labels are
configured names only (monitor, role, origin), never URLs or error text.
"""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, Info

from monitor import __version__
from monitor.models import Kind, ProbeResult

# A site's round holds several kinds of probe of one role (its HTTP edge, its TLS check):
# ``kind`` keeps their series apart.
_PROBE_LABELS = ("monitor", "role", "origin", "kind")
_HTTP_LABELS = ("monitor", "role", "origin")
# Web latencies: from a fast local answer to a cache's multi-second first-byte timeout.
LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)


class Metrics:
    """Every series the daemon exports, registered on ``registry``."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self.registry = registry
        self.probe_success = Gauge(
            "probe_success", "Whether the last probe succeeded", _PROBE_LABELS, registry=registry
        )
        self.probe_duration = Gauge(
            "probe_duration_seconds",
            "How long the last probe took, in seconds",
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
        self.probe_ssl_earliest_cert_expiry = Gauge(
            "probe_ssl_earliest_cert_expiry",
            "Expiry of the peer certificate seen by the last probe, in Unix seconds",
            _PROBE_LABELS,
            registry=registry,
        )
        self.checks = Counter(
            "monitor_checks",
            "Checks finished, by result (success or failure) and cause",
            (*_PROBE_LABELS, "result", "cause"),
            registry=registry,
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
            "monitor_store_written_results",
            "Results written to the store",
            registry=registry,
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
        Info("monitor_build", "Version of the monitor daemon", registry=registry).info(
            {"version": __version__}
        )

    def observe_probe(self, result: ProbeResult) -> None:
        """Record one finished probe."""
        where = (result.monitor, result.role.value, result.origin or "")
        labels = (*where, result.kind.value)
        self.probe_success.labels(*labels).set(1 if result.ok else 0)
        self.probe_duration.labels(*labels).set(result.phases.total)
        if result.cert_not_after is not None:
            expiry = result.cert_not_after.timestamp()
            self.probe_ssl_earliest_cert_expiry.labels(*labels).set(expiry)
        if result.kind is Kind.HTTP:
            self.probe_http_status_code.labels(*where).set(result.status or 0)
            for phase, seconds in result.phases.items():
                # blackbox_exporter reports a phase never reached as 0, so sums stay clean.
                self.probe_http_duration.labels(*where, phase).set(seconds or 0.0)
        outcome = "success" if result.ok else "failure"
        self.checks.labels(*labels, outcome, result.cause.value).inc()

    def observe_store_write(self, seconds: float, rows: int) -> None:
        self.store_write.observe(seconds)
        self.store_written.inc(rows)
