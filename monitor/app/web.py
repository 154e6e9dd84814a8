"""The HTTP side of the daemon: ``/metrics`` for Prometheus and ``/healthz`` for supervisors."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterator
from dataclasses import dataclass

from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST


@dataclass(frozen=True, slots=True)
class HealthReport:
    """What ``/healthz`` reports: healthy only while checks fire and results get stored."""

    scheduler_firing: bool
    store_writing: bool
    store_error: str | None = None

    @property
    def ok(self) -> bool:
        return self.scheduler_firing and self.store_writing


def make_app(
    pages: Callable[[], Iterator[bytes]], health: Callable[[], HealthReport]
) -> web.Application:
    """``pages`` writes the /metrics page in pieces (``Metrics.pages``)."""

    async def metrics(request: web.Request) -> web.StreamResponse:
        # 100,000 sites make a page of hundreds of MB: write each piece off the event loop,
        # so the probes' timings wait less for it, and send it before writing the next, so
        # the page is never held whole. Gzip it when asked (Prometheus asks).
        written = pages()
        piece = await asyncio.to_thread(next, written, None)
        response = web.StreamResponse(headers={"Content-Type": CONTENT_TYPE_LATEST})
        response.enable_compression()
        await response.prepare(request)
        while piece is not None:
            await response.write(piece)
            piece = await asyncio.to_thread(next, written, None)
        await response.write_eof()
        return response

    async def healthz(_: web.Request) -> web.Response:
        now = health()
        payload = {
            "status": "ok" if now.ok else "unhealthy",
            "scheduler": "firing" if now.scheduler_firing else "stalled",
            "store": "writing" if now.store_writing else "failing",
            "store_error": now.store_error,
        }
        return web.json_response(payload, status=200 if now.ok else 503)

    app = web.Application()
    app.router.add_get("/metrics", metrics)
    app.router.add_get("/healthz", healthz)
    return app
