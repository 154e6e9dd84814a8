"""Small local servers and daemon processes shared by the end-to-end tests (127.0.0.1 only)."""

from __future__ import annotations

import asyncio
import os
import sys
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from pathlib import Path

from aiohttp import web

from tests.support.receivers import free_port

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


@asynccontextmanager
async def serve(handler: Handler, host: str = "127.0.0.1") -> AsyncIterator[str]:
    """Serve ``handler`` for every GET path on a free port; yields the base URL."""
    app = web.Application()
    app.router.add_get("/{tail:.*}", handler)
    runner = web.AppRunner(app)
    await runner.setup()
    await web.TCPSite(runner, host, 0).start()
    try:
        yield f"http://{host}:{runner.addresses[0][1]}/"
    finally:
        await runner.cleanup()


def daemon_config(tmp_path: Path, body: str, listen: int | None = None) -> Path:
    """``tmp_path/config.yaml``: SQLite in ``tmp_path``, 1 s rounds, one failure is down
    and one success up, then ``body`` (sites, notifiers, ...)."""
    path = tmp_path / "config.yaml"
    path.write_text(
        f"""
storage:
  url: sqlite+aiosqlite:///{tmp_path / "monitor.db"}
server:
  listen: 127.0.0.1:{listen or free_port()}
defaults:
  interval: 1s
  timeout: 400ms
  failure_threshold: 1
  recovery_threshold: 1
{body}""",
        encoding="utf-8",
    )
    return path


async def start_daemon(config: Path, log: Path, *more: str) -> asyncio.subprocess.Process:
    """``monitor run -c config [more...]`` as a process of its own, its output appended to
    ``log``."""
    with log.open("ab") as out:
        return await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "monitor",
            "run",
            "-c",
            str(config),
            *more,
            stdout=out,
            stderr=out,
            cwd=config.parent,
            env={**os.environ, "PYTHONUNBUFFERED": "1"},
        )
