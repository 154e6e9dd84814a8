"""How an answer's connection and head are timed and bounded, on both HTTP clients: the wire
client (straight to the target) and aiohttp's (through a proxy), against raw servers on
127.0.0.1 that hold back their TLS handshake, trickle their head or send a huge one."""

from __future__ import annotations

import asyncio
import ssl
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import pytest
import trustme

from monitor.models import Cause, HttpRequest, ProbeContext, ProbeResult, Role, Site
from monitor.probes import Clients, HttpTarget, make_clients, run_probe

NOW = datetime(2026, 1, 1, tzinfo=UTC)
TIMEOUT = 0.5
HANDSHAKE_DELAY = 0.2  # the server waits this long after TCP connects before TLS starts
OK = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: close\r\n\r\nok"

Answer = Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]]
PATHS = pytest.mark.parametrize("via_proxy", [False, True], ids=["wire", "aiohttp-via-proxy"])


@dataclass(frozen=True)
class Servers:
    start: Callable[..., Awaitable[int]]


@pytest.fixture
async def servers() -> AsyncIterator[Servers]:
    """Raw servers: each connection runs ``answer`` (after TLS, if a context is given, which
    starts ``HANDSHAKE_DELAY`` after TCP connects), then closes."""
    started: list[asyncio.Server] = []
    talks: set[asyncio.Task[None]] = set()

    async def talk(
        answer: Answer,
        tls: ssl.SSLContext | None,
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
    ) -> None:
        try:
            if tls is not None:
                await asyncio.sleep(HANDSHAKE_DELAY)
                await writer.start_tls(tls)
            await answer(reader, writer)
        except (ConnectionError, ssl.SSLError, asyncio.IncompleteReadError):
            pass  # the probe hung up first, as it should when it has seen enough
        finally:
            writer.close()

    async def start(answer: Answer, tls: ssl.SSLContext | None = None) -> int:
        def on_connect(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            if tls is not None:  # the ClientHello must wait for TLS, not go to the reader
                transport = writer.transport
                assert isinstance(transport, asyncio.Transport)
                transport.pause_reading()
            talks.add(asyncio.ensure_future(talk(answer, tls, reader, writer)))

        server = await asyncio.start_server(on_connect, "127.0.0.1", 0)
        started.append(server)
        port: int = server.sockets[0].getsockname()[1]
        return port

    yield Servers(start)
    for server in started:
        server.close()
        await server.wait_closed()
    for task in talks:
        task.cancel()
    if talks:
        await asyncio.wait(talks, timeout=1)


async def _tunnel(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    """A proxy: CONNECT opens a tunnel; any other request is answered as the target would
    (a raw answer served as the proxy's own lets aiohttp's client read it)."""
    head = (await reader.readuntil(b"\r\n\r\n")).decode("latin-1")
    method, target, _ = head.split("\r\n", 1)[0].split(" ")
    assert method == "CONNECT", head
    host, _, port = target.rpartition(":")
    up_reader, up_writer = await asyncio.open_connection(host, int(port))
    writer.write(b"HTTP/1.1 200 Connection established\r\n\r\n")

    async def pipe(src: asyncio.StreamReader, dst: asyncio.StreamWriter) -> None:
        while chunk := await src.read(65536):
            dst.write(chunk)
            await dst.drain()
        dst.close()

    try:
        await asyncio.gather(pipe(reader, up_writer), pipe(up_reader, writer))
    finally:
        up_writer.close()


async def _after_request(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    await reader.readuntil(b"\r\n\r\n")


def _answering(*parts: bytes, pause: float = 0.0) -> Answer:
    """Read the request, then write ``parts`` with ``pause`` seconds between them."""

    async def answer(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await _after_request(reader, writer)
        for number, part in enumerate(parts):
            if number and pause:
                await asyncio.sleep(pause)
            writer.write(part)
            await writer.drain()
        await reader.read()  # until the probe hangs up

    return answer


async def _ok(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    await _after_request(reader, writer)
    writer.write(OK)
    await writer.drain()


@pytest.fixture(scope="module")
def ca() -> trustme.CA:
    return trustme.CA()


@pytest.fixture
async def trusting(
    ca: trustme.CA, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> AsyncIterator[Clients]:
    """Clients that trust the test CA (OpenSSL reads SSL_CERT_FILE when they are made)."""
    ca.cert_pem.write_to_path(str(tmp_path / "ca.pem"))
    monkeypatch.setenv("SSL_CERT_FILE", str(tmp_path / "ca.pem"))
    async with make_clients() as clients:
        yield clients


@pytest.fixture
async def clients() -> AsyncIterator[Clients]:
    async with make_clients() as clients:
        yield clients


def _tls_server(ca: trustme.CA) -> ssl.SSLContext:
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert("localhost").configure_cert(context)
    return context


async def _probe(
    clients: Clients, servers: Servers, url: str, *, via_proxy: bool, proxy_answer: Answer
) -> ProbeResult:
    proxy = None
    if via_proxy:
        proxy = f"http://127.0.0.1:{await servers.start(proxy_answer)}"
    request = HttpRequest(proxy=proxy)
    site = Site("shop", url, interval=60.0, timeout=TIMEOUT, request=request)
    ctx = ProbeContext(site.name, Role.EDGE, None, NOW, site.timeout)
    return await run_probe(clients, ctx, HttpTarget(site))


@PATHS
async def test_the_tls_handshake_is_its_own_phase(
    servers: Servers, trusting: Clients, ca: trustme.CA, via_proxy: bool
) -> None:
    port = await servers.start(_ok, _tls_server(ca))
    url = f"https://localhost:{port}/"
    result = await _probe(trusting, servers, url, via_proxy=via_proxy, proxy_answer=_tunnel)

    assert (result.ok, result.body, result.tls_version) == (True, b"ok", "TLSv1.3")
    phases = result.phases
    assert phases.tls is not None
    assert phases.connect is not None
    assert phases.tls >= HANDSHAKE_DELAY  # the server held the handshake back...
    assert phases.connect < HANDSHAKE_DELAY  # ...and TCP connecting did not wait for it


@PATHS
async def test_plain_http_has_no_tls_phase(
    servers: Servers, clients: Clients, via_proxy: bool
) -> None:
    port = await servers.start(_ok)
    url = f"http://127.0.0.1:{port}/"
    result = await _probe(clients, servers, url, via_proxy=via_proxy, proxy_answer=_ok)

    assert (result.ok, result.body) == (True, b"ok")
    assert result.phases.connect is not None
    assert result.phases.tls is None


STATUS_LINE = b"HTTP/1.1 200 OK\r\n"
TRICKLE = 0.1  # seconds between bytes


@PATHS
async def test_a_trickled_head_is_timed_from_its_first_byte(
    servers: Servers, clients: Clients, via_proxy: bool
) -> None:
    """Three bytes 0.1 s apart, then the rest: the first byte came at once, the head late."""
    trickle = _answering(*(STATUS_LINE[i : i + 1] for i in range(3)), OK[3:], pause=TRICKLE)
    port = await servers.start(trickle)
    url = f"http://127.0.0.1:{port}/"
    result = await _probe(clients, servers, url, via_proxy=via_proxy, proxy_answer=trickle)

    assert (result.ok, result.body) == (True, b"ok")
    phases = result.phases
    assert phases.processing is not None
    assert phases.transfer is not None
    assert phases.processing < TRICKLE  # the time to the first byte...
    assert phases.transfer >= 3 * TRICKLE  # ...and the trickle after it


@PATHS
async def test_a_head_trickling_past_the_timeout_says_bytes_came(
    servers: Servers, clients: Clients, via_proxy: bool
) -> None:
    trickle = _answering(*(STATUS_LINE[i : i + 1] for i in range(len(STATUS_LINE))), pause=0.1)
    port = await servers.start(trickle)
    url = f"http://127.0.0.1:{port}/"
    result = await _probe(clients, servers, url, via_proxy=via_proxy, proxy_answer=trickle)

    assert (result.ok, result.cause, result.status) == (False, Cause.READ_TIMEOUT, None)
    assert result.detail.startswith("response head not complete within 0.5s (its first bytes")
    assert result.phases.processing is not None  # the first byte came: it is timed


def _headers(count: int, size: int) -> bytes:
    return b"".join(b"X-Big-%d: %s\r\n" % (n, b"v" * size) for n in range(count))


@PATHS
@pytest.mark.parametrize(
    ("parts", "ok"),
    [
        pytest.param(
            (b"HTTP/1.1 200 OK\r\n", *(_headers(1, 8000) for _ in range(120)), b"\r\n"),
            False,
            id="1-MB-in-8-kB-lines-as-they-come",
        ),
        pytest.param(
            (b"HTTP/1.1 200 OK\r\n" + _headers(10, 7000) + OK[17:],),
            False,
            id="70-kB-in-one-write",
        ),
        pytest.param(
            (b"HTTP/1.1 200 OK\r\n" + _headers(8, 7000) + OK[17:],),
            True,
            id="56-kB-is-fine",
        ),
    ],
)
async def test_a_head_past_64_kib_is_a_protocol_error(
    servers: Servers, clients: Clients, via_proxy: bool, parts: tuple[bytes, ...], ok: bool
) -> None:
    answer = _answering(*parts)
    port = await servers.start(answer)
    url = f"http://127.0.0.1:{port}/"
    result = await _probe(clients, servers, url, via_proxy=via_proxy, proxy_answer=answer)

    if ok:
        assert (result.ok, result.body) == (True, b"ok")
    else:
        assert (result.ok, result.cause, result.status) == (False, Cause.PROTOCOL_ERROR, None)
        assert result.detail == "invalid HTTP response: response head larger than 64 KiB"
