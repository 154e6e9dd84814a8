"""One HTTP/1.1 request on a fresh connection, on the event loop's own transports and
httptools' C parser: the HTTP probe's request without aiohttp's client.

aiohttp's client costs about 195 µs of CPU for a GET on this kind of machine (request and
response objects, trace signals, stream readers); this exchange costs about 70 µs, and at
100,000 sites a minute that is most of a core. It does only what a check needs: connect
(each address in turn, as aiohttp does, with :mod:`monitor.probes.http.dial`), write one
request, parse one answer into the probe's :class:`~monitor.probes.http.record.Recorder` as
it comes (so a failure halfway keeps what arrived), read at most ``limit`` bytes of body,
and hang up.
:class:`monitor.probes.http.direct.Direct` makes it the probe's transport for requests that
go straight to the target; requests through a proxy go through aiohttp.

Failures are raised as the errors :func:`monitor.probes.classify.classify_exception`
reads: :class:`ConnectFailed` (with the socket's or TLS's own error), :class:`BadResponse`,
:class:`Disconnected`, :class:`BrokenBody`, or a socket error after connecting.
"""

from __future__ import annotations

import asyncio
import ipaddress
import socket
import ssl
import zlib
from collections.abc import Sequence
from dataclasses import dataclass
from functools import lru_cache
from time import perf_counter

import aiohappyeyeballs
import httptools
from aiohttp.abc import AbstractResolver

from monitor.probes.http.dial import first_ready, handshake
from monitor.probes.http.record import Peer, Recorder
from monitor.probes.http.tlsnames import not_after
from monitor.probes.http.transport import HEAD_LIMIT, HEAD_TOO_LARGE, Redirect, head_size

# What zlib needs to read each Content-Encoding aiohttp asks for (and we ask for too).
_WBITS = {"gzip": 16 + zlib.MAX_WBITS, "x-gzip": 16 + zlib.MAX_WBITS, "deflate": zlib.MAX_WBITS}

# Answers that never have a body, whatever their headers say (RFC 9112, 6.3).
_NO_BODY = frozenset({204, 304})


class ConnectFailed(OSError):
    """No connection to ``host``:``port``; ``os_error`` says why (socket, DNS or TLS)."""

    def __init__(self, host: str, port: int, os_error: OSError) -> None:
        super().__init__(os_error.errno, str(os_error))
        self.host, self.port, self.os_error = host, port, os_error


class BadResponse(Exception):
    """What came back is not HTTP/1.x."""


class Disconnected(Exception):
    """The server hung up before the headers were complete."""


class BrokenBody(Exception):
    """The server hung up before the body it announced was complete."""


@dataclass(frozen=True, slots=True)
class Request:
    """What to send and where: ``head`` is the request line and headers, already encoded."""

    head: bytes
    body: bytes | None
    host: str  # connect to host:port; a name is looked up, an IP literal is not
    port: int
    tls: ssl.SSLContext | None  # None: plain HTTP
    server_name: str | None  # TLS SNI and the name the certificate must hold
    is_head: bool  # a HEAD request: its answer has headers only


def encode_head(
    method: str, target: str, headers: Sequence[tuple[str, str]], body: bytes | None
) -> bytes:
    """The request line and headers; ``headers`` must hold Host. A body gets its length and
    the request ``Connection: close``, unless ``headers`` say otherwise (as with aiohttp)."""
    lines = [f"{method} {target} HTTP/1.1"]
    has_length = has_connection = False
    for name, value in headers:  # one pass, no set: this runs for every request
        if "\r" in value or "\n" in value or "\0" in value:
            raise ValueError("a header value holds a line break or NUL")  # config should have said
        lines.append(f"{name}: {value}")
        lowered = name.lower()
        if lowered == "content-length":
            has_length = True
        elif lowered == "connection":
            has_connection = True
    if not has_length and (body is not None or method in ("POST", "PUT", "PATCH")):
        lines.append(f"Content-Length: {0 if body is None else len(body)}")
    if not has_connection:
        lines.append("Connection: close")
    return ("\r\n".join(lines) + "\r\n\r\n").encode()  # UTF-8, as aiohttp sends header values


