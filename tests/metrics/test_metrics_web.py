"""Metrics recorded from results and states, and /metrics and /healthz over real HTTP."""

from __future__ import annotations

import gzip
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import replace
from datetime import UTC, datetime, timedelta

import aiohttp
import pytest
from aiohttp import web
from prometheus_client import CollectorRegistry

from monitor.app.web import HealthReport, make_app
from monitor.metrics.families import STATES, VERDICTS
from monitor.metrics.registry import Metrics
from monitor.models import Cause, Kind, Phases, ProbeResult, Role

T0 = datetime(2026, 11, 20, 12, 0, tzinfo=UTC)
EDGE = {"monitor": "shop", "role": "edge", "origin": ""}


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
def health_box() -> list[HealthReport]:
    return [HealthReport(scheduler_firing=True, store_writing=True)]


@pytest.fixture
async def base_url(health_box: list[HealthReport]) -> AsyncIterator[str]:
    registry = CollectorRegistry()
    metrics = Metrics(registry)
    metrics.observe_probe(_result(True, Cause.OK, 200, Phases(total=0.1)))
    health: Callable[[], HealthReport] = lambda: health_box[0]  # noqa: E731
    async for url in _serve(make_app(metrics.pages, health)):
        yield url


async def test_metrics_endpoint_serves_prometheus_text(base_url: str) -> None:
    async with aiohttp.ClientSession() as session, session.get(f"{base_url}/metrics") as resp:
        text = await resp.text()
        assert resp.status == 200
        assert resp.headers["Content-Type"].startswith("text/plain")
    assert 'probe_success{monitor="shop",role="edge",origin="",kind="http"} 1.0' in text
    assert 'monitor_build_info{version="' in text


async def test_metrics_endpoint_gzips_when_asked(base_url: str) -> None:
    headers = {"Accept-Encoding": "gzip"}
    async with (
        aiohttp.ClientSession(auto_decompress=False) as session,
        session.get(f"{base_url}/metrics", headers=headers) as resp,
    ):
        body = await resp.read()
        assert resp.headers["Content-Encoding"] == "gzip"
    assert b"probe_success{" in gzip.decompress(body)


async def test_a_page_of_many_pieces_arrives_whole_plain_and_gzipped() -> None:
    metrics = Metrics(CollectorRegistry())
    for i in range(600):  # about 30 lines a site: three pieces of 8,192 lines
        metrics.observe_probe(
            replace(_result(True, Cause.OK, 200, Phases(total=0.1)), monitor=f"s{i}")
        )
    assert len(list(metrics.pages())) >= 3
    whole = metrics.render()
    health = lambda: HealthReport(True, True)  # noqa: E731
    async for url in _serve(make_app(metrics.pages, health)):
        async with aiohttp.ClientSession(auto_decompress=False) as session:
            async with session.get(f"{url}/metrics", headers={"Accept-Encoding": "identity"}) as r:
                assert await r.read() == whole
            async with session.get(f"{url}/metrics", headers={"Accept-Encoding": "gzip"}) as r:
                assert r.headers["Content-Encoding"] == "gzip"
                assert gzip.decompress(await r.read()) == whole


