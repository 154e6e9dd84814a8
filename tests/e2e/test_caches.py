"""Real Varnish and nginx in front of a local origin: `monitor check` says which layer broke.

First the pages these servers send are compared with the captures in tests/fixtures
(error-pages/, Varnish 7.1 and nginx 1.22 on Debian 12), so that the scenarios stand on the
real thing. Then each scenario of the issue runs ``monitor check URL --origin ADDR --json``
as an operator would and compares the edge's and the origin's causes, and the round's
verdict, layer, cause and hint, with what the operator should be told.
"""

from __future__ import annotations

import asyncio
import json
import sys
from asyncio.subprocess import PIPE
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from enum import Enum
from typing import Any, Literal

import aiohttp
import pytest

from tests.support.caches import (
    ORIGIN_HOST,
    Cache,
    Origin,
    Varnish,
    closed_port,
    free_port,
    running_nginx,
    running_origin,
    running_varnish,
)


@pytest.fixture(scope="module")
def origin_port() -> int:
    """One port for the module: the caches are configured with it, origins come and go."""
    return free_port(ORIGIN_HOST)


@pytest.fixture(scope="module")
def dead_port() -> Iterator[int]:
    with closed_port() as port:
        yield port


@pytest.fixture(scope="module")
def varnish_server(origin_port: int) -> Iterator[Varnish]:
    with running_varnish(origin_port) as varnish:
        yield varnish


@pytest.fixture
def varnish(varnish_server: Varnish) -> Varnish:
    varnish_server.forget_everything()
    return varnish_server


@pytest.fixture(scope="module")
def nginx(origin_port: int, dead_port: int) -> Iterator[Cache]:
    with running_nginx(origin_port, dead_port) as server:
        yield server


@pytest.fixture
async def origin(origin_port: int) -> AsyncIterator[Origin]:
    async with running_origin(origin_port) as server:
        yield server


class Setup(Enum):
    """What state the origin is in when the edge is asked."""

    RUNNING = "running"
    STOPPED = "stopped"
    CACHED_THEN_STOPPED = "cached, then stopped"  # the page went through the cache first
    DEAD = "dead"  # --origin names nginx's dead upstream, not the running origin


async def _arrange(setup: Setup, url: str, origin: Origin, dead_port: int) -> str:
    """Put the origin in ``setup``'s state; return the address to give as --origin."""
    if setup is Setup.DEAD:
        return f"127.0.0.1:{dead_port}"
    if setup is Setup.CACHED_THEN_STOPPED:
        status_line, _, body = await _get(url)
        assert (status_line, body) == ("HTTP/1.1 200 OK", "shop home")
    if setup is not Setup.RUNNING:
        await origin.stop()
    return origin.address


async def _get(url: str) -> tuple[str, dict[str, str], str]:
    """Status line, headers and body of a plain GET."""
    timeout = aiohttp.ClientTimeout(total=10)
    async with aiohttp.ClientSession(timeout=timeout) as session, session.get(url) as response:
        body = await response.text()
        version = response.version
        assert version is not None
        status_line = f"HTTP/{version.major}.{version.minor} {response.status} {response.reason}"
        return status_line, dict(response.headers), body


# --- the pages, against the captures ------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Capture:
    """A captured answer, minus what changes per request (``None``: any value)."""

    path: str
    setup: Setup
    status_line: str
    headers: dict[str, str | None]
    body: str  # the body contains this


VARNISH_OWN_PAGE = {
    "Date": None,
    "Server": "Varnish",
    "Content-Type": "text/html; charset=utf-8",
    "Retry-After": "5",
    "X-Varnish": None,
    "Age": "0",
    "Via": "1.1 varnish (Varnish/7.1)",
    "Content-Length": None,  # the XID in the body varies in length
    "Connection": "keep-alive",
}


def _through_varnish(length: str, retry_after: str | None = None) -> dict[str, str | None]:
    """The captured origin's headers, as Varnish passes them on."""
    origin: dict[str, str | None] = {
        "Server": "lab-origin/1.0",
        "Date": None,
        "Content-Type": "text/plain; charset=utf-8",
        "Content-Length": length,
        "X-Origin": "lab-backend",
        "Cache-Control": "no-store",
    }
    if retry_after is not None:
        origin["Retry-After"] = retry_after
    added = {"X-Varnish": None, "Age": "0", "Via": "1.1 varnish (Varnish/7.1)"}
    return {**origin, **added, "Connection": "keep-alive"}


def _varnish_own(path: str, setup: Setup) -> Capture:
    """Varnish's own page, whatever went wrong: only its log tells refused from timed out."""
    page = "<h1>Error 503 Backend fetch failed</h1>"
    return Capture(path, setup, "HTTP/1.1 503 Backend fetch failed", VARNISH_OWN_PAGE, page)


