"""Capture the pages real HAProxy, Apache and Caddy send into tests/fixtures/error-pages.

Run ``python -m tests.support.capture`` from the repository root (curl and the three
servers installed). Each capture is a ``curl -sv`` transcript in the format that
``errorpages.load`` reads.
"""

from __future__ import annotations

import asyncio
import subprocess
import tempfile
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, ExitStack
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from tests.support.caches import ORIGIN_HOST, Origin, closed_port, free_port, running_origin
from tests.support.errorpages import FIXTURES
from tests.support.proxies import (
    Proxy,
    TlsOrigins,
    make_tls_origins,
    running_apache,
    running_caddy,
    running_haproxy,
    serving,
)

Start = Callable[[int, int, TlsOrigins], AbstractContextManager[Proxy]]


@dataclass(frozen=True, slots=True)
class Page:
    name: str  # the fixture's name, without .txt
    site: str
    path: str = "/"
    origin_stopped: bool = False


_NAMES = {"wrong-port": "wrong_port", "checked": "health_check_down", "friendly": "friendly_page"}


def _pages(product: str, statuses: dict[str, str]) -> Iterator[Page]:
    """The same scenarios on each proxy; ``statuses`` names each capture's status part."""
    yield Page(f"{product}_origin_500_passthrough", "main", "/status/500")
    yield Page(f"{product}_{statuses['slow']}_slow_origin", "main", "/slow")
    for site in ("wrong-port", "checked", "friendly", "maintenance"):
        if site in statuses:
            yield Page(f"{product}_{statuses[site]}_{_NAMES.get(site, site)}", site)
    for kind in ("expired", "wrong-name"):
        for mode in ("verify", "noverify"):
            status = statuses["tls"] if mode == "verify" else "200"
            name = f"{product}_{status}_tls_{kind.replace('-', '_')}_{mode}"
            yield Page(name, f"tls-{kind}-{mode}")
    if "cached" in statuses:
        yield Page(f"{product}_200_cached_origin_stopped", "cached", origin_stopped=True)
    yield Page(f"{product}_{statuses['stopped']}_origin_stopped", "main", origin_stopped=True)


PROXIES: dict[str, tuple[Start, dict[str, str]]] = {
    "haproxy": (
        running_haproxy,
        {
            "slow": "504",
            "wrong-port": "503",
            "checked": "503",
            "friendly": "503",
            "maintenance": "503",
            "tls": "503",
            "stopped": "503",
        },
    ),
    "apache": (
        running_apache,
        {
            "slow": "502",
            "wrong-port": "503",
            "maintenance": "503",
            "tls": "500",
            "cached": "200",
            "stopped": "503",
        },
    ),
    "caddy": (
        running_caddy,
        {
            "slow": "504",
            "wrong-port": "502",
            "checked": "503",
            "maintenance": "503",
            "tls": "502",
            "stopped": "502",
        },
    ),
}


def curl(url: str, body_file: Path) -> tuple[str, int]:
    """The transcript of one request, and its status."""
    command = ["curl", "-sv", "--max-time", "15", url]
    run = subprocess.run(
        [*command, "-o", str(body_file), "-w", "http_code=%{http_code} time_total=%{time_total}s"],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    captured = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    body = body_file.read_text(encoding="utf-8") if body_file.exists() else ""
    transcript = (
        f"# command: curl -sv --max-time 15 '{url}'\n# captured: {captured}\n{run.stderr}\n"
        f"# curl: {run.stdout}\n----- body (verbatim) -----\n{body}----- end body -----\n"
    )
    return transcript, int(run.stdout.split()[0].split("=")[1])


async def capture(product: str, start: Start, statuses: dict[str, str], work: Path) -> None:
    port = free_port(ORIGIN_HOST)
    with closed_port() as dead, ExitStack() as stack:
        tls = make_tls_origins(work)
        async with serving(tls), running_origin(port) as origin:
            proxy = await asyncio.to_thread(stack.enter_context, start(port, dead, tls))
            await _prime(proxy, origin, work)
            for page in _pages(product, statuses):
                if page.origin_stopped:
                    await origin.stop()
                transcript, status = await asyncio.to_thread(
                    curl, proxy.url(page.site, page.path), work / "body"
                )
                (work / "body").unlink(missing_ok=True)
                expected = page.name.split("_")[1]
                if expected.isdigit() and int(expected) != status:
                    raise SystemExit(f"{page.name}: got {status}")
                (FIXTURES / f"{page.name}.txt").write_text(transcript, encoding="utf-8")
                print(page.name, status)


async def _prime(proxy: Proxy, origin: Origin, work: Path) -> None:
    """Fill Apache's cache, and wait until the health checks have marked the origin down."""
    del origin
    if "cached" in proxy.ports:
        await asyncio.to_thread(curl, proxy.url("cached"), work / "body")
    if "checked" in proxy.ports:
        for _ in range(100):
            _, status = await asyncio.to_thread(curl, proxy.url("checked"), work / "body")
            if status == 503:
                return
            await asyncio.sleep(0.05)
        raise SystemExit("the health check never marked the origin down")


async def main() -> None:
    with tempfile.TemporaryDirectory() as directory:
        for product, (start, statuses) in PROXIES.items():
            await capture(product, start, statuses, Path(directory))


if __name__ == "__main__":
    asyncio.run(main())
