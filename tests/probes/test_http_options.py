"""Request options and expectations, each seen by a real recording server on 127.0.0.1/::1."""

from __future__ import annotations

import asyncio
import json
import logging
import re
import socket
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Protocol

import pytest
from aiohttp import web
from yarl import URL

from monitor.models import (
    Cause,
    Expect,
    HttpRequest,
    IpVersion,
    JsonExpect,
    ProbeContext,
    ProbeResult,
    Role,
    Site,
    StatusRange,
)
from monitor.probes import Clients, HttpTarget, make_clients, run_probe
from tests.support.names import LocalNames

NOW = datetime(2026, 1, 1, tzinfo=UTC)
ANY = Expect()
PLAIN = HttpRequest()
FOLLOW = HttpRequest(follow_redirects=True)
PRIVATE = "Basic OnMzY3JldA=="  # an empty user and the password "s3cret", as curl sends them
STATUS = {"data": {"state": "up", "version": "2.4.1", "replicas": [{"ok": True}]}}


@dataclass(frozen=True)
class Seen:
    """One request as the server received it."""

    method: str
    path: str
    headers: dict[str, str]
    body: bytes


class Serve(Protocol):
    async def __call__(self, host: str = "127.0.0.1", port: int = 0) -> int:
        """Serve the recording app on ``host`` and return the port."""


async def _answer(request: web.Request) -> web.StreamResponse:
    """The pages the tests ask for; anything else is a plain 200."""
    path = request.path
    if path.startswith("/hops/"):
        left = int(path.removeprefix("/hops/"))
        if left:
            raise web.HTTPFound(f"/hops/{left - 1}")
        return web.Response(text="arrived")
    if path == "/loop":
        raise web.HTTPFound("/loop")
    if path.startswith("/status/"):
        status = int(path.removeprefix("/status/"))
        return web.Response(status=status, headers={"Location": request.query.get("to", "/")})
    if path == "/status.json":
        return web.json_response(STATUS, headers={"X-Cache": "HIT", "Age": "12"})
    if path == "/slow":
        await asyncio.sleep(0.3)
    if path == "/private" and request.headers.get("Authorization") != PRIVATE:
        raise web.HTTPUnauthorized(headers={"WWW-Authenticate": 'Basic realm="shop"'})
    if path == "/moved":
        return web.Response(status=301, text="MOVED PERMANENTLY!!", headers={"Location": "/empty"})
    if path == "/empty":
        return web.Response(text="")
    if path == "/gzipped":  # whatever the request accepts, as some servers do
        response = web.Response(text="Welcome to the shop, " * 200)
        response.enable_compression(force=web.ContentCoding.gzip)
        return response
    return web.Response(text="Welcome to the shop")


@pytest.fixture
async def seen() -> list[Seen]:
    return []


@pytest.fixture
async def serve(seen: list[Seen]) -> AsyncIterator[Serve]:
    runners: list[web.AppRunner] = []

    async def record(request: web.Request) -> web.StreamResponse:
        body = await request.read()
        seen.append(Seen(request.method, request.path_qs, dict(request.headers), body))
        return await _answer(request)

    async def start(host: str = "127.0.0.1", port: int = 0) -> int:
        app = web.Application()
        app.router.add_route("*", "/{path:.*}", record)
        runner = web.AppRunner(app)
        await runner.setup()
        runners.append(runner)
        await web.TCPSite(runner, host, port).start()
        bound: int = runner.addresses[0][1]
        return bound

    yield start
    for runner in runners:
        await runner.cleanup()


@pytest.fixture
def names() -> LocalNames:
    return LocalNames({"dual.test": ("127.0.0.1", "::1")})


@pytest.fixture
async def clients(names: LocalNames) -> AsyncIterator[Clients]:
    async with make_clients(resolver=names) as clients:
        yield clients


async def _probe(
    clients: Clients, url: str, request: HttpRequest = PLAIN, expect: Expect = ANY
) -> ProbeResult:
    site = Site("shop", url, interval=60.0, timeout=2.0, expect=expect, request=request)
    ctx = ProbeContext(site.name, Role.EDGE, None, NOW, site.timeout)
    return await run_probe(clients, ctx, HttpTarget(site))


