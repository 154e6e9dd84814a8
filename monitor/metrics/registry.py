"""Prometheus metrics: one object owning every series, on a registry passed in.

Probe series use blackbox_exporter's names so its dashboards work unchanged; labels are
configured names only (monitor, role, origin, phase) and closed sets (kind, cause, state,
verdict), never URLs or error text. Every series of a monitor can be dropped at once
(:meth:`Metrics.forget_monitor`), so a site removed from the config leaves no stale series.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Iterator

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, Info, generate_latest
from prometheus_client.metrics_core import Metric

from monitor import __version__
from monitor.judge.diagnose import Verdict
from monitor.metrics.sites import Family, SiteSeries, SiteValues, escape, number
from monitor.models import Kind, ProbeResult

STATES = ("up", "degraded", "down", "maintenance", "unknown")
"""What ``monitor_state`` reports, one series per state (1 for the current one)."""
VERDICTS = tuple(verdict.value for verdict in Verdict)

# A site's round holds several kinds of probe of one role (its HTTP edge, its TLS check):
# ``kind`` keeps their series apart. Probe series are labelled monitor, role, origin, kind;
# HTTP series monitor, role, origin.
# Web latencies: from a fast local answer to a cache's multi-second first-byte timeout.
LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)
# The per-site histogram keeps the phases people chart percentiles of (connect, time to
# first byte, total): every phase more costs each site 15 series on every scrape.
HISTOGRAM_PHASES = ("connect", "processing", "total")
# The HTTP probe describes a followed redirect chain in its target, e.g. ", 2 redirects to".


class Metrics:
    """Every series the daemon exports. Daemon-wide series are prometheus_client objects on
    a registry of their own; per-site series live in :class:`SiteSeries`. ``registry`` gets
    one collector showing both (for ``get_sample_value``); ``/metrics`` sends :meth:`pages`."""

    def __init__(self, registry: CollectorRegistry, *, site_histograms: bool = True) -> None:
        self.registry = registry
        self.daemon_registry = CollectorRegistry()
        self._add_daemon_series(self.daemon_registry)
        families = _site_families()
        if not site_histograms:
            families = [family for family in families if family.kind != "histogram"]
        self.site_histograms = site_histograms
        self.sites = SiteSeries(families, LATENCY_BUCKETS)
        self._labels: dict[tuple[str, ...], str] = {}
        registry.register(_Both(self.daemon_registry, self.sites))

    def render(self) -> bytes:
        """The whole page in Prometheus' text format (version 0.0.4)."""
        return b"".join(self.pages())

    def pages(self) -> Iterator[bytes]:
        """The page in pieces, for ``/metrics`` to send as they are written."""
        yield generate_latest(self.daemon_registry)
        for chunk in self.sites.chunks():
            yield chunk.encode()

    def _text(self, *pairs: str) -> str:
        """Label text for ``name, value, name, value, ...``; built once for each set."""
        found = self._labels.get(pairs)
        if found is None:
            found = ",".join(
                f'{pairs[i]}="{escape(pairs[i + 1])}"' for i in range(0, len(pairs), 2)
            )
            self._labels[pairs] = found
        return found

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

    def observe_probe(self, result: ProbeResult) -> None:
        """Record one finished probe."""
        site = self.sites.site(result.monitor)
        role, origin, kind = result.role.value, result.origin or "", result.kind.value
        probe = self._text("role", role, "origin", origin, "kind", kind)
        values = site.probes.get(probe)
        if values is None:
            values = site.probes[probe] = [0.0, 0.0, 0.0, 0.0, math.nan]
        values[0] = 1.0 if result.ok else 0.0
        values[1] = result.phases.total
        values[2] = result.phases.resolve or 0.0
        values[3] = _ip_protocol(result.peer_ip)
        where = self._text("role", role, "origin", origin)
        if result.cert_not_after is not None:
            values[4] = result.cert_not_after.timestamp()
            site.certs[where] = (result.cert_not_after - result.time).total_seconds()
        if result.kind is Kind.HTTP:
            self._observe_http(site, role, origin, where, result)
        outcome = "success" if result.ok else "failure"
        check = self._text(
            "role",
            role,
            "origin",
            origin,
            "kind",
            kind,
            "result",
            outcome,
            "cause",
            result.cause.value,
        )
        site.checks[check] = site.checks.get(check, 0) + 1

    def _observe_http(
        self, site: SiteValues, role: str, origin: str, where: str, result: ProbeResult
    ) -> None:
        site.http[where] = [float(result.status or 0), _content_length(result), result.redirects]
        for phase, seconds in result.phases.items():
            # blackbox_exporter reports a phase never reached as 0, so sums stay clean.
            site.phases[self._text("role", role, "origin", origin, "phase", phase)] = seconds or 0.0
        if result.status is None or not self.site_histograms:
            return  # a refused connection's 1 ms or a timeout's limit is no site's latency
        phases = result.phases
        for phase in HISTOGRAM_PHASES:
            seconds = phases.total if phase == "total" else getattr(phases, phase)
            if seconds is not None:
                self.sites.observe(site, self._text("role", role, "phase", phase), seconds)

    def observe_state(self, monitor: str, state: str, verdict: str) -> None:
        """Set the monitor's state and verdict (one-hot); ``monitor_up`` is absent while
        the state is ``unknown``, 0 when ``down`` and 1 otherwise."""
        if state not in STATES or verdict not in VERDICTS:
            raise ValueError(f"unknown state {state!r} or verdict {verdict!r}")
        self.sites.site(monitor).state = (state, verdict)

    def set_incidents_open(self, count: int) -> None:
        self.incidents_open.set(count)

    def observe_trend(
        self, monitor: str, role: str, origin: str, phase: str, baseline: float, ratio: float
    ) -> None:
        """Record a phase's latency baseline (seconds) and now-over-baseline ratio;
        ``origin`` is ``""`` for the edge, as on the probe series."""
        labels = self._text("role", role, "origin", origin, "phase", phase)
        self.sites.site(monitor).trends[labels] = (baseline, ratio)

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
        self.sites.forget(monitor)

    def observe_slot_wait(self, seconds: float) -> None:
        self.probe_slot_waits.inc()
        self.probe_slot_wait.inc(seconds)

    def observe_store_write(self, seconds: float, rows: int) -> None:
        self.store_write.observe(seconds)
        self.store_written.inc(rows)


