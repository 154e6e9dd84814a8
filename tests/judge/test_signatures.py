"""Who answered with an error: one case per signature, real captures where we have them."""

from __future__ import annotations

import pytest

from monitor.judge.signatures import SIGNATURES, identify
from monitor.models import Cause, Expect
from monitor.probes.classify import classify_response
from monitor.probes.expect import Answer
from tests.support.errorpages import load

CAPTURED = [
    # (fixture, cause of the probe, signature or None)
    ("varnish_b_backend_stopped", Cause.BACKEND_FETCH_FAILED, "varnish-backend-fetch-failed"),
    ("varnish_b_backend_refused_route", Cause.BACKEND_FETCH_FAILED, "varnish-backend-fetch-failed"),
    ("varnish_b2_backend_sick_probe", Cause.BACKEND_FETCH_FAILED, "varnish-backend-fetch-failed"),
    ("varnish_c_first_byte_timeout", Cause.BACKEND_FETCH_FAILED, "varnish-backend-fetch-failed"),
    # The origin's own errors passing through Varnish: not the cache's failure.
    ("varnish_d_backend_500", Cause.SERVER_ERROR, None),
    ("varnish_e_origin_503", Cause.MAINTENANCE, None),  # the origin sent Retry-After: 30
    ("nginx_502_dead_upstream", Cause.BAD_GATEWAY, "nginx-bad-gateway"),
    ("nginx_504_slow_upstream", Cause.GATEWAY_TIMEOUT, "nginx-gateway-timeout"),
    ("nginx_503_maintenance", Cause.MAINTENANCE, None),
    ("nginx_origin_500_passthrough", Cause.SERVER_ERROR, None),
    ("varnish_a_backend_up", Cause.OK, None),
    ("nginx_static_200", Cause.OK, None),
    # HAProxy 2.6: one "No server is available" page for a refused, unchecked, down or
    # untrusted server; only the time to answer differs (its retries).
    ("haproxy_503_origin_stopped", Cause.BACKEND_FETCH_FAILED, "haproxy-no-server"),
    ("haproxy_503_wrong_port", Cause.BACKEND_FETCH_FAILED, "haproxy-no-server"),
    ("haproxy_503_health_check_down", Cause.BACKEND_FETCH_FAILED, "haproxy-no-server"),
    ("haproxy_503_tls_expired_verify", Cause.BACKEND_FETCH_FAILED, "haproxy-no-server"),
    ("haproxy_503_tls_wrong_name_verify", Cause.BACKEND_FETCH_FAILED, "haproxy-no-server"),
    ("haproxy_504_slow_origin", Cause.GATEWAY_TIMEOUT, "haproxy-timeout"),
    ("haproxy_origin_500_passthrough", Cause.SERVER_ERROR, None),
    # The operator's own errorfile: HAProxy's words are gone, Retry-After says "later".
    ("haproxy_503_friendly_page", Cause.MAINTENANCE, None),
    ("haproxy_503_maintenance", Cause.MAINTENANCE, None),
    ("haproxy_200_tls_expired_noverify", Cause.OK, None),
    ("haproxy_200_tls_wrong_name_noverify", Cause.OK, None),
    # Apache 2.4 mod_proxy: the stock 503 wraps its sentence over three lines.
    ("apache_503_origin_stopped", Cause.BACKEND_FETCH_FAILED, "apache-proxy-unavailable"),
    ("apache_503_wrong_port", Cause.BACKEND_FETCH_FAILED, "apache-proxy-unavailable"),
    ("apache_502_slow_origin", Cause.BAD_GATEWAY, "apache-proxy-error"),
    ("apache_500_tls_expired_verify", Cause.BAD_GATEWAY, "apache-proxy-internal"),
    ("apache_500_tls_wrong_name_verify", Cause.BAD_GATEWAY, "apache-proxy-internal"),
    ("apache_origin_500_passthrough", Cause.SERVER_ERROR, None),
    # The same stock 503 page from a maintenance rule, which adds Retry-After.
    ("apache_503_maintenance", Cause.MAINTENANCE, None),
    ("apache_200_cached_origin_stopped", Cause.OK, None),
    ("apache_200_tls_expired_noverify", Cause.OK, None),
    ("apache_200_tls_wrong_name_noverify", Cause.OK, None),
    # Caddy 2.6: empty bodies, only the status and "Server: Caddy" tell.
    ("caddy_502_origin_stopped", Cause.BAD_GATEWAY, "caddy-bad-gateway"),
    ("caddy_502_wrong_port", Cause.BAD_GATEWAY, "caddy-bad-gateway"),
    ("caddy_502_tls_expired_verify", Cause.BAD_GATEWAY, "caddy-bad-gateway"),
    ("caddy_502_tls_wrong_name_verify", Cause.BAD_GATEWAY, "caddy-bad-gateway"),
    ("caddy_504_slow_origin", Cause.GATEWAY_TIMEOUT, "caddy-gateway-timeout"),
    ("caddy_503_health_check_down", Cause.BACKEND_FETCH_FAILED, "caddy-no-upstream"),
    ("caddy_origin_500_passthrough", Cause.SERVER_ERROR, None),
    ("caddy_503_maintenance", Cause.MAINTENANCE, None),
    ("caddy_200_tls_expired_noverify", Cause.OK, None),
    ("caddy_200_tls_wrong_name_noverify", Cause.OK, None),
]


