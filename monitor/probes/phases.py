"""Turn the moments a request passed each point into phase durations.

Pure: the timestamps are ``time.perf_counter()`` readings taken by the HTTP probe's trace
hooks; nothing here reads a clock or knows about aiohttp.
"""

from __future__ import annotations

from dataclasses import dataclass

from monitor.models import Phases


@dataclass(slots=True)
class Stamps:
    """When one request reached each point; ``None`` for a point never reached. Mutable:
    the HTTP client stamps each point as it passes it (a ``replace`` each cost 4 µs).

    aiohttp's connection-create span encloses the DNS lookup, so ``dns_*`` fall between
    ``connect_start`` and ``connect_end``. ``queued_*`` is time spent waiting for a free
    slot in our own connection pool, before the connection is created.
    """

    request_start: float
    queued_start: float | None = None
    queued_end: float | None = None
    connect_start: float | None = None
    dns_start: float | None = None
    dns_end: float | None = None
    connect_end: float | None = None
    headers: float | None = None
    body_done: float | None = None


def to_phases(stamps: Stamps, end: float) -> Phases:
    """Durations of the phases the request finished; ``end`` is when the probe stopped.

    A phase that never finished is ``None``. Waiting in our own pool says nothing about
    the target, so it counts in no phase and not in ``total``.
    """
    resolve = _span(stamps.dns_start, stamps.dns_end)
    created = _span(stamps.connect_start, stamps.connect_end)
    queued_until = end if stamps.queued_end is None else stamps.queued_end
    queued = _span(stamps.queued_start, queued_until) or 0.0
    return Phases(
        resolve=resolve,
        connect=None if created is None else created - (resolve or 0.0),
        processing=_span(stamps.connect_end, stamps.headers),
        transfer=_span(stamps.headers, stamps.body_done),
        total=end - stamps.request_start - queued,
    )


def _span(start: float | None, end: float | None) -> float | None:
    return None if start is None or end is None else end - start