def _ip_protocol(peer_ip: str | None) -> float:
    if peer_ip is None:
        return 0.0
    return 6.0 if ":" in peer_ip else 4.0


def _content_length(result: ProbeResult) -> float:
    """The Content-Length header, else the bytes read; -1 when the body was cut short."""
    for name, value in result.headers:
        if name.lower() == "content-length" and value.isdigit():
            return float(value)
    return -1.0 if result.body_truncated else float(len(result.body))


Lines = Callable[[str, SiteValues], Iterator[str]]


def _indexed(
    pick: Callable[[SiteValues], dict[str, list[float]] | dict[str, tuple[float, float]]],
    index: int,
    *,
    nan_is_absent: bool = False,
) -> Lines:
    """Lines of one column of a site's per-labels values."""

    def lines(name: str, site: SiteValues) -> Iterator[str]:
        label = site.label
        for labels, values in list(pick(site).items()):
            value = values[index]
            if not nan_is_absent or value == value:
                yield f"{name}{{{label},{labels}}} {number(value)}\n"

    return lines


def _probe_value(index: int) -> Lines:
    # NaN: never seen (a certificate's expiry)
    return _indexed(lambda site: site.probes, index, nan_is_absent=True)


def _http_value(index: int) -> Lines:
    return _indexed(lambda site: site.http, index)


def _trend_value(index: int) -> Lines:
    return _indexed(lambda site: site.trends, index)


def _floats(pick: Callable[[SiteValues], dict[str, float]]) -> Lines:
    def lines(name: str, site: SiteValues) -> Iterator[str]:
        label = site.label
        for labels, value in list(pick(site).items()):
            yield f"{name}{{{label},{labels}}} {number(value)}\n"

    return lines


