"""How big and how slow is /metrics for many sites?

Feeds one Metrics object as the daemon would after a few rounds of ``--sites`` sites, each
with an HTTP edge, two origins and a TLS check (which also checks both origins), every
state and trend series set, then renders the page ``--repeat`` times.

    python3 bench/metrics_page.py --sites 1000
"""

from __future__ import annotations

import argparse
import gzip
import statistics
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from prometheus_client import CollectorRegistry, disable_created_metrics

from monitor.metrics.registry import Metrics
from monitor.models import Cause, Kind, Phases, ProbeResult, Role

T0 = datetime(2026, 11, 20, 12, 0, tzinfo=UTC)
ORIGINS = ("origin-1", "origin-2")
ROUNDS = 3
HEADERS = (("Server", "nginx"), ("Content-Type", "text/html"), ("Content-Length", "5120"))


@dataclass(frozen=True, slots=True)
class Page:
    sites: int
    series: int
    size: int
    gzip_size: int
    render_ms: float


def _http(site: int, origin: str | None, ok: bool) -> ProbeResult:
    phases = Phases(0.002, 0.004, None, 0.080 + site % 50 / 1000, 0.003, 0.09)
    return ProbeResult(
        monitor=f"site-{site:05d}",
        role=Role.ORIGIN if origin else Role.EDGE,
        origin=origin,
        time=T0,
        ok=ok,
        cause=Cause.OK if ok else Cause.SERVICE_UNAVAILABLE,
        target=f"https://site-{site}.example.com/",
        status=200 if ok else 503,
        headers=HEADERS,
        peer_ip="203.0.113.10",
        body=b"x" * 5120,
        phases=phases,
        cert_not_after=T0 + timedelta(days=60),
    )


def _tls(site: int, origin: str | None) -> ProbeResult:
    return ProbeResult(
        monitor=f"site-{site:05d}",
        role=Role.ORIGIN if origin else Role.EDGE,
        origin=origin,
        time=T0,
        ok=True,
        cause=Cause.OK,
        kind=Kind.TLS,
        peer_ip="2001:db8::10",
        phases=Phases(resolve=0.002, connect=0.004, tls=0.010, total=0.016),
        tls_version="TLSv1.3",
        cert_not_after=T0 + timedelta(days=60),
    )


def _round(site: int, number: int) -> Iterator[ProbeResult]:
    """One round; every tenth site's second origin fails in the last round."""
    yield _http(site, None, True)
    for origin in ORIGINS:
        failing = origin == "origin-2" and site % 10 == 0 and number == ROUNDS - 1
        yield _http(site, origin, not failing)
    yield _tls(site, None)
    for origin in ORIGINS:
        yield _tls(site, origin)


def feed(metrics: Metrics, sites: int) -> None:
    for number in range(ROUNDS):
        for site in range(sites):
            for result in _round(site, number):
                metrics.observe_probe(result)
    for site in range(sites):
        monitor = f"site-{site:05d}"
        degraded = site % 10 == 0
        metrics.observe_state(
            monitor, "degraded" if degraded else "up", "degraded" if degraded else "up"
        )
        for role, origin in (("edge", ""), *(("origin", name) for name in ORIGINS)):
            # The daemon's default: one trend per role and origin, of the time to first byte.
            metrics.observe_trend(monitor, role, origin, "processing", 0.08, 1.1)
    metrics.set_incidents_open(sites // 10)
    metrics.config_reloaded(True)


def measure(sites: int, repeat: int) -> Page:
    metrics = Metrics(CollectorRegistry())
    feed(metrics, sites)
    timings = []
    for _ in range(repeat):
        start = time.perf_counter()
        page = metrics.render()
        timings.append(time.perf_counter() - start)
    series = sum(1 for line in page.splitlines() if line and not line.startswith(b"#"))
    return Page(
        sites, series, len(page), len(gzip.compress(page)), statistics.median(timings) * 1000
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sites", type=int, default=1000)
    parser.add_argument("--repeat", type=int, default=20)
    args = parser.parse_args()
    # As the daemon does: no *_created series.
    disable_created_metrics()  # type: ignore[no-untyped-call]
    page = measure(args.sites, args.repeat)
    print(f"sites:          {page.sites}")
    print(f"series:         {page.series}  ({page.series / page.sites:.0f} per site)")
    print(f"page size:      {page.size} bytes ({page.size / 2**20:.1f} MiB)")
    print(f"gzipped:        {page.gzip_size} bytes ({page.gzip_size / 2**20:.2f} MiB)")
    print(f"render (median of {args.repeat}): {page.render_ms:.0f} ms")


if __name__ == "__main__":
    main()