class Dialer:
    """Opens the connections of lean requests: names looked up with ``resolver`` (in the
    family the running probe asked for), at most ``limit`` at once (0: no cap)."""

    def __init__(self, resolver: AbstractResolver, limit: int = 0) -> None:
        self.resolver = resolver
        self._slots = asyncio.Semaphore(limit) if limit > 0 else None

    async def exchange(
        self, request: Request, rec: Recorder, limit: int, follow: frozenset[int]
    ) -> Redirect | None:
        """Send ``request`` and read its answer into ``rec``; an answer whose status is in
        ``follow`` and that has a Location comes back as a :class:`Redirect` instead."""
        if self._slots is None:
            return await self._exchange(request, rec, limit, follow)
        rec.stamps.queued_start = perf_counter()
        async with self._slots:
            rec.stamps.queued_end = perf_counter()
            return await self._exchange(request, rec, limit, follow)

    async def _exchange(
        self, request: Request, rec: Recorder, limit: int, follow: frozenset[int]
    ) -> Redirect | None:
        loop = asyncio.get_running_loop()
        answer = _Answer(loop, rec, limit, follow, request.is_head)
        try:
            transport = await self._connect(loop, request, answer, rec)
        except BaseException:
            answer.release()
            raise
        answered = False
        try:
            transport.write(request.head + (request.body or b""))
            redirect = await answer.done
            answered = True
            return redirect
        finally:
            if answered and request.tls is None:
                transport.close()
            else:
                # Failed, cut off by the time limit, or TLS (no close_notify exchange to wait
                # for, as aiohttp does): a request a server never read must not keep it open.
                transport.abort()
            answer.release()

    async def _connect(
        self, loop: asyncio.AbstractEventLoop, request: Request, answer: _Answer, rec: Recorder
    ) -> asyncio.Transport:
        """A connection ready for the request: TCP connected, then the TLS handshake done
        apart (``tls_*`` stamps), so each has its own phase."""
        host, port = request.host, request.port
        stamps = rec.stamps
        stamps.connect_start = perf_counter()
        server_name = request.server_name if request.tls is not None else None
        try:
            infos = await self._addresses(host, port, rec)
            if len(infos) == 1:  # the loop's own connect, in C: cheaper than a socket here
                family, _, _, _, address = infos[0]
                transport, _ = await loop.create_connection(
                    lambda: answer, str(address[0]), int(address[1]), family=family
                )
                if request.tls is not None:
                    stamps.tls_start = perf_counter()
                    transport = await handshake(loop, transport, answer, request.tls, server_name)
                    stamps.tls_end = perf_counter()
            else:
                transport = await first_ready(loop, infos, answer, request.tls, server_name, rec)
        except OSError as exc:
            raise ConnectFailed(host, port, exc) from exc
        stamps.connect_end = perf_counter()
        rec.peer = _peer(transport)
        return transport

    async def _addresses(
        self, host: str, port: int, rec: Recorder
    ) -> list[aiohappyeyeballs.AddrInfoType]:
        literal = _ip_family(host)
        if literal is not None:
            address = (host, port, 0, 0) if literal == socket.AF_INET6 else (host, port)
            return [(literal, socket.SOCK_STREAM, socket.IPPROTO_TCP, "", address)]
        rec.stamps.dns_start = perf_counter()
        found = await self.resolver.resolve(host, port)  # the probe's family: see resolving()
        rec.stamps.dns_end = perf_counter()
        if not found:
            raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")
        return [
            (
                r["family"],
                socket.SOCK_STREAM,
                r["proto"],
                "",
                (r["host"], r["port"], 0, 0)
                if r["family"] == socket.AF_INET6
                else (r["host"], r["port"]),
            )
            for r in found
        ]