@pytest.mark.parametrize(
    ("health", "status", "body"),
    [
        pytest.param(HealthReport(True, True), 200, {"status": "ok"}, id="healthy"),
        pytest.param(
            HealthReport(False, True), 503, {"scheduler": "stalled"}, id="scheduler-stalled"
        ),
        pytest.param(
            HealthReport(True, False, "db down"),
            503,
            {"store": "failing", "store_error": "db down"},
            id="store-failing",
        ),
    ],
)
async def test_healthz(
    base_url: str,
    health_box: list[HealthReport],
    health: HealthReport,
    status: int,
    body: dict[str, str],
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


def _sample(registry: CollectorRegistry, name: str, **labels: str) -> float | None:
    return registry.get_sample_value(name, labels)


@pytest.mark.parametrize(
    ("headers", "body", "truncated", "expected"),
    [
        pytest.param((("Content-Length", "5120"),), b"x" * 10, False, 5120, id="header"),
        pytest.param((), b"x" * 10, False, 10, id="bytes-read"),
        pytest.param((), b"x" * 10, True, -1, id="cut-short"),
        pytest.param((), b"", False, 0, id="no-answer"),
    ],
)
def test_content_length(
    headers: tuple[tuple[str, str], ...], body: bytes, truncated: bool, expected: int
) -> None:
    registry = CollectorRegistry()
    result = _result(True, Cause.OK, 200, Phases(total=0.1))
    Metrics(registry).observe_probe(
        replace(result, headers=headers, body=body, body_truncated=truncated)
    )
    assert _sample(registry, "probe_http_content_length", **EDGE) == expected


@pytest.mark.parametrize("redirects", [0, 1, 3])
def test_redirects(redirects: int) -> None:
    registry = CollectorRegistry()
    Metrics(registry).observe_probe(
        replace(_result(True, Cause.OK, 200, Phases(total=0.1)), redirects=redirects)
    )
    assert _sample(registry, "probe_http_redirects", **EDGE) == redirects


@pytest.mark.parametrize(
    ("peer_ip", "protocol"),
    [
        pytest.param("203.0.113.10", 4, id="ipv4"),
        pytest.param("2001:db8::1", 6, id="ipv6"),
        pytest.param(None, 0, id="never-connected"),
    ],
)
def test_ip_protocol(peer_ip: str | None, protocol: int) -> None:
    registry = CollectorRegistry()
    result = replace(_result(True, Cause.OK, 200, Phases(total=0.1)), peer_ip=peer_ip)
    Metrics(registry).observe_probe(result)
    assert _sample(registry, "probe_ip_protocol", **EDGE, kind="http") == protocol


def test_dns_lookup_time_and_cert_expiry_from_the_round_start() -> None:
    registry = CollectorRegistry()
    result = replace(
        _result(True, Cause.OK, 200, Phases(resolve=0.004, total=0.1)),
        cert_not_after=T0 + timedelta(days=3),
    )
    Metrics(registry).observe_probe(result)
    assert _sample(registry, "probe_dns_lookup_time_seconds", **EDGE, kind="http") == 0.004
    assert _sample(registry, "monitor_cert_expiry_seconds", **EDGE) == 3 * 86400


def test_check_duration_histogram_takes_answered_probes_phase_by_phase() -> None:
    registry = CollectorRegistry()
    metrics = Metrics(registry)
    answered = _result(True, Cause.OK, 200, Phases(None, 0.002, None, 0.04, 0.003, 0.05))
    metrics.observe_probe(answered)
    metrics.observe_probe(replace(answered, status=503, ok=False, cause=Cause.SERVER_ERROR))
    metrics.observe_probe(_result(False, Cause.CONNECT_REFUSED, None, Phases(total=0.001)))
    edge = {"monitor": "shop", "role": "edge"}
    counts = {
        phase: _sample(registry, "monitor_check_duration_seconds_count", **edge, phase=phase)
        for phase in ("resolve", "connect", "tls", "processing", "transfer", "total")
    }
    # Connect, time to first byte and total only (each phase costs a site 15 series); the
    # refused connection is no latency at all.
    assert counts == {
        "resolve": None,
        "connect": 2,
        "tls": None,
        "processing": 2,
        "transfer": None,
        "total": 2,
    }
    within_50ms = _sample(
        registry, "monitor_check_duration_seconds_bucket", **edge, phase="total", le="0.05"
    )
    assert within_50ms == 2


@pytest.mark.parametrize(
    ("state", "up"),
    [
        pytest.param("up", 1, id="up"),
        pytest.param("degraded", 1, id="degraded"),
        pytest.param("maintenance", 1, id="maintenance"),
        pytest.param("down", 0, id="down"),
        pytest.param("unknown", None, id="unknown"),
    ],
)
def test_observe_state_is_one_hot(state: str, up: int | None) -> None:
    registry = CollectorRegistry()
    metrics = Metrics(registry)
    metrics.observe_state("shop", "down", "origin_fault")
    metrics.observe_state("shop", state, "up")
    assert _sample(registry, "monitor_up", monitor="shop") == up
    states = {s: _sample(registry, "monitor_state", monitor="shop", state=s) for s in STATES}
    assert states == {s: 1 if s == state else 0 for s in STATES}
    verdicts = {
        v: _sample(registry, "monitor_verdict", monitor="shop", verdict=v) for v in VERDICTS
    }
    assert verdicts == {v: 1 if v == "up" else 0 for v in VERDICTS}


def test_observe_state_refuses_names_outside_the_closed_sets() -> None:
    metrics = Metrics(CollectorRegistry())
    with pytest.raises(ValueError, match="flapping"):
        metrics.observe_state("shop", "flapping", "up")
    with pytest.raises(ValueError, match="broken"):
        metrics.observe_state("shop", "up", "broken")


def test_trend_incident_alert_and_outbox_series() -> None:
    registry = CollectorRegistry()
    metrics = Metrics(registry)
    metrics.observe_trend("shop", "origin", "origin-1", "processing", 0.08, 2.5)
    metrics.set_incidents_open(3)
    metrics.observe_alert("slack", "opened", "sent")
    metrics.observe_alert("slack", "opened", "sent")
    metrics.set_outbox_pending(4)
    where = {"monitor": "shop", "role": "origin", "origin": "origin-1", "phase": "processing"}
    assert _sample(registry, "monitor_latency_baseline_seconds", **where) == 0.08
    assert _sample(registry, "monitor_latency_ratio", **where) == 2.5
    assert _sample(registry, "monitor_incidents_open") == 3
    alert = {"notifier": "slack", "event": "opened", "outcome": "sent"}
    assert _sample(registry, "monitor_alerts_total", **alert) == 2
    assert _sample(registry, "monitor_outbox_pending") == 4


def test_config_reloaded_keeps_the_time_of_the_last_success() -> None:
    registry = CollectorRegistry()
    metrics = Metrics(registry)
    assert _sample(registry, "monitor_config_last_reload_successful") == 0
    before = time.time()
    metrics.config_reloaded(True)
    loaded = _sample(registry, "monitor_config_last_reload_success_timestamp_seconds")
    assert loaded is not None
    assert before <= loaded <= time.time()
    assert _sample(registry, "monitor_config_last_reload_successful") == 1
    metrics.config_reloaded(False)
    assert _sample(registry, "monitor_config_last_reload_successful") == 0
    assert _sample(registry, "monitor_config_last_reload_success_timestamp_seconds") == loaded


def _feed_everything(metrics: Metrics, monitor: str) -> None:
    http = replace(
        _result(True, Cause.OK, 200, Phases(0.001, 0.002, None, 0.01, 0.003, 0.016)),
        monitor=monitor,
        cert_not_after=T0 + timedelta(days=30),
    )
    metrics.observe_probe(http)
    metrics.observe_probe(replace(http, role=Role.ORIGIN, origin="origin-1"))
    metrics.observe_probe(replace(http, kind=Kind.TLS))
    metrics.observe_state(monitor, "degraded", "degraded")
    metrics.observe_trend(monitor, "edge", "", "total", 0.016, 1.0)


def _monitors_in(registry: CollectorRegistry) -> set[str]:
    return {
        sample.labels["monitor"]
        for family in registry.collect()
        for sample in family.samples
        if "monitor" in sample.labels
    }


def test_forget_monitor_drops_every_series_of_that_monitor_only() -> None:
    registry = CollectorRegistry()
    metrics = Metrics(registry)
    _feed_everything(metrics, "shop")
    _feed_everything(metrics, "blog")
    metrics.forget_monitor("shop")
    assert _monitors_in(registry) == {"blog"}
    # Back in the config, it gets its series again, its state included.
    _feed_everything(metrics, "shop")
    assert _sample(registry, "monitor_state", monitor="shop", state="degraded") == 1
    assert _monitors_in(registry) == {"blog", "shop"}


def _series_count(registry: CollectorRegistry) -> int:
    return sum(len(family.samples) for family in registry.collect())


def test_urls_error_text_and_peers_never_add_series() -> None:
    registry = CollectorRegistry()
    metrics = Metrics(registry)
    failed = _result(False, Cause.CONNECT_TIMEOUT, None, Phases(0.001, total=5.0))

    def observe(attempt: int) -> None:
        metrics.observe_probe(
            replace(
                failed,
                target=f"http://shop.test/?attempt={attempt}",
                detail=f"timed out after 5.0 s connecting to 203.0.113.{attempt}",
                peer_ip=f"203.0.113.{attempt}",
            )
        )

    observe(0)
    after_first = _series_count(registry)
    for attempt in range(1, 20):
        observe(attempt)
    assert _series_count(registry) == after_first