@pytest.mark.parametrize(
    ("request_", "method", "body", "headers"),
    [
        pytest.param(PLAIN, "GET", b"", {}, id="default-get"),
        pytest.param(
            HttpRequest(
                method="POST",
                body='{"ping": 1}',
                headers=(("Content-Type", "application/json"), ("X-Probe", "monitor")),
            ),
            "POST",
            b'{"ping": 1}',
            {"Content-Type": "application/json", "X-Probe": "monitor"},
            id="post-with-body-and-headers",
        ),
        pytest.param(
            HttpRequest(basic_auth=("ops", "s3cret")),
            "GET",
            b"",
            {"Authorization": "Basic b3BzOnMzY3JldA=="},
            id="basic-auth",
        ),
        pytest.param(
            HttpRequest(bearer_token="t0ken"),
            "GET",
            b"",
            {"Authorization": "Bearer t0ken"},
            id="bearer-token",
        ),
        pytest.param(
            HttpRequest(method="HEAD", headers=(("User-Agent", "custom"),)),
            "HEAD",
            b"",
            {"User-Agent": "custom"},
            id="head-and-own-user-agent",
        ),
    ],
)
async def test_request_options_reach_the_server(
    serve: Serve,
    clients: Clients,
    seen: list[Seen],
    request_: HttpRequest,
    method: str,
    body: bytes,
    headers: dict[str, str],
) -> None:
    port = await serve()
    result = await _probe(clients, f"http://127.0.0.1:{port}/page", request_)

    assert (result.ok, result.status) == (True, 200)
    [request] = seen
    assert (request.method, request.path, request.body) == (method, "/page", body)
    assert headers.items() <= request.headers.items()
    if not headers:
        assert "Authorization" not in request.headers


@pytest.mark.parametrize(
    ("path", "request_", "cause", "detail", "status", "paths", "redirects"),
    [
        pytest.param("/hops/2", PLAIN, Cause.OK, "", 302, ["/hops/2"], "", id="not-followed"),
        pytest.param(
            "/hops/2",
            FOLLOW,
            Cause.OK,
            "",
            200,
            ["/hops/2", "/hops/1", "/hops/0"],
            ", 2 redirects to http://127.0.0.1:{port}/hops/0",
            id="followed",
        ),
        pytest.param(
            "/hops/2",
            HttpRequest(follow_redirects=True, max_redirects=2),
            Cause.OK,
            "",
            200,
            ["/hops/2", "/hops/1", "/hops/0"],
            ", 2 redirects to http://127.0.0.1:{port}/hops/0",
            id="exactly-the-maximum",
        ),
        pytest.param(
            "/hops/3",
            HttpRequest(follow_redirects=True, max_redirects=2),
            Cause.PROTOCOL_ERROR,
            "too many redirects (more than 2)",
            None,
            ["/hops/3", "/hops/2", "/hops/1"],
            ", 2 redirects to http://127.0.0.1:{port}/hops/1",
            id="too-many",
        ),
        pytest.param(
            "/loop",
            FOLLOW,
            Cause.PROTOCOL_ERROR,
            "redirect loop: back to http://127.0.0.1:{port}/loop",
            None,
            ["/loop"],
            "",
            id="loop",
        ),
        pytest.param(
            "/status/302?to=//ops:s3cret@127.0.0.1:99999/",
            FOLLOW,
            Cause.PROTOCOL_ERROR,
            "redirect to an invalid URL: '//***@127.0.0.1:99999/'",
            None,
            ["/status/302?to=//ops:s3cret@127.0.0.1:99999/"],
            "",
            id="to-an-invalid-scheme-relative-url-with-credentials",
        ),
        pytest.param(
            "/status/302?to=ftp://files.test/",
            FOLLOW,
            Cause.PROTOCOL_ERROR,
            "redirect to a URL that cannot be fetched: ftp://files.test/",
            None,
            ["/status/302?to=ftp://files.test/"],
            ", 1 redirect to ftp://files.test/",
            id="to-unusable-url",
        ),
    ],
)
async def test_redirects(
    serve: Serve,
    clients: Clients,
    seen: list[Seen],
    path: str,
    request_: HttpRequest,
    cause: Cause,
    detail: str,
    status: int | None,
    paths: list[str],
    redirects: str,
) -> None:
    port = await serve()
    url = f"http://127.0.0.1:{port}{path}"
    result = await _probe(clients, url, request_)

    assert (result.cause, result.detail, result.status) == (cause, detail.format(port=port), status)
    assert [request.path for request in seen] == paths
    assert result.target == url + redirects.format(port=port)
    followed = re.search(r", (\d+) redirects? to ", redirects)
    assert result.redirects == (int(followed.group(1)) if followed else 0)


