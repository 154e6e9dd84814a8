"""The HTTP side of the daemon: ``/metrics`` for Prometheus and ``/healthz`` for supervisors."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass

from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST


@dataclass(frozen=True, slots=True)
class Health:
    """What ``/healthz`` reports: healthy only while checks fire and results get stored."""

    scheduler_firing: bool
    store_writing: bool
    store_error: str | None = None

    @property
    def ok(self) -> bool:
        return self.scheduler_firing and self.store_writing


def make_app(render: Callable[[], bytes], health: Callable[[], Health]) -> web.Application:
    """``render`` writes the /metrics page (``Metrics.render``)."""

    async def metrics(_: web.Request) -> web.Response:
        # Ten thousand sites make a page of tens of MB: render it off the event loop, so
        # the probes' timings wait less for it, and gzip it when asked (Prometheus asks).
        body = await asyncio.to_thread(render)
        response = web.Response(body=body, headers={"Content-Type": CONTENT_TYPE_LATEST})
        response.enable_compression()
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
