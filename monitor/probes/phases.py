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

    ``connect_start`` .. ``connect_end`` is making the connection ready for the request:
    the DNS lookup (``dns_*``), the TCP connect, and for HTTPS the TLS handshake
    (``tls_start`` .. ``tls_end``; through a proxy, after its CONNECT tunnel is up).
    ``first_byte`` is when the answer's first byte came, ``headers`` when its head was
    complete: apart when a server trickles its head. ``queued_*`` is time spent waiting for
    a free slot in our own connection pool, before the connection is created.
    """

    request_start: float
    queued_start: float | None = None
    queued_end: float | None = None
    connect_start: float | None = None
    dns_start: float | None = None
    dns_end: float | None = None
    tls_start: float | None = None
    tls_end: float | None = None
    connect_end: float | None = None
    first_byte: float | None = None
    headers: float | None = None
    body_done: float | None = None


def to_phases(stamps: Stamps, end: float) -> Phases:
    """Durations of the phases the request finished; ``end`` is when the probe stopped.

    A phase that never finished is ``None``. As blackbox_exporter counts them: ``connect``
    is up to the TLS handshake (or the ready connection, without TLS), ``processing`` up to
    the first byte of the answer, ``transfer`` from there to its end. Waiting in our own
    pool says nothing about the target, so it counts in no phase and not in ``total``.
    """
    resolve = _span(stamps.dns_start, stamps.dns_end)
    tls_start = stamps.tls_start
    created = _span(stamps.connect_start, stamps.connect_end if tls_start is None else tls_start)
    first = stamps.headers if stamps.first_byte is None else stamps.first_byte
    queued_until = end if stamps.queued_end is None else stamps.queued_end
    queued = _span(stamps.queued_start, queued_until) or 0.0
    return Phases(
        resolve=resolve,
        connect=None if created is None else created - (resolve or 0.0),
        tls=_span(tls_start, stamps.tls_end),
        processing=_span(stamps.connect_end, first),
        transfer=_span(first, stamps.body_done),
        total=end - stamps.request_start - queued,
    )


def _span(start: float | None, end: float | None) -> float | None:
    return None if start is None or end is None else end - start