def _nginx_own(path: str, status: str, length: str, retry_after: str | None = None) -> Capture:
    """One of nginx's built-in error pages."""
    headers: dict[str, str | None] = {
        "Server": "nginx/1.22.1",
        "Date": None,
        "Content-Type": "text/html",
        "Content-Length": length,
        "Connection": "keep-alive",
    }
    if retry_after is not None:
        headers["Retry-After"] = retry_after
    body = f"<center><h1>{status}</h1></center>"
    return Capture(path, Setup.RUNNING, f"HTTP/1.1 {status}", headers, body)


NGINX_PASSES_500 = {
    "Server": "nginx/1.22.1",  # nginx replaces the origin's
    "Date": None,
    "Content-Type": "text/plain; charset=utf-8",
    "Content-Length": "22",
    "Connection": "keep-alive",
    "X-Origin": "lab-backend",
    "Cache-Control": "no-store",
}
ERROR_500 = "HTTP/1.1 500 Internal Server Error"
VARNISH_CAPTURES = [
    pytest.param(_varnish_own("/", Setup.STOPPED), id="varnish_b_backend_stopped"),
    pytest.param(_varnish_own("/slow", Setup.RUNNING), id="varnish_c_first_byte_timeout"),
    pytest.param(
        Capture(
            "/status/500", Setup.RUNNING, ERROR_500, _through_varnish("22"), "origin internal error"
        ),
        id="varnish_d_backend_500",
    ),
    pytest.param(
        Capture(
            "/status/503",
            Setup.RUNNING,
            "HTTP/1.1 503 Service Unavailable",
            _through_varnish("16", retry_after="30"),
            "origin says 503",
        ),
        id="varnish_e_origin_503",
    ),
]
NGINX_CAPTURES = [
    pytest.param(_nginx_own("/dead", "502 Bad Gateway", "157"), id="nginx_502_dead_upstream"),
    pytest.param(_nginx_own("/slow", "504 Gateway Time-out", "167"), id="nginx_504_slow_upstream"),
    pytest.param(
        _nginx_own("/maintenance", "503 Service Temporarily Unavailable", "197", retry_after="120"),
        id="nginx_503_maintenance",
    ),
    pytest.param(
        Capture("/status/500", Setup.RUNNING, ERROR_500, NGINX_PASSES_500, "origin internal error"),
        id="nginx_origin_500_passthrough",
    ),
]


async def _assert_answers_like(capture: Capture, cache: Cache, origin: Origin) -> None:
    if capture.setup is Setup.STOPPED:
        await origin.stop()
    status_line, headers, body = await _get(cache.url(capture.path))
    varying = {name for name, value in capture.headers.items() if value is None}
    shape = {name: None if name in varying else value for name, value in headers.items()}
    assert (status_line, shape) == (capture.status_line, capture.headers)
    assert capture.body in body


@pytest.mark.parametrize("capture", VARNISH_CAPTURES)
async def test_varnish_answers_like_the_captures(
    capture: Capture, varnish: Varnish, origin: Origin
) -> None:
    await _assert_answers_like(capture, varnish, origin)


@pytest.mark.parametrize("capture", NGINX_CAPTURES)
async def test_nginx_answers_like_the_captures(
    capture: Capture, nginx: Cache, origin: Origin
) -> None:
    await _assert_answers_like(capture, nginx, origin)


# --- the scenarios of the issue, through `monitor check` ----------------------------------

Accept = str | tuple[str, ...] | None  # a value, any of several, or None: not asserted


@dataclass(frozen=True, slots=True)
class Scenario:
    """One scenario of the issue: how to set it up, and what ``monitor check`` must say."""

    cache: Literal["varnish", "nginx"]  # the fixture
    path: str
    setup: Setup
    edge: str  # the edge probe's cause
    origin: Accept  # the origin probe's cause
    verdict: str
    layer: Accept = None
    cause: Accept = None  # the round's
    # The hint contains, for each group, one of its words.
    hint: tuple[tuple[str, ...], ...] = ()


