"""Alert receivers on 127.0.0.1: a JSON webhook (Apprise's json://) that can fail or be down."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from aiohttp import web


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


class Webhook:
    """Receives JSON posts (at any path) and keeps every payload that it answered 200, with
    its path and headers.

    ``fail`` makes the next that many posts answer 500; while ``down`` (before ``up``, or
    after ``stop``) nothing listens on the port: connections are refused.
    """

    def __init__(self, port: int | None = None) -> None:
        self.port = port or free_port()
        self.received: list[dict[str, Any]] = []
        self.headers: list[dict[str, str]] = []
        self.paths: list[str] = []
        self.attempts = 0
        self.fail = 0
        self.delay = 0.0
        self._runner: web.AppRunner | None = None
        self._arrived = asyncio.Event()

    @property
    def url(self) -> str:
        """The Apprise URL of this receiver."""
        return f"json://127.0.0.1:{self.port}/alerts"

    async def up(self) -> None:
        app = web.Application()
        app.router.add_post("/{tail:.*}", self._handle)
        self._runner = web.AppRunner(app)
        await self._runner.setup()
        await web.TCPSite(self._runner, "127.0.0.1", self.port, reuse_address=True).start()

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    async def wait(self, count: int, seconds: float = 20.0) -> None:
        """Until ``count`` payloads are in."""
        async with asyncio.timeout(seconds):
            while len(self.received) < count:
                self._arrived.clear()
                await self._arrived.wait()

    async def _handle(self, request: web.Request) -> web.Response:
        self.attempts += 1
        payload = await request.json()
        if self.delay:
            await asyncio.sleep(self.delay)
        if self.fail > 0:
            self.fail -= 1
            return web.Response(status=500, text="receiver failing on purpose")
        self.received.append(payload)
        self.headers.append(dict(request.headers))
        self.paths.append(request.path)
        self._arrived.set()
        return web.Response(text="ok")


@asynccontextmanager
async def webhook(*, up: bool = True) -> AsyncIterator[Webhook]:
    hook = Webhook()
    if up:
        await hook.up()
    try:
        yield hook
    finally:
        await hook.stop()
