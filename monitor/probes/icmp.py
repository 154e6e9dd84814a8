"""The ICMP probe: ping a host a few times and judge the loss and the round-trip time.

Pinging needs a raw socket (root, or CAP_NET_RAW) or the kernel's unprivileged ICMP
sockets (allowed per group by net.ipv4.ping_group_range). Both are tried, raw first;
when neither is allowed the result says so plainly, since the check can never pass.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from time import perf_counter
from typing import TYPE_CHECKING

import icmplib  # type: ignore[import-untyped]

from monitor.models import Cause, IcmpCheck, Kind, ProbeContext, ProbeResult
from monitor.probes.classify import Outcome, one_line
from monitor.probes.tcp import Progress, resolve, socket_failure

if TYPE_CHECKING:
    from monitor.probes.clients import Clients

INTERVAL = 0.2
"""Seconds between one reply (or its time limit) and the next ping, at most."""

NOT_PERMITTED = (
    "ICMP not permitted: run as root, grant CAP_NET_RAW, "
    "or allow unprivileged ping via net.ipv4.ping_group_range"
)


async def probe(clients: Clients, ctx: ProbeContext, spec: IcmpCheck) -> ProbeResult:
    """Ping ``spec.host`` ``spec.count`` times within ``ctx.timeout``.

    ``clients`` is unused: ICMP needs none, but every probe takes the same arguments.
    """
    progress = Progress(start=perf_counter())
    rtts: list[float] = []
    try:
        async with asyncio.timeout(ctx.timeout) as scope:
            address = (await resolve(spec.host, 0, progress))[0][0]
            when = scope.when()
            assert when is not None  # set by asyncio.timeout(seconds)
            rtts = await _ping(address, spec.count, when - asyncio.get_running_loop().time())
    except TimeoutError:
        if progress.resolved is None:
            outcome = Outcome(Cause.DNS_TIMEOUT, f"no DNS answer within {ctx.timeout:g}s")
        else:  # the pings are paced to finish in time; this is only a safety net
            outcome = judge(spec, rtts)
    except icmplib.SocketPermissionError:
        outcome = Outcome(Cause.NOT_PERMITTED, NOT_PERMITTED)
    except icmplib.ICMPLibError as exc:  # a socket we cannot open or use for this address
        outcome = Outcome(Cause.NETWORK_UNREACHABLE, f"cannot ping: {one_line(exc)}")
    except OSError as exc:  # the name did not resolve
        outcome = socket_failure(exc, progress, spec.host, 0)
    else:
        outcome = judge(spec, rtts)
    return outcome.result(
        ctx,
        Kind.ICMP,
        spec.host,
        phases=progress.phases(perf_counter()),
        answers=tuple(f"{rtt * 1000:.3f} ms" for rtt in rtts),
    )


def judge(spec: IcmpCheck, rtts: Sequence[float]) -> Outcome:
    """Pure: are these round trips (seconds, one per reply) good enough?"""
    if not rtts:
        # Like a connection attempt nobody answers: the host or the path to it is gone.
        return Outcome(Cause.CONNECT_TIMEOUT, f"no reply to {_pings(spec.count)}")
    problems: list[tuple[str, Cause, str]] = []
    lost = spec.count - len(rtts)
    if lost / spec.count > spec.max_loss:
        said = (
            f"lost {lost} of {_pings(spec.count)} ({lost / spec.count:.0%}), "
            f"over the {spec.max_loss:.0%} maximum"
        )
        problems.append(("max_loss", Cause.PACKET_LOSS, said))
    average = sum(rtts) / len(rtts)
    if spec.max_rtt is not None and average > spec.max_rtt:
        said = (
            f"average round trip {average * 1000:.1f} ms, "
            f"over the {spec.max_rtt * 1000:g} ms maximum"
        )
        problems.append(("max_rtt", Cause.SLOW, said))
    if not problems:
        return Outcome(Cause.OK)
    return Outcome(problems[0][1], "; ".join(p[2] for p in problems), tuple(p[0] for p in problems))


async def _ping(address: str, count: int, budget: float) -> list[float]:
    """Round trips in seconds of the replies that came, paced so all fit in ``budget``."""
    interval = min(INTERVAL, budget / (2 * count))
    wait = (budget - interval * (count - 1)) / count  # for each reply
    try:
        host = await icmplib.async_ping(address, count, interval, wait, privileged=True)
    except icmplib.SocketPermissionError:
        # No raw sockets (not root, no CAP_NET_RAW): the kernel may allow datagram ones.
        host = await icmplib.async_ping(address, count, interval, wait, privileged=False)
    return [float(rtt) / 1000 for rtt in host.rtts]  # icmplib counts milliseconds


def _pings(count: int) -> str:
    return "1 ping" if count == 1 else f"{count} pings"
