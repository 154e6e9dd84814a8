"""What a round probes: the edge, each origin, the site's checks, TLS at each origin."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest

from monitor.engine.plan import plan_round
from monitor.engine.runner import probe_round
from monitor.models import (
    Cause,
    Check,
    DnsCheck,
    Expect,
    HttpRequest,
    HttpTarget,
    IcmpCheck,
    Origin,
    ProbeContext,
    ProbeResult,
    Role,
    Site,
    TcpCheck,
    TlsCheck,
)
from monitor.probes import PROBES, Clients, make_clients

T0 = datetime(2026, 11, 20, 12, 0, tzinfo=UTC)
O1 = Origin(name="o1", address="203.0.113.10:8443", tls_verify_name="o1.internal")
O2 = Origin(name="o2", url="http://203.0.113.11/health")
O3 = Origin(name="o3", address="[2001:db8::1]", tls_verify=False)
SITE = Site(
    name="shop",
    url="https://shop.test/",
    interval=30.0,
    timeout=5.0,
    origins=(O1, O2, O3),
    checks=(TlsCheck(host="shop.test", min_days=21.0), TcpCheck(host="shop.test", port=22)),
)


def _summary(monitor: Site | Check) -> list[tuple[str, str | None, object]]:
    return [(p.ctx.role.value, p.ctx.origin, p.spec) for p in plan_round(monitor, T0)]


def test_a_site_round_probes_edge_origins_checks_and_origin_certificates() -> None:
    assert _summary(SITE) == [
        ("edge", None, HttpTarget(SITE)),
        ("origin", "o1", HttpTarget(SITE, O1)),
        ("origin", "o2", HttpTarget(SITE, O2)),
        ("origin", "o3", HttpTarget(SITE, O3)),
        ("edge", None, TlsCheck(host="shop.test", min_days=21.0)),
        # The site's certificate check at each address origin, named as the site.
        (
            "origin",
            "o1",
            TlsCheck(host="203.0.113.10", port=8443, server_name="o1.internal", min_days=21.0),
        ),
        (
            "origin",
            "o3",
            TlsCheck(
                host="2001:db8::1", port=443, server_name="shop.test", verify=False, min_days=21.0
            ),
        ),
        ("edge", None, TcpCheck(host="shop.test", port=22)),
    ]


def test_every_probe_of_a_round_shares_its_time_and_timeout() -> None:
    planned = plan_round(SITE, T0)
    assert {(p.ctx.time, p.ctx.timeout, p.ctx.monitor) for p in planned} == {(T0, 5.0, "shop")}
    assert all((p.ctx.role is Role.ORIGIN) == (p.ctx.origin is not None) for p in planned)


def test_a_stand_alone_check_is_one_probe() -> None:
    for spec in (DnsCheck(query="shop.test"), IcmpCheck(host="192.0.2.1")):
        check = Check(name="c", interval=60.0, timeout=3.0, spec=spec)
        [planned] = plan_round(check, T0)
        assert (planned.ctx.role, planned.ctx.origin, planned.spec) == (Role.EDGE, None, spec)
        assert planned.ctx.timeout == 3.0


@pytest.mark.parametrize(
    ("expect", "origin_expect"),
    [
        pytest.param(Expect(max_latency=2.0), Expect(), id="max-latency-edge-only"),
        pytest.param(
            Expect(body_contains="ok", max_latency=2.0),
            Expect(body_contains="ok"),
            id="other-expectations-kept",
        ),
        pytest.param(Expect(), Expect(), id="no-max-latency"),
    ],
)
def test_max_latency_judges_the_edge_not_the_origins(expect: Expect, origin_expect: Expect) -> None:
    """A site answering 200 in 3 s against max_latency 2s is slow, not down: an origin
    failing the edge's latency ceiling made it a down origin_fault (issue #21)."""
    site = replace(SITE, expect=expect, checks=())
    specs = [p.spec for p in plan_round(site, T0)]
    assert all(isinstance(s, HttpTarget) for s in specs)
    edge, *origins = [s for s in specs if isinstance(s, HttpTarget)]
    assert edge.expect == expect
    assert [o.expect for o in origins] == [origin_expect] * 3
    assert [o.origin for o in origins] == [O1, O2, O3]
    # Decided once for the site, not remade each round: no Site or Expect per round.
    assert all(o.site is site for o in origins)
    again = [p.spec for p in plan_round(site, T0 + timedelta(seconds=30))]
    assert all(isinstance(s, HttpTarget) and s.expect is origins[0].expect for s in again[1:])


def test_a_site_without_origins_or_checks_is_its_edge_alone() -> None:
    site = Site(name="blog", url="http://blog.test/", interval=10.0, timeout=2.0)
    assert _summary(site) == [("edge", None, HttpTarget(site))]


async def test_a_probe_that_raises_costs_the_round_only_its_own_result(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """A bug in one probe is logged; the round keeps the results of the others."""
    site = Site(
        name="shop",
        url="http://shop.test/",
        interval=10.0,
        timeout=1.0,
        origins=(Origin(name="o1", address="127.0.0.1:1"),),
    )

    async def edge_works_origin_crashes(
        clients: Clients, ctx: ProbeContext, spec: HttpTarget
    ) -> ProbeResult:
        if spec.origin is not None:
            raise RuntimeError("bug in the origin probe")
        return ProbeResult(
            monitor=ctx.monitor, role=ctx.role, origin=None, time=ctx.time, ok=True, cause=Cause.OK
        )

    monkeypatch.setitem(PROBES, HttpTarget, edge_works_origin_crashes)
    async with make_clients() as clients:
        results = await probe_round(clients, site, T0)
    assert [(r.role, r.cause) for r in results] == [(Role.EDGE, Cause.OK)]
    assert "bug in the origin probe" in caplog.text


async def test_a_probe_that_raises_is_logged_without_the_sites_secrets(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """A URL no client can fetch raises out of the probe (a bad config, not the site's
    failure); the log line names the monitor and its target, never the credentials."""
    site = Site(
        name="shop",
        url="ftp://ops:s3cret@shop.test/",
        interval=10.0,
        timeout=1.0,
        request=HttpRequest(bearer_token="t0ken", headers=(("X-Api-Key", "k3y"),)),
        origins=(Origin(name="o1", address="127.0.0.1:1"),),
    )
    async with make_clients() as clients:
        results = await probe_round(clients, site, T0)

    assert results == []
    assert "probe of shop (http ftp://***@shop.test/) failed" in caplog.text
    assert "probe of shop (origin o1, http ftp://***@shop.test/ via 127.0.0.1:1)" in caplog.text
    for secret in ("s3cret", "t0ken", "k3y"):
        assert secret not in caplog.text
