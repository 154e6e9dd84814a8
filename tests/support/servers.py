"""Small TCP servers on 127.0.0.1 for the probe tests, and a port where nothing listens."""

from __future__ import annotations

import asyncio
import socket
import ssl
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager

Handler = Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]]


# Handlers talk, then return; ``serving`` closes the connection and waits for the client.


async def hang_up(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    pass


async def say_nothing(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    await reader.read()


@asynccontextmanager
async def serving(handler: Handler, tls: ssl.SSLContext | None = None) -> AsyncIterator[int]:
    """Run ``handler`` for each connection to 127.0.0.1 at the port yielded (over ``tls``).

    On the way out, waits until every connection is closed, so no socket outlives the test.
    """
    done: list[asyncio.Future[None]] = []

    async def connection(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        finished = asyncio.get_running_loop().create_future()
        done.append(finished)
        try:
            await handler(reader, writer)
        finally:
            writer.close()
            await writer.wait_closed()
            finished.set_result(None)

    server = await asyncio.start_server(connection, "127.0.0.1", 0, ssl=tls)
    async with server:
        yield server.sockets[0].getsockname()[1]
    async with asyncio.timeout(5):
        await asyncio.gather(*done)


def free_port() -> int:
    """A port on 127.0.0.1 where nothing listens (it was free a moment ago)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])