async def test_a_redirects_own_body_is_not_the_answer(serve: Serve, clients: Clients) -> None:
    port = await serve()
    result = await _probe(clients, f"http://127.0.0.1:{port}/moved", FOLLOW)
    assert (result.status, result.redirects, result.body) == (200, 1, b"")


@pytest.mark.parametrize(
    ("request_", "asked"),
    [
        pytest.param(PLAIN, "gzip, deflate", id="asked-as-browsers-ask"),
        pytest.param(
            HttpRequest(headers=(("Accept-Encoding", "identity"),)), "identity", id="sent-anyway"
        ),
    ],
)
async def test_a_gzipped_body_is_judged_decompressed(
    serve: Serve,
    clients: Clients,
    seen: list[Seen],
    request_: HttpRequest,
    asked: str,
) -> None:
    port = await serve()
    url = f"http://127.0.0.1:{port}/gzipped"
    result = await _probe(clients, url, request_, Expect(body_contains="shop, Welcome"))

    assert (result.ok, result.body) == (True, b"Welcome to the shop, " * 200)
    assert seen[0].headers["Accept-Encoding"] == asked


async def test_a_header_value_beyond_latin_1_is_sent_as_utf_8(
    serve: Serve, clients: Clients, seen: list[Seen]
) -> None:
    port = await serve()
    request = HttpRequest(headers=(("X-Note", "prix en €uro"),))
    result = await _probe(clients, f"http://127.0.0.1:{port}/", request)

    assert result.ok
    assert seen[0].headers["X-Note"] == "prix en €uro"


@pytest.mark.parametrize(
    ("status", "method", "body"),
    [
        pytest.param(303, "GET", b"", id="303-becomes-get"),
        pytest.param(302, "GET", b"", id="302-post-becomes-get"),
        pytest.param(307, "POST", b"order=1", id="307-keeps-post"),
        pytest.param(308, "POST", b"order=1", id="308-keeps-post"),
    ],
)
async def test_redirected_post(
    serve: Serve,
    clients: Clients,
    seen: list[Seen],
    status: int,
    method: str,
    body: bytes,
) -> None:
    port = await serve()
    request = HttpRequest(method="POST", body="order=1", follow_redirects=True)
    result = await _probe(clients, f"http://127.0.0.1:{port}/status/{status}?to=/done", request)

    assert result.ok
    first, second = seen
    assert (first.method, first.body) == ("POST", b"order=1")
    assert (second.method, second.path, second.body) == (method, "/done", body)


async def test_credentials_stay_with_the_site(
    serve: Serve, clients: Clients, seen: list[Seen]
) -> None:
    site_port, elsewhere = await serve(), await serve("127.0.0.2")
    to = f"http://127.0.0.2:{elsewhere}/"
    request = HttpRequest(follow_redirects=True, bearer_token="t0ken")
    result = await _probe(clients, f"http://127.0.0.1:{site_port}/status/302?to={to}", request)

    assert (result.ok, result.peer_ip) == (True, "127.0.0.2")
    at_site, away = seen
    assert at_site.headers["Authorization"] == "Bearer t0ken"
    assert "Authorization" not in away.headers


@dataclass
class Proxy:
    port: int
    request_lines: list[str]


