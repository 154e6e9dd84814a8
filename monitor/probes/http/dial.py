"""The wire client's connecting: TLS on a connected socket, and a race of several addresses.

:class:`monitor.probes.http.wire.Dialer` connects a single address on the event loop's own
``create_connection`` and hands the rest here: :func:`handshake` upgrades that connection
to TLS (timed apart, as its own phase), and :func:`first_ready` races a name's addresses as
aiohttp does, dropping an address whose TLS handshake fails.
"""

from __future__ import annotations

import asyncio
import errno
import ssl
from time import perf_counter

import aiohappyeyeballs

from monitor.probes.http.record import Recorder

__all__ = ["HAPPY_EYEBALLS_DELAY", "first_ready", "handshake"]

HAPPY_EYEBALLS_DELAY = 0.25
"""Seconds before the next address is tried while one still connects (aiohttp's value)."""


async def handshake(
    loop: asyncio.AbstractEventLoop,
    transport: asyncio.Transport,
    answer: asyncio.Protocol,
    tls: ssl.SSLContext,
    server_name: str | None,
) -> asyncio.Transport:
    """``transport`` upgraded to TLS; the TCP connection is closed if the handshake fails."""
    upgraded = await loop.start_tls(transport, answer, tls, server_hostname=server_name)
    if upgraded is None:  # only for a transport closing meanwhile
        transport.abort()
        raise ConnectionResetError(errno.ECONNRESET, "connection closed during TLS handshake")
    return upgraded


async def first_ready(
    loop: asyncio.AbstractEventLoop,
    infos: list[aiohappyeyeballs.AddrInfoType],
    answer: asyncio.Protocol,
    tls: ssl.SSLContext | None,
    server_name: str | None,
    rec: Recorder,
) -> asyncio.Transport:
    """A connection to one of several addresses, raced as aiohttp does; an address whose
    TLS handshake fails is dropped and the others are tried (one bad node of a name)."""
    left = list(infos)
    stamps = rec.stamps
    while True:
        sock = await aiohappyeyeballs.start_connection(
            left, happy_eyeballs_delay=HAPPY_EYEBALLS_DELAY, interleave=1
        )
        peer = sock.getpeername()
        if tls is not None:
            stamps.tls_start, stamps.tls_end = perf_counter(), None  # this address's handshake
        try:
            transport, _ = await loop.create_connection(
                lambda: answer, sock=sock, ssl=tls, server_hostname=server_name
            )
        except OSError:
            left = [info for info in left if info[4][:2] != peer[:2]]
            if not left:
                raise
            continue
        if tls is not None:
            stamps.tls_end = perf_counter()
        return transport
