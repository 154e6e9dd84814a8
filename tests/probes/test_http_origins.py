"""Origin probing like curl --connect-to, against real TLS servers on 127.0.0.1/.2 and ::1.

The site is ``shop.test``; no test ever asks real DNS for it: the edge's lookups go to
:class:`LocalNames`, and origins are reached by address, which needs no lookup at all.
"""

from __future__ import annotations

import asyncio
import socket
import ssl
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Protocol

import pytest
import trustme
from aiohttp import web
from cryptography import x509

from monitor.models import (
    Cause,
    Expect,
    HttpRequest,
    Origin,
    ProbeContext,
    ProbeResult,
    Role,
    Site,
)
from monitor.probes import Clients, HttpTarget, make_clients, run_probe
from monitor.probes.http.tlsnames import names_match
from tests.support.names import LocalNames

NOW = datetime(2026, 1, 1, tzinfo=UTC)
NOT_AFTER = datetime(2031, 6, 1, tzinfo=UTC)
SHOP = "https://shop.test/"
ANY = Expect()
PLAIN = HttpRequest()


@dataclass
class Server:
    """A TLS server that notes the SNI and the Host header of everything it is asked."""

    host: str
    port: int = 0
    sni: list[str | None] = field(default_factory=list)
    hosts: list[str | None] = field(default_factory=list)


class Serve(Protocol):
    async def __call__(
        self, host: str, *names: str, issuer: trustme.CA | None = None, text: str = "hello"
    ) -> Server:
        """Serve HTTPS on ``host`` with a certificate for ``names``, by our CA unless ``ca``."""


@pytest.fixture(scope="module")
def ca() -> trustme.CA:
    return trustme.CA()


@pytest.fixture
async def serve(ca: trustme.CA) -> AsyncIterator[Serve]:
    runners: list[web.AppRunner] = []

    async def start(
        host: str, *names: str, issuer: trustme.CA | None = None, text: str = "hello"
    ) -> Server:
        server = Server(host)

        def note_sni(tls: ssl.SSLObject, name: str | None, context: ssl.SSLContext) -> None:
            server.sni.append(name)

        async def answer(request: web.Request) -> web.Response:
            server.hosts.append(request.headers.get("Host"))
            if request.path == "/old":
                raise web.HTTPFound(f"{SHOP}new")
            return web.Response(text=text)

        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        (issuer or ca).issue_cert(*names, not_after=NOT_AFTER).configure_cert(context)
        context.sni_callback = note_sni
        app = web.Application()
        app.router.add_get("/{path:.*}", answer)
        runner = web.AppRunner(app)
        await runner.setup()
        runners.append(runner)
        await web.TCPSite(runner, host, 0, ssl_context=context).start()
        server.port = runner.addresses[0][1]
        return server

    yield start
    for runner in runners:
        await runner.cleanup()


@pytest.fixture
def names() -> LocalNames:
    return LocalNames({"shop.test": ("127.0.0.1",), "health.shop.test": ("127.0.0.1",)})


