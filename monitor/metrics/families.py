"""Pure: the per-site families: their names, types, help texts, and the lines each writes.

Probe series use blackbox_exporter's names (``probe_*``) so its dashboards work unchanged;
the daemon adds its own (``monitor_*``). Labels are configured names only (monitor, role,
origin, phase) and closed sets (kind, cause, state, verdict), never URLs or error text.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator

from monitor.judge.diagnose import Verdict
from monitor.metrics.sites import Family, SiteValues, number

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


def site_families() -> list[Family]:
    """Every per-site family, in the order of the page."""
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
