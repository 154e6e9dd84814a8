"""aiohttp's client: the transport of requests through a proxy, and what it records.

Trace hooks write ``perf_counter()`` stamps on a per-request :class:`Recorder` as aiohttp
passes each point; :func:`monitor.probes.phases.to_phases` turns them into durations.
aiohttp has no hook for the TLS handshake nor the first byte, so the connector
(:class:`_Connector`) stamps the handshake and hands the request's recorder to the
connection's protocol (:class:`_Handler`), which stamps the first byte and caps the head
at :data:`HEAD_LIMIT` bytes, as the wire client does. Requests without a proxy go through
:mod:`monitor.probes.http.wire` instead.
"""

from __future__ import annotations

import asyncio
import functools
import socket
import ssl
from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass, replace
from time import perf_counter
from types import SimpleNamespace
from typing import Any, cast

import aiohttp
from aiohttp.abc import AbstractResolver, ResolveResult
from aiohttp.client_proto import ResponseHandler
from aiohttp.client_reqrep import ClientRequest
from aiohttp.connector import Connection
from aiohttp.http import HttpProcessingError, RawResponseMessage
from aiohttp.streams import StreamReader
from aiohttp.tracing import Trace

from monitor.models import IpVersion
from monitor.probes.http.record import Peer, Recorder
from monitor.probes.http.tlsnames import TlsContexts, not_after
from monitor.probes.http.transport import (
    BODY_LIMIT,
    HEAD_LIMIT,
    HEAD_TOO_LARGE,
    USER_AGENT,
    Ask,
    Redirect,
    head_size,
)

__all__ = ["FamilyResolver", "PeerResponse", "Proxied", "proxied_session", "resolving"]

_FAMILIES = {
    IpVersion.ANY: socket.AF_UNSPEC,
    IpVersion.V4: socket.AF_INET,
    IpVersion.V6: socket.AF_INET6,
}
_family: ContextVar[socket.AddressFamily] = ContextVar("probe_family", default=socket.AF_UNSPEC)
_recording: ContextVar[Recorder | None] = ContextVar("probe_recorder", default=None)

_Hook = Callable[[aiohttp.ClientSession, SimpleNamespace, object], Awaitable[None]]


def proxied_session(
    *, limit: int, resolver: FamilyResolver, tls: TlsContexts
) -> aiohttp.ClientSession:
    """The one session every proxied HTTP request shares; create it in the running loop.

    ``limit`` caps connections open at once (0: no cap); ``tls.verified`` is the context
    of requests that verify as usual.
    """
    return aiohttp.ClientSession(
        connector=_Connector(
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
        token = _recording.set(rec)  # for the connector, which runs in this task
        try:
            return await self._exchange(ask, rec)
        finally:
            _recording.reset(token)

    async def _exchange(self, ask: Ask, rec: Recorder) -> Redirect | None:
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


class _Connector(aiohttp.TCPConnector):
    """aiohttp's connector, stamping the TLS handshake with the target on the running
    request's recorder, and giving each new connection a :class:`_Handler` that reads it."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        handler = functools.partial(_Handler, loop=self._loop)
        self._factory = cast("functools.partial[ResponseHandler]", handler)

    async def connect(
        self,
        req: ClientRequest,
        traces: list[Trace],
        timeout: aiohttp.ClientTimeout,  # noqa: ASYNC109 (aiohttp's signature)
    ) -> Connection:
        connection = await super().connect(req, traces, timeout)
        protocol = connection.protocol
        if isinstance(protocol, _Handler):
            protocol.rec = _recording.get()
        return connection

    async def _start_tls_connection(
        self,
        underlying_transport: asyncio.Transport,
        req: ClientRequest,
        timeout: aiohttp.ClientTimeout,  # noqa: ASYNC109 (aiohttp's signature)
        client_error: type[Exception] = aiohttp.ClientConnectorError,
    ) -> tuple[asyncio.BaseTransport, ResponseHandler]:
        # The handshake with the target, once a proxy's CONNECT tunnel is up.
        rec = _recording.get()
        if rec is not None:
            rec.stamps.tls_start = perf_counter()
        ready = await super()._start_tls_connection(
            underlying_transport, req, timeout, client_error
        )
        if rec is not None:
            rec.stamps.tls_end = perf_counter()
        return ready


class _Handler(ResponseHandler):
    """aiohttp's protocol, noting the answer's first byte on ``rec`` and refusing a head
    of more than :data:`HEAD_LIMIT` bytes (aiohttp's own limits allow about 1 MB)."""

    rec: Recorder | None = None  # set once the connection is the request's; None after the head
    _head_bytes = 0

    def data_received(self, data: bytes) -> None:
        rec = self.rec
        if rec is None:
            super().data_received(data)
            return
        if not self._head_bytes:
            rec.stamps.first_byte = perf_counter()
        self._head_bytes += len(data)
        super().data_received(data)
        if self.rec is not None and self._head_bytes > HEAD_LIMIT:  # and still no head
            self._too_large()

    def feed_data(self, data: tuple[RawResponseMessage, StreamReader], size: int = 0) -> None:
        # A parsed head; it may have come whole in the chunk that crossed the limit.
        if self.rec is not None:
            self.rec = None
            if self._head_bytes > HEAD_LIMIT and head_size(data[0].raw_headers) > HEAD_LIMIT:
                self._too_large()
                return
        super().feed_data(data, size)

    def _too_large(self) -> None:
        self.rec = None
        if self.transport is not None:
            self.transport.close()
        self.set_exception(HttpProcessingError(message=HEAD_TOO_LARGE))


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
            rec.stamps,
            connect_start=perf_counter(),
            dns_start=None,
            dns_end=None,
            tls_start=None,
            tls_end=None,
            connect_end=None,
            first_byte=None,
        )
