"""The DNS probe against real DNS servers on the loopback interface."""

from __future__ import annotations

import socket
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from time import perf_counter

import pytest

from monitor.models import Cause, DnsCheck, Kind, ProbeContext, ProbeResult, Role
from monitor.probes import make_clients
from monitor.probes.dns import normalise, probe
from tests.support.dnsserver import DnsServer, Mode, Zone

ZONE: Zone = {
    ("shop.test", "A"): ("192.0.2.1",),
    ("shop.test", "AAAA"): ("2001:db8::1",),
    ("shop.test", "MX"): ("10 mail.shop.test.", "20 backup.shop.test."),
    ("shop.test", "TXT"): ('"v=spf1 " "-all"',),  # two strings, one value
    ("www.shop.test", "CNAME"): ("shop.test.",),
}

TIMEOUT = 0.5


CTX = ProbeContext("dns", Role.EDGE, None, datetime(2026, 1, 1, tzinfo=UTC), TIMEOUT)


def check(query: str, record: str = "A", *resolvers: str, expect: tuple[str, ...] = ()) -> DnsCheck:
    return DnsCheck(query, record, resolvers, expect)


async def run(spec: DnsCheck) -> ProbeResult:
    async with make_clients() as clients:  # unused by DNS, but part of the signature
        return await probe(clients, CTX, spec)


@pytest.fixture
async def server() -> AsyncIterator[DnsServer]:
    async with DnsServer(ZONE) as running:
        yield running


def values(result: ProbeResult, resolver: str) -> list[str]:
    """The answers one resolver gave, without the ``resolver=`` prefix."""
    return [a.removeprefix(f"{resolver}=") for a in result.answers if a.startswith(f"{resolver}=")]


@pytest.mark.parametrize(
    ("query", "record", "expect", "cause", "answers", "failed"),
    [
        pytest.param("shop.test", "A", (), Cause.OK, ["192.0.2.1"], (), id="a"),
        pytest.param("shop.test", "AAAA", (), Cause.OK, ["2001:db8::1"], (), id="aaaa"),
        pytest.param("www.shop.test", "CNAME", (), Cause.OK, ["shop.test"], (), id="cname"),
        pytest.param("www.shop.test", "A", (), Cause.OK, ["192.0.2.1"], (), id="a-via-cname"),
        pytest.param(
            "shop.test",
            "MX",
            (),
            Cause.OK,
            ["10 mail.shop.test", "20 backup.shop.test"],
            (),
            id="mx",
        ),
        pytest.param("shop.test", "TXT", (), Cause.OK, ["v=spf1 -all"], (), id="txt-joined"),
        pytest.param("shop.test", "A", ("192.0.2.1",), Cause.OK, ["192.0.2.1"], (), id="expected"),
        pytest.param(
            "shop.test",
            "MX",
            ("20 BACKUP.shop.test", "10 mail.shop.test."),
            Cause.OK,
            ["10 mail.shop.test", "20 backup.shop.test"],
            (),
            id="expected-mx-other-spelling",
        ),
        pytest.param(
            "shop.test",
            "AAAA",
            ("2001:DB8:0::1",),
            Cause.OK,
            ["2001:db8::1"],
            (),
            id="expected-aaaa-other-spelling",
        ),
        pytest.param(
            "shop.test",
            "A",
            ("192.0.2.9",),
            Cause.CONTENT_MISMATCH,
            ["192.0.2.1"],
            ("expect",),
            id="unexpected",
        ),
        pytest.param("nope.shop.test", "A", (), Cause.DNS_NXDOMAIN, [], (), id="nxdomain"),
        pytest.param("shop.test", "NS", (), Cause.DNS_NXDOMAIN, [], (), id="no-such-record"),
    ],
)
async def test_one_resolver(
    server: DnsServer,
    query: str,
    record: str,
    expect: tuple[str, ...],
    cause: Cause,
    answers: list[str],
    failed: tuple[str, ...],
) -> None:
    result = await run(check(query, record, server.address, expect=expect))

    assert (result.cause, result.ok) == (cause, cause is Cause.OK), result.detail
    assert values(result, server.address) == answers
    assert result.failed == failed
    assert result.kind is Kind.DNS
    assert result.target == f"{record} {query} @ {server.address}"
    assert result.phases.resolve is not None
    assert result.phases.total >= result.phases.resolve


