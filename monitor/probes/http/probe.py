"""The HTTP probe: one request to a site's edge or one of its origins, its failure a value.

An origin given by ``address`` is probed like curl ``--connect-to``: the connection goes to
the address, while the Host header, the TLS SNI and (unless the origin names another) the
name the certificate must hold stay the site's. One place, :func:`_transport`, picks the
client a check's requests take: the wire client when they go straight to the target,
aiohttp's through a proxy. Either stamps each phase; :mod:`monitor.probes.classify` says
why a check failed.
"""

from __future__ import annotations

import asyncio
import base64
import ssl
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, replace
from functools import lru_cache
from time import perf_counter
from typing import NamedTuple

import aiohttp
from multidict import CIMultiDict
from yarl import URL

from monitor.hostport import redacted_url, split_host_port
from monitor.models import (
    Expect,
    HttpRequest,
    HttpTarget,
    Kind,
    Phases,
    ProbeContext,
    ProbeResult,
)
from monitor.probes.classify import Outcome, RedirectError, classify_exception, classify_response
from monitor.probes.clients import Clients
from monitor.probes.expect import Answer
from monitor.probes.http import wire
from monitor.probes.http.record import Recorder
from monitor.probes.http.session import Proxied, resolving
from monitor.probes.http.tlsnames import TlsContexts
from monitor.probes.http.transport import BODY_LIMIT, Ask, Transport, check_header_names
from monitor.probes.phases import Stamps, to_phases

__all__ = ["BODY_LIMIT", "KEPT_HEADERS", "HttpTarget", "probe"]

KEPT_HEADERS = (
    "Server",
    "Via",
    "X-Cache",
    "X-Cache-Status",
    "X-Varnish",
    "Age",
    "Retry-After",
    "CF-Ray",
    "CF-Cache-Status",
    "X-Served-By",
    "X-Amz-Cf-Id",
    "X-Amz-Cf-Pop",
    "Content-Type",
    "Content-Length",
)
"""Response headers that tell who answered (CDN, cache, proxy, origin); others are dropped."""

_PLAIN = HttpRequest()
_ANY = Expect()
_KEPT_RANK = {name.lower(): rank for rank, name in enumerate(KEPT_HEADERS)}
_REDIRECTS = frozenset({301, 302, 303, 307, 308})


@dataclass(frozen=True, slots=True)
class _ConnectTo:
    """Where requests for the site's own scheme, host and port really go."""

    host: str
    port: int
    ssl: ssl.SSLContext | bool  # True: the usual verified context, which checks the SNI name


@dataclass(frozen=True, slots=True)
class _Plan:
    """A target turned into what to ask, where to, and what to expect."""

    url: URL
    request: HttpRequest
    expect: Expect
    connect_to: _ConnectTo | None
    target: str  # for people


async def probe(clients: Clients, ctx: ProbeContext, spec: HttpTarget) -> ProbeResult:
    """Request the target once within ``ctx.timeout``; the target's failure is a value.

    Only our own bugs and bad config raise (a URL aiohttp cannot use, a malformed address,
    pattern or JSON path); so does cancellation.
    """
    plan = _plan(spec, clients.tls)
    rec = Recorder(Stamps(request_start=perf_counter()))
    with resolving(plan.request.ip_version):
        outcome, phases = await _run(_transport(clients, plan.request), plan, rec, ctx)
    return outcome.result(
        ctx,
        Kind.HTTP,
        _described(plan, rec),
        status=rec.status,
        headers=_kept_headers(rec.headers),
        peer_ip=rec.peer.ip,
        peer_port=rec.peer.port,
        body=rec.body,
        body_truncated=rec.body_truncated,
        phases=phases,
        tls_version=rec.peer.tls_version,
        cert_not_after=rec.peer.cert_not_after,
        redirects=rec.redirects,
    )


def _transport(clients: Clients, request: HttpRequest) -> Transport:
    """The client a check's requests take: the one place that chooses."""
    if request.proxy is None:
        return clients.direct  # lean: most checks take this one
    return Proxied(clients.proxied)


