"""Real HAProxy, Apache and Caddy in front of local origins: `monitor check` names the layer.

Each scenario of issue #21 runs ``monitor check URL --origin ADDR --json`` as an operator
would, against a proxy site from tests/support/proxies.py, and compares the edge's cause
and the round's verdict, layer, cause and hint with what the operator should be told. The
pages these servers send are kept in tests/fixtures/error-pages (``haproxy_*``,
``apache_*``, ``caddy_*``) and checked in tests/judge/test_signatures.py.
"""

from __future__ import annotations

import asyncio
import json
import os
import sys
import time
from asyncio.subprocess import PIPE
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import aiohttp
import pytest

from tests.e2e.test_caches import Accept, _mismatches, _observed
from tests.support.caches import ORIGIN_HOST, Origin, closed_port, free_port, running_origin
from tests.support.proxies import (
    Proxy,
    TlsOrigins,
    make_tls_origins,
    running_apache,
    running_caddy,
    running_haproxy,
    serving,
)

HEALTH_CHECK_DEADLINE = 5.0  # seconds for a 100 ms health check to mark the origin down


@pytest.fixture(scope="module")
def origin_port() -> int:
    return free_port(ORIGIN_HOST)


@pytest.fixture(scope="module")
def dead_port() -> Iterator[int]:
    with closed_port() as port:
        yield port


@pytest.fixture(scope="module")
def tls(tmp_path_factory: pytest.TempPathFactory) -> TlsOrigins:
    return make_tls_origins(tmp_path_factory.mktemp("tls"))


@pytest.fixture(scope="module")
def haproxy(origin_port: int, dead_port: int, tls: TlsOrigins) -> Iterator[Proxy]:
    with running_haproxy(origin_port, dead_port, tls) as proxy:
        yield proxy


@pytest.fixture(scope="module")
def apache(origin_port: int, dead_port: int, tls: TlsOrigins) -> Iterator[Proxy]:
    with running_apache(origin_port, dead_port, tls) as proxy:
        yield proxy


@pytest.fixture(scope="module")
def caddy(origin_port: int, dead_port: int, tls: TlsOrigins) -> Iterator[Proxy]:
    with running_caddy(origin_port, dead_port, tls) as proxy:
        yield proxy


@pytest.fixture
async def origin(origin_port: int, tls: TlsOrigins) -> AsyncIterator[Origin]:
    async with serving(tls), running_origin(origin_port) as server:
        yield server


@dataclass(frozen=True, slots=True)
class Scenario:
    proxy: Literal["haproxy", "apache", "caddy"]  # the fixture
    site: str  # one of the proxy's sites
    path: str
    # What --origin names: the running origin, the dead port, or a TLS origin ("tls:expired").
    target: str
    edge: str  # the edge probe's cause
    origin: Accept  # the origin probe's cause
    verdict: str
    layer: Accept = None
    cause: Accept = None
    hint: tuple[tuple[str, ...], ...] = ()  # for each group, the hint contains one word
    stopped: bool = False  # the origin is stopped before the check
    cached: bool = False  # the page went through the proxy once before


REFUSED = (("down", "not listening"),)
CONFIG = (("backend definition", "config"),)
HEALTH = (("health",),)
CERTIFICATE = (("certificate",),)


def _common(proxy: Literal["haproxy", "apache", "caddy"], pages: dict[str, str]) -> list[Any]:
    """The scenarios every proxy shares; ``pages`` names the edge's cause for each."""
    setting = {
        "haproxy": "timeout server",
        "apache": "proxytimeout",
        "caddy": "response_header_timeout",
    }[proxy]
    cases = [
        pytest.param(
            Scenario(
                proxy, "main", "/", "origin", stopped=True,
                edge=pages["stopped"], origin="connect_refused",
                verdict="origin_fault", layer="origin", cause="connect_refused", hint=REFUSED,
            ),
            id=f"{proxy}-origin-stopped",
        ),
        pytest.param(
            Scenario(
                proxy, "main", "/slow", "origin",
                edge=pages["slow"], origin=("ok", "slow"),
                verdict="origin_fault", layer="origin", hint=((setting,),),
            ),
            id=f"{proxy}-origin-slower-than-{setting.replace(' ', '-')}",
        ),
        pytest.param(
            Scenario(
                proxy, "main", "/status/500", "origin",
                edge="server_error", origin="server_error",
                verdict="origin_fault", layer=("origin", "app"), hint=(("application",),),
            ),
            id=f"{proxy}-origin-answers-500",
        ),
        pytest.param(
            Scenario(
                proxy, "wrong-port", "/", "origin",
                edge=pages["wrong-port"], origin="ok",
                verdict="edge_fault", layer="edge", cause=pages["wrong-port"], hint=CONFIG,
            ),
            id=f"{proxy}-wrong-backend-port",
        ),
        pytest.param(
            Scenario(
                proxy, "maintenance", "/", "origin",
                edge="maintenance", origin="ok", verdict="maintenance", layer="app",
            ),
            id=f"{proxy}-maintenance-rule",
        ),
    ]  # fmt: skip
    for kind, cert_cause in (("expired", "tls_cert_expired"), ("wrong-name", "tls_cert_invalid")):
        cases += [
            pytest.param(
                Scenario(
                    proxy, f"tls-{kind}-verify", "/", f"tls:{kind}",
                    edge=pages["tls"], origin=cert_cause,
                    verdict="origin_fault", layer="origin", cause=cert_cause, hint=CERTIFICATE,
                ),
                id=f"{proxy}-tls-{kind}-proxy-verifies",
            ),
            pytest.param(
                Scenario(
                    proxy, f"tls-{kind}-noverify", "/", f"tls:{kind}",
                    edge="ok", origin=cert_cause,
                    verdict="degraded", layer="origin", cause=cert_cause, hint=CERTIFICATE,
                ),
                id=f"{proxy}-tls-{kind}-proxy-does-not-verify",
            ),
        ]  # fmt: skip
    return cases


