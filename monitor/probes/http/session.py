"""The one aiohttp session every HTTP probe shares, and what it records for each request.

Trace hooks write ``perf_counter()`` stamps on a per-request :class:`Recorder` as aiohttp
passes each point; :func:`monitor.probes.phases.to_phases` turns them into durations.
"""

from __future__ import annotations

import socket
import ssl
from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import replace
from time import perf_counter
from types import SimpleNamespace

import aiohttp
from aiohttp.abc import AbstractResolver, ResolveResult
from aiohttp.connector import Connection

from monitor import __version__
from monitor.models import IpVersion
from monitor.probes.http.record import Peer, Recorder
from monitor.probes.http.tlsnames import TlsContexts, not_after
from monitor.probes.http.wire import Dialer

__all__ = [
    "Peer",
    "PeerResponse",
    "Recorder",
    "dialer",
    "make_session",
    "resolving",
    "tls_contexts",
]

USER_AGENT = f"monitor/{__version__}"

_FAMILIES = {
    IpVersion.ANY: socket.AF_UNSPEC,
    IpVersion.V4: socket.AF_INET,
    IpVersion.V6: socket.AF_INET6,
}
_family: ContextVar[socket.AddressFamily] = ContextVar("probe_family", default=socket.AF_UNSPEC)

_Hook = Callable[[aiohttp.ClientSession, SimpleNamespace, object], Awaitable[None]]


def make_session(
    *, limit: int = 0, resolver: AbstractResolver | None = None
) -> aiohttp.ClientSession:
    """The one session every HTTP probe shares; create it in the running loop, close it last.

    ``limit`` caps connections open at once (0: no cap, the default). A probe waiting for a
    slot is not timed, but its time limit runs: with a cap, hung targets that hold every
    slot would make healthy ones time out, so the daemon leaves it off and relies on
    each site running one round at a time.
    ``resolver`` looks names up (default: aiohttp's, i.e. the system's); tests pass one
    that knows their made-up names.
    """
    return aiohttp.ClientSession(
        connector=_Connector(limit=limit, resolver=resolver or aiohttp.DefaultResolver()),
        cookie_jar=aiohttp.DummyCookieJar(),  # a check must not carry state to the next
        headers={"User-Agent": USER_AGENT},
        trace_configs=[_trace_config()],
        response_class=PeerResponse,
    )


def tls_contexts(session: aiohttp.ClientSession) -> TlsContexts:
    """The SSL contexts of a session made by :func:`make_session`."""
    return _connector(session).tls


def dialer(session: aiohttp.ClientSession) -> Dialer:
    """What opens the connections of requests that go without aiohttp (no proxy)."""
    return _connector(session).dialer


def _connector(session: aiohttp.ClientSession) -> _Connector:
    connector = session.connector
    if not isinstance(connector, _Connector):
        raise TypeError("HTTP probes need a session made by make_session()")
    return connector


@contextmanager
def resolving(ip_version: IpVersion) -> Iterator[None]:
    """Make the current task's name lookups return only addresses of ``ip_version``."""
    token = _family.set(_FAMILIES[ip_version])
    try:
        yield
    finally:
        _family.reset(token)


class _Connector(aiohttp.TCPConnector):
    """The shared connector, with the TLS contexts built once for it."""

    def __init__(self, *, limit: int, resolver: AbstractResolver) -> None:
        self.tls = TlsContexts()
        family_resolver = _FamilyResolver(resolver)
        self.dialer = Dialer(family_resolver, limit)  # requests without a proxy
        super().__init__(
            limit=limit,  # requests through a proxy
            ssl=self.tls.verified,
            force_close=True,  # a fresh connection per check, so connect time is real
            use_dns_cache=False,  # and so is resolve time
            resolver=family_resolver,
        )


class _FamilyResolver(AbstractResolver):
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