@pytest.fixture
async def clients(
    ca: trustme.CA, names: LocalNames, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> AsyncIterator[Clients]:
    # OpenSSL reads SSL_CERT_FILE when make_clients() builds its contexts: set it first.
    ca.cert_pem.write_to_path(str(tmp_path / "ca.pem"))
    monkeypatch.setenv("SSL_CERT_FILE", str(tmp_path / "ca.pem"))
    async with make_clients(resolver=names) as clients:
        yield clients


def _site(url: str = SHOP, *, expect: Expect = ANY, request: HttpRequest = PLAIN) -> Site:
    return Site("shop", url, interval=60.0, timeout=2.0, expect=expect, request=request)


async def _probe(clients: Clients, site: Site, origin: Origin | None = None) -> ProbeResult:
    if origin is None:
        ctx = ProbeContext(site.name, Role.EDGE, None, NOW, site.timeout)
    else:
        ctx = ProbeContext(site.name, Role.ORIGIN, origin.name, NOW, site.timeout)
    return await run_probe(clients, ctx, HttpTarget(site, origin))


async def test_edge_and_origin_in_one_round_reach_different_peers(
    serve: Serve, clients: Clients, names: LocalNames
) -> None:
    edge = await serve("127.0.0.1", "shop.test", text="from the edge")
    origin = await serve("127.0.0.2", "shop.test", text="from the origin")
    site = _site(f"https://shop.test:{edge.port}/")
    app1 = Origin("app1", address=f"127.0.0.2:{origin.port}")

    at_edge, at_origin = await asyncio.gather(_probe(clients, site), _probe(clients, site, app1))

    assert (at_edge.ok, at_edge.body, at_edge.role, at_edge.origin) == (
        True,
        b"from the edge",
        Role.EDGE,
        None,
    )
    assert (at_origin.ok, at_origin.body, at_origin.role, at_origin.origin) == (
        True,
        b"from the origin",
        Role.ORIGIN,
        "app1",
    )
    assert (at_edge.peer_ip, at_edge.peer_port) == ("127.0.0.1", edge.port)
    assert (at_origin.peer_ip, at_origin.peer_port) == ("127.0.0.2", origin.port)
    assert at_edge.target == site.url
    assert at_origin.target == f"{site.url} via 127.0.0.2:{origin.port}"
    # Connect-to: the origin was asked exactly as the edge was, by the site's name.
    assert edge.sni == origin.sni == ["shop.test"]
    assert edge.hosts == origin.hosts == [f"shop.test:{edge.port}"]
    assert names.asked == [("shop.test", socket.AF_UNSPEC)]  # by the edge only
    assert at_edge.phases.resolve is not None
    assert at_origin.phases.resolve is None  # an address needs no lookup
    for result in (at_edge, at_origin):
        assert result.tls_version in ("TLSv1.2", "TLSv1.3")
        assert result.cert_not_after == NOT_AFTER


OTHER_CA = trustme.CA()

MISMATCH = "certificate not accepted: Hostname mismatch, certificate is not valid for"

TLS_CASES = [
    pytest.param(("shop.test",), None, None, True, Cause.OK, "", id="site-name"),
    pytest.param(
        ("origin.test",),
        None,
        None,
        True,
        Cause.TLS_CERT_INVALID,
        f"{MISMATCH} 'shop.test'.",
        id="wrong-name-refused",
    ),
    pytest.param(
        ("origin.test",), None, "origin.test", True, Cause.OK, "", id="verify-name-accepts"
    ),
    pytest.param(
        ("shop.test",),
        None,
        "origin.test",
        True,
        Cause.TLS_CERT_INVALID,
        f"{MISMATCH} 'origin.test'.",
        id="verify-name-refuses-site-name",
    ),
    pytest.param(
        ("*.origins.test",), None, "app1.origins.test", True, Cause.OK, "", id="verify-wildcard"
    ),
    pytest.param(
        ("origin.test",),
        OTHER_CA,
        "origin.test",
        True,
        Cause.TLS_CERT_INVALID,
        "certificate not accepted: unable to get local issuer certificate",
        id="verify-name-still-checks-the-chain",
    ),
    pytest.param(("origin.test",), OTHER_CA, None, False, Cause.OK, "", id="no-verification"),
]


@pytest.mark.parametrize(
    ("cert_names", "issuer", "verify_name", "verify", "cause", "detail"), TLS_CASES
)
async def test_origin_certificate(
    serve: Serve,
    clients: Clients,
    cert_names: tuple[str, ...],
    issuer: trustme.CA | None,
    verify_name: str | None,
    verify: bool,
    cause: Cause,
    detail: str,
) -> None:
    server = await serve("127.0.0.2", *cert_names, issuer=issuer)
    address = f"127.0.0.2:{server.port}"
    origin = Origin("o", address=address, tls_verify_name=verify_name, tls_verify=verify)
    result = await _probe(clients, _site(), origin)

    assert (result.cause, result.detail) == (cause, detail)
    assert server.sni == ["shop.test"]  # whatever name is verified, SNI stays the site's
    assert server.hosts == (["shop.test"] if cause is Cause.OK else [])  # nothing sent
    if cause is Cause.OK:
        assert result.cert_not_after == NOT_AFTER  # read even when not verified


@pytest.mark.parametrize(
    ("site_url", "address", "host_header"),
    [
        pytest.param(SHOP, "[::1]:{port}", "shop.test", id="brackets-and-port"),
        pytest.param(
            "https://shop.test:{port}/", "[::1]", "shop.test:{port}", id="port-from-site-url"
        ),
        pytest.param("https://shop.test:{port}/", "::1", "shop.test:{port}", id="bare"),
    ],
)
async def test_ipv6_origin(
    serve: Serve, clients: Clients, site_url: str, address: str, host_header: str
) -> None:
    server = await serve("::1", "shop.test")
    site = _site(site_url.format(port=server.port))
    result = await _probe(clients, site, Origin("v6", address=address.format(port=server.port)))

    assert (result.ok, result.peer_ip, result.peer_port) == (True, "::1", server.port)
    assert result.target == f"{site.url} via [::1]:{server.port}"
    assert server.sni == ["shop.test"]
    assert server.hosts == [host_header.format(port=server.port)]


async def test_redirect_back_to_the_site_stays_on_the_origin(
    serve: Serve, clients: Clients, names: LocalNames
) -> None:
    server = await serve("127.0.0.2", "shop.test", text="new page")
    site = _site(f"{SHOP}old", request=HttpRequest(follow_redirects=True))
    result = await _probe(clients, site, Origin("o", address=f"127.0.0.2:{server.port}"))

    assert (result.ok, result.body, result.peer_ip) == (True, b"new page", "127.0.0.2")
    assert result.target == f"{SHOP}old via 127.0.0.2:{server.port}, 1 redirect to {SHOP}new"
    assert server.hosts == ["shop.test", "shop.test"]
    assert names.asked == []


async def test_origin_url_is_probed_as_is_with_default_expectations(
    serve: Serve, clients: Clients
) -> None:
    server = await serve("127.0.0.1", "health.shop.test", text="OK")
    site = _site(
        expect=Expect(body_contains="Welcome to the shop"),
        request=HttpRequest(headers=(("Host", "www.shop.test"),)),
    )
    health = Origin("health", url=f"https://health.shop.test:{server.port}/healthz")
    result = await _probe(clients, site, health)

    assert (result.ok, result.cause, result.body) == (True, Cause.OK, b"OK")
    assert result.target == health.url
    assert server.sni == ["health.shop.test"]
    assert server.hosts == [f"health.shop.test:{server.port}"]  # not the site's Host


@pytest.fixture(scope="module")
def certificate(ca: trustme.CA) -> x509.Certificate:
    leaf = ca.issue_cert("shop.test", "*.origins.test", "127.0.0.2", "::1")
    return x509.load_pem_x509_certificate(leaf.cert_chain_pems[0].bytes())


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        pytest.param("shop.test", True, id="exact"),
        pytest.param("SHOP.test.", True, id="case-and-trailing-dot"),
        pytest.param("www.shop.test", False, id="no-implied-subdomain"),
        pytest.param("app1.origins.test", True, id="wildcard-one-label"),
        pytest.param("origins.test", False, id="wildcard-needs-a-label"),
        pytest.param("a.b.origins.test", False, id="wildcard-only-one-label"),
        pytest.param("127.0.0.2", True, id="ipv4"),
        pytest.param("::1", True, id="ipv6"),
        pytest.param("127.0.0.1", False, id="other-ip"),
    ],
)
def test_names_match(certificate: x509.Certificate, name: str, expected: bool) -> None:
    assert names_match(certificate, name) is expected
