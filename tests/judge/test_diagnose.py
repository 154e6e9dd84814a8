"""The verdict of a round, from the edge and its origins: one case per rule."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime

import pytest

from monitor.judge.diagnose import Layer, Verdict, diagnose
from monitor.judge.signatures import SIGNATURES
from monitor.models import Cause, Kind, Phases, ProbeResult, Role

T0 = datetime(2026, 11, 20, 12, 0, tzinfo=UTC)
OK = Cause.OK
FAST = Phases(connect=0.001, processing=0.002, transfer=0.001, total=0.004)


def _edge(
    cause: Cause,
    status: int | None = None,
    kind: Kind = Kind.HTTP,
    phases: Phases = FAST,
    signature: str | None = None,
    headers: tuple[tuple[str, str], ...] = (),
) -> ProbeResult:
    return ProbeResult(
        signature=signature,
        headers=headers,
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


def _took(seconds: float) -> Phases:
    return Phases(connect=0.001, processing=seconds, transfer=0.001, total=seconds + 0.002)


BFF = _edge(Cause.BACKEND_FETCH_FAILED, 503)
# The cache gave up after 1 s; the origin's first byte comes after 2 s.
BFF_AFTER_1S = _edge(
    Cause.BACKEND_FETCH_FAILED, 503, phases=_took(1.0), signature="varnish-backend-fetch-failed"
)
ORIGIN_2S = _origin(OK, phases=_took(2.0))
# HAProxy retried a dead server for 3 s before its own "no server" page.
HAPROXY_NO_SERVER_3S = _edge(
    Cause.BACKEND_FETCH_FAILED, 503, phases=_took(3.0), signature="haproxy-no-server"
)
# A site answering 200 in 3 s against max_latency 2s.
EDGE_SLOW_3S = _edge(Cause.SLOW, 200, phases=_took(3.0))

CASES = [
    # (id, results, verdict, cause, layer, a word the hint must hold)
    ("edge-alone-up", [_edge(OK)], Verdict.UP, OK, Layer.NONE, ""),
    ("edge-and-origins-up", [_edge(OK), _origin(OK)], Verdict.UP, OK, Layer.NONE, ""),
    (
        "edge-slower-than-max-latency-is-degraded",
        [EDGE_SLOW_3S, _origin(OK)],
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
    # Issue #21: a slow but working site is slow, not down, and the hint speaks of slowness.
    (
        "slow-site-origin-answers-as-slowly",
        [EDGE_SLOW_3S, _origin(OK, phases=_took(2.9))],
        Verdict.DEGRADED,
        Cause.SLOW,
        Layer.ORIGIN,
        "slow",
    ),
    (
        "slow-site-origin-failed-max-latency-too",
        [EDGE_SLOW_3S, _origin(Cause.SLOW, phases=_took(2.9))],
        Verdict.DEGRADED,
        Cause.SLOW,
        Layer.ORIGIN,
        "slow",
    ),
    (
        "slow-site-origin-refused",
        [EDGE_SLOW_3S, _origin(Cause.CONNECT_REFUSED)],
        Verdict.DEGRADED,
        Cause.CONNECT_REFUSED,
        Layer.ORIGIN,
        "not listening",
    ),
    # The proxy's page says which failure it was: it wins over the timing.
    (
        "haproxy-no-server-after-retries-is-not-slowness",
        [HAPROXY_NO_SERVER_3S, _origin(OK, phases=_took(3.0))],
        Verdict.EDGE_FAULT,
        Cause.BACKEND_FETCH_FAILED,
        Layer.EDGE,
        "health probes",
    ),
    (
        "haproxy-timeout-page-agrees-with-the-timing",
        [
            _edge(Cause.GATEWAY_TIMEOUT, 504, phases=_took(1.0), signature="haproxy-timeout"),
            ORIGIN_2S,
        ],
        Verdict.ORIGIN_FAULT,
        Cause.SLOW,
        Layer.ORIGIN,
        "timeout server",
    ),
    # Maintenance is what a window or the origin itself says, not a page hiding an outage.
    (
        "maintenance-page-every-origin-refuses",
        [_edge(Cause.MAINTENANCE, 503), _origin(Cause.CONNECT_REFUSED)],
        Verdict.ORIGIN_FAULT,
        Cause.CONNECT_REFUSED,
        Layer.ORIGIN,
        "not listening",
    ),
    (
        "maintenance-page-every-origin-times-out",
        [
            _edge(Cause.MAINTENANCE, 503),
            _origin(Cause.TIMEOUT),
            _origin(Cause.CONNECT_TIMEOUT, "o2"),
        ],
        Verdict.ORIGIN_FAULT,
        Cause.TIMEOUT,
        Layer.ORIGIN,
        "never answers",
    ),
    (
        "maintenance-said-by-the-origin-itself",
        [_edge(Cause.MAINTENANCE, 503), _origin(Cause.MAINTENANCE)],
        Verdict.MAINTENANCE,
        Cause.MAINTENANCE,
        Layer.APP,
        "planned",
    ),
    (
        "maintenance-page-while-an-origin-answers",
        [_edge(Cause.MAINTENANCE, 503), _origin(OK), _origin(Cause.CONNECT_REFUSED, "o2")],
        Verdict.MAINTENANCE,
        Cause.MAINTENANCE,
        Layer.APP,
        "planned",
    ),
    (
        "maintenance-page-no-origins",
        [_edge(Cause.MAINTENANCE, 503)],
        Verdict.MAINTENANCE,
        Cause.MAINTENANCE,
        Layer.APP,
        "planned",
    ),
    # Other wrong words.
    (
        "edge-origins-and-tls-all-nxdomain-is-dns",
        [
            _edge(Cause.DNS_NXDOMAIN),
            _origin(Cause.DNS_NXDOMAIN),
            _origin(Cause.DNS_NXDOMAIN, "o2"),
            _edge(Cause.DNS_NXDOMAIN, kind=Kind.TLS),
        ],
        Verdict.DNS_FAULT,
        Cause.DNS_NXDOMAIN,
        Layer.DNS,
        "DNS records",
    ),
    (
        "edge-nxdomain-origin-refused-is-dns",
        [_edge(Cause.DNS_NXDOMAIN), _origin(Cause.CONNECT_REFUSED)],
        Verdict.DNS_FAULT,
        Cause.DNS_NXDOMAIN,
        Layer.DNS,
        "resolvers",
    ),
    (
        "no-origin-never-answers",
        [_edge(Cause.TIMEOUT)],
        Verdict.DOWN,
        Cause.TIMEOUT,
        Layer.APP,
        "never answers",
    ),
    (
        "no-origin-broken-http",
        [_edge(Cause.PROTOCOL_ERROR)],
        Verdict.DOWN,
        Cause.PROTOCOL_ERROR,
        Layer.APP,
        "proper HTTP",
    ),
    (
        "no-origin-slow-is-degraded",
        [EDGE_SLOW_3S],
        Verdict.DEGRADED,
        Cause.SLOW,
        Layer.EDGE,
        "latency",
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


ANSWERED_WITH_AN_ERROR = {Cause.SERVER_ERROR, Cause.CLIENT_ERROR, Cause.BAD_GATEWAY}


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
    if cause not in ANSWERED_WITH_AN_ERROR:
        assert "answers with an error" not in diagnosis.hint
    assert bool(diagnosis.hint) == (verdict is not Verdict.UP)
    assert diagnosis.summary
    assert len(diagnosis.evidence) == sum(not r.ok for r in results)


def test_slow_origin_says_both_numbers() -> None:
    diagnosis = diagnose([BFF_AFTER_1S, ORIGIN_2S])
    assert "2.0 s" in diagnosis.summary
    assert "1.0 s" in diagnosis.summary
    assert "Varnish's first_byte_timeout is about 1.0 s" in diagnosis.hint


SETTINGS = (
    "first_byte_timeout",
    "timeout server",
    "ProxyTimeout",
    "proxy_read_timeout",
    "response_header_timeout",
)


@pytest.mark.parametrize(
    ("cause", "status", "signature", "headers", "setting"),
    [
        pytest.param(
            Cause.BACKEND_FETCH_FAILED,
            503,
            "varnish-backend-fetch-failed",
            (),
            "raise Varnish's first_byte_timeout",
            id="varnish-page",
        ),
        pytest.param(
            Cause.BACKEND_FETCH_FAILED,
            503,
            None,
            (("Via", "1.1 varnish (Varnish/7.1)"),),
            "raise Varnish's first_byte_timeout",
            id="varnish-via",
        ),
        pytest.param(
            Cause.GATEWAY_TIMEOUT,
            504,
            "haproxy-timeout",
            (),
            "raise HAProxy's timeout server",
            id="haproxy-page",
        ),
        pytest.param(
            Cause.GATEWAY_TIMEOUT,
            504,
            None,
            (("Server", "Apache/2.4.62 (Debian)"),),
            "raise Apache's ProxyTimeout",
            id="apache-server-header",
        ),
        pytest.param(
            Cause.GATEWAY_TIMEOUT,
            504,
            "nginx-gateway-timeout",
            (("Server", "nginx/1.22.1"),),
            "raise nginx's proxy_read_timeout",
            id="nginx-page",
        ),
        pytest.param(
            Cause.GATEWAY_TIMEOUT,
            504,
            None,
            (("Server", "Caddy"),),
            "raise Caddy's response_header_timeout",
            id="caddy-server-header",
        ),
        pytest.param(
            Cause.GATEWAY_TIMEOUT, 504, None, (), "raise the edge's timeout", id="unknown"
        ),
    ],
)
def test_slow_origin_hint_names_the_setting_of_the_proxy_that_answered(
    cause: Cause,
    status: int,
    signature: str | None,
    headers: tuple[tuple[str, str], ...],
    setting: str,
) -> None:
    """Varnish's first_byte_timeout was named for every proxy; an unknown one gets none."""
    edge = _edge(cause, status, phases=_took(1.0), signature=signature, headers=headers)
    diagnosis = diagnose([edge, ORIGIN_2S])
    assert (diagnosis.verdict, diagnosis.cause) == (Verdict.ORIGIN_FAULT, Cause.SLOW)
    assert setting in diagnosis.hint
    named = [s for s in SETTINGS if s in diagnosis.hint]
    assert len(named) == (0 if signature is None and not headers else 1), diagnosis.hint


