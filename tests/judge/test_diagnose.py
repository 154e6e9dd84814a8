"""The verdict of a round, from the edge and its origins: one case per rule."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime

import pytest

from monitor.judge.diagnose import Layer, Verdict, diagnose
from monitor.models import Cause, Kind, Phases, ProbeResult, Role

T0 = datetime(2026, 11, 20, 12, 0, tzinfo=UTC)
OK = Cause.OK
FAST = Phases(connect=0.001, processing=0.002, transfer=0.001, total=0.004)


def _edge(
    cause: Cause, status: int | None = None, kind: Kind = Kind.HTTP, phases: Phases = FAST
) -> ProbeResult:
    return ProbeResult(
        monitor="shop",
        role=Role.EDGE,
        origin=None,
        time=T0,
        ok=cause is OK,
        cause=cause,
        kind=kind,
        status=status,
        phases=phases,
    )


def _origin(cause: Cause, name: str = "o1", phases: Phases = FAST) -> ProbeResult:
    return ProbeResult(
        monitor="shop",
        role=Role.ORIGIN,
        origin=name,
        time=T0,
        ok=cause is OK,
        cause=cause,
        phases=phases,
    )


BFF = _edge(Cause.BACKEND_FETCH_FAILED, 503)
# The cache gave up after 1 s; the origin's first byte comes after 2 s.
BFF_AFTER_1S = _edge(
    Cause.BACKEND_FETCH_FAILED,
    503,
    phases=Phases(connect=0.001, processing=1.0, transfer=0.001, total=1.002),
)
ORIGIN_2S = _origin(OK, phases=Phases(connect=0.001, processing=2.0, transfer=0.001, total=2.002))

CASES = [
    # (id, results, verdict, cause, layer, a word the hint must hold)
    ("edge-alone-up", [_edge(OK)], Verdict.UP, OK, Layer.NONE, ""),
    ("edge-and-origins-up", [_edge(OK), _origin(OK)], Verdict.UP, OK, Layer.NONE, ""),
    (
        "edge-slower-than-max-latency-is-degraded",
        [_edge(Cause.SLOW, 200), _origin(OK)],
        Verdict.DEGRADED,
        Cause.SLOW,
        Layer.EDGE,
        "latency",
    ),
    (
        "edge-ok-origin-refused-cache-hides-it",
        [_edge(OK), _origin(Cause.CONNECT_REFUSED)],
        Verdict.DEGRADED,
        Cause.CONNECT_REFUSED,
        Layer.ORIGIN,
        "hiding",
    ),
    (
        "edge-backend-fetch-failed-origin-ok",
        [BFF, _origin(OK)],
        Verdict.EDGE_FAULT,
        Cause.BACKEND_FETCH_FAILED,
        Layer.EDGE,
        "backend definition",
    ),
    (
        "edge-cdn-origin-error-origin-ok",
        [_edge(Cause.CDN_ORIGIN_ERROR, 521), _origin(OK)],
        Verdict.EDGE_FAULT,
        Cause.CDN_ORIGIN_ERROR,
        Layer.EDGE,
        "IP ranges",
    ),
    (
        "edge-5xx-all-origins-ok",
        [_edge(Cause.SERVER_ERROR, 500), _origin(OK), _origin(OK, "o2")],
        Verdict.EDGE_FAULT,
        Cause.SERVER_ERROR,
        Layer.EDGE,
        "firewall",
    ),
    (
        "edge-dns-origin-ok",
        [_edge(Cause.DNS_NXDOMAIN), _origin(OK)],
        Verdict.DNS_FAULT,
        Cause.DNS_NXDOMAIN,
        Layer.DNS,
        "DNS records",
    ),
    (
        "edge-tls-origin-ok",
        [_edge(Cause.TLS_CERT_EXPIRED), _origin(OK)],
        Verdict.TLS_FAULT,
        Cause.TLS_CERT_EXPIRED,
        Layer.TLS,
        "renew",
    ),
    (
        "edge-refused-origin-ok",
        [_edge(Cause.CONNECT_REFUSED), _origin(OK)],
        Verdict.NETWORK_FAULT,
        Cause.CONNECT_REFUSED,
        Layer.NETWORK,
        "listens",
    ),
    (
        "both-failing-origin-refused",
        [BFF, _origin(Cause.CONNECT_REFUSED)],
        Verdict.ORIGIN_FAULT,
        Cause.CONNECT_REFUSED,
        Layer.ORIGIN,
        "not listening",
    ),
    (
        "both-failing-origin-hung",
        [_edge(Cause.GATEWAY_TIMEOUT, 504), _origin(OK), _origin(Cause.TIMEOUT, "o2")],
        Verdict.ORIGIN_FAULT,
        Cause.TIMEOUT,
        Layer.ORIGIN,
        "overloaded",
    ),
    (
        "both-failing-origin-5xx",
        [_edge(Cause.SERVER_ERROR, 500), _origin(Cause.SERVER_ERROR)],
        Verdict.ORIGIN_FAULT,
        Cause.SERVER_ERROR,
        Layer.ORIGIN,
        "application",
    ),
    (
        "origin-slower-than-cache-first-byte-timeout",
        [BFF_AFTER_1S, ORIGIN_2S],
        Verdict.ORIGIN_FAULT,
        Cause.SLOW,
        Layer.ORIGIN,
        "first_byte_timeout",
    ),
    (
        "quick-503-is-not-a-timeout",
        [BFF, ORIGIN_2S],
        Verdict.EDGE_FAULT,
        Cause.BACKEND_FETCH_FAILED,
        Layer.EDGE,
        "backend",
    ),
    (
        "maintenance-503-retry-after",
        [_edge(Cause.MAINTENANCE, 503), _origin(Cause.CLIENT_ERROR)],
        Verdict.MAINTENANCE,
        Cause.MAINTENANCE,
        Layer.APP,
        "planned",
    ),
    (
        "no-origin-dns",
        [_edge(Cause.DNS_NXDOMAIN)],
        Verdict.DNS_FAULT,
        Cause.DNS_NXDOMAIN,
        Layer.DNS,
        "resolvers",
    ),
    (
        "no-origin-refused",
        [_edge(Cause.CONNECT_REFUSED)],
        Verdict.NETWORK_FAULT,
        Cause.CONNECT_REFUSED,
        Layer.NETWORK,
        "firewalls",
    ),
    (
        "no-origin-tls",
        [_edge(Cause.TLS_CERT_INVALID)],
        Verdict.TLS_FAULT,
        Cause.TLS_CERT_INVALID,
        Layer.TLS,
        "certificate",
    ),
    (
        "no-origin-5xx-is-down",
        [_edge(Cause.SERVER_ERROR, 500)],
        Verdict.DOWN,
        Cause.SERVER_ERROR,
        Layer.APP,
        "logs",
    ),
    (
        "site-up-its-certificate-check-fails",
        [_edge(OK), _edge(Cause.TLS_CERT_EXPIRING, kind=Kind.TLS)],
        Verdict.DEGRADED,
        Cause.TLS_CERT_EXPIRING,
        Layer.TLS,
        "renew",
    ),
    (
        "stand-alone-tcp-check-refused-is-a-network-fault",
        [_edge(Cause.CONNECT_REFUSED, kind=Kind.TCP)],
        Verdict.NETWORK_FAULT,
        Cause.CONNECT_REFUSED,
        Layer.NETWORK,
        "listens",
    ),
    (
        "stand-alone-dns-check-mismatch-is-down",
        [_edge(Cause.CONTENT_MISMATCH, kind=Kind.DNS)],
        Verdict.DOWN,
        Cause.CONTENT_MISMATCH,
        Layer.APP,
        "check reports",
    ),
]


@pytest.mark.parametrize(
    ("results", "verdict", "cause", "layer", "hint_word"),
    [case[1:] for case in CASES],
    ids=[case[0] for case in CASES],
)
def test_verdict(
    results: list[ProbeResult], verdict: Verdict, cause: Cause, layer: Layer, hint_word: str
) -> None:
    diagnosis = diagnose(results)
    assert (diagnosis.verdict, diagnosis.cause, diagnosis.layer) == (verdict, cause, layer)
    assert hint_word in diagnosis.hint
    assert bool(diagnosis.hint) == (verdict is not Verdict.UP)
    assert diagnosis.summary
    assert len(diagnosis.evidence) == sum(not r.ok for r in results)


def test_slow_origin_says_both_numbers() -> None:
    diagnosis = diagnose([BFF_AFTER_1S, ORIGIN_2S])
    assert "2.0 s" in diagnosis.summary
    assert "1.0 s" in diagnosis.summary
    assert "first-byte timeout is about 1.0 s" in diagnosis.hint


def test_evidence_names_who_answered_and_when() -> None:
    edge = replace(
        BFF,
        detail="Varnish could not fetch the page from its backend (HTTP 503)",
        headers=(("Server", "Varnish"), ("X-Varnish", "12"), ("Content-Type", "x")),
    )
    origin = replace(_origin(Cause.CONNECT_REFUSED), detail="connection refused (127.0.0.2:81)")
    diagnosis = diagnose([edge, origin])
    assert diagnosis.evidence == (
        "edge: Varnish could not fetch the page from its backend (HTTP 503) "
        "[server: Varnish, x-varnish: 12] after 0.00 s",
        "origin o1: connection refused (127.0.0.2:81) after 0.00 s",
    )
    assert diagnosis.summary.startswith("origin o1 fails (connection refused")
