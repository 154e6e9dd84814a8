"""Pure: a round's results in, a verdict out — which layer failed, why, what to look at.

The edge (the site's URL, usually a CDN or cache) is compared with its origins probed in
the same round; each probe's cause already says who answered (see ``signatures``).
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
    MAINTENANCE = "maintenance"
    DOWN = "down"


@dataclass(frozen=True, slots=True)
class Diagnosis:
    verdict: Verdict
    cause: Cause
    layer: Layer
    summary: str  # one line in plain words: what is broken
    hint: str  # what to check first
    evidence: tuple[str, ...] = ()  # the statuses, pages, headers and timings that show it


_LAYER_OF_CAUSE = {
    Cause.DNS_NXDOMAIN: Layer.DNS,
    Cause.DNS_TIMEOUT: Layer.DNS,
    Cause.DNS_ERROR: Layer.DNS,
    Cause.CONNECT_REFUSED: Layer.NETWORK,
    Cause.CONNECT_TIMEOUT: Layer.NETWORK,
    Cause.NETWORK_UNREACHABLE: Layer.NETWORK,
    Cause.PACKET_LOSS: Layer.NETWORK,
    Cause.TLS_HANDSHAKE: Layer.TLS,
    Cause.TLS_CERT_EXPIRED: Layer.TLS,
    Cause.TLS_CERT_INVALID: Layer.TLS,
    Cause.TLS_CERT_EXPIRING: Layer.TLS,
}
_VERDICT_OF_LAYER = {
    Layer.DNS: Verdict.DNS_FAULT,
    Layer.NETWORK: Verdict.NETWORK_FAULT,
    Layer.TLS: Verdict.TLS_FAULT,
}
_LAYER_HINTS = {
    Layer.DNS: "check the DNS records and the resolvers (dig the name at each one)",
    Layer.NETWORK: "check that the server runs and listens, and the firewalls on the path",
    Layer.TLS: "check the certificate (expiry, names, chain) and the TLS settings; renew it "
    "if it expires",
}
_EDGE_HINTS = {
    Cause.BACKEND_FETCH_FAILED: "the cache cannot fetch from an origin that answers us: check "
    "the cache's backend definition (address, port, Host), its health probes, and the "
    "firewall between cache and origin",
    Cause.CDN_ORIGIN_ERROR: "the CDN cannot reach an origin that answers us: let the CDN's "
    "IP ranges through the origin's firewall and check the CDN's origin settings (host, "
    "port, TLS mode)",
}
_EDGE_HINT = (
    "the origins answer but the edge does not: check the CDN or cache config, the firewall "
    "between edge and origin, and the edge's route to the origin"
)
# The cache waited at least this long before giving up: its first-byte timeout, not a refusal.
_WAITED = 0.5


def diagnose(results: Sequence[ProbeResult], window: str | None = None) -> Diagnosis:
    """The verdict of one round, comparing the edge with the origins; ``window`` names the
    configured maintenance window the monitor is in, if any."""
    edge = next((r for r in results if r.role is Role.EDGE and r.kind is Kind.HTTP), None)
    origins = [r for r in results if r.role is Role.ORIGIN and r.kind is Kind.HTTP]
    evidence = tuple(_evidence(r) for r in results if not r.ok)
    failing_origin = next((r for r in origins if not r.ok), None)
    if window is not None and evidence:
        summary = f"inside the maintenance window {window}: failures are expected"
        hint = "planned maintenance: no page; check the site comes back when the window ends"
        cause = next(r.cause for r in results if not r.ok)
        return Diagnosis(Verdict.MAINTENANCE, cause, Layer.APP, summary, hint, evidence)
    if edge is not None and edge.cause is Cause.MAINTENANCE:
        return _maintenance(edge, evidence)
    if edge is not None and not edge.ok:
        return _edge_failing(edge, origins, failing_origin, evidence)
    if failing_origin is not None:
        name = failing_origin.origin
        summary = f"the site answers, but origin {name} fails ({_plain(failing_origin)})"
        hint = f"the cache is hiding an origin fault: {_origin_hint(failing_origin)}"
        return Diagnosis(
            Verdict.DEGRADED, failing_origin.cause, Layer.ORIGIN, summary, hint, evidence
        )
    other = next((r for r in results if not r.ok), None)
    if other is not None and edge is None:  # a stand-alone check: it is all there is
        layer = _layer(other.cause, Layer.APP)
        summary = f"the {other.kind.value} check fails ({_plain(other)})"
        hint = _LAYER_HINTS.get(layer, "look at what the check reports")
        verdict = _VERDICT_OF_LAYER.get(layer, Verdict.DOWN)
        return Diagnosis(verdict, other.cause, layer, summary, hint, evidence)
    if other is not None:
        layer = _layer(other.cause, Layer.APP)
        summary = f"the site answers, but its {other.kind.value} check fails ({_plain(other)})"
        hint = _LAYER_HINTS.get(layer, "look at what the check reports")
        return Diagnosis(Verdict.DEGRADED, other.cause, layer, summary, hint, evidence)
    return Diagnosis(Verdict.UP, Cause.OK, Layer.NONE, "every probe answered as expected", "")


def _maintenance(edge: ProbeResult, evidence: tuple[str, ...]) -> Diagnosis:
    summary = f"down for maintenance: {_plain(edge)}"
    hint = "planned maintenance (503 with Retry-After): no page; check it ends when announced"
    return Diagnosis(Verdict.MAINTENANCE, Cause.MAINTENANCE, Layer.APP, summary, hint, evidence)


def _edge_failing(
    edge: ProbeResult,
    origins: list[ProbeResult],
    failing_origin: ProbeResult | None,
    evidence: tuple[str, ...],
) -> Diagnosis:
    if failing_origin is not None:
        name = failing_origin.origin
        summary = f"origin {name} fails ({_plain(failing_origin)}), so the edge fails too"
        hint = f"origin {name}: {_origin_hint(failing_origin)}"
        return Diagnosis(
            Verdict.ORIGIN_FAULT, failing_origin.cause, Layer.ORIGIN, summary, hint, evidence
        )
    if edge.cause is Cause.SLOW:  # answered as expected, only later than max_latency
        summary = f"the site answers, but slowly: {_plain(edge)}"
        hint = "a latency ceiling is crossed: look at load, slow queries and dependencies"
        return Diagnosis(Verdict.DEGRADED, Cause.SLOW, Layer.EDGE, summary, hint, evidence)
    slow = _too_slow_for_the_cache(edge, origins)
    if slow is not None:
        return _slow_origin(edge, slow, evidence)
    layer = _layer(edge.cause, Layer.EDGE if origins else Layer.APP)
    if origins and layer is Layer.EDGE:
        summary = f"the edge fails ({_plain(edge)}) while every origin answers"
        hint = _EDGE_HINTS.get(edge.cause, _EDGE_HINT)
        return Diagnosis(Verdict.EDGE_FAULT, edge.cause, layer, summary, hint, evidence)
    verdict = _VERDICT_OF_LAYER.get(layer, Verdict.EDGE_FAULT if origins else Verdict.DOWN)
    compared = "while every origin answers" if origins else "(no origin configured to compare)"
    summary = f"the site fails: {_plain(edge)} {compared}"
    hint = _LAYER_HINTS.get(layer, "look at the server's logs: it answers with an error")
    return Diagnosis(verdict, edge.cause, layer, summary, hint, evidence)


def _too_slow_for_the_cache(edge: ProbeResult, origins: list[ProbeResult]) -> ProbeResult | None:
    """An origin whose first byte comes later than the edge waited before failing."""
    if edge.status is None or edge.status < 500 or edge.phases.total < _WAITED:
        return None
    waited = edge.phases.total
    slow = [o for o in origins if _first_byte(o) >= waited * 0.9]
    return max(slow, key=_first_byte, default=None)


def _slow_origin(edge: ProbeResult, origin: ProbeResult, evidence: tuple[str, ...]) -> Diagnosis:
    waited, took = edge.phases.total, _first_byte(origin)
    summary = (
        f"origin {origin.origin} is too slow for the cache: its first byte takes {took:.1f} s, "
        f"the edge gave up after {waited:.1f} s ({_plain(edge)})"
    )
    hint = (
        f"the origin needs {took:.1f} s to the first byte but the cache's first-byte timeout "
        f"is about {waited:.1f} s: make the origin faster (scale it, check its database) or "
        "raise the cache's first_byte_timeout"
    )
    return Diagnosis(Verdict.ORIGIN_FAULT, Cause.SLOW, Layer.ORIGIN, summary, hint, evidence)


def _first_byte(result: ProbeResult) -> float:
    """Seconds from the start of the probe to the response's first byte."""
    phases = result.phases
    return sum(s or 0.0 for s in (phases.resolve, phases.connect, phases.tls, phases.processing))


