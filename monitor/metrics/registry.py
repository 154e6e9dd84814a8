"""Prometheus metrics: one object owning every series, on a registry passed in.

The daemon's own series are in :mod:`monitor.metrics.daemon`; the per-site families (with
blackbox_exporter's names) in :mod:`monitor.metrics.families`, their values in
:mod:`monitor.metrics.sites`. Here a probe's result becomes a site's values, and the page
is put together. Every series of a monitor can be dropped at once
(:meth:`Metrics.forget_monitor`), so a site removed from the config leaves no stale series.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Iterator

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.metrics_core import Metric

from monitor.metrics.daemon import DaemonMetrics
from monitor.metrics.families import (
    HISTOGRAM_PHASES,
    LATENCY_BUCKETS,
    STATES,
    VERDICTS,
    site_families,
)
from monitor.metrics.sites import SiteSeries, SiteValues, escape
from monitor.models import Kind, ProbeResult


class Metrics(DaemonMetrics):
    """Every series the daemon exports. Daemon-wide series are prometheus_client objects on
    a registry of their own; per-site series live in :class:`SiteSeries`. ``registry`` gets
    one collector showing both (for ``get_sample_value``); ``/metrics`` sends :meth:`pages`."""

    def __init__(self, registry: CollectorRegistry, *, site_histograms: bool = True) -> None:
        super().__init__()
        self.registry = registry
        families = site_families()
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

    def observe_trend(
        self, monitor: str, role: str, origin: str, phase: str, baseline: float, ratio: float
    ) -> None:
        """Record a phase's latency baseline (seconds) and now-over-baseline ratio;
        ``origin`` is ``""`` for the edge, as on the probe series."""
        labels = self._text("role", role, "origin", origin, "phase", phase)
        self.sites.site(monitor).trends[labels] = (baseline, ratio)

    def forget_monitor(self, monitor: str) -> None:
        """Drop every series labelled with ``monitor`` (it left the config)."""
        self.sites.forget(monitor)


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


class _Both:
    """A collector showing the daemon's series and the sites' (the slow way)."""

    def __init__(self, daemon: CollectorRegistry, sites: SiteSeries) -> None:
        self._daemon = daemon
        self._sites = sites

    def collect(self) -> Iterable[Metric]:
        yield from self._daemon.collect()
        yield from self._sites.collect()
