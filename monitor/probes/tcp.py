"""The TCP probe: connect, optionally send some text, and look for text in the reply.

Also home of what the TLS and ICMP probes share with it: resolving a name and connecting
while stamping how far the attempt got (:class:`Progress`), and the one table from socket
errors to causes (:func:`socket_failure`).
"""

from __future__ import annotations

import asyncio
import errno
import socket
from collections.abc import Sequence
from dataclasses import dataclass
from time import perf_counter
from typing import TYPE_CHECKING, Any

import aiohappyeyeballs

from monitor.models import Cause, Kind, Phases, ProbeContext, ProbeResult, TcpCheck
from monitor.probes.classify import Outcome, one_line

if TYPE_CHECKING:
    from monitor.probes.clients import Clients

READ_LIMIT = 64 * 1024
"""Bytes of a reply read at most while looking for the expected text."""

_UNREACHABLE = {
    errno.ENETUNREACH: "network unreachable",
    errno.EHOSTUNREACH: "host unreachable",
}


@dataclass(slots=True)
class Progress:
    """``perf_counter()`` stamps of how far a probe got; ``None`` for a point not reached.

    Mutable on purpose: filled in as the probe goes, so a failure halfway still says
    which phases finished. ``handshake`` is the TLS probe's.
    """

    start: float
    resolved: float | None = None
    connected: float | None = None
    handshake: float | None = None
    peer: tuple[str, int] | None = None  # the address that accepted the connection

    def phases(self, end: float) -> Phases:
        """Durations of the phases finished by ``end``."""
        return Phases(
            resolve=_span(self.start, self.resolved),
            connect=_span(self.resolved, self.connected),
            tls=_span(self.connected, self.handshake),
            total=end - self.start,
        )


@dataclass(slots=True)
class _Reply:
    data: bytes = b""
    ended: bool = False  # the server closed its side


async def probe(clients: Clients, ctx: ProbeContext, spec: TcpCheck) -> ProbeResult:
    """Connect to ``spec.host:spec.port`` and hold the conversation the spec asks for.

    ``clients`` is unused: TCP needs none, but every probe takes the same arguments.
    """
    target = host_port(spec.host, spec.port)
    progress = Progress(start=perf_counter())
    reply = _Reply()
    writer: asyncio.StreamWriter | None = None
    try:
        async with asyncio.timeout(ctx.timeout):
            reader, writer = await connect(spec.host, spec.port, progress)
            await _converse(reader, writer, spec, reply)
    except TimeoutError:
        outcome = unconnected_timeout(progress, ctx.timeout) or judge_reply(
            spec.expect_reply, reply.data, ended=False, timeout=ctx.timeout
        )
    except OSError as exc:
        outcome = socket_failure(exc, progress, spec.host, spec.port)
    else:
        outcome = judge_reply(spec.expect_reply, reply.data, ended=reply.ended, timeout=ctx.timeout)
    finally:
        if writer is not None:
            writer.close()  # not awaited: how the peer says goodbye cannot change the outcome
    return outcome.result(
        ctx,
        Kind.TCP,
        target,
        peer_ip=progress.peer[0] if progress.peer else None,
        peer_port=progress.peer[1] if progress.peer else None,
        phases=progress.phases(perf_counter()),
        answers=(_first_line(reply.data),) if reply.data else (),
    )


def judge_reply(wanted: str | None, reply: bytes, *, ended: bool, timeout: float) -> Outcome:
    """Pure: does ``reply`` hold ``wanted``? Not ``ended`` means the wait ran out."""
    if wanted is None or wanted.encode() in reply:
        return Outcome(Cause.OK)
    if reply:
        return Outcome(
            Cause.CONTENT_MISMATCH, f"reply does not contain {wanted!r}", ("expect_reply",)
        )
    if ended:
        return Outcome(Cause.PROTOCOL_ERROR, "server closed the connection without replying")
    return Outcome(Cause.TIMEOUT, f"no reply within {timeout:g}s")