def _origin_hint(origin: ProbeResult) -> str:
    cause = origin.cause
    if cause is Cause.CONNECT_REFUSED:
        return "it refuses connections: the server is down or not listening; start it"
    if cause in (Cause.TIMEOUT, Cause.CONNECT_TIMEOUT, Cause.READ_TIMEOUT):
        return "it does not answer in time: overloaded or hung; scale or restart it"
    layer = _layer(cause, Layer.APP)
    if layer is Layer.APP:
        return "it answers with an error: look at the application's logs"
    return _LAYER_HINTS[layer]


def _plain(result: ProbeResult) -> str:
    return result.detail or result.cause.value.replace("_", " ")


_TELLING = ("server", "via", "x-cache", "x-varnish", "cf-ray", "x-served-by", "retry-after")


def _evidence(result: ProbeResult) -> str:
    who = "edge" if result.role is Role.EDGE else f"origin {result.origin}"
    kind = "" if result.kind is Kind.HTTP else f" {result.kind.value}"
    headers = ", ".join(f"{n.lower()}: {v}" for n, v in result.headers if n.lower() in _TELLING)
    shown = f" [{headers}]" if headers else ""
    return f"{who}{kind}: {_plain(result)}{shown} after {result.phases.total:.2f} s"


def _layer(cause: Cause, otherwise: Layer) -> Layer:
    return _LAYER_OF_CAUSE.get(cause, otherwise)