def _checks(name: str, site: SiteValues) -> Iterator[str]:
    label = site.label
    for labels, count in list(site.checks.items()):
        yield f"{name}{{{label},{labels}}} {count}.0\n"


def _up(name: str, site: SiteValues) -> Iterator[str]:
    if site.state is not None and site.state[0] != "unknown":
        yield f"{name}{{{site.label}}} {0.0 if site.state[0] == 'down' else 1.0}\n"


def _one_hot(index: int, names: tuple[str, ...], label_name: str) -> Lines:
    def lines(name: str, site: SiteValues) -> Iterator[str]:
        if site.state is None:
            return
        now = site.state[index]
        for one in names:
            yield f'{name}{{{site.label},{label_name}="{one}"}} {1.0 if one == now else 0.0}\n'

    return lines


def _site_families() -> list[Family]:
    return [
        Family("probe_success", "gauge", "Whether the last probe succeeded", _probe_value(0)),
        Family(
            "probe_duration_seconds",
            "gauge",
            "How long the last probe took, in seconds",
            _probe_value(1),
        ),
        Family(
            "probe_dns_lookup_time_seconds",
            "gauge",
            "Time the last probe spent resolving the name, in seconds (0 when not resolved)",
            _probe_value(2),
        ),
        Family(
            "probe_ip_protocol",
            "gauge",
            "IP version the last probe connected over: 4 or 6 (0 before a connection)",
            _probe_value(3),
        ),
        Family(
            "probe_ssl_earliest_cert_expiry",
            "gauge",
            "Expiry of the peer certificate seen by the last probe, in Unix seconds",
            _probe_value(4),
        ),
        Family(
            "probe_http_duration_seconds",
            "gauge",
            "Duration of each HTTP phase of the last probe, in seconds",
            _floats(lambda site: site.phases),
        ),
        Family(
            "probe_http_status_code",
            "gauge",
            "HTTP status code of the last probe (0 when no response came)",
            _http_value(0),
        ),
        Family(
            "probe_http_content_length",
            "gauge",
            "Content-Length of the last response, else the bytes read (-1 when unknown)",
            _http_value(1),
        ),
        Family(
            "probe_http_redirects", "gauge", "Redirects the last probe followed", _http_value(2)
        ),
        Family(
            "monitor_check_duration_seconds",
            "histogram",
            "Duration of each HTTP phase and of the whole request, of probes that got an "
            "answer, in seconds",
            None,  # SiteSeries writes histograms
        ),
        Family(
            "monitor_cert_expiry_seconds",
            "gauge",
            "Time left until the peer certificate expires, from the last probe, in seconds",
            _floats(lambda site: site.certs),
        ),
        Family(
            "monitor_checks_total",
            "counter",
            "Checks finished, by result (success or failure) and cause",
            _checks,
        ),
        Family(
            "monitor_up",
            "gauge",
            "Whether the monitor is up: 0 when down, 1 otherwise; absent while unknown",
            _up,
        ),
        Family(
            "monitor_state",
            "gauge",
            "The monitor's state: 1 for the current state, 0 for the others",
            _one_hot(0, STATES, "state"),
        ),
        Family(
            "monitor_verdict",
            "gauge",
            "The last round's verdict: 1 for the current verdict, 0 for the others",
            _one_hot(1, VERDICTS, "verdict"),
        ),
        Family(
            "monitor_latency_baseline_seconds",
            "gauge",
            "Usual latency of a phase (its baseline), in seconds",
            _trend_value(0),
        ),
        Family(
            "monitor_latency_ratio",
            "gauge",
            "Latency of a phase now, over its baseline",
            _trend_value(1),
        ),
    ]


class _Both:
    """A collector showing the daemon's series and the sites' (the slow way)."""

    def __init__(self, daemon: CollectorRegistry, sites: SiteSeries) -> None:
        self._daemon = daemon
        self._sites = sites

    def collect(self) -> Iterable[Metric]:
        yield from self._daemon.collect()
        yield from self._sites.collect()