@pytest.mark.parametrize(("fixture", "cause", "signature"), CAPTURED, ids=[c[0] for c in CAPTURED])
def test_captured_pages(fixture: str, cause: Cause, signature: str | None) -> None:
    page = load(fixture)
    verdict = classify_response(Answer(page.status, page.body, headers=page.headers), Expect())
    assert (verdict.cause, verdict.signature) == (cause, signature)


SYNTHETIC = [
    # (id, status, headers, body, signature)
    (
        "cloudflare-521",
        521,
        [("Server", "cloudflare"), ("CF-RAY", "8a1b-AMS")],
        b"<title>example.com | 521: Web server is down</title>",
        "cloudflare-origin-error",
    ),
    (
        "cloudflare-502",
        502,
        [("Server", "cloudflare")],
        b"<center>cloudflare</center> Bad gateway",
        "cloudflare-gateway",
    ),
    (
        "fastly-first-byte",
        503,
        [("X-Served-By", "cache-ams21080-AMS")],
        b"Error 503 first byte timeout",
        "fastly-backend",
    ),
    (
        "cloudfront-504",
        504,
        [("X-Cache", "Error from cloudfront")],
        b"<H1>504 Gateway Timeout ERROR</H1> The request could not be satisfied. "
        b"Generated by cloudfront (CloudFront)",
        "cloudfront-error",
    ),
    (
        "akamai-503",
        503,
        [("Server", "AkamaiGHost")],
        b"An error occurred while processing your request.<p> Reference&#32;#97.1",
        "akamai-reference",
    ),
    (
        "haproxy-503",
        503,
        [],
        b"<h1>503 Service Unavailable</h1>\nNo server is available to handle this request.",
        "haproxy-no-server",
    ),
    (
        "haproxy-502",
        502,
        [],
        b"The server returned an invalid or incomplete response.",
        "haproxy-gateway",
    ),
    ("haproxy-504", 504, [], b"The server didn't respond in time.", "haproxy-timeout"),
    ("envoy-no-healthy", 503, [("Server", "envoy")], b"no healthy upstream", "envoy-upstream"),
    (
        "envoy-connect",
        503,
        [("Server", "envoy")],
        b"upstream connect error or disconnect/reset before headers. reset reason: connection "
        b"failure",
        "envoy-upstream",
    ),
    ("traefik-503", 503, [], b"no available server", "traefik-no-server"),
    ("aws-alb-502", 502, [("Server", "awselb/2.0")], b"<h1>502 Bad Gateway</h1>", "aws-elb"),
    (
        "apache-proxy-502",
        502,
        [("Server", "Apache/2.4.57")],
        b"<title>502 Proxy Error</title>",
        "apache-proxy-error",
    ),
    (
        "apache-proxy-503",
        503,
        [("Server", "Apache/2.4.57")],
        b"The server is temporarily unable to service your request due to maintenance downtime",
        "apache-proxy-unavailable",
    ),
    (
        "origin-500-behind-cloudflare-is-its-own",
        500,
        [("Server", "cloudflare")],
        b"Internal error in the shop",
        None,
    ),
    ("plain-503-no-retry-after", 503, [], b"busy", None),
    ("a-200-never-matches", 200, [("Server", "cloudflare")], b"backend fetch failed", None),
]


@pytest.mark.parametrize(
    ("status", "headers", "body", "signature"),
    [case[1:] for case in SYNTHETIC],
    ids=[case[0] for case in SYNTHETIC],
)
def test_identify(
    status: int, headers: list[tuple[str, str]], body: bytes, signature: str | None
) -> None:
    found = identify(status, headers, body)
    assert (found.name if found else None) == signature


def test_every_signature_has_a_case() -> None:
    named = {c[2] for c in CAPTURED} | {c[4] for c in SYNTHETIC}
    assert {s.name for s in SIGNATURES} - {"varnish-guru-meditation"} <= named
    assert len({s.name for s in SIGNATURES}) == len(SIGNATURES)


def test_varnish_retry_after_does_not_make_it_maintenance() -> None:
    page = load("varnish_b_backend_stopped")
    assert ("Retry-After", "5") in page.headers
    verdict = classify_response(Answer(page.status, page.body, headers=page.headers), Expect())
    assert verdict.cause is Cause.BACKEND_FETCH_FAILED
    assert verdict.detail == ("Varnish could not fetch the page from its backend (HTTP 503)")
