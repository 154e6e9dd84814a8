"""Fetch the daemon's /metrics, time it, and read the few daemon series the benchmark needs.

The page holds every site's series (tens of MB at 1,000 sites), so it is read line by line
and only the daemon's own series are kept, plus a count of all samples.
"""

from __future__ import annotations

import math
import time
import urllib.request
from dataclasses import dataclass, field

# Series read from the page; monitor_checks_total is summed over all its label sets.
WANTED = (
    b"monitor_scheduler_lag_seconds",
    b"monitor_scheduler_missed_runs_total",
    b"monitor_scheduler_beat_seconds",
    b"monitor_store_write_seconds",
    b"monitor_store_written_results_total",
    b"monitor_store_pending_results",
    b"monitor_checks_total",
)


@dataclass(slots=True)
class Scrape:
    at: float  # time.time() when the request was sent
    first_byte_s: float  # request sent to headers in: the first piece of the page written
    fetch_s: float  # request sent to last byte in
    size: int  # bytes received
    samples: int  # sample lines on the page
    values: dict[bytes, float] = field(default_factory=dict)  # unlabelled series
    buckets: dict[bytes, dict[float, float]] = field(default_factory=dict)  # name -> le -> count


def fetch(url: str, *, gzip: bool = False, timeout: float = 600.0) -> Scrape:
    headers = {"Accept-Encoding": "gzip" if gzip else "identity"}
    request = urllib.request.Request(url, headers=headers)
    at, started = time.time(), time.perf_counter()
    with urllib.request.urlopen(request, timeout=timeout) as response:
        first_byte = time.perf_counter() - started
        body = response.read()
    fetch_s = time.perf_counter() - started
    scrape = Scrape(at, first_byte, fetch_s, len(body), 0)
    if not gzip:
        _parse(body, scrape)
    return scrape


def fetch_all(urls: list[str], *, gzip: bool = False) -> Scrape:
    """Every worker's page, one after another, as one: sizes, samples and series summed,
    the slowest render and fetch (Prometheus scrapes the workers side by side)."""
    pages = [fetch(url, gzip=gzip) for url in urls]
    whole = Scrape(min(p.at for p in pages), 0.0, 0.0, 0, 0)
    for page in pages:
        whole.first_byte_s = max(whole.first_byte_s, page.first_byte_s)
        whole.fetch_s = max(whole.fetch_s, page.fetch_s)
        whole.size += page.size
        whole.samples += page.samples
        for name, value in page.values.items():
            whole.values[name] = whole.values.get(name, 0.0) + value
        for name, buckets in page.buckets.items():
            into = whole.buckets.setdefault(name, {})
            for le, count in buckets.items():
                into[le] = into.get(le, 0.0) + count
    return whole


def _parse(body: bytes, scrape: Scrape) -> None:
    checks = 0.0
    for line in body.split(b"\n"):
        if not line or line[0] == 35:  # '#'
            continue
        scrape.samples += 1
        if not line.startswith(b"monitor_s") and not line.startswith(b"monitor_checks_total"):
            continue
        name_labels, _, value_text = line.rpartition(b" ")
        value = float(value_text)
        name, _, labels = name_labels.partition(b"{")
        if name == b"monitor_checks_total":
            checks += value
        elif name.endswith(b"_bucket"):
            le = labels.split(b'le="', 1)[1].split(b'"', 1)[0]
            scrape.buckets.setdefault(name[: -len(b"_bucket")], {})[float(le)] = value
        elif name in WANTED or name.removesuffix(b"_sum").removesuffix(b"_count") in WANTED:
            scrape.values[name] = value
    scrape.values[b"monitor_checks_total"] = checks


def delta(after: Scrape, before: Scrape, name: bytes) -> float:
    return after.values.get(name, math.nan) - before.values.get(name, math.nan)


def quantile(after: Scrape, before: Scrape, name: bytes, q: float) -> float:
    """Prometheus's histogram_quantile over the increase between two scrapes: linear
    within the bucket; the largest finite bound when it falls in +Inf."""
    upper = after.buckets.get(name, {})
    lower = before.buckets.get(name, {})
    bounds = sorted(upper)
    counts = [upper[b] - lower.get(b, 0.0) for b in bounds]
    if not counts or counts[-1] <= 0:
        return math.nan
    rank = q * counts[-1]
    previous_bound, previous_count = 0.0, 0.0
    for bound, count in zip(bounds, counts, strict=True):
        if count >= rank:
            if math.isinf(bound):
                return previous_bound
            share = (
                (rank - previous_count) / (count - previous_count) if count > previous_count else 0
            )
            return previous_bound + (bound - previous_bound) * share
        previous_bound, previous_count = bound, count
    return previous_bound
