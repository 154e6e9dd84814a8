"""The HTTP probe: one request to a site's edge or one of its origins, its failure a value.

An origin given by ``address`` is probed like curl ``--connect-to``: the connection goes to
the address, while the Host header, the TLS SNI and (unless the origin names another) the
name the certificate must hold stay the site's. The session's trace hooks time each
phase; :mod:`monitor.probes.classify` says why a check failed.
"""

from __future__ import annotations

import asyncio
import base64
import ssl
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from functools import lru_cache
from time import perf_counter

import aiohttp
from multidict import CIMultiDict
from yarl import URL

from monitor.hostport import split_host_port
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
from monitor.probes.expect import Answer
from monitor.probes.http import wire
from monitor.probes.http.session import (
    USER_AGENT,
    PeerResponse,
    Recorder,
    dialer,
    make_session,
    resolving,
    tls_contexts,
)
from monitor.probes.http.tlsnames import TlsContexts
from monitor.probes.http.wire import Request, encode_head
from monitor.probes.phases import Stamps, to_phases

__all__ = ["BODY_LIMIT", "KEPT_HEADERS", "HttpTarget", "make_session", "probe"]

BODY_LIMIT = 64 * 1024
"""Bytes of the body kept; the rest is never read, so a huge body cannot grow memory."""

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

_KEPT_RANK = {name.lower(): rank for rank, name in enumerate(KEPT_HEADERS)}
_REDIRECTS = frozenset({301, 302, 303, 307, 308})
# Headers the lean request writes first, each the configured value or our default.
_SENT_FIRST = frozenset({"host", "user-agent", "accept", "accept-encoding"})


@dataclass(frozen=True, slots=True)
class _ConnectTo:
    """Where requests for the site's own scheme, host and port really go."""

    host: str
    port: int
    ssl: ssl.SSLContext | bool  # True: the session's context, which checks the SNI name


@dataclass(frozen=True, slots=True)
class _Plan:
    """A target turned into what to ask, where to, and what to expect."""

    url: URL
    request: HttpRequest
    expect: Expect
    connect_to: _ConnectTo | None
    target: str  # for people


async def probe(session: aiohttp.ClientSession, ctx: ProbeContext, spec: HttpTarget) -> ProbeResult:
    """Request the target once within ``ctx.timeout``; the target's failure is a value.

    Only our own bugs and bad config raise (a URL aiohttp cannot use, a malformed address,
    pattern or JSON path, a session not made by :func:`make_session`); so does
    cancellation.
    """
    plan = _plan(spec, tls_contexts(session))
    rec = Recorder(Stamps(request_start=perf_counter()))
    with resolving(plan.request.ip_version):
        outcome, phases = await _run(session, plan, rec, ctx)
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


def _plan(target: HttpTarget, tls: TlsContexts) -> _Plan:
    site, origin = target.site, target.origin
    if origin is None:
        return _Plan(_url(site.url), site.request, site.expect, None, site.url)
    if origin.url is not None:
        # A health endpoint answers differently from the site's page: ask it plainly.
        return _Plan(_url(origin.url), HttpRequest(), Expect(), None, origin.url)
    assert origin.address is not None  # config allows exactly one of url and address
    url = _url(site.url)
    assert url.port is not None  # config accepts only http and https URLs
    host, port = _address(origin.address, url.port)
    verify: ssl.SSLContext | bool = origin.tls_verify  # False: no verification at all
    if origin.tls_verify and origin.tls_verify_name is not None:
        verify = tls.verifying(origin.tls_verify_name)
    via = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
    return _Plan(
        url, site.request, site.expect, _ConnectTo(host, port, verify), f"{site.url} via {via}"
    )


async def _run(
    session: aiohttp.ClientSession, plan: _Plan, rec: Recorder, ctx: ProbeContext
) -> tuple[Outcome, Phases]:
    try:
        async with asyncio.timeout(ctx.timeout):
            await _fetch(session, plan, rec)
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


async def _fetch(session: aiohttp.ClientSession, plan: _Plan, rec: Recorder) -> None:
    """Request ``plan.url``, following redirects if asked to; the last answer goes in ``rec``.

    We follow redirects ourselves rather than let aiohttp: a redirect back to the site
    must go to the origin's address again, and the count must be on the result.
    """
    url, method, body = plan.url, plan.request.method, plan.request.body
    seen = {(method, url)}
    while True:
        rec.stamps = Stamps(rec.stamps.request_start)  # phases describe the last request
        rec.url = url
        redirect = await _send(session, plan, url, method, body, rec)
        if redirect is None:
            return
        status, location = redirect
        if rec.redirects == plan.request.max_redirects:
            raise RedirectError(f"too many redirects (more than {rec.redirects})")
        url = _redirect_url(url, location)
        if (status == 303 and method != "HEAD") or (status in (301, 302) and method == "POST"):
            method, body = "GET", None  # what browsers do
        if (method, url) in seen:
            raise RedirectError(f"redirect loop: back to {url}")
        seen.add((method, url))
        rec.redirects += 1


