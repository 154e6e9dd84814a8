"""Pure: a round's results in, a verdict out — which layer failed, why, what to look at.

The edge (the site's URL, usually a CDN or cache) is compared with its origins probed in
the same round; each probe's cause already says who answered (see ``signatures``).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from enum import StrEnum

from monitor.judge.signatures import may_mean_timeout
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
# Who answered (a signature's first word, or a Server/Via header holding it), and the
# setting that bounds its wait for the backend's first byte.
_TIMEOUT_SETTINGS = (
    ("haproxy", "HAProxy", "timeout server"),
    ("apache", "Apache", "ProxyTimeout"),
    ("nginx", "nginx", "proxy_read_timeout"),
    ("caddy", "Caddy", "response_header_timeout"),
    ("varnish", "Varnish", "first_byte_timeout"),
)
# Origins failing so that nothing answers behind the edge: no origin says "maintenance".
_SILENT = frozenset(
    {
        Cause.DNS_NXDOMAIN,
        Cause.DNS_TIMEOUT,
        Cause.DNS_ERROR,
        Cause.CONNECT_REFUSED,
        Cause.CONNECT_TIMEOUT,
        Cause.NETWORK_UNREACHABLE,
        Cause.TIMEOUT,
    }
)
# What a server that was reached but gave no good answer needs, by how it failed.
_ANSWER_HINTS = {
    Cause.TIMEOUT: "it never answers (connected, but not a byte in time): hung or "
    "overloaded; look at its load, scale or restart it",
    Cause.READ_TIMEOUT: "its answer starts but does not finish in time: look at what "
    "produces the body (a slow query, a stuck dependency) and at its load",
    Cause.PROTOCOL_ERROR: "it does not answer in proper HTTP (closes the connection or "
    "sends a broken response): check what listens on that port and the server's logs",
    Cause.CONTENT_MISMATCH: "it answers, but not with what is expected: look at what the "
    "page says and at the last deploy",
    Cause.SLOW: "it answers, but slowly: look at its load, slow queries and dependencies",
}
_ERROR_HINT = "it answers with an error: look at the application's logs"


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
    if edge is not None and edge.cause is Cause.MAINTENANCE and not _silent(origins):
        return _maintenance(edge, evidence)
    if edge is not None and edge.cause is Cause.SLOW:
        return _slow_site(edge, origins, failing_origin, evidence)
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


def _silent(origins: list[ProbeResult]) -> bool:
    """Whether there are origins and none of them answers at all: a maintenance page in
    front of them hides an outage. Maintenance is what a configured window or an origin
    itself says."""
    return bool(origins) and all(o.cause in _SILENT for o in origins)


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
    if _layer(edge.cause, Layer.APP) is Layer.DNS:  # nobody reaches the site by its name
        return _dns_fault(edge, origins, evidence)
    if failing_origin is not None:
        name = failing_origin.origin
        summary = f"origin {name} fails ({_plain(failing_origin)}), so the edge fails too"
        if edge.cause is Cause.MAINTENANCE:
            summary = (
                f"origin {name} fails ({_plain(failing_origin)}) behind the edge's "
                f"maintenance page ({_plain(edge)}): an outage, not maintenance"
            )
        hint = f"origin {name}: {_origin_hint(failing_origin)}"
        return Diagnosis(
            Verdict.ORIGIN_FAULT, failing_origin.cause, Layer.ORIGIN, summary, hint, evidence
        )
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
    hint = _LAYER_HINTS.get(layer) or _answer_hint(edge.cause)
    return Diagnosis(verdict, edge.cause, layer, summary, hint, evidence)


def _dns_fault(
    edge: ProbeResult, origins: list[ProbeResult], evidence: tuple[str, ...]
) -> Diagnosis:
    """The edge's name does not resolve: a DNS fault, whatever the origins do (they fail
    on the same name when they are probed by it)."""
    by_name = [o for o in origins if _layer(o.cause, Layer.APP) is Layer.DNS]
    also = ""
    if by_name:
        every = len(by_name) == len(origins)
        also = "; every origin fails on DNS too" if every else "; some origins fail on DNS too"
    summary = f"the site's name does not resolve: {_plain(edge)}{also}"
    hint = _LAYER_HINTS[Layer.DNS]
    return Diagnosis(Verdict.DNS_FAULT, edge.cause, Layer.DNS, summary, hint, evidence)


def _slow_site(
    edge: ProbeResult,
    origins: list[ProbeResult],
    failing_origin: ProbeResult | None,
    evidence: tuple[str, ...],
) -> Diagnosis:
    """The site answered as expected, only later than ``max_latency``: degraded, never down;
    the origins say whether the slowness is theirs."""
    if failing_origin is not None:
        name = failing_origin.origin
        summary = (
            f"the site answers, but slowly ({_plain(edge)}), and origin {name} fails "
            f"({_plain(failing_origin)})"
        )
        hint = f"origin {name}: {_origin_hint(failing_origin)}"
        return Diagnosis(
            Verdict.DEGRADED, failing_origin.cause, Layer.ORIGIN, summary, hint, evidence
        )
    waited = edge.phases.total
    slow = [o for o in origins if o.phases.total >= 0.8 * waited]
    if slow:
        worst = max(slow, key=lambda o: o.phases.total)
        summary = (
            f"the site answers, but slowly: {_plain(edge)}; origin {worst.origin} takes "
            f"{worst.phases.total:.1f} s too"
        )
        hint = (
            f"the slowness is the origin's (origin {worst.origin}): look at its load, slow "
            "queries and dependencies"
        )
        return Diagnosis(Verdict.DEGRADED, Cause.SLOW, Layer.ORIGIN, summary, hint, evidence)
    summary = f"the site answers, but slowly: {_plain(edge)}"
    hint = "a latency ceiling is crossed: look at load, slow queries and dependencies"
    if origins:
        hint = (
            "a latency ceiling is crossed while the origins answer quickly: look at the "
            "edge's load, its cache hit rate and the path between edge and origin"
        )
    return Diagnosis(Verdict.DEGRADED, Cause.SLOW, Layer.EDGE, summary, hint, evidence)


def _too_slow_for_the_cache(edge: ProbeResult, origins: list[ProbeResult]) -> ProbeResult | None:
    """An origin whose first byte comes later than the edge waited before failing, unless
    the edge's error page names another failure: the page wins over the timing (HAProxy
    retries a dead server for seconds before "no server")."""
    if edge.status is None or edge.status < 500 or edge.phases.total < _WAITED:
        return None
    if not may_mean_timeout(edge.signature):  # the page says which failure it was
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
    proxy = _proxy(edge)
    if proxy is None:
        whose, raise_ = "the edge's timeout", "raise the edge's timeout for the origin"
    else:
        product, setting = proxy
        whose, raise_ = f"{product}'s {setting}", f"raise {product}'s {setting}"
    hint = (
        f"the origin needs {took:.1f} s to the first byte but {whose} is about {waited:.1f} s: "
        f"make the origin faster (scale it, check its database) or {raise_}"
    )
    return Diagnosis(Verdict.ORIGIN_FAULT, Cause.SLOW, Layer.ORIGIN, summary, hint, evidence)


def _proxy(edge: ProbeResult) -> tuple[str, str] | None:
    """The product that answered and its backend timeout setting: from the error page's
    signature, else the Server, Via or X-Varnish header; None when unknown."""
    said = [(edge.signature or "").split("-")[0]]
    said += [v.lower() for n, v in edge.headers if n.lower() in ("server", "via")]
    said += ["varnish" for n, _ in edge.headers if n.lower() == "x-varnish"]
    for text in said:
        for word, product, setting in _TIMEOUT_SETTINGS:
            if word in text:
                return product, setting
    return None


def _first_byte(result: ProbeResult) -> float:
    """Seconds from the start of the probe to the response's first byte."""
    phases = result.phases
    return sum(s or 0.0 for s in (phases.resolve, phases.connect, phases.tls, phases.processing))


def _origin_hint(origin: ProbeResult) -> str:
    cause = origin.cause
    if cause is Cause.CONNECT_REFUSED:
        return "it refuses connections: the server is down or not listening; start it"
    if cause is Cause.CONNECT_TIMEOUT:
        return "it does not accept connections in time: overloaded, hung or firewalled"
    layer = _layer(cause, Layer.APP)
    if layer is Layer.APP:
        return _answer_hint(cause)
    return _LAYER_HINTS[layer]


def _answer_hint(cause: Cause) -> str:
    """What to look at on a server that was reached but gave no good answer."""
    return _ANSWER_HINTS.get(cause, _ERROR_HINT)


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