@pytest.fixture
async def proxy() -> AsyncIterator[Proxy]:
    """A forward proxy for plain HTTP: takes absolute-URI requests, notes them, relays them."""
    lines: list[str] = []
    relays: set[asyncio.Task[None]] = set()

    async def relay(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        head = (await reader.readuntil(b"\r\n\r\n")).decode("latin-1")
        request_line, _, rest = head.partition("\r\n")
        lines.append(request_line)
        method, target, version = request_line.split(" ")
        url = URL(target)
        assert url.host is not None
        up_reader, up_writer = await asyncio.open_connection(url.host, url.port)
        up_writer.write(f"{method} {url.path_qs} {version}\r\nConnection: close\r\n".encode())
        up_writer.write(rest.encode("latin-1"))
        up_writer.write(await reader.read(int(_header(rest, "Content-Length") or 0)))
        writer.write(await up_reader.read())  # the upstream closes when it has answered
        await writer.drain()
        for stream in (writer, up_writer):
            stream.close()

    def on_connect(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        relays.add(asyncio.ensure_future(relay(reader, writer)))

    server = await asyncio.start_server(on_connect, "127.0.0.1", 0)
    yield Proxy(server.sockets[0].getsockname()[1], lines)
    server.close()
    await server.wait_closed()
    if relays:
        await asyncio.wait(relays, timeout=1)


def _header(head: str, name: str) -> str | None:
    for line in head.split("\r\n"):
        key, _, value = line.partition(":")
        if key.strip().lower() == name.lower():
            return value.strip()
    return None


async def test_proxy_relays_the_request(
    serve: Serve, clients: Clients, seen: list[Seen], proxy: Proxy
) -> None:
    port = await serve()
    request = HttpRequest(proxy=f"http://127.0.0.1:{proxy.port}", headers=(("X-Probe", "1"),))
    result = await _probe(clients, f"http://127.0.0.1:{port}/via-proxy", request)

    assert (result.ok, result.body) == (True, b"Welcome to the shop")
    assert (result.peer_ip, result.peer_port) == ("127.0.0.1", proxy.port)
    assert proxy.request_lines == [f"GET http://127.0.0.1:{port}/via-proxy HTTP/1.1"]
    [relayed] = seen
    assert (relayed.path, relayed.headers["X-Probe"]) == ("/via-proxy", "1")


@dataclass
class Heads:
    port: int
    received: list[list[str]]  # each request's header lines, as written


@pytest.fixture
async def heads() -> AsyncIterator[Heads]:
    """A bare server that notes each request's header lines as they came, then says ok."""
    received: list[list[str]] = []
    answers: set[asyncio.Task[None]] = set()

    async def answer(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        head = (await reader.readuntil(b"\r\n\r\n")).decode("latin-1")
        received.append(head.split("\r\n")[1:-2])
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: close\r\n\r\nok")
        await writer.drain()
        writer.close()

    def on_connect(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        answers.add(asyncio.ensure_future(answer(reader, writer)))

    server = await asyncio.start_server(on_connect, "127.0.0.1", 0)
    yield Heads(server.sockets[0].getsockname()[1], received)
    server.close()
    await server.wait_closed()
    if answers:
        await asyncio.wait(answers, timeout=1)


@pytest.mark.parametrize(
    ("request_", "written"),
    [
        pytest.param(
            HttpRequest(method="POST", body="{}", headers=(("Content-Length", "2"),)),
            ("Content-Length", "2"),
            id="content-length",
        ),
        pytest.param(
            HttpRequest(headers=(("Connection", "keep-alive"),)),
            ("Connection", "keep-alive"),
            id="connection",
        ),
    ],
)
async def test_a_configured_framing_header_replaces_ours(
    clients: Clients, heads: Heads, request_: HttpRequest, written: tuple[str, str]
) -> None:
    result = await _probe(clients, f"http://127.0.0.1:{heads.port}/", request_)

    assert (result.ok, result.body) == (True, b"ok")
    [lines] = heads.received
    name, value = written
    assert [line for line in lines if line.lower().startswith(name.lower() + ":")] == [
        f"{name}: {value}"
    ]


@pytest.mark.parametrize("via_proxy", [False, True], ids=["direct", "through-a-proxy"])
async def test_an_invalid_header_name_is_never_sent(
    clients: Clients, heads: Heads, proxy: Proxy, via_proxy: bool
) -> None:
    # Config refuses it; should one get this far, it is our bug: raised, and nothing sent.
    request = HttpRequest(
        headers=(("X Bad:Name", "1"),),
        proxy=f"http://127.0.0.1:{proxy.port}" if via_proxy else None,
    )
    with pytest.raises(ValueError, match="invalid HTTP header name 'X Bad:Name'"):
        await _probe(clients, f"http://127.0.0.1:{heads.port}/", request)
    assert (heads.received, proxy.request_lines) == ([], [])


@pytest.fixture
async def dual_stack_port(serve: Serve) -> int:
    """One port served on both 127.0.0.1 and ::1, as a dual-stack host would."""
    for _ in range(5):
        port = await serve("127.0.0.1")
        try:
            await serve("::1", port)
        except OSError:
            continue  # the port is taken on ::1; try another
        return port
    pytest.fail("no port free on both 127.0.0.1 and ::1")


@pytest.mark.parametrize(
    ("ip_version", "family", "peer"),
    [
        pytest.param(IpVersion.V4, socket.AF_INET, "127.0.0.1", id="v4"),
        pytest.param(IpVersion.V6, socket.AF_INET6, "::1", id="v6"),
        pytest.param(IpVersion.ANY, socket.AF_UNSPEC, "127.0.0.1", id="any-first-answer"),
    ],
)
async def test_ip_version_picks_the_family(
    clients: Clients,
    names: LocalNames,
    dual_stack_port: int,
    ip_version: IpVersion,
    family: socket.AddressFamily,
    peer: str,
) -> None:
    url = f"http://dual.test:{dual_stack_port}/"
    result = await _probe(clients, url, HttpRequest(ip_version=ip_version))

    assert (result.ok, result.peer_ip) == (True, peer)
    assert names.asked == [("dual.test", family)]
    assert result.phases.resolve is not None


async def test_ip_version_applies_to_each_probe_alone(
    clients: Clients, names: LocalNames, dual_stack_port: int
) -> None:
    url = f"http://dual.test:{dual_stack_port}/"
    results = await asyncio.gather(
        *(_probe(clients, url, HttpRequest(ip_version=v)) for v in (IpVersion.V6, IpVersion.V4))
    )
    assert [result.peer_ip for result in results] == ["::1", "127.0.0.1"]


async def test_ip_version_4_with_the_system_resolver(serve: Serve) -> None:
    # /etc/hosts here maps localhost to 127.0.0.1 only, so only IPv4 can be shown end to end
    # with the system's resolver; LocalNames covers IPv6 above.
    port = await serve("127.0.0.1")
    async with make_clients() as clients:
        result = await _probe(
            clients, f"http://localhost:{port}/", HttpRequest(ip_version=IpVersion.V4)
        )
    assert (result.ok, result.peer_ip) == (True, "127.0.0.1")


async def test_ip_version_6_with_a_literal_address(serve: Serve, clients: Clients) -> None:
    port = await serve("::1")
    result = await _probe(clients, f"http://[::1]:{port}/", HttpRequest(ip_version=IpVersion.V6))
    assert (result.ok, result.peer_ip, result.target) == (True, "::1", f"http://[::1]:{port}/")


EXPECTATIONS = [
    pytest.param("/", Expect(status=(StatusRange(200, 200),)), Cause.OK, (), id="status-ok"),
    pytest.param("/status/404", ANY, Cause.CLIENT_ERROR, ("status",), id="status-fails"),
    pytest.param("/", Expect(body_contains="shop"), Cause.OK, (), id="contains-ok"),
    pytest.param(
        "/",
        Expect(body_contains="Sorry"),
        Cause.CONTENT_MISMATCH,
        ("body_contains",),
        id="contains-fails",
    ),
    pytest.param("/", Expect(body_not_contains="Sorry"), Cause.OK, (), id="not-contains-ok"),
    pytest.param(
        "/",
        Expect(body_not_contains="shop"),
        Cause.CONTENT_MISMATCH,
        ("body_not_contains",),
        id="not-contains-fails",
    ),
    pytest.param("/", Expect(body_matches=r"^Welcome\b"), Cause.OK, (), id="matches-ok"),
    pytest.param(
        "/",
        Expect(body_matches=r"^Goodbye"),
        Cause.CONTENT_MISMATCH,
        ("body_matches",),
        id="matches-fails",
    ),
    pytest.param(
        "/status.json",
        Expect(json=(JsonExpect("data.state", "up"), JsonExpect("data.replicas[0].ok", True))),
        Cause.OK,
        (),
        id="json-ok",
    ),
    pytest.param(
        "/status.json",
        Expect(json=(JsonExpect("data.version", matches=r"^3\."),)),
        Cause.CONTENT_MISMATCH,
        ("json",),
        id="json-fails",
    ),
    pytest.param(
        "/status.json", Expect(headers=(("x-cache", "HIT"),)), Cause.OK, (), id="headers-ok"
    ),
    pytest.param(
        "/status.json",
        Expect(headers=(("X-Cache", "MISS"),)),
        Cause.CONTENT_MISMATCH,
        ("headers",),
        id="headers-fails",
    ),
    pytest.param("/", Expect(max_latency=1.0), Cause.OK, (), id="latency-ok"),
    pytest.param("/slow", Expect(max_latency=0.1), Cause.SLOW, ("max_latency",), id="slow"),
]


@pytest.mark.parametrize(("path", "expect", "cause", "failed"), EXPECTATIONS)
async def test_expectations(
    serve: Serve,
    clients: Clients,
    path: str,
    expect: Expect,
    cause: Cause,
    failed: tuple[str, ...],
) -> None:
    port = await serve()
    result = await _probe(clients, f"http://127.0.0.1:{port}{path}", expect=expect)

    assert (result.cause, result.failed) == (cause, failed)
    assert (result.detail == "") is (cause is Cause.OK)


async def test_json_detail_names_the_value(serve: Serve, clients: Clients) -> None:
    port = await serve()
    expect = Expect(json=(JsonExpect("data.state", "down"),))
    result = await _probe(clients, f"http://127.0.0.1:{port}/status.json", expect=expect)

    assert result.detail == 'json data.state: expected "down", got "up"'
    assert json.loads(result.body) == STATUS


@pytest.mark.parametrize("via_proxy", [False, True], ids=["direct", "through-a-proxy"])
@pytest.mark.parametrize(
    ("userinfo", "authorization"),
    [
        pytest.param("ops:s3cret", "Basic b3BzOnMzY3JldA==", id="user-and-password"),
        pytest.param(
            "ops%40shop:pa%3As3cret", "Basic b3BzQHNob3A6cGE6czNjcmV0", id="percent-encoded"
        ),
        pytest.param(":s3cret", PRIVATE, id="password-alone"),
    ],
)
async def test_a_urls_credentials_go_to_the_server_and_nowhere_else(
    serve: Serve,
    clients: Clients,
    seen: list[Seen],
    proxy: Proxy,
    caplog: pytest.LogCaptureFixture,
    via_proxy: bool,
    userinfo: str,
    authorization: str,
) -> None:
    caplog.set_level(logging.DEBUG)
    port = await serve()
    request = HttpRequest(proxy=f"http://127.0.0.1:{proxy.port}" if via_proxy else None)
    result = await _probe(clients, f"http://{userinfo}@127.0.0.1:{port}/page", request)

    assert result.ok
    [received] = seen
    assert received.headers["Authorization"] == authorization
    assert result.target == f"http://***@127.0.0.1:{port}/page"
    assert "s3cret" not in repr(result)  # nowhere on the result...
    assert "s3cret" not in caplog.text  # ...nor in the logs


@pytest.mark.parametrize("via_proxy", [False, True], ids=["direct", "through-a-proxy"])
async def test_a_password_without_a_user_opens_a_private_page(
    serve: Serve, clients: Clients, proxy: Proxy, via_proxy: bool
) -> None:
    """``http://:token@host/``: a URL with no user but a password (a token, as some APIs
    take it) authenticates with an empty user; the page answers 401 to anything else."""
    port = await serve()
    request = HttpRequest(proxy=f"http://127.0.0.1:{proxy.port}" if via_proxy else None)
    result = await _probe(clients, f"http://:s3cret@127.0.0.1:{port}/private", request)

    assert (result.ok, result.status) == (True, 200), result.detail
    assert result.target == f"http://***@127.0.0.1:{port}/private"
    assert "s3cret" not in repr(result)


async def test_configured_credentials_win_over_the_urls(
    serve: Serve, clients: Clients, seen: list[Seen]
) -> None:
    port = await serve()
    request = HttpRequest(bearer_token="t0ken")
    result = await _probe(clients, f"http://ops:s3cret@127.0.0.1:{port}/", request)

    assert result.ok
    [received] = seen
    assert received.headers["Authorization"] == "Bearer t0ken"