async def _converse(
    reader: asyncio.StreamReader, writer: asyncio.StreamWriter, spec: TcpCheck, reply: _Reply
) -> None:
    """Send ``spec.send``; read until the expected text, the end, or ``READ_LIMIT`` bytes."""
    if spec.send is not None:
        writer.write(spec.send.encode())
        await writer.drain()
    if spec.expect_reply is None:
        return
    wanted = spec.expect_reply.encode()
    while wanted not in reply.data and len(reply.data) < READ_LIMIT:
        chunk = await reader.read(READ_LIMIT - len(reply.data))
        if not chunk:
            reply.ended = True
            return
        reply.data += chunk


def host_port(host: str, port: int) -> str:
    """``host:port`` as a person writes it, with brackets around an IPv6 address."""
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


_AddrInfo = tuple[int, int, int, str, tuple[Any, ...]]
HAPPY_EYEBALLS_DELAY = 0.25  # seconds before the next address is tried alongside (RFC 8305)


async def _lookup(host: str, port: int, progress: Progress) -> Sequence[_AddrInfo]:
    infos = await asyncio.get_running_loop().getaddrinfo(host, port, type=socket.SOCK_STREAM)
    progress.resolved = perf_counter()
    return infos


async def resolve(host: str, port: int, progress: Progress) -> list[tuple[str, int]]:
    """The addresses of ``host``, in the order the system prefers; raises ``socket.gaierror``."""
    return [(str(info[4][0]), int(info[4][1])) for info in await _lookup(host, port, progress)]


async def connect(
    host: str, port: int, progress: Progress
) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    """Resolve ``host`` and connect to its addresses with happy eyeballs; raises ``OSError``.

    Resolving is done apart so it is timed apart. Racing the addresses keeps one that
    silently drops packets (a broken IPv6 route) from using up the whole time limit.
    """
    infos = await _lookup(host, port, progress)
    sock = await aiohappyeyeballs.start_connection(infos, happy_eyeballs_delay=HAPPY_EYEBALLS_DELAY)
    progress.connected = perf_counter()
    peer = sock.getpeername()
    progress.peer = (str(peer[0]), int(peer[1]))
    return await asyncio.open_connection(sock=sock)


def socket_failure(exc: OSError, progress: Progress, host: str, port: int) -> Outcome:
    """The one table from socket errors (lookup, connect, conversation) to causes."""
    target = host_port(host, port)
    if isinstance(exc, socket.gaierror):
        if exc.errno in (socket.EAI_NONAME, socket.EAI_NODATA):
            return Outcome(Cause.DNS_NXDOMAIN, f"name not found ({host})")
        return Outcome(Cause.DNS_ERROR, f"DNS lookup failed: {one_line(exc)} ({host})")
    # Happy eyeballs merges the errors of several addresses, keeping a shared errno.
    if isinstance(exc, ConnectionRefusedError) or exc.errno == errno.ECONNREFUSED:
        return Outcome(Cause.CONNECT_REFUSED, f"connection refused ({target})")
    if exc.errno in _UNREACHABLE:
        return Outcome(Cause.NETWORK_UNREACHABLE, f"{_UNREACHABLE[exc.errno]} ({target})")
    if progress.connected is None:
        return Outcome(Cause.NETWORK_UNREACHABLE, f"cannot connect: {one_line(exc)} ({target})")
    if isinstance(exc, ConnectionResetError):
        return Outcome(Cause.PROTOCOL_ERROR, "connection reset by the server")
    return Outcome(Cause.PROTOCOL_ERROR, one_line(exc))


def unconnected_timeout(progress: Progress, timeout: float) -> Outcome | None:
    """Name a timeout before the connection stood; ``None`` once it did (the caller knows)."""
    if progress.resolved is None:
        return Outcome(Cause.DNS_TIMEOUT, f"no DNS answer within {timeout:g}s")
    if progress.connected is None:
        return Outcome(Cause.CONNECT_TIMEOUT, f"no connection within {timeout:g}s")
    return None


def _span(start: float | None, end: float | None) -> float | None:
    return None if start is None or end is None else end - start


def _first_line(data: bytes) -> str:
    return one_line(data.decode(errors="replace").splitlines()[0])
