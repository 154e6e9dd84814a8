"""The verdict of a round, from the edge and origins, as a table of cases."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from monitor.diagnose import Layer, Verdict, diagnose
from monitor.models import Cause, Kind, ProbeResult, Role

T0 = datetime(2026, 11, 20, 12, 0, tzinfo=UTC)


def _edge(cause: Cause, kind: Kind = Kind.HTTP) -> ProbeResult:
    return ProbeResult(
        monitor="shop",
        role=Role.EDGE,
        origin=None,
        time=T0,
        ok=cause is Cause.OK,
        cause=cause,
        kind=kind,
        detail="d",
    )


def _origin(cause: Cause, name: str = "o1") -> ProbeResult:
    return ProbeResult(
        monitor="shop", role=Role.ORIGIN, origin=name, time=T0, ok=cause is Cause.OK, cause=cause
    )


OK = Cause.OK


@pytest.mark.parametrize(
    ("results", "verdict", "cause", "layer"),
    [
        pytest.param([_edge(OK)], Verdict.UP, OK, Layer.NONE, id="edge-alone-up"),
        pytest.param([_edge(OK), _origin(OK)], Verdict.UP, OK, Layer.NONE, id="all-up"),
        pytest.param(
            [_edge(OK), _origin(Cause.CONNECT_REFUSED)],
            Verdict.DEGRADED,
            Cause.CONNECT_REFUSED,
            Layer.ORIGIN,
            id="cache-hides-origin-fault",
        ),
        pytest.param(
            [_edge(Cause.SERVICE_UNAVAILABLE), _origin(OK)],
            Verdict.EDGE_FAULT,
            Cause.SERVICE_UNAVAILABLE,
            Layer.EDGE,
            id="edge-5xx-origin-ok",
        ),
        pytest.param(
            [_edge(Cause.SERVICE_UNAVAILABLE), _origin(OK), _origin(OK, "o2")],
            Verdict.EDGE_FAULT,
            Cause.SERVICE_UNAVAILABLE,
            Layer.EDGE,
            id="edge-5xx-all-origins-ok",
        ),
        pytest.param(
            [_edge(Cause.DNS_NXDOMAIN), _origin(OK)],
            Verdict.EDGE_FAULT,
            Cause.DNS_NXDOMAIN,
            Layer.DNS,
            id="edge-name-gone-origin-ok",
        ),
        pytest.param(
            [_edge(Cause.BAD_GATEWAY), _origin(Cause.CONNECT_REFUSED)],
            Verdict.ORIGIN_FAULT,
            Cause.CONNECT_REFUSED,
            Layer.ORIGIN,
            id="both-failing-says-origin-cause",
        ),
        pytest.param(
            [_edge(Cause.GATEWAY_TIMEOUT), _origin(OK), _origin(Cause.TIMEOUT, "o2")],
            Verdict.ORIGIN_FAULT,
            Cause.TIMEOUT,
            Layer.ORIGIN,
            id="one-origin-hung",
        ),
        pytest.param(
            [_edge(Cause.DNS_NXDOMAIN)],
            Verdict.DNS_FAULT,
            Cause.DNS_NXDOMAIN,
            Layer.DNS,
            id="no-origin-dns",
        ),
        pytest.param(
            [_edge(Cause.CONNECT_REFUSED)],
            Verdict.NETWORK_FAULT,
            Cause.CONNECT_REFUSED,
            Layer.NETWORK,
            id="no-origin-refused",
        ),
        pytest.param(
            [_edge(Cause.TLS_CERT_EXPIRED)],
            Verdict.TLS_FAULT,
            Cause.TLS_CERT_EXPIRED,
            Layer.TLS,
            id="no-origin-tls",
        ),
        pytest.param(
            [_edge(Cause.SERVER_ERROR)],
            Verdict.DOWN,
            Cause.SERVER_ERROR,
            Layer.APP,
            id="no-origin-5xx",
        ),
        pytest.param(
            [_edge(OK), _edge(Cause.TLS_CERT_INVALID, Kind.TLS)],
            Verdict.DEGRADED,
            Cause.TLS_CERT_INVALID,
            Layer.TLS,
            id="site-up-certificate-check-fails",
        ),
    ],
)
def test_verdict(results: list[ProbeResult], verdict: Verdict, cause: Cause, layer: Layer) -> None:
    diagnosis = diagnose(results)
    assert (diagnosis.verdict, diagnosis.cause, diagnosis.layer) == (verdict, cause, layer)
    assert bool(diagnosis.hint) == (verdict is not Verdict.UP)


def test_origin_fault_hint_names_the_origin_and_what_refused_means() -> None:
    diagnosis = diagnose([_edge(Cause.BAD_GATEWAY), _origin(Cause.CONNECT_REFUSED, "db-1")])
    assert "db-1" in diagnosis.hint
    assert "down or not listening" in diagnosis.hint