def _plan(target: HttpTarget, tls: TlsContexts) -> _Plan:
    site, origin = target.site, target.origin
    if origin is None:
        found = _endpoint(site.url)  # most checks: the site's edge
        request = _with_user(site.request, found.user)
        return _Plan(found.url, request, site.expect, None, found.shown)
    if origin.url is not None:
        # A health endpoint answers differently from the site's page: ask it plainly.
        found = _endpoint(origin.url)
        return _Plan(found.url, _with_user(_PLAIN, found.user), _ANY, None, found.shown)
    assert origin.address is not None  # config allows exactly one of url and address
    found = _endpoint(site.url, origin.address)
    verify: ssl.SSLContext | bool = origin.tls_verify  # False: no verification at all
    if origin.tls_verify and origin.tls_verify_name is not None:
        verify = tls.verifying(origin.tls_verify_name)
    return _Plan(
        found.url,
        _with_user(site.request, found.user),
        target.expect,  # without the edge's max_latency
        _ConnectTo(found.host, found.port, verify),
        found.shown,
    )


class _Endpoint(NamedTuple):
    """A configured URL as each of its checks needs it, worked out once."""

    url: URL  # without its userinfo
    user: tuple[str, str] | None  # that userinfo as (user, password)
    shown: str  # for people: the URL redacted, and the address the connection goes to
    host: str = ""  # the origin's address, when the connection goes there
    port: int = 0


@lru_cache(maxsize=1 << 20)  # more than any config's URLs: a miss a check would cost
def _endpoint(text: str, address: str | None = None) -> _Endpoint:
    """A configured URL without its userinfo, and that userinfo: the request carries it as
    an Authorization header, and the URL shown or stored never holds it. With ``address``,
    where an origin's connection goes instead (the URL's port unless it names one).

    Cached: parsing (yarl takes ~20 µs), redacting and the address's split would otherwise
    be done on every check of the same URL. A raise (a malformed address) is not cached.
    """
    url, user = URL(text), None
    if url.raw_user is not None or url.raw_password is not None:  # ``http://:token@host/``
        url, user = url.with_user(None), (url.user or "", url.password or "")
    shown = redacted_url(text)
    if address is None:
        return _Endpoint(url, user, shown)
    assert url.port is not None  # config accepts only http and https URLs
    host, port = _address(address, url.port)
    via = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
    return _Endpoint(url, user, f"{shown} via {via}", host, port)


def _with_user(request: HttpRequest, user: tuple[str, str] | None) -> HttpRequest:
    """``request``, authenticated with the URL's credentials unless it has its own."""
    return request if user is None else _authenticated(request, user)


@lru_cache(maxsize=1 << 20)  # an entry for each site whose URL holds credentials
def _authenticated(request: HttpRequest, user: tuple[str, str]) -> HttpRequest:
    """Cached: hashing the request costs an eighth of the copy a check would make."""
    if request.basic_auth is not None or request.bearer_token is not None:
        return request
    return replace(request, basic_auth=user)


async def _run(
    transport: Transport, plan: _Plan, rec: Recorder, ctx: ProbeContext
) -> tuple[Outcome, Phases]:
    try:
        async with asyncio.timeout(ctx.timeout):
            await _fetch(transport, plan, rec)
    except (aiohttp.InvalidURL, aiohttp.NonHttpUrlClientError):
        raise  # a bad configured URL is not the target's failure
    except (
        aiohttp.ClientError,
        OSError,
        RedirectError,
        wire.BadResponse,
        wire.Disconnected,
        wire.BrokenBody,
    ) as exc:
        outcome = classify_exception(exc, rec.stamps, ctx.timeout)
        return outcome, to_phases(rec.stamps, perf_counter())
    phases = to_phases(rec.stamps, perf_counter())
    assert rec.status is not None  # _fetch returns only after the headers came
    answer = Answer(rec.status, rec.body, rec.body_truncated, rec.headers, phases.total)
    return classify_response(answer, plan.expect), phases