async def test_details_say_what_went_wrong(server: DnsServer) -> None:
    missing = await run(check("nope.shop.test", "A", server.address))
    unexpected = await run(check("shop.test", "A", server.address, expect=("192.0.2.9",)))

    assert missing.detail == f"{server.address}: NXDOMAIN: nope.shop.test does not exist"
    assert unexpected.detail == "expected 192.0.2.9, got 192.0.2.1"


@pytest.mark.parametrize(
    ("mode", "cause", "said"),
    [
        pytest.param(Mode.SERVFAIL, Cause.DNS_ERROR, "SERVFAIL", id="servfail"),
        pytest.param(Mode.SILENT, Cause.DNS_TIMEOUT, f"no answer within {TIMEOUT:g}s", id="silent"),
    ],
)
async def test_a_broken_server(mode: Mode, cause: Cause, said: str) -> None:
    async with DnsServer(ZONE, mode=mode) as broken:
        started = perf_counter()
        result = await run(check("shop.test", "A", broken.address))

    assert not result.ok
    assert result.cause is cause
    assert result.detail == f"{broken.address}: {said}"
    assert perf_counter() - started < TIMEOUT + 0.5


async def test_resolvers_that_agree(server: DnsServer) -> None:
    async with DnsServer(ZONE) as other:
        result = await run(check("shop.test", "A", server.address, other.address))

    assert result.ok, result.detail
    assert result.answers == (f"{server.address}=192.0.2.1", f"{other.address}=192.0.2.1")


@pytest.mark.parametrize(
    ("expect", "failed"),
    [
        pytest.param((), ("consistent",), id="nothing-expected"),
        pytest.param(("192.0.2.1",), ("expect", "consistent"), id="one-as-expected"),
    ],
)
async def test_resolvers_that_disagree(
    server: DnsServer, expect: tuple[str, ...], failed: tuple[str, ...]
) -> None:
    stale = {**ZONE, ("shop.test", "A"): ("192.0.2.2", "192.0.2.3")}
    async with DnsServer(stale) as other:
        result = await run(check("shop.test", "A", server.address, other.address, expect=expect))

    assert result.cause is Cause.CONTENT_MISMATCH
    assert result.failed == failed
    assert result.detail == (
        f"resolvers disagree: {server.address} → 192.0.2.1; {other.address} → 192.0.2.2, 192.0.2.3"
    )
    assert values(result, other.address) == ["192.0.2.2", "192.0.2.3"]


async def test_one_resolver_failing_fails_the_probe_by_name(server: DnsServer) -> None:
    async with DnsServer(ZONE, mode=Mode.SERVFAIL) as broken:
        result = await run(check("shop.test", "A", server.address, broken.address))

    assert result.cause is Cause.DNS_ERROR
    assert result.detail == f"{broken.address}: SERVFAIL"
    assert result.answers == (f"{server.address}=192.0.2.1",)


def ipv6_loopback() -> bool:
    try:
        with socket.socket(socket.AF_INET6, socket.SOCK_DGRAM) as probe_socket:
            probe_socket.bind(("::1", 0))
    except OSError:
        return False
    return True


@pytest.mark.skipif(not ipv6_loopback(), reason="no IPv6 loopback here")
async def test_a_resolver_on_ipv6() -> None:
    async with DnsServer(ZONE, host="::1") as ipv6:
        result = await run(check("shop.test", "A", ipv6.address))

    assert ipv6.address.startswith("[::1]:")
    assert result.ok, result.detail


@pytest.mark.parametrize(
    ("record", "text", "normal"),
    [
        pytest.param("A", " 192.0.2.1 ", "192.0.2.1", id="a-spaces"),
        pytest.param("AAAA", "2001:DB8:0:0::1", "2001:db8::1", id="aaaa-long"),
        pytest.param("CNAME", "Shop.Test.", "shop.test", id="cname-case-dot"),
        pytest.param("MX", "10   Mail.shop.test.", "10 mail.shop.test", id="mx"),
        pytest.param("TXT", "Token=AbC", "Token=AbC", id="txt-keeps-case"),
        pytest.param("mx", "10 Mail.shop.test", "10 mail.shop.test", id="record-lower-case"),
        pytest.param("A", "not-an-address", "not-an-address", id="a-garbage"),
    ],
)
def test_normalise(record: str, text: str, normal: str) -> None:
    assert normalise(record, text) == normal