SCENARIOS = [
    *_common(
        "haproxy",
        {
            "stopped": "backend_fetch_failed",
            "slow": "gateway_timeout",
            "wrong-port": "backend_fetch_failed",
            "tls": "backend_fetch_failed",
        },
    ),
    pytest.param(
        Scenario(
            "haproxy", "wrong-port", "/slow", "origin",
            edge="backend_fetch_failed", origin=("ok", "slow"),
            verdict="edge_fault", layer="edge", cause="backend_fetch_failed", hint=CONFIG,
        ),
        id="haproxy-wrong-backend-port-slow-page",
    ),
    pytest.param(
        Scenario(
            "haproxy", "checked", "/", "origin",
            edge="backend_fetch_failed", origin="ok",
            verdict="edge_fault", layer="edge", cause="backend_fetch_failed", hint=HEALTH,
        ),
        id="haproxy-health-check-marks-server-down",
    ),
    pytest.param(
        Scenario(
            "haproxy", "friendly", "/", "dead",
            edge="maintenance", origin="connect_refused",
            verdict="origin_fault", layer="origin", cause="connect_refused", hint=REFUSED,
        ),
        id="haproxy-friendly-retry-after-page-while-origin-refuses",
    ),
    *_common(
        "apache",
        {
            "stopped": "backend_fetch_failed",
            "slow": "bad_gateway",
            "wrong-port": "backend_fetch_failed",
            "tls": "bad_gateway",
        },
    ),
    pytest.param(
        Scenario(
            "apache", "cached", "/", "origin", cached=True, stopped=True,
            edge="ok", origin="connect_refused",
            verdict="degraded", layer="origin", cause="connect_refused",
            hint=(("cache",), ("hid",)),
        ),
        id="apache-mod-cache-serves-page-while-origin-down",
    ),
    *_common(
        "caddy",
        {
            "stopped": "bad_gateway",
            "slow": "gateway_timeout",
            "wrong-port": "bad_gateway",
            "tls": "bad_gateway",
        },
    ),
    pytest.param(
        Scenario(
            "caddy", "checked", "/", "origin",
            edge="backend_fetch_failed", origin="ok",
            verdict="edge_fault", layer="edge", cause="backend_fetch_failed", hint=HEALTH,
        ),
        id="caddy-health-check-marks-upstream-down",
    ),
]  # fmt: skip


@pytest.mark.parametrize("scenario", SCENARIOS)
async def test_check_names_the_layer_behind_the_proxy(
    scenario: Scenario,
    request: pytest.FixtureRequest,
    origin: Origin,
    dead_port: int,
    tls: TlsOrigins,
) -> None:
    proxy: Proxy = request.getfixturevalue(scenario.proxy)
    url = proxy.url(scenario.site, scenario.path)
    if scenario.site == "checked":
        await _until_marked_down(url)
    if scenario.cached:
        status, _ = await _get(url)
        assert status == 200
    if scenario.stopped:
        await origin.stop()
    if scenario.target == "origin":
        target = origin.address
    elif scenario.target == "dead":
        target = f"127.0.0.1:{dead_port}"
    else:
        target = tls.url(scenario.target.removeprefix("tls:"))
    report, stderr = await _check(url, target, tls.ca_file)
    observed = _observed(report)
    problems = _mismatches(scenario, observed)  # type: ignore[arg-type]  # the same fields
    if stderr:
        problems.append(f"stderr: {stderr}")
    assert not problems, f"{problems}\nobserved: {json.dumps(observed, indent=2)}"


async def _get(url: str) -> tuple[int, str]:
    timeout = aiohttp.ClientTimeout(total=10)
    async with aiohttp.ClientSession(timeout=timeout) as session, session.get(url) as response:
        return response.status, await response.text()


async def _until_marked_down(url: str) -> None:
    """Wait until the proxy's health check has marked the origin down (it answers 503)."""
    deadline = time.monotonic() + HEALTH_CHECK_DEADLINE
    while time.monotonic() < deadline:
        status, _ = await _get(url)
        if status == 503:
            return
        await asyncio.sleep(0.05)
    pytest.fail(f"{url}: the health check did not mark the origin down in time")


async def _check(url: str, origin: str, ca_file: Path) -> tuple[dict[str, Any], str]:
    """``monitor check --json`` in a process of its own, trusting the TLS origins' CA."""
    args = ["check", url, "--origin", origin, "--json", "--timeout", "5s"]
    env = {**os.environ, "SSL_CERT_FILE": str(ca_file)}
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "monitor", *args, stdout=PIPE, stderr=PIPE, env=env
    )
    out, err = await asyncio.wait_for(proc.communicate(), timeout=30)
    assert out, f"no report; exit {proc.returncode}, stderr: {err.decode()}"
    report: dict[str, Any] = json.loads(out)
    return report, err.decode()