REFUSED_HINT = (("down", "not listening"),)
SCENARIOS = [
    pytest.param(
        Scenario(
            "varnish", "/", Setup.STOPPED,
            edge="backend_fetch_failed", origin="connect_refused",
            verdict="origin_fault", layer="origin", cause="connect_refused", hint=REFUSED_HINT,
        ),
        id="varnish-origin-stopped",
    ),
    pytest.param(
        Scenario(
            "varnish", "/slow", Setup.RUNNING,
            edge="backend_fetch_failed", origin=("ok", "slow"),
            verdict="origin_fault", layer="origin", hint=(("first byte",), ("timeout",)),
        ),
        id="varnish-origin-slower-than-first-byte-timeout",
    ),
    pytest.param(
        Scenario(
            "varnish", "/status/500", Setup.RUNNING,
            edge="server_error", origin="server_error",
            verdict="origin_fault", layer=("origin", "app"), hint=(("application",),),
        ),
        id="varnish-origin-answers-500",
    ),
    pytest.param(
        Scenario(
            "varnish", "/status/503", Setup.RUNNING,
            edge="maintenance", origin=None, verdict="maintenance",
        ),
        id="varnish-origin-answers-503-retry-after",
    ),
    pytest.param(
        Scenario(
            "nginx", "/dead", Setup.DEAD,
            edge="bad_gateway", origin="connect_refused",
            verdict="origin_fault", layer="origin", cause="connect_refused", hint=REFUSED_HINT,
        ),
        id="nginx-dead-upstream-502",
    ),
    pytest.param(
        Scenario(
            "nginx", "/slow", Setup.RUNNING,
            edge="gateway_timeout", origin=None,
            verdict="origin_fault", layer="origin", hint=(("timeout",),),
        ),
        id="nginx-slow-upstream-504",
    ),
    pytest.param(
        Scenario(
            "nginx", "/maintenance", Setup.RUNNING,
            edge="maintenance", origin=None, verdict="maintenance",
        ),
        id="nginx-maintenance-page-503-retry-after",
    ),
    pytest.param(
        Scenario(
            "varnish", "/", Setup.CACHED_THEN_STOPPED,
            edge="ok", origin="connect_refused",
            verdict="degraded", layer="origin", hint=(("cache",), ("hid",)),
        ),
        id="varnish-serves-cached-page-while-origin-down",
    ),
]  # fmt: skip


@pytest.mark.parametrize("scenario", SCENARIOS)
async def test_check_names_the_layer_that_broke(
    scenario: Scenario, request: pytest.FixtureRequest, origin: Origin, dead_port: int
) -> None:
    cache: Cache = request.getfixturevalue(scenario.cache)
    url = cache.url(scenario.path)
    origin_address = await _arrange(scenario.setup, url, origin, dead_port)
    report, stderr = await _check(url, origin_address)
    observed = _observed(report)
    problems = _mismatches(scenario, observed) + _who_answered(scenario.cache, report)
    if stderr:
        problems.append(f"stderr: {stderr}")
    assert not problems, f"{problems}\nobserved: {json.dumps(observed, indent=2)}"


async def _check(url: str, origin: str) -> tuple[dict[str, Any], str]:
    """``monitor check --json`` in a process of its own; its report, and what it wrote to stderr."""
    # 5 s: long enough for the origin probe to see /slow's first byte after 2 s.
    args = ["check", url, "--origin", origin, "--json", "--timeout", "5s"]
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "monitor", *args, stdout=PIPE, stderr=PIPE
    )
    out, err = await asyncio.wait_for(proc.communicate(), timeout=30)
    assert out, f"no report; exit {proc.returncode}, stderr: {err.decode()}"
    report: dict[str, Any] = json.loads(out)
    return report, err.decode()


def _observed(report: dict[str, Any]) -> dict[str, Any]:
    """What the round said, with the probes' statuses and timings to explain it."""
    edge, origin = report["probes"]  # one edge, then the one origin
    summary = {key: report[key] for key in ("verdict", "layer", "cause", "hint")}
    for role, probe in (("edge", edge), ("origin", origin)):
        summary[role] = probe["cause"]
        summary[f"{role}_status"] = probe["status"]
        summary[f"{role}_seconds"] = {k: probe["phases"][k] for k in ("processing", "total")}
    return summary


def _mismatches(scenario: Scenario, observed: dict[str, Any]) -> list[str]:
    expected: dict[str, Accept] = {
        "edge": scenario.edge,
        "origin": scenario.origin,
        "verdict": scenario.verdict,
        "layer": scenario.layer,
        "cause": scenario.cause,
    }
    problems = []
    for key, accept in expected.items():
        allowed = (accept,) if isinstance(accept, str) else accept
        if allowed is not None and observed[key] not in allowed:
            problems.append(f"{key}: expected {' or '.join(allowed)}, got {observed[key]!r}")
    hint = str(observed["hint"]).lower()
    problems.extend(
        f"hint names none of {words}"
        for words in scenario.hint
        if not any(word in hint for word in words)
    )
    return problems


def _who_answered(cache: str, report: dict[str, Any]) -> list[str]:
    """The edge probe's headers must show which server answered."""
    headers: dict[str, str] = report["probes"][0]["headers"]
    if cache == "varnish":
        shown = "x-varnish" in headers and "varnish" in headers.get("via", "").lower()
    else:
        shown = headers.get("server", "").startswith("nginx/")
    return [] if shown else [f"the edge's headers do not show {cache}: {headers}"]
