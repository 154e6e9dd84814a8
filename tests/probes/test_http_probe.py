"""The HTTP probe against real servers on 127.0.0.1: healthy, failing and misbehaving ones."""

from __future__ import annotations

import asyncio
import gc
import socket
import ssl
import zlib
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from time import perf_counter
from typing import Protocol

import aiohttp
import pytest
import trustme
from aiohttp import web

from monitor import __version__
from monitor.models import (
    Cause,
    Expect,
    Kind,
    Origin,
    ProbeContext,
    ProbeResult,
    Role,
    Site,
    StatusRange,
)
from monitor.probes import Clients, HttpTarget, make_clients, run_probe
from monitor.probes.http import probe as http_probe
from monitor.probes.http.probe import BODY_LIMIT
from monitor.probes.http.tlsnames import TlsContexts
from tests.support.names import LocalNames

NOW = datetime(2026, 1, 1, tzinfo=UTC)
TIMEOUT = 0.5
MARGIN = 0.3  # scheduling slack allowed on top of a timeout
DEFAULT = Expect()

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
RawHandler = Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]]


class Serve(Protocol):
    async def __call__(self, handler: Handler, *, ssl_context: ssl.SSLContext | None = None) -> int:
        """Serve ``handler`` at ``/`` on 127.0.0.1 and return the port."""


class ServeRaw(Protocol):
    async def __call__(self, handler: RawHandler) -> int:
        """Accept connections on 127.0.0.1, read one request, then run ``handler``."""


@pytest.fixture
async def serve() -> AsyncIterator[Serve]:
    runners: list[web.AppRunner] = []

    async def start(handler: Handler, *, ssl_context: ssl.SSLContext | None = None) -> int:
        app = web.Application()
        app.router.add_get("/", handler)
        runner = web.AppRunner(app)
        await runner.setup()
        runners.append(runner)
        await web.TCPSite(runner, "127.0.0.1", 0, ssl_context=ssl_context).start()
        port: int = runner.addresses[0][1]
        return port

    yield start
    for runner in runners:
        await runner.cleanup()


