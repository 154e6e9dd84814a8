"""The ICMP probe: real pings of the loopback addresses, and the pure judge of loss and RTT."""

from __future__ import annotations

import importlib
import os
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path

import pytest

from monitor.models import Cause, IcmpCheck, Kind, ProbeContext, ProbeResult, Role
from monitor.probes import make_clients
from monitor.probes.icmp import NOT_PERMITTED, judge, probe

CTX = ProbeContext("icmp", Role.EDGE, None, datetime(2026, 1, 1, tzinfo=UTC), 2.0)
NOBODY = 65534

root = pytest.mark.skipif(os.geteuid() != 0, reason="raw ICMP sockets need root")


async def run(spec: IcmpCheck) -> ProbeResult:
    async with make_clients() as clients:  # unused by ICMP, but part of the signature
        return await probe(clients, CTX, spec)


@root
@pytest.mark.parametrize("host", ["127.0.0.1", "::1", "localhost"])
async def test_ping_loopback(host: str) -> None:
    result = await run(IcmpCheck(host, count=2))

    assert result.ok, result.detail
    assert (result.kind, result.target, result.failed) == (Kind.ICMP, host, ())
    assert len(result.answers) == 2
    assert all(answer.endswith(" ms") for answer in result.answers)
    assert 0 < result.phases.total < CTX.timeout


@contextmanager
def as_nobody() -> Iterator[None]:
    """Act as an ordinary user: dropping the effective uid to nobody clears CAP_NET_RAW.
    Nobody may not read Python's own files (under /root): what the probe imports on its
    first use (the loop's thread pool, for its address lookup) is imported before."""
    importlib.import_module("concurrent.futures.thread")
    os.seteuid(NOBODY)
    try:
        yield
    finally:
        os.seteuid(0)


PING_GROUPS = Path("/proc/sys/net/ipv4/ping_group_range")


@contextmanager
def no_unprivileged_ping() -> Iterator[None]:
    """Unprivileged ping off, as in Debian's default (``1 0``): where it is on (a container,
    some systemd setups), root turns it off for the block and back on after."""
    before = PING_GROUPS.read_text()
    low, high = map(int, before.split())
    if not any(low <= gid <= high for gid in {os.getegid(), *os.getgroups()}):
        yield
        return
    try:
        PING_GROUPS.write_text("1 0\n")
    except OSError as exc:  # a read-only /proc/sys: this machine lets everyone ping
        pytest.skip(f"unprivileged ping is allowed here and stays so: {exc}")
    try:
        yield
    finally:
        PING_GROUPS.write_text(before)


@root
async def test_not_permitted_says_what_to_do() -> None:
    with no_unprivileged_ping(), as_nobody():
        result = await run(IcmpCheck("127.0.0.1", count=1))

    assert (result.ok, result.cause, result.detail) == (False, Cause.NOT_PERMITTED, NOT_PERMITTED)
    assert result.answers == ()


MS = 0.001


@pytest.mark.parametrize(
    ("spec", "rtts", "cause", "failed", "detail"),
    [
        pytest.param(IcmpCheck("h"), [MS, MS, MS], Cause.OK, (), "", id="all-back"),
        pytest.param(
            IcmpCheck("h"),
            [],
            Cause.CONNECT_TIMEOUT,
            (),
            "no reply to 3 pings",
            id="all-lost",
        ),
        pytest.param(
            IcmpCheck("h"),
            [MS, MS],
            Cause.PACKET_LOSS,
            ("max_loss",),
            "lost 1 of 3 pings (33%), over the 0% maximum",
            id="one-lost",
        ),
        pytest.param(
            IcmpCheck("h", count=4, max_loss=0.25),
            [MS, MS, MS],
            Cause.OK,
            (),
            "",
            id="loss-allowed",
        ),
        pytest.param(
            IcmpCheck("h", max_rtt=0.05),
            [0.04, 0.05, 0.09],
            Cause.SLOW,
            ("max_rtt",),
            "average round trip 60.0 ms, over the 50 ms maximum",
            id="slow",
        ),
        pytest.param(
            IcmpCheck("h", max_rtt=0.05),
            [0.04, 0.05, 0.055],
            Cause.OK,
            (),
            "",
            id="average-under-max",
        ),
        pytest.param(
            IcmpCheck("h", count=2, max_rtt=0.01),
            [0.03],
            Cause.PACKET_LOSS,
            ("max_loss", "max_rtt"),
            "lost 1 of 2 pings (50%), over the 0% maximum; "
            "average round trip 30.0 ms, over the 10 ms maximum",
            id="lossy-and-slow",
        ),
    ],
)
def test_judge(
    spec: IcmpCheck, rtts: list[float], cause: Cause, failed: tuple[str, ...], detail: str
) -> None:
    outcome = judge(spec, rtts)

    assert (outcome.cause, outcome.failed, outcome.detail) == (cause, failed, detail)
