"""A site URL's password, probed for real, never reaches the results table."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime

import pytest
from aiohttp import web
from sqlalchemy import text

from monitor.models import ProbeContext, Role, Site
from monitor.probes import HttpTarget, make_clients, run_probe
from monitor.store import SqlStore
from tests.store.test_store import connect


@pytest.fixture
async def guarded() -> AsyncIterator[int]:
    """A site that answers 200 only to Basic ops:s3cret, else 401."""

    async def answer(request: web.Request) -> web.Response:
        if request.headers.get("Authorization") != "Basic b3BzOnMzY3JldA==":
            return web.Response(status=401)
        return web.Response(text="welcome")

    app = web.Application()
    app.router.add_get("/", answer)
    runner = web.AppRunner(app)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", 0).start()
    yield runner.addresses[0][1]
    await runner.cleanup()


async def test_the_stored_row_holds_no_password(
    store: SqlStore, store_url: str, guarded: int
) -> None:
    site = Site("shop", f"http://ops:s3cret@127.0.0.1:{guarded}/", interval=60.0, timeout=2.0)
    ctx = ProbeContext(site.name, Role.EDGE, None, datetime.now(UTC), site.timeout)
    async with make_clients() as clients:
        result = await run_probe(clients, ctx, HttpTarget(site))
    assert (result.ok, result.status) == (True, 200)  # the credentials did reach the server

    await store.write_results([result])
    async with connect(store_url) as conn:
        rows = (await conn.execute(text("SELECT * FROM check_results"))).all()
    assert len(rows) == 1
    assert "s3cret" not in repr(rows)
    assert f"http://***@127.0.0.1:{guarded}/" in repr(rows)
