"""Metrics recorded from results, and the /metrics and /healthz endpoints over real HTTP."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from dataclasses import replace
from datetime import UTC, datetime

import aiohttp
import pytest
from aiohttp import web
from prometheus_client import CollectorRegistry

from monitor.metrics import Metrics
from monitor.models import Cause, Kind, Phases, ProbeResult, Role
from monitor.web import Health, make_app

T0 = datetime(2026, 11, 20, 12, 0, tzinfo=UTC)


def _result(ok: bool, cause: Cause, status: int | None, phases: Phases) -> ProbeResult:
    return ProbeResult(
        monitor="shop",
        role=Role.EDGE,
        origin=None,
        time=T0,
        ok=ok,
        cause=cause,
        status=status,
        phases=phases,
    )


def test_observe_probe_sets_blackbox_series_and_counts() -> None:
    registry = CollectorRegistry()
    metrics = Metrics(registry)
    ok = _result(True, Cause.OK, 200, Phases(0.001, 0.002, None, 0.01, 0.003, 0.016))
    refused = _result(False, Cause.CONNECT_REFUSED, None, Phases(0.001, 0.0005, total=0.002))
    metrics.observe_probe(ok)
    where = {"monitor": "shop", "role": "edge", "origin": ""}
    labels = {**where, "kind": "http"}
    assert registry.get_sample_value("probe_success", labels) == 1
    assert registry.get_sample_value("probe_http_status_code", where) == 200
    assert registry.get_sample_value("probe_duration_seconds", labels) == 0.016
    processing = registry.get_sample_value(
        "probe_http_duration_seconds", {**where, "phase": "processing"}
    )
    assert processing == 0.01
    metrics.observe_probe(refused)
    assert registry.get_sample_value("probe_success", labels) == 0
    assert registry.get_sample_value("probe_http_status_code", where) == 0
    tls = registry.get_sample_value("probe_http_duration_seconds", {**where, "phase": "tls"})
    assert tls == 0
    failures = {**labels, "result": "failure", "cause": "connect_refused"}
    assert registry.get_sample_value("monitor_checks_total", failures) == 1
    assert (
        registry.get_sample_value(
            "monitor_checks_total", {**labels, "result": "success", "cause": "ok"}
        )
        == 1
    )


async def _serve(app: web.Application) -> AsyncIterator[str]:
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        await runner.cleanup()


@pytest.fixture
def health_box() -> list[Health]:
    return [Health(scheduler_firing=True, store_writing=True)]


@pytest.fixture
async def base_url(health_box: list[Health]) -> AsyncIterator[str]:
    registry = CollectorRegistry()
    Metrics(registry).observe_probe(_result(True, Cause.OK, 200, Phases(total=0.1)))
    health: Callable[[], Health] = lambda: health_box[0]  # noqa: E731
    async for url in _serve(make_app(registry, health)):
        yield url


async def test_metrics_endpoint_serves_prometheus_text(base_url: str) -> None:
    async with aiohttp.ClientSession() as session, session.get(f"{base_url}/metrics") as resp:
        text = await resp.text()
        assert resp.status == 200
        assert resp.headers["Content-Type"].startswith("text/plain")
    assert 'probe_success{kind="http",monitor="shop",origin="",role="edge"} 1.0' in text
    assert 'monitor_build_info{version="' in text


@pytest.mark.parametrize(
    ("health", "status", "body"),
    [
        pytest.param(Health(True, True), 200, {"status": "ok"}, id="healthy"),
        pytest.param(Health(False, True), 503, {"scheduler": "stalled"}, id="scheduler-stalled"),
        pytest.param(
            Health(True, False, "db down"),
            503,
            {"store": "failing", "store_error": "db down"},
            id="store-failing",
        ),
    ],
)
async def test_healthz(
    base_url: str, health_box: list[Health], health: Health, status: int, body: dict[str, str]
) -> None:
    health_box[0] = health
    async with aiohttp.ClientSession() as session, session.get(f"{base_url}/healthz") as resp:
        payload = await resp.json()
        assert resp.status == status
    assert body.items() <= payload.items()


def test_a_sites_tls_check_does_not_overwrite_its_http_edge() -> None:
    registry = CollectorRegistry()
    metrics = Metrics(registry)
    expiry = datetime(2027, 1, 1, tzinfo=UTC)
    metrics.observe_probe(_result(True, Cause.OK, 200, Phases(total=0.1)))
    metrics.observe_probe(
        replace(
            _result(False, Cause.TLS_CERT_EXPIRING, None, Phases(total=0.05)),
            kind=Kind.TLS,
            cert_not_after=expiry,
        )
    )
    edge = {"monitor": "shop", "role": "edge", "origin": ""}
    assert registry.get_sample_value("probe_success", {**edge, "kind": "http"}) == 1
    assert registry.get_sample_value("probe_success", {**edge, "kind": "tls"}) == 0
    assert registry.get_sample_value("probe_http_status_code", edge) == 200
    assert (
        registry.get_sample_value("probe_ssl_earliest_cert_expiry", {**edge, "kind": "tls"})
        == expiry.timestamp()
    )
