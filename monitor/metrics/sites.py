"""The per-site series, kept as plain numbers and written as Prometheus text on demand.

prometheus_client keeps an object (with a lock) per labelled series and spends about 7 µs
a series on every scrape: at 10,000 sites that was 640 MiB and a 9 s render holding the
GIL. Here a site is a handful of dicts of floats (about 3 KB), an update is a dict lookup
and a few stores, and a render writes each family's lines from labels built once per site.

Only the event loop updates; a render (in a worker thread) takes a snapshot of each dict
before walking it, so a site added or a cause first seen during a render cannot break it.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass

from prometheus_client.metrics_core import Metric
from prometheus_client.parser import text_string_to_metric_families

CHUNK_LINES = 8192
"""Lines in one piece of the page: about 0.7 MB of text."""


def escape(value: str) -> str:
    """A label value as the text format wants it."""
    if "\\" in value or '"' in value or "\n" in value:
        return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")
    return value


def number(value: float) -> str:
    if math.isfinite(value):
        return repr(float(value))
    return "NaN" if math.isnan(value) else ("+Inf" if value > 0 else "-Inf")


class Histogram:
    """Bucket counts (not cumulative), then the count above the last bound, then the sum."""

    __slots__ = ("counts", "total")

    def __init__(self, size: int) -> None:
        self.counts = [0] * (size + 1)
        self.total = 0.0


class SiteValues:
    """The values exported about one monitor (site or check). Keys are label texts, built once."""

    __slots__ = ("certs", "checks", "hists", "http", "label", "phases", "probes", "state", "trends")

    def __init__(self, name: str) -> None:
        self.label = f'monitor="{escape(name)}"'
        # 'role,origin,kind' labels -> [success, duration, dns, ip protocol, ssl expiry or nan]
        self.probes: dict[str, list[float]] = {}
        # 'role,origin' labels -> [status, content length, redirects]
        self.http: dict[str, list[float]] = {}
        # 'role,origin,phase' labels -> seconds of the last probe
        self.phases: dict[str, float] = {}
        self.certs: dict[str, float] = {}  # 'role,origin' labels -> seconds left
        self.hists: dict[str, Histogram] = {}  # 'role,phase' labels
        self.checks: dict[str, int] = {}  # 'role,origin,kind,result,cause' labels
        self.state: tuple[str, str] | None = None  # (state, verdict)
        self.trends: dict[str, tuple[float, float]] = {}  # 'role,origin,phase' -> (base, ratio)


@dataclass(frozen=True, slots=True)
class Family:
    name: str
    kind: str  # gauge, counter, histogram
    help: str
    lines: Callable[[str, SiteValues], Iterator[str]] | None  # None for a histogram


class SiteSeries:
    """The per-site families, their values, and their text."""

    def __init__(self, families: Iterable[Family], buckets: tuple[float, ...]) -> None:
        self.families = tuple(families)
        self.buckets = buckets
        self.le = (*(number(bound) for bound in buckets), "+Inf")
        self.sites: dict[str, SiteValues] = {}

    def site(self, name: str) -> SiteValues:
        found = self.sites.get(name)
        if found is None:
            found = self.sites[name] = SiteValues(name)
        return found

    def forget(self, name: str) -> None:
        self.sites.pop(name, None)

    def observe(self, site: SiteValues, labels: str, seconds: float) -> None:
        """Count ``seconds`` into the histogram of ``labels`` ('role,phase' labels)."""
        hist = site.hists.get(labels)
        if hist is None:
            hist = site.hists[labels] = Histogram(len(self.buckets))
        for i, bound in enumerate(self.buckets):
            if seconds <= bound:
                hist.counts[i] += 1
                break
        else:
            hist.counts[-1] += 1
        hist.total += seconds

    def render(self) -> str:
        return "".join(self.chunks())

    def chunks(self, lines_per_chunk: int = CHUNK_LINES) -> Iterator[str]:
        """The page in pieces of about ``lines_per_chunk`` lines, so a page of hundreds of
        MB is never held whole: at 50,000 sites one string of the page, its list of lines
        and its bytes took 1.5 GiB at every scrape."""
        sites = list(self.sites.values())
        parts: list[str] = []
        for family in self.families:
            name = family.name
            parts.append(f"# HELP {name} {family.help}\n# TYPE {name} {family.kind}\n")
            lines = family.lines or self.histogram_lines
            for site in sites:
                parts.extend(lines(name, site))
                if len(parts) >= lines_per_chunk:
                    yield "".join(parts)
                    parts.clear()
        if parts:
            yield "".join(parts)

    def histogram_lines(self, name: str, site: SiteValues) -> Iterator[str]:
        label = site.label
        for labels, hist in list(site.hists.items()):
            running = 0
            for le, count in zip(self.le, hist.counts, strict=True):
                running += count
                yield f'{name}_bucket{{{label},{labels},le="{le}"}} {running}.0\n'
            yield f"{name}_count{{{label},{labels}}} {running}.0\n"
            yield f"{name}_sum{{{label},{labels}}} {number(hist.total)}\n"

    def collect(self) -> Iterable[Metric]:
        """The same series as prometheus_client objects, read back from :meth:`render`:
        slow, for ``CollectorRegistry.get_sample_value`` in tests and tools."""
        return list(text_string_to_metric_families(self.render()))