# Every signature: may its page mean the backend did not answer in time? Only then may a
# slow origin be blamed; otherwise the page (no server, refused, broken answer) wins over
# the timing. Caddy's empty 502/503 and Apache's 500 were once blamed on origin speed.
MAY_MEAN_TIMEOUT = {
    "varnish-backend-fetch-failed": True,  # first_byte_timeout and a dead backend alike
    "varnish-guru-meditation": True,
    "fastly-backend": True,  # "first byte timeout" is one of its pages
    "cloudflare-origin-error": True,  # 524: a timeout occurred
    "cloudflare-gateway": True,  # 504
    "cloudfront-error": True,  # 504
    "akamai-reference": True,  # 504
    "haproxy-no-server": False,  # retries a dead server for seconds first
    "haproxy-gateway": False,
    "haproxy-timeout": True,
    "envoy-upstream": True,  # "upstream request timeout"
    "traefik-no-server": False,
    "aws-elb": True,  # 504
    "apache-proxy-error": True,  # Apache's ProxyTimeout page (captured)
    "apache-proxy-internal": False,
    "apache-proxy-unavailable": False,
    "nginx-bad-gateway": False,
    "nginx-gateway-timeout": True,
    "caddy-bad-gateway": False,
    "caddy-gateway-timeout": True,
    "caddy-no-upstream": False,
}


def test_every_signature_says_whether_it_may_mean_a_timeout() -> None:
    assert {signature.name: signature.timeout for signature in SIGNATURES} == MAY_MEAN_TIMEOUT


@pytest.mark.parametrize(("name", "timeout"), MAY_MEAN_TIMEOUT.items(), ids=list(MAY_MEAN_TIMEOUT))
def test_a_page_that_names_another_failure_beats_the_timing(name: str, timeout: bool) -> None:
    """The edge's page came after 3 s and the origin's first byte after 3 s too."""
    signature = next(s for s in SIGNATURES if s.name == name)
    status = 504 if 504 in signature.statuses else min(signature.statuses)
    edge = _edge(signature.cause, status, phases=_took(3.0), signature=name)
    diagnosis = diagnose([edge, _origin(OK, phases=_took(3.0))])
    if timeout:
        assert (diagnosis.verdict, diagnosis.cause) == (Verdict.ORIGIN_FAULT, Cause.SLOW)
    else:
        assert (diagnosis.verdict, diagnosis.cause) == (Verdict.EDGE_FAULT, signature.cause)
        assert diagnosis.layer is Layer.EDGE


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