async def _send(
    session: aiohttp.ClientSession,
    plan: _Plan,
    url: URL,
    method: str,
    body: str | None,
    rec: Recorder,
) -> tuple[int, str] | None:
    """One request. A redirect to follow comes back as (status, Location); any other
    answer is kept in ``rec``. Without a proxy it goes without aiohttp's client
    (:mod:`monitor.probes.http.wire`)."""
    if plan.request.proxy is not None:
        return await _send_via_proxy(session, plan, url, method, body, rec)
    with _fetchable(url, rec):
        request = _lean_request(plan, url, method, body, tls_contexts(session))
    follow = _REDIRECTS if plan.request.follow_redirects else frozenset()
    redirect = await dialer(session).exchange(request, rec, BODY_LIMIT, follow)
    return None if redirect is None else (redirect.status, redirect.location)


async def _send_via_proxy(
    session: aiohttp.ClientSession,
    plan: _Plan,
    url: URL,
    method: str,
    body: str | None,
    rec: Recorder,
) -> tuple[int, str] | None:
    """:func:`_send` through ``plan.request.proxy``, with aiohttp's client."""
    request_url, headers, server_hostname, verify = _route(plan, url)
    with _fetchable(url, rec):
        response = await session.request(
            method,
            request_url,
            headers=headers,
            data=None if body is None else body.encode(),
            server_hostname=server_hostname,
            ssl=verify,
            proxy=plan.request.proxy,
            allow_redirects=False,
            trace_request_ctx=rec,
        )
    async with response:
        location = response.headers.get("Location")
        follow = plan.request.follow_redirects and response.status in _REDIRECTS
        if follow and location is not None:
            return response.status, location
        rec.status = response.status
        rec.headers = tuple(response.headers.items())
        if isinstance(response, PeerResponse):
            rec.peer = response.peer
        await _read_body(response.content, rec)
        rec.stamps.body_done = perf_counter()
    return None


@contextmanager
def _fetchable(url: URL, rec: Recorder) -> Iterator[None]:
    """A URL no client can fetch is our bug (the config's) when it is the first one asked,
    and the site's when a redirect led there."""
    try:
        yield
    except (aiohttp.InvalidURL, aiohttp.NonHttpUrlClientError) as exc:
        if rec.redirects == 0:
            raise
        raise RedirectError(f"redirect to a URL that cannot be fetched: {url}") from exc


def _lean_request(
    plan: _Plan, url: URL, method: str, body: str | None, contexts: TlsContexts
) -> Request:
    if url.scheme not in ("http", "https"):
        raise aiohttp.NonHttpUrlClientError(url)
    request_url, headers, server_hostname, verify = _route(plan, url)
    host, port = request_url.raw_host, request_url.port
    if not host or port is None:
        raise aiohttp.InvalidURL(url)
    data = None if body is None else body.encode()
    sent = [("Host", headers.get("Host") or url.host_port_subcomponent or host)]
    sent.append(("User-Agent", headers.get("User-Agent", USER_AGENT)))
    sent.append(("Accept", headers.get("Accept", "*/*")))
    # As browsers (and aiohttp) ask: a CDN may keep a plain copy apart, or not at all.
    sent.append(("Accept-Encoding", headers.get("Accept-Encoding", "gzip, deflate")))
    if data is not None and "Content-Type" not in headers:
        sent.append(("Content-Type", "application/octet-stream"))
    sent.extend((name, value) for name, value in headers.items() if name.lower() not in _SENT_FIRST)
    tls: ssl.SSLContext | None = None
    if url.scheme == "https":
        tls = verify if isinstance(verify, ssl.SSLContext) else None
        if tls is None:
            tls = contexts.verified if verify else contexts.unverified
    return Request(
        head=encode_head(method, request_url.raw_path_qs or "/", sent, data),
        body=data,
        host=host,
        port=port,
        tls=tls,
        server_name=(server_hostname or url.raw_host or host).rstrip("."),
        is_head=method == "HEAD",
    )


@lru_cache(maxsize=1 << 20)  # more than any config's URLs: a miss a check would cost
def _url(text: str) -> URL:
    """A configured URL, parsed once (yarl takes ~20 µs to parse one; this is a check's)."""
    return URL(text)


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
        raise RedirectError(f"redirect to an invalid URL: {location!r}") from exc


async def _read_body(content: aiohttp.StreamReader, rec: Recorder) -> None:
    """Read up to ``BODY_LIMIT`` bytes into ``rec``, then stop."""
    while len(rec.body) < BODY_LIMIT:
        chunk = await content.read(BODY_LIMIT - len(rec.body))
        if not chunk:
            return
        rec.body += chunk
    # At the limit: more may follow, unless the server already said the body ended.
    rec.body_truncated = not content.at_eof()


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
    return f"{plan.target}, {rec.redirects} redirect{plural} to {rec.url}"
