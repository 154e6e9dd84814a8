"""Pure: a round's results in, a verdict out — which layer failed, why, what to look at.

This first version compares the edge with the origins and names the layer from the
causes; recognising the error pages of caches and CDNs comes with the signatures.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from enum import StrEnum

from monitor.models import Cause, Kind, ProbeResult, Role


class Layer(StrEnum):
    NONE = ""
    DNS = "dns"
    NETWORK = "network"
    TLS = "tls"
    EDGE = "edge"
    ORIGIN = "origin"
    APP = "app"


class Verdict(StrEnum):
    UP = "up"
    DEGRADED = "degraded"
    EDGE_FAULT = "edge_fault"
    ORIGIN_FAULT = "origin_fault"
    DNS_FAULT = "dns_fault"
    NETWORK_FAULT = "network_fault"
    TLS_FAULT = "tls_fault"
    DOWN = "down"


@dataclass(frozen=True, slots=True)
class Diagnosis:
    verdict: Verdict
    cause: Cause
    layer: Layer
    hint: str


_LAYER_OF_CAUSE = {
    Cause.DNS_NXDOMAIN: Layer.DNS,
    Cause.DNS_TIMEOUT: Layer.DNS,
    Cause.DNS_ERROR: Layer.DNS,
    Cause.CONNECT_REFUSED: Layer.NETWORK,
    Cause.CONNECT_TIMEOUT: Layer.NETWORK,
    Cause.NETWORK_UNREACHABLE: Layer.NETWORK,
    Cause.TLS_HANDSHAKE: Layer.TLS,
    Cause.TLS_CERT_EXPIRED: Layer.TLS,
    Cause.TLS_CERT_INVALID: Layer.TLS,
    Cause.TLS_CERT_EXPIRING: Layer.TLS,
    Cause.PACKET_LOSS: Layer.NETWORK,
}
_VERDICT_OF_LAYER = {
    Layer.DNS: Verdict.DNS_FAULT,
    Layer.NETWORK: Verdict.NETWORK_FAULT,
    Layer.TLS: Verdict.TLS_FAULT,
}
_HINTS = {
    Layer.DNS: "check the DNS records and the resolvers (dig the name at each one)",
    Layer.NETWORK: "check that the server runs and listens, and firewalls on the path",
    Layer.TLS: "check the certificate (expiry, names, chain) and the TLS settings",
}


def diagnose(results: Sequence[ProbeResult]) -> Diagnosis:
    """The verdict of one round, comparing the edge with the origins."""
    edge = next((r for r in results if r.role is Role.EDGE and r.kind is Kind.HTTP), None)
    origins = [r for r in results if r.role is Role.ORIGIN and r.kind is Kind.HTTP]
    failing_origin = next((r for r in origins if not r.ok), None)
    if edge is not None and not edge.ok:
        return _edge_failing(edge, origins, failing_origin)
    if failing_origin is not None:
        hint = f"origin {failing_origin.origin} fails behind a healthy edge: the cache hides it"
        return Diagnosis(Verdict.DEGRADED, failing_origin.cause, Layer.ORIGIN, hint)
    other = next((r for r in results if not r.ok), None)
    if other is not None:
        layer = _layer(other.cause, Layer.APP)
        hint = f"the {other.kind.value} check fails: {other.detail}"
        return Diagnosis(Verdict.DEGRADED, other.cause, layer, hint)
    return Diagnosis(Verdict.UP, Cause.OK, Layer.NONE, "")


def _edge_failing(
    edge: ProbeResult, origins: list[ProbeResult], failing_origin: ProbeResult | None
) -> Diagnosis:
    if origins and failing_origin is None:
        hint = (
            "the origins answer but the edge does not: check the CDN or cache config, "
            "the firewall between edge and origin, and the edge's route to the origin"
        )
        return Diagnosis(Verdict.EDGE_FAULT, edge.cause, _layer(edge.cause, Layer.EDGE), hint)
    if failing_origin is not None:
        hint = f"origin {failing_origin.origin} fails too: {_origin_hint(failing_origin.cause)}"
        return Diagnosis(Verdict.ORIGIN_FAULT, failing_origin.cause, Layer.ORIGIN, hint)
    layer = _layer(edge.cause, Layer.APP)
    verdict = _VERDICT_OF_LAYER.get(layer, Verdict.DOWN)
    hint = _HINTS.get(layer, "no origin is configured to compare with; look at the server")
    return Diagnosis(verdict, edge.cause, layer, hint)


def _origin_hint(cause: Cause) -> str:
    if cause is Cause.CONNECT_REFUSED:
        return "connection refused, the server is down or not listening"
    if cause in (Cause.TIMEOUT, Cause.CONNECT_TIMEOUT, Cause.READ_TIMEOUT):
        return "it does not answer in time, overloaded or hung"
    if _layer(cause, Layer.APP) is Layer.APP:
        return "it answers with an error, look at the application's logs"
    return _HINTS[_layer(cause, Layer.APP)]


def _layer(cause: Cause, otherwise: Layer) -> Layer:
    return _LAYER_OF_CAUSE.get(cause, otherwise)
