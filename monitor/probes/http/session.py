"""aiohttp's client: the transport of requests through a proxy, and what it records.

Trace hooks write ``perf_counter()`` stamps on a per-request :class:`Recorder` as aiohttp
passes each point; :func:`monitor.probes.phases.to_phases` turns them into durations.
Requests without a proxy go through :mod:`monitor.probes.http.wire` instead.
"""

from __future__ import annotations

import socket
import ssl
from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass, replace
from time import perf_counter
from types import SimpleNamespace

import aiohttp
from aiohttp.abc import AbstractResolver, ResolveResult
from aiohttp.connector import Connection

from monitor.models import IpVersion
from monitor.probes.http.record import Peer, Recorder
from monitor.probes.http.tlsnames import TlsContexts, not_after
from monitor.probes.http.transport import BODY_LIMIT, USER_AGENT, Ask, Redirect

__all__ = ["FamilyResolver", "PeerResponse", "Proxied", "proxied_session", "resolving"]

_FAMILIES = {
    IpVersion.ANY: socket.AF_UNSPEC,
    IpVersion.V4: socket.AF_INET,
    IpVersion.V6: socket.AF_INET6,
}
_family: ContextVar[socket.AddressFamily] = ContextVar("probe_family", default=socket.AF_UNSPEC)

_Hook = Callable[[aiohttp.ClientSession, SimpleNamespace, object], Awaitable[None]]


def proxied_session(
    *, limit: int, resolver: FamilyResolver, tls: TlsContexts
) -> aiohttp.ClientSession:
    """The one session every proxied HTTP request shares; create it in the running loop.

    ``limit`` caps connections open at once (0: no cap); ``tls.verified`` is the context
    of requests that verify as usual.
    """
    return aiohttp.ClientSession(
        connector=aiohttp.TCPConnector(
            limit=limit,
            ssl=tls.verified,
            force_close=True,  # a fresh connection per check, so connect time is real
            use_dns_cache=False,  # and so is resolve time
            resolver=resolver,
        ),
        cookie_jar=aiohttp.DummyCookieJar(),  # a check must not carry state to the next
        headers={"User-Agent": USER_AGENT},
        trace_configs=[_trace_config()],
        response_class=PeerResponse,
    )


@dataclass(frozen=True, slots=True)
class Proxied:
    """Sends an :class:`Ask` through its proxy with aiohttp's client."""

    session: aiohttp.ClientSession

    async def exchange(self, ask: Ask, rec: Recorder) -> Redirect | None:
        response = await self.session.request(
            ask.method,
            ask.to,
            headers=ask.headers,
            data=ask.body,
            server_hostname=ask.server_hostname,
            ssl=ask.ssl,
            proxy=ask.proxy,
            allow_redirects=False,
            trace_request_ctx=rec,
        )
        async with response:
            location = response.headers.get("Location")
            if response.status in ask.follow and location is not None:
                return Redirect(response.status, location)
            rec.status = response.status
            rec.headers = tuple(response.headers.items())
            if isinstance(response, PeerResponse):
                rec.peer = response.peer
            await _read_body(response.content, rec)
            rec.stamps.body_done = perf_counter()
        return None


async def _read_body(content: aiohttp.StreamReader, rec: Recorder) -> None:
    """Read up to ``BODY_LIMIT`` bytes into ``rec``, then stop."""
    while len(rec.body) < BODY_LIMIT:
        chunk = await content.read(BODY_LIMIT - len(rec.body))
        if not chunk:
            return
        rec.body += chunk
    # At the limit: more may follow, unless the server already said the body ended.
    rec.body_truncated = not content.at_eof()


@contextmanager
def resolving(ip_version: IpVersion) -> Iterator[None]:
    """Make the current task's name lookups return only addresses of ``ip_version``."""
    token = _family.set(_FAMILIES[ip_version])
    try:
        yield
    finally:
        _family.reset(token)


class FamilyResolver(AbstractResolver):
    """Looks names up in the family the running probe asked for with :func:`resolving`.

    aiohttp fixes the family per connector; asking per task instead lets one connector
    (one connection limit, one set of TLS contexts) serve every ``ip_version``, while
    aiohttp still times the lookup and tries each address it returns.
    """

    def __init__(self, inner: AbstractResolver) -> None:
        self._inner = inner

    async def resolve(
        self, host: str, port: int = 0, family: socket.AddressFamily = socket.AF_UNSPEC
    ) -> list[ResolveResult]:
        return await self._inner.resolve(host, port, _family.get())

    async def close(self) -> None:
        await self._inner.close()


class PeerResponse(aiohttp.ClientResponse):
    """A response that notes its peer before reading the headers.

    With ``force_close`` aiohttp closes the connection as soon as a short body is in,
    often before the caller sees the headers, so the transport must be asked here.
    """

    peer = Peer()

    async def start(self, connection: Connection) -> aiohttp.ClientResponse:
        transport = connection.transport
        if transport is not None:
            address = transport.get_extra_info("peername")
            ip, port = address[:2] if isinstance(address, tuple) else (None, None)
            tls = transport.get_extra_info("ssl_object")
            if isinstance(tls, ssl.SSLObject):
                self.peer = Peer(ip, port, tls.version(), not_after(tls))
            else:
                self.peer = Peer(ip, port)
        return await super().start(connection)


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
        if isinstance(rec, Recorder):
            setattr(rec.stamps, field, perf_counter())

    return hook


async def _on_connection_create_start(
    session: aiohttp.ClientSession, ctx: SimpleNamespace, params: object
) -> None:
    # aiohttp retries a GET once on a new connection when the server hangs up before
    # answering; forget the first attempt so the stamps describe the last one.
    rec = ctx.trace_request_ctx
    if isinstance(rec, Recorder):
        rec.stamps = replace(
            rec.stamps, connect_start=perf_counter(), dns_start=None, dns_end=None, connect_end=None
        )