async def _fetch(transport: Transport, plan: _Plan, rec: Recorder) -> None:
    """Request ``plan.url``, following redirects if asked to; the last answer goes in ``rec``.

    We follow redirects ourselves rather than let aiohttp: a redirect back to the site
    must go to the origin's address again, and the count must be on the result.
    """
    url, method, body = plan.url, plan.request.method, plan.request.body
    follow = _REDIRECTS if plan.request.follow_redirects else frozenset()
    seen = {(method, url)}
    while True:
        rec.stamps = Stamps(rec.stamps.request_start)  # phases describe the last request
        rec.url = url
        ask = _ask(plan, url, method, None if body is None else body.encode(), follow)
        with _fetchable(url, rec):
            redirect = await transport.exchange(ask, rec)
        if redirect is None:
            return
        status, location = redirect.status, redirect.location
        if rec.redirects == plan.request.max_redirects:
            raise RedirectError(f"too many redirects (more than {rec.redirects})")
        url = _redirect_url(url, location)
        if (status == 303 and method != "HEAD") or (status in (301, 302) and method == "POST"):
            method, body = "GET", None  # what browsers do
        if (method, url) in seen:
            raise RedirectError(f"redirect loop: back to {redacted_url(str(url))}")
        seen.add((method, url))
        rec.redirects += 1


@contextmanager
def _fetchable(url: URL, rec: Recorder) -> Iterator[None]:
    """A URL no client can fetch is our bug (the config's) when it is the first one asked,
    and the site's when a redirect led there."""
    try:
        yield
    except (aiohttp.InvalidURL, aiohttp.NonHttpUrlClientError) as exc:
        if rec.redirects == 0:
            raise
        shown = redacted_url(str(url))
        raise RedirectError(f"redirect to a URL that cannot be fetched: {shown}") from exc


def _ask(plan: _Plan, url: URL, method: str, body: bytes | None, follow: frozenset[int]) -> Ask:
    check_header_names(plan.request.headers)  # before either client could write one
    to, headers, server_hostname, verify = _route(plan, url)
    return Ask(method, url, to, headers, body, server_hostname, verify, plan.request.proxy, follow)


def _route(
    plan: _Plan, url: URL
) -> tuple[URL, CIMultiDict[str], str | None, ssl.SSLContext | bool]:
    """Where a request for ``url`` goes: (URL to request, headers, TLS server name, ssl)."""
    headers: CIMultiDict[str] = CIMultiDict(plan.request.headers)
    authorization = _authorization(plan.request)
    if authorization is not None:
        headers["Authorization"] = authorization
    same_site = _site_of(url) == _site_of(plan.url)
    if not same_site:
        headers.popall("Authorization", None)  # the credentials are for the site only
    to = plan.connect_to
    if to is None or not same_site:
        return url, headers, None, True
    headers.setdefault("Host", url.host_port_subcomponent or "")
    return url.with_host(to.host).with_port(to.port), headers, url.host, to.ssl


def _authorization(request: HttpRequest) -> str | None:
    if request.bearer_token is not None:
        return f"Bearer {request.bearer_token}"
    if request.basic_auth is not None:
        user, password = request.basic_auth
        return "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()
    return None


def _address(address: str, default_port: int) -> tuple[str, int]:
    host, port = split_host_port(address)
    if not host:
        raise ValueError(f"invalid origin address {address!r}")  # config should have said
    return host, default_port if port is None else port


def _site_of(url: URL) -> tuple[str, str | None, int | None]:
    return url.scheme, url.host, url.port


def _redirect_url(url: URL, location: str) -> URL:
    try:
        return url.join(URL(location))
    except ValueError as exc:  # e.g. a port out of range
        raise RedirectError(f"redirect to an invalid URL: {redacted_url(location)!r}") from exc


def _kept_headers(headers: tuple[tuple[str, str], ...]) -> tuple[tuple[str, str], ...]:
    """The headers named in ``KEPT_HEADERS``, in its order (repeats in arrival order)."""
    found: dict[int, list[tuple[str, str]]] = {}
    for name, value in headers:
        rank = _KEPT_RANK.get(name.lower())
        if rank is not None:
            found.setdefault(rank, []).append((KEPT_HEADERS[rank], value))
    return tuple(pair for rank in sorted(found) for pair in found[rank])


def _described(plan: _Plan, rec: Recorder) -> str:
    """The target for people, with where its redirects led."""
    if rec.redirects == 0:
        return plan.target
    plural = "s" if rec.redirects > 1 else ""
    return f"{plan.target}, {rec.redirects} redirect{plural} to {redacted_url(str(rec.url))}"
