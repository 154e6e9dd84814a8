"""The HTTP probe: one GET of a site's URL, timed phase by phase, its failure a value.

Trace hooks write ``perf_counter()`` stamps on a per-request recorder as aiohttp passes
each point; :func:`monitor.probes.phases.to_phases` turns them into durations and
:mod:`monitor.probes.classify` says why the check failed.
"""

from __future__ import annotations

import ssl
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, replace
from datetime import datetime
from time import perf_counter
from types import SimpleNamespace

import aiohttp
from aiohttp.connector import Connection
from multidict import CIMultiDictProxy

from monitor import __version__
from monitor.models import ProbeResult, Role, Site
from monitor.probes.classify import classify_exception, classify_response
from monitor.probes.phases import Stamps, to_phases

USER_AGENT = f"monitor/{__version__}"

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

_Hook = Callable[[aiohttp.ClientSession, SimpleNamespace, object], Awaitable[None]]


@dataclass(slots=True)
class _Recorder:
    """What one request has shown so far. Mutable on purpose: filled in as it goes, so a
    failure halfway still reports the stamps, status and body it got."""

    stamps: Stamps
    status: int | None = None
    headers: tuple[tuple[str, str], ...] = ()
    peer_ip: str | None = None
    body: bytes = b""
    body_truncated: bool = False


class _PeerResponse(aiohttp.ClientResponse):
    """A response that notes the peer's IP before reading the headers.

    With ``force_close`` aiohttp closes the connection as soon as a short body is in,
    often before the caller sees the headers, so the transport must be asked here.
    """

    peer_ip: str | None = None

    async def start(self, connection: Connection) -> aiohttp.ClientResponse:
        transport = connection.transport
        peer = transport.get_extra_info("peername") if transport is not None else None
        self.peer_ip = peer[0] if isinstance(peer, tuple) else None
        return await super().start(connection)


def make_session(*, limit: int = 256) -> aiohttp.ClientSession:
    """The one session every HTTP probe shares; create it in the running loop, close it last.

    ``limit`` caps connections open at once; a probe waiting for a slot is not timed.
    """
    connector = aiohttp.TCPConnector(
        limit=limit,
        ssl=ssl.create_default_context(),
        force_close=True,  # a fresh connection per check, so connect time is real
        use_dns_cache=False,  # and so is resolve time
    )
    return aiohttp.ClientSession(
        connector=connector,
        cookie_jar=aiohttp.DummyCookieJar(),  # a check must not carry state to the next
        headers={"User-Agent": USER_AGENT},
        trace_configs=[_trace_config()],
        response_class=_PeerResponse,
    )


async def probe(session: aiohttp.ClientSession, site: Site, time: datetime) -> ProbeResult:
    """GET ``site.url`` once and report what happened; the target's failure is a value.

    Only our own bugs (or a URL aiohttp cannot use, which config should have refused)
    raise; cancellation propagates.
    """
    rec = _Recorder(Stamps(request_start=perf_counter()))
    try:
        await _fetch(session, site, rec)
    except (aiohttp.InvalidURL, aiohttp.NonHttpUrlClientError):
        raise  # a bad configured URL is not the target's failure
    except (aiohttp.ClientError, OSError) as exc:
        verdict = classify_exception(exc, rec.stamps, site.timeout)
    else:
        assert rec.status is not None  # _fetch returns only after the headers came
        verdict = classify_response(rec.status, site.expect, rec.body)
    return ProbeResult(
        monitor=site.name,
        role=Role.EDGE,
        origin=None,
        time=time,
        ok=verdict.ok,
        cause=verdict.cause,
        detail=verdict.detail,
        status=rec.status,
        headers=rec.headers,
        peer_ip=rec.peer_ip,
        body=rec.body,
        body_truncated=rec.body_truncated,
        failed=verdict.failed,
        phases=to_phases(rec.stamps, perf_counter()),
    )


async def _fetch(session: aiohttp.ClientSession, site: Site, rec: _Recorder) -> None:
    async with session.get(
        site.url,
        timeout=aiohttp.ClientTimeout(total=site.timeout),
        allow_redirects=False,
        trace_request_ctx=rec,
    ) as response:
        rec.status = response.status
        rec.headers = _kept_headers(response.headers)
        rec.peer_ip = response.peer_ip if isinstance(response, _PeerResponse) else None
        await _read_body(response.content, rec)
        rec.stamps = replace(rec.stamps, body_done=perf_counter())


async def _read_body(content: aiohttp.StreamReader, rec: _Recorder) -> None:
    """Read up to ``BODY_LIMIT`` bytes into ``rec``, then stop."""
    while len(rec.body) < BODY_LIMIT:
        chunk = await content.read(BODY_LIMIT - len(rec.body))
        if not chunk:
            return
        rec.body += chunk
    # At the limit: more may follow, unless the server already said the body ended.
    rec.body_truncated = not content.at_eof()


def _kept_headers(headers: CIMultiDictProxy[str]) -> tuple[tuple[str, str], ...]:
    return tuple((name, value) for name in KEPT_HEADERS for value in headers.getall(name, ()))


def _trace_config() -> aiohttp.TraceConfig:
    config = aiohttp.TraceConfig()
    config.on_connection_queued_start.append(_stamp("queued_start"))
    config.on_connection_queued_end.append(_stamp("queued_end"))
    config.on_connection_create_start.append(_on_connection_create_start)
    config.on_dns_resolvehost_start.append(_stamp("dns_start"))
    config.on_dns_resolvehost_end.append(_stamp("dns_end"))
    config.on_connection_create_end.append(_stamp("connect_end"))
    config.on_request_end.append(_stamp("headers"))  # fires once the headers are parsed
    return config


def _stamp(field: str) -> _Hook:
    async def hook(session: aiohttp.ClientSession, ctx: SimpleNamespace, params: object) -> None:
        rec = ctx.trace_request_ctx
        if isinstance(rec, _Recorder):
            rec.stamps = replace(rec.stamps, **{field: perf_counter()})

    return hook


async def _on_connection_create_start(
    session: aiohttp.ClientSession, ctx: SimpleNamespace, params: object
) -> None:
    # aiohttp retries a GET once on a new connection when the server hangs up before
    # answering; forget the first attempt so the stamps describe the last one.
    rec = ctx.trace_request_ctx
    if isinstance(rec, _Recorder):
        rec.stamps = replace(
            rec.stamps, connect_start=perf_counter(), dns_start=None, dns_end=None, connect_end=None
        )