class _Answer(asyncio.Protocol):
    """Parses one answer into the recorder as it arrives; ``done`` resolves when it is in
    (or fails when it cannot be)."""

    def __init__(
        self,
        loop: asyncio.AbstractEventLoop,
        rec: Recorder,
        limit: int,
        follow: frozenset[int],
        is_head: bool,
    ) -> None:
        self.done: asyncio.Future[Redirect | None] = loop.create_future()
        self._rec = rec
        self._limit = limit
        self._follow = follow
        self._is_head = is_head
        self._parser: httptools.HttpResponseParser | None = httptools.HttpResponseParser(self)
        self._headers: list[tuple[str, str]] = []
        self._until_close = False  # the body runs until the server hangs up
        self._body = bytearray()
        self._in_body = False
        self._head_bytes = 0  # received while the head is not complete
        self._coding = ""  # the body's Content-Encoding, lower case
        self._inflate: zlib._Decompress | None = None  # a gzip or deflate body, once begun

    def release(self) -> None:
        """The exchange is over: what comes later reports to no one, and the parser, which
        holds this protocol's methods, is let go. That reference cycle would otherwise
        leave each check's answer, record and parser (18 objects) to the garbage
        collector, whose passes over them cost more CPU than the check's own parsing."""
        if not self.done.done():
            self.done.cancel()
        self._parser = None

    # -- transport events

    def data_received(self, data: bytes) -> None:
        parser = self._parser
        if parser is None or self.done.done():
            return
        in_head = not self._in_body
        if in_head:
            if not self._head_bytes:  # the answer's first byte (an interim one's, if any)
                self._rec.stamps.first_byte = perf_counter()
            self._head_bytes += len(data)
        try:
            parser.feed_data(data)
        except httptools.HttpParserUpgrade:
            self._finish(None)
        except httptools.HttpParserError as exc:
            if not self.done.done():
                if self._in_body:
                    self._fail(BrokenBody(_words(exc)))
                else:
                    self._fail(BadResponse(_words(exc)))
            return
        if self._in_body:
            if not self.done.done() and len(self._body) >= self._limit:
                self._rec.body_truncated = True  # more was coming: stop reading here
                self._finish(None)
        elif in_head and self._head_bytes > HEAD_LIMIT:
            self._fail(BadResponse(HEAD_TOO_LARGE))  # and more of it may be coming

    def eof_received(self) -> bool | None:
        return None  # let the transport close; connection_lost decides

    def connection_lost(self, exc: Exception | None) -> None:
        if self.done.done():
            return
        if self._in_body and self._until_close and exc is None:
            self._finish(None)  # no length given: the body ended with the connection
        elif exc is not None:
            self._fail(exc)
        elif self._in_body:
            self._fail(BrokenBody("the server hung up before the body was complete"))
        else:
            self._fail(Disconnected())

    # -- parser callbacks

    def on_header(self, name: bytes, value: bytes) -> None:
        # As aiohttp reads them: UTF-8, and bytes that are not kept as escapes for the store.
        self._headers.append(
            (name.decode("utf-8", "surrogateescape"), value.decode("utf-8", "surrogateescape"))
        )

    def on_headers_complete(self) -> None:
        assert self._parser is not None  # it is what calls
        status = self._parser.get_status_code()
        if 100 <= status < 200 and status != 101:  # interim (100 Continue): the real one follows
            self._headers.clear()
            return
        headers = tuple(self._headers)
        if self._head_bytes > HEAD_LIMIT and head_size(headers) > HEAD_LIMIT:
            self._fail(BadResponse(HEAD_TOO_LARGE))  # it came whole in the chunk that crossed
            return
        if status in self._follow:
            location = next((v for n, v in headers if n.lower() == "location"), None)
            if location is not None:
                self._finish(Redirect(status, location))
                return
        rec = self._rec
        rec.status, rec.headers = status, headers
        rec.stamps.headers = perf_counter()
        if self._is_head or status in _NO_BODY:
            self._finish(None)
            return
        self._in_body = True
        names = {n.lower(): v for n, v in headers}
        self._until_close = "content-length" not in names and "transfer-encoding" not in names
        self._coding = names.get("content-encoding", "").strip().lower()

    def on_body(self, body: bytes) -> None:
        if self.done.done():
            return  # a redirect's body, or a broken one: not this answer's
        if len(self._body) >= self._limit:
            self._rec.body_truncated = True  # bytes beyond the limit are dropped
            return
        if self._inflate is None and self._coding in _WBITS and body:
            self._inflate = zlib.decompressobj(_wbits(self._coding, body[0]))
        if self._inflate is not None:
            body = self._inflated(body)
        room = self._limit - len(self._body)
        if len(body) > room:
            self._rec.body_truncated = True
        self._body += body[:room]
        self._rec.body = bytes(self._body)

    def _inflated(self, body: bytes) -> bytes:
        """Decompressed, never more than the room left plus one byte (so a zip bomb stays
        small, and the extra byte tells that the body was cut)."""
        assert self._inflate is not None
        try:
            return self._inflate.decompress(body, self._limit - len(self._body) + 1)
        except zlib.error as exc:
            self._fail(BrokenBody(f"cannot decompress the body: {exc}"))
            return b""

    def on_message_complete(self) -> None:
        if self._in_body:  # not an interim answer's end (nor one finished at its headers)
            self._finish(None)

    # --

    def _finish(self, redirect: Redirect | None) -> None:
        if not self.done.done():
            if redirect is None:
                self._rec.stamps.body_done = perf_counter()
            self.done.set_result(redirect)

    def _fail(self, exc: BaseException) -> None:
        if not self.done.done():
            self.done.set_exception(exc)


def _wbits(coding: str, first: int) -> int:
    """What zlib needs for a body in ``coding`` that starts with the byte ``first``: a
    ``deflate`` body whose first byte names no zlib header (RFC 1950: compression method 8)
    is raw deflate, which some servers send and aiohttp accepts the same way."""
    if coding == "deflate" and first & 0xF != 8:
        return -zlib.MAX_WBITS
    return _WBITS[coding]


def _words(exc: Exception) -> str:
    return str(exc) or type(exc).__name__


def _peer(transport: asyncio.BaseTransport) -> Peer:
    address = transport.get_extra_info("peername")
    ip, port = address[:2] if isinstance(address, tuple) else (None, None)
    tls = transport.get_extra_info("ssl_object")
    if isinstance(tls, ssl.SSLObject):
        return Peer(ip, port, tls.version(), not_after(tls))
    return Peer(ip, port)


@lru_cache(maxsize=4096)
def _ip_family(host: str) -> socket.AddressFamily | None:
    """AF_INET or AF_INET6 for an IP literal, None for a name to look up."""
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        return None
    return socket.AF_INET6 if address.version == 6 else socket.AF_INET