@pytest.fixture
async def serve_raw() -> AsyncIterator[ServeRaw]:
    """A bare TCP server, for answers aiohttp.web would refuse to send."""
    servers: list[asyncio.Server] = []
    conversations: set[asyncio.Task[None]] = set()

    async def start(handler: RawHandler) -> int:
        def on_connect(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            # Kept, so teardown can wait for each conversation to end.
            conversations.add(asyncio.ensure_future(_converse(handler, reader, writer)))

        server = await asyncio.start_server(on_connect, "127.0.0.1", 0)
        servers.append(server)
        port: int = server.sockets[0].getsockname()[1]
        return port

    yield start
    for server in servers:
        server.close()
        await server.wait_closed()
    if conversations:
        await asyncio.wait(conversations, timeout=1)


async def _converse(
    handler: RawHandler, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
) -> None:
    try:
        await reader.readuntil(b"\r\n\r\n")
        await handler(reader, writer)
    except (ConnectionError, asyncio.IncompleteReadError):
        pass  # the probe hung up first, as it should when it has seen enough
    finally:
        writer.close()


@pytest.fixture
async def clients() -> AsyncIterator[Clients]:
    async with make_clients() as clients:
        yield clients


def _site(url: str, *, timeout: float = TIMEOUT, expect: Expect = DEFAULT) -> Site:
    return Site(name="example", url=url, interval=60.0, timeout=timeout, expect=expect)


async def _probe(clients: Clients, site: Site) -> ProbeResult:
    ctx = ProbeContext(site.name, Role.EDGE, None, NOW, site.timeout)
    return await run_probe(clients, ctx, HttpTarget(site))


async def _user_agent(request: web.Request) -> web.Response:
    return web.Response(text=request.headers.get("User-Agent", ""))


async def test_healthy_site_is_ok_with_every_phase_timed(serve: Serve, clients: Clients) -> None:
    port = await serve(_user_agent)
    result = await _probe(clients, _site(f"http://127.0.0.1:{port}/"))

    assert (result.ok, result.cause, result.detail, result.failed) == (True, Cause.OK, "", ())
    assert (result.monitor, result.role, result.origin, result.time) == (
        "example",
        Role.EDGE,
        None,
        NOW,
    )
    assert (result.kind, result.target) == (Kind.HTTP, f"http://127.0.0.1:{port}/")
    assert (result.status, result.peer_ip, result.peer_port) == (200, "127.0.0.1", port)
    assert (result.tls_version, result.cert_not_after) == (None, None)
    assert result.body == f"monitor/{__version__}".encode()
    assert ("Content-Type", "text/plain; charset=utf-8") in result.headers
    phases = result.phases
    assert phases.resolve is None  # an IP literal needs no lookup
    assert phases.tls is None
    timed = [phases.connect, phases.processing, phases.transfer]
    assert all(value is not None and value >= 0 for value in timed)
    assert 0 < phases.total < 1
    assert sum(value or 0.0 for value in timed) <= phases.total


@pytest.mark.parametrize("status", [200, 503])
async def test_a_check_leaves_no_reference_cycles_to_the_garbage_collector(
    serve: Serve, clients: Clients, status: int
) -> None:
    # A check's objects must die by reference counts: cycles among them cost a busy
    # daemon more collector time than the checks themselves (README, Performance).
    async def answer(_: web.Request) -> web.Response:
        return web.Response(status=status, text="shop")

    port = await serve(answer)
    site = _site(f"http://127.0.0.1:{port}/")
    await _probe(clients, site)  # what is made once (caches, the clients's parts)
    gc.collect()
    gc.disable()
    gc.set_debug(gc.DEBUG_SAVEALL)
    try:
        results = [await _probe(clients, site) for _ in range(20)]
        gc.collect()
        ours = [o for o in gc.garbage if type(o).__module__.startswith("monitor.")]
    finally:
        gc.set_debug(0)
        gc.garbage.clear()
        gc.enable()
    assert [r.status for r in results] == [status] * 20
    assert ours == []


async def test_localhost_is_resolved_and_timed(serve: Serve, clients: Clients) -> None:
    port = await serve(_user_agent)
    result = await _probe(clients, _site(f"http://localhost:{port}/"))

    assert result.ok
    assert result.phases.resolve is not None
    assert 0 <= result.phases.resolve < result.phases.total


async def test_503_keeps_the_headers_that_tell_who_answered(serve: Serve, clients: Clients) -> None:
    async def unavailable(request: web.Request) -> web.Response:
        headers = {"Retry-After": "120", "Via": "1.1 varnish", "X-Powered-By": "PHP/8.3"}
        return web.Response(status=503, text="Service Unavailable", headers=headers)

    port = await serve(unavailable)
    result = await _probe(clients, _site(f"http://127.0.0.1:{port}/"))

    # The application's own 503 with Retry-After: planned maintenance, not an outage.
    assert (result.ok, result.cause, result.status) == (False, Cause.MAINTENANCE, 503)
    assert result.detail == "HTTP 503 with Retry-After: 120: down for maintenance, back later"
    assert result.failed == ("status",)
    kept = dict(result.headers)
    assert (kept["Retry-After"], kept["Via"]) == ("120", "1.1 varnish")
    assert "X-Powered-By" not in kept
    assert result.body == b"Service Unavailable"


async def test_wrong_body_is_content_mismatch(serve: Serve, clients: Clients) -> None:
    async def default_page(request: web.Request) -> web.Response:
        return web.Response(text="<h1>It works!</h1>")

    port = await serve(default_page)
    site = _site(f"http://127.0.0.1:{port}/", expect=Expect(body_contains="Welcome"))
    result = await _probe(clients, site)

    assert (result.ok, result.cause, result.status) == (False, Cause.CONTENT_MISMATCH, 200)
    assert result.failed == ("body_contains",)


async def test_checks_share_no_connection_and_no_cookie(serve: Serve, clients: Clients) -> None:
    seen: list[tuple[object, str | None]] = []

    async def remember(request: web.Request) -> web.Response:
        assert request.transport is not None
        seen.append((request.transport.get_extra_info("peername"), request.headers.get("Cookie")))
        response = web.Response(text="hi")
        response.set_cookie("clients", "abc")
        return response

    port = await serve(remember)
    for _ in range(2):
        assert (await _probe(clients, _site(f"http://127.0.0.1:{port}/"))).ok

    (first_peer, _), (second_peer, second_cookie) = seen
    assert first_peer != second_peer  # a new connection, so its connect time was measured
    assert second_cookie is None


async def test_waiting_for_a_pool_slot_is_not_timed(serve: Serve) -> None:
    async def slow(request: web.Request) -> web.Response:
        await asyncio.sleep(0.2)
        return web.Response(text="done")

    port = await serve(slow)
    async with make_clients(limit=1) as clients:
        started = perf_counter()
        site = _site(f"http://127.0.0.1:{port}/", timeout=2.0)
        results = await asyncio.gather(_probe(clients, site), _probe(clients, site))
        elapsed = perf_counter() - started

    assert all(result.ok for result in results)
    assert elapsed >= 0.4  # one waited for the other's connection slot...
    assert all(result.phases.total < 0.35 for result in results)  # ...without it counting


async def _stall(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    await reader.read()  # until the probe hangs up


async def _stall_mid_body(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 1000\r\n\r\npartial")
    await writer.drain()
    await reader.read()


async def _not_http(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    writer.write(b"SSH-2.0-OpenSSH_9.6\r\n")
    await writer.drain()


async def _hang_up(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    """Close without a word (the fixture closes the connection)."""


@pytest.mark.parametrize(
    ("handler", "cause", "detail_start", "status", "body"),
    [
        pytest.param(
            _stall, Cause.TIMEOUT, "no first byte within 0.5s", None, b"", id="slow-server"
        ),
        pytest.param(
            _stall_mid_body,
            Cause.READ_TIMEOUT,
            "body not complete within 0.5s",
            200,
            b"partial",
            id="slow-body",
        ),
        pytest.param(
            _not_http,
            Cause.PROTOCOL_ERROR,
            "invalid HTTP response: ",  # then aiohttp's own words, which vary by parser
            None,
            b"",
            id="garbage-not-http",
        ),
        pytest.param(
            _hang_up,
            Cause.PROTOCOL_ERROR,
            "server closed the connection without answering",
            None,
            b"",
            id="hangs-up",
        ),
    ],
)
async def test_misbehaving_server(
    serve_raw: ServeRaw,
    clients: Clients,
    handler: RawHandler,
    cause: Cause,
    detail_start: str,
    status: int | None,
    body: bytes,
) -> None:
    port = await serve_raw(handler)
    started = perf_counter()
    result = await _probe(clients, _site(f"http://127.0.0.1:{port}/"))
    elapsed = perf_counter() - started

    assert (result.ok, result.cause, result.status, result.body) == (False, cause, status, body)
    assert result.detail.startswith(detail_start)
    assert result.phases.connect is not None
    assert elapsed < TIMEOUT + MARGIN


CHUNK = b"x" * 16 * 1024


def _body_of(length: int | None) -> RawHandler:
    """A 200 whose body is ``length`` bytes, or never ends when ``length`` is None."""

    async def send(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        # Without a length the body runs until the connection closes.
        framing = b"" if length is None else b"Content-Length: %d\r\n" % length
        writer.write(b"HTTP/1.1 200 OK\r\n" + framing + b"\r\n")
        sent = 0
        while (length is None or sent < length) and not writer.is_closing():
            chunk = CHUNK if length is None else CHUNK[: length - sent]
            writer.write(chunk)
            await writer.drain()
            sent += len(chunk)

    return send


@pytest.mark.parametrize(
    ("length", "expect", "cause", "truncated"),
    [
        pytest.param(None, DEFAULT, Cause.OK, True, id="endless"),
        pytest.param(
            10 * 1024 * 1024,
            Expect(body_contains="needle"),
            Cause.CONTENT_MISMATCH,
            True,
            id="huge-without-needle",
        ),
        pytest.param(BODY_LIMIT, DEFAULT, Cause.OK, False, id="exactly-the-limit"),
    ],
)
async def test_body_is_bounded(
    serve_raw: ServeRaw,
    clients: Clients,
    length: int | None,
    expect: Expect,
    cause: Cause,
    truncated: bool,
) -> None:
    port = await serve_raw(_body_of(length))
    result = await _probe(clients, _site(f"http://127.0.0.1:{port}/", expect=expect))

    assert (result.cause, result.body_truncated) == (cause, truncated)
    assert result.body == b"x" * BODY_LIMIT


def _answer(*parts: bytes) -> RawHandler:
    """Send ``parts`` one write at a time, then hang up."""

    async def send(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        for part in parts:
            writer.write(part)
            await writer.drain()
            await asyncio.sleep(0.01)  # a separate read for the client

    return send


@pytest.mark.parametrize(
    ("answer", "cause", "detail", "status", "body"),
    [
        pytest.param(
            _answer(b"HTTP/1.1 200 OK\r\nServer: old\r\n\r\n", b"until ", b"close"),
            Cause.OK,
            "",
            200,
            b"until close",
            id="body-ends-with-the-connection",
        ),
        pytest.param(
            _answer(b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\nonly this"),
            Cause.PROTOCOL_ERROR,
            "broken body: the server hung up before the body was complete",
            200,
            b"only this",
            id="shorter-than-its-length",
        ),
        pytest.param(
            _answer(
                b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n",
                b"5\r\nhello\r\n",
                b"6\r\n world\r\n0\r\n\r\n",
            ),
            Cause.OK,
            "",
            200,
            b"hello world",
            id="chunked",
        ),
        pytest.param(
            _answer(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n"),
            Cause.PROTOCOL_ERROR,
            "broken body: ",
            200,
            b"",
            id="bad-chunk",
        ),
        pytest.param(
            _answer(
                b"HTTP/1.1 100 Continue\r\n\r\n",
                b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok",
            ),
            Cause.OK,
            "",
            200,
            b"ok",
            id="interim-100-then-200",
        ),
        pytest.param(
            _answer(b"HTTP/1.1 204 No Content\r\n\r\n"),
            Cause.OK,
            "",
            204,
            b"",
            id="no-content",
        ),
        pytest.param(
            _answer(b"HTTP/1.1 503 Service Unavailable\r\nContent-Length: 4\r\n\r\n", b"busy"),
            Cause.SERVICE_UNAVAILABLE,
            "expected status 200-299, got 503",
            503,
            b"busy",
            id="503-in-two-reads",
        ),
    ],
)
async def test_answers_framed_every_way(
    serve_raw: ServeRaw,
    clients: Clients,
    answer: RawHandler,
    cause: Cause,
    detail: str,
    status: int,
    body: bytes,
) -> None:
    port = await serve_raw(answer)
    site = _site(f"http://127.0.0.1:{port}/", expect=Expect(status=(StatusRange(200, 299),)))
    result = await _probe(clients, site)

    assert (result.cause, result.status, result.body) == (cause, status, body)
    assert result.detail.startswith(detail)
    assert not result.body_truncated


async def test_a_body_past_the_limit_is_truncated_even_when_it_all_came_at_once(
    serve_raw: ServeRaw, clients: Clients
) -> None:
    whole = b"x" * (BODY_LIMIT + 100)
    head = b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n" % len(whole)
    port = await serve_raw(_answer(head + whole))
    result = await _probe(clients, _site(f"http://127.0.0.1:{port}/"))

    assert (result.cause, result.body_truncated) == (Cause.OK, True)
    assert result.body == whole[:BODY_LIMIT]


async def test_switching_protocols_is_an_answer_not_an_interim_one(
    serve_raw: ServeRaw, clients: Clients
) -> None:
    upgrade = b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade"
    port = await serve_raw(_answer(upgrade + b"\r\n\r\n"))
    result = await _probe(clients, _site(f"http://127.0.0.1:{port}/"))

    assert (result.ok, result.status, result.cause) == (False, 101, Cause.UNEXPECTED_STATUS)


def _deflated(data: bytes, wbits: int) -> bytes:
    squeeze = zlib.compressobj(wbits=wbits)
    return squeeze.compress(data) + squeeze.flush()


@pytest.mark.parametrize(
    "wbits",
    [
        pytest.param(zlib.MAX_WBITS, id="zlib-stream-as-rfc-9110-says"),
        pytest.param(-zlib.MAX_WBITS, id="raw-deflate-as-some-servers-send"),
    ],
)
async def test_deflate_bodies_are_read_with_or_without_the_zlib_header(
    serve_raw: ServeRaw, clients: Clients, wbits: int
) -> None:
    # aiohttp's client accepts both (it looks at the first byte), so the probe does too.
    packed = _deflated(b"Welcome to the shop", wbits)
    head = b"HTTP/1.1 200 OK\r\nContent-Encoding: deflate\r\nContent-Length: %d\r\n\r\n"
    port = await serve_raw(_answer(head % len(packed) + packed))
    result = await _probe(clients, _site(f"http://127.0.0.1:{port}/"))

    assert (result.cause, result.detail, result.body) == (Cause.OK, "", b"Welcome to the shop")


async def test_response_headers_are_read_as_utf_8(serve_raw: ServeRaw, clients: Clients) -> None:
    head = "HTTP/1.1 503 Service Unavailable\r\nServer: café\r\nContent-Length: 0\r\n\r\n"
    port = await serve_raw(_answer(head.encode()))
    result = await _probe(clients, _site(f"http://127.0.0.1:{port}/"))

    assert (result.status, ("Server", "café") in result.headers) == (503, True)


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


async def test_closed_port_is_connect_refused(clients: Clients) -> None:
    port = _closed_port()
    result = await _probe(clients, _site(f"http://127.0.0.1:{port}/"))

    assert (result.ok, result.cause) == (False, Cause.CONNECT_REFUSED)
    assert result.detail == f"connection refused (127.0.0.1:{port})"


async def test_unknown_name_is_nxdomain(clients: Clients) -> None:
    result = await _probe(clients, _site("http://nonexistent.invalid/"))

    assert (result.ok, result.cause) == (False, Cause.DNS_NXDOMAIN)
    assert result.detail == "name not found (nonexistent.invalid)"
    assert result.phases.resolve is None  # the lookup never succeeded


async def test_cancellation_propagates(serve_raw: ServeRaw, clients: Clients) -> None:
    port = await serve_raw(_stall)
    task = asyncio.create_task(_probe(clients, _site(f"http://127.0.0.1:{port}/", timeout=5.0)))
    await asyncio.sleep(0.1)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task


@pytest.fixture(scope="module")
def ca() -> trustme.CA:
    return trustme.CA()


async def _hello(request: web.Request) -> web.Response:
    return web.Response(text="hello")


def _server_context(ca: trustme.CA, *names: str, expired: bool = False) -> ssl.SSLContext:
    not_after = datetime.now(UTC) - timedelta(days=1) if expired else None
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert(*names, not_after=not_after).configure_cert(context)
    return context


@pytest.mark.parametrize(
    ("names", "expired", "trusted", "cause", "detail"),
    [
        pytest.param(
            ("localhost",),
            False,
            False,
            Cause.TLS_CERT_INVALID,
            "certificate not accepted: unable to get local issuer certificate",
            id="self-signed",
        ),
        pytest.param(
            ("localhost",),
            True,
            True,
            Cause.TLS_CERT_EXPIRED,
            "certificate has expired",
            id="expired",
        ),
        pytest.param(
            ("other.test",),
            False,
            True,
            Cause.TLS_CERT_INVALID,
            "certificate not accepted: Hostname mismatch, "
            "certificate is not valid for 'localhost'.",
            id="wrong-name",
        ),
        pytest.param(("localhost",), False, True, Cause.OK, "", id="valid"),
    ],
)
async def test_https_certificate(
    serve: Serve,
    ca: trustme.CA,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    names: tuple[str, ...],
    expired: bool,
    trusted: bool,
    cause: Cause,
    detail: str,
) -> None:
    if trusted:
        # OpenSSL reads this when make_clients() builds its context: trust our test CA.
        ca.cert_pem.write_to_path(str(tmp_path / "ca.pem"))
        monkeypatch.setenv("SSL_CERT_FILE", str(tmp_path / "ca.pem"))
    port = await serve(_hello, ssl_context=_server_context(ca, *names, expired=expired))
    async with make_clients() as clients:
        result = await _probe(clients, _site(f"https://localhost:{port}/"))

    assert (result.cause, result.detail) == (cause, detail)
    assert result.phases.connect is not None  # TCP connected: the handshake is what failed
    assert (result.phases.tls is not None) is (cause is Cause.OK)
    if cause is Cause.OK:
        assert result.tls_version in ("TLSv1.2", "TLSv1.3")
        assert result.cert_not_after is not None
        assert result.cert_not_after > datetime.now(UTC)


async def test_https_to_a_plain_http_server_is_a_handshake_failure(
    serve: Serve, clients: Clients
) -> None:
    port = await serve(_hello)
    result = await _probe(clients, _site(f"https://127.0.0.1:{port}/"))

    assert (result.cause, result.detail) == (
        Cause.TLS_HANDSHAKE,
        "TLS handshake failed: wrong version number",
    )


async def test_a_url_aiohttp_cannot_fetch_is_our_bug_and_raises(
    clients: Clients,
) -> None:
    with pytest.raises(aiohttp.NonHttpUrlClientError):
        await _probe(clients, _site("ftp://127.0.0.1/"))


async def test_a_name_with_one_address_failing_tls_is_checked_on_the_next(
    serve: Serve,
    serve_raw: ServeRaw,
    ca: trustme.CA,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """As aiohttp did: a node of a name whose handshake breaks is left for the next one."""
    ca.cert_pem.write_to_path(str(tmp_path / "ca.pem"))
    monkeypatch.setenv("SSL_CERT_FILE", str(tmp_path / "ca.pem"))
    port = await serve(_hello, ssl_context=_server_context(ca, "site.test"))
    broken = await asyncio.start_server(
        lambda _, writer: writer.transport.abort(), "127.0.0.2", port
    )
    names = LocalNames({"site.test": ("127.0.0.2", "127.0.0.1")})
    try:
        async with make_clients(resolver=names) as clients:
            result = await _probe(clients, _site(f"https://site.test:{port}/"))
    finally:
        broken.close()
        await broken.wait_closed()

    assert (result.cause, result.peer_ip, result.body) == (Cause.OK, "127.0.0.1", b"hello")


def test_a_urls_plan_is_worked_out_once_not_on_every_check() -> None:
    """Parsing a URL, redacting it, splitting an origin's address and adding the URL's
    credentials to the request happen once per URL: a check reuses what the last made."""
    site = Site(
        "shop",
        "https://ops:s3cret@shop.test/",
        interval=30.0,
        timeout=5.0,
        origins=(Origin("o1", address="203.0.113.10:8443"), Origin("o2", url="http://:t@o2/")),
    )
    tls = TlsContexts()
    for target in [HttpTarget(site), *(HttpTarget(site, origin) for origin in site.origins)]:
        first, again = http_probe._plan(target, tls), http_probe._plan(target, tls)
        assert (again.url, again.request, again.target) == (first.url, first.request, first.target)
        assert again.request is first.request
        assert again.target is first.target
        assert first.request.basic_auth in (("ops", "s3cret"), ("", "t"))
        assert "s3cret" not in first.target
