"""Frozen values and closed enums shared by every part of the daemon."""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from datetime import datetime
from enum import StrEnum


class Kind(StrEnum):
    """What sort of probe produced a result."""

    HTTP = "http"
    DNS = "dns"
    TCP = "tcp"
    TLS = "tls"
    ICMP = "icmp"


class IpVersion(StrEnum):
    """Which address family to connect over when a name has both."""

    ANY = "any"
    V4 = "4"
    V6 = "6"


class Role(StrEnum):
    """Which side of a site a probe looked at."""

    EDGE = "edge"
    ORIGIN = "origin"


class Cause(StrEnum):
    """Why a probe failed (or ``ok``). A closed set: a public interface."""

    OK = "ok"
    DNS_NXDOMAIN = "dns_nxdomain"
    DNS_TIMEOUT = "dns_timeout"
    DNS_ERROR = "dns_error"
    CONNECT_REFUSED = "connect_refused"
    CONNECT_TIMEOUT = "connect_timeout"
    NETWORK_UNREACHABLE = "network_unreachable"
    TLS_HANDSHAKE = "tls_handshake"
    TLS_CERT_EXPIRED = "tls_cert_expired"
    TLS_CERT_INVALID = "tls_cert_invalid"
    TLS_CERT_EXPIRING = "tls_cert_expiring"  # valid, but expires sooner than configured
    TIMEOUT = "timeout"  # connected, but no first byte in time
    READ_TIMEOUT = "read_timeout"  # bytes came, the head or the body did not finish in time
    PROTOCOL_ERROR = "protocol_error"
    CLIENT_ERROR = "client_error"
    RATE_LIMITED = "rate_limited"
    SERVER_ERROR = "server_error"
    BAD_GATEWAY = "bad_gateway"
    GATEWAY_TIMEOUT = "gateway_timeout"
    SERVICE_UNAVAILABLE = "service_unavailable"
    BACKEND_FETCH_FAILED = "backend_fetch_failed"
    CDN_ORIGIN_ERROR = "cdn_origin_error"
    MAINTENANCE = "maintenance"
    UNEXPECTED_STATUS = "unexpected_status"  # a non-error status the config does not accept
    CONTENT_MISMATCH = "content_mismatch"
    SLOW = "slow"
    PACKET_LOSS = "packet_loss"  # more pings lost than configured
    NOT_PERMITTED = "not_permitted"  # this host does not let the daemon probe so (raw ICMP)


PHASES = ("resolve", "connect", "tls", "processing", "transfer")
"""HTTP phases in the order a request passes through them (as blackbox_exporter names them)."""


@dataclass(frozen=True, slots=True)
class StatusRange:
    """An inclusive range of accepted HTTP status codes; a single code is ``low == high``."""

    low: int
    high: int

    def __contains__(self, status: object) -> bool:
        return isinstance(status, int) and self.low <= status <= self.high


@dataclass(frozen=True, slots=True)
class JsonExpect:
    """A value in a JSON body: ``path`` like ``data.items[0].state``; equal to or matching."""

    path: str
    equals: object = None  # any JSON value; compared when ``matches`` is None
    matches: str | None = None  # a regular expression for the value's text


@dataclass(frozen=True, slots=True)
class Expect:
    """What a healthy answer looks like; each field is one named expectation."""

    status: tuple[StatusRange, ...] = (StatusRange(200, 399),)
    body_contains: str | None = None
    body_not_contains: str | None = None
    body_matches: str | None = None  # a regular expression searched in the body
    json: tuple[JsonExpect, ...] = ()
    headers: tuple[tuple[str, str], ...] = ()  # (header name, regular expression)
    max_latency: float | None = None  # seconds, over the probe's total

    def accepts_status(self, status: int) -> bool:
        return any(status in r for r in self.status)


@dataclass(frozen=True, slots=True)
class HttpRequest:
    """How to ask: everything about the request except where it goes."""

    method: str = "GET"
    headers: tuple[tuple[str, str], ...] = ()
    body: str | None = None
    follow_redirects: bool = False
    max_redirects: int = 10
    basic_auth: tuple[str, str] | None = None  # (user, password)
    bearer_token: str | None = None
    ip_version: IpVersion = IpVersion.ANY
    proxy: str | None = None  # http://host:port


@dataclass(frozen=True, slots=True)
class Origin:
    """A server behind the site's edge.

    With ``address`` (``host``, ``host:port`` or ``[v6]:port``) the probe connects there
    but sends the site's Host header and TLS SNI, and verifies the certificate against the
    site's name, or ``tls_verify_name``; ``tls_verify=False`` turns verification off.
    With ``url`` the origin's own health endpoint is probed as it is.
    """

    name: str
    address: str | None = None
    url: str | None = None
    tls_verify_name: str | None = None
    tls_verify: bool = True


@dataclass(frozen=True, slots=True)
class DnsCheck:
    """Resolve ``query`` (a ``record`` type) at each resolver and compare the answers."""

    query: str
    record: str = "A"  # A, AAAA, CNAME, MX, NS, TXT
    resolvers: tuple[str, ...] = ()  # "ip" or "ip:port"; empty: the system's resolver
    expect: tuple[str, ...] = ()  # the exact set of answers; empty: any answer at all


@dataclass(frozen=True, slots=True)
class TcpCheck:
    """Connect to ``host:port``; optionally send bytes and expect text in the reply."""

    host: str
    port: int
    send: str | None = None
    expect_reply: str | None = None


@dataclass(frozen=True, slots=True)
class TlsCheck:
    """Handshake with ``host:port`` and judge the certificate and protocol."""

    host: str
    port: int = 443
    server_name: str | None = None  # SNI and the name verified; default: host
    verify: bool = True
    min_days: float = 14.0  # fail when the certificate expires sooner
    min_version: str | None = None  # "TLSv1.2" or "TLSv1.3"


@dataclass(frozen=True, slots=True)
class IcmpCheck:
    """Ping ``host`` ``count`` times; judge loss and round-trip time."""

    host: str
    count: int = 3
    max_loss: float = 0.0  # fraction of pings that may be lost, 0.0-1.0
    max_rtt: float | None = None  # seconds, average round trip


CheckSpec = DnsCheck | TcpCheck | TlsCheck | IcmpCheck


@dataclass(frozen=True, slots=True)
class Site:
    """One monitored site, with every default already applied."""

    name: str
    url: str
    interval: float  # seconds
    timeout: float  # seconds, always shorter than interval
    expect: Expect = Expect()
    request: HttpRequest = HttpRequest()
    origins: tuple[Origin, ...] = ()
    checks: tuple[CheckSpec, ...] = ()  # extra checks of the site (tls, dns, tcp, icmp)
    # Derived, once per Site (at config load), never per round: what an origin's answer
    # must meet. ``expect.max_latency`` is what the site's users may wait, so it judges
    # the edge alone: an origin answering 200 slowly is still an origin that works (its
    # latency is the trends' business); failing it turned a slow site into a *down*
    # ``origin_fault`` (issue #21).
    origin_expect: Expect = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        behind = self.expect
        if behind.max_latency is not None:
            behind = replace(behind, max_latency=None)
        object.__setattr__(self, "origin_expect", behind)


@dataclass(frozen=True, slots=True)
class Check:
    """A stand-alone check of another kind (the ``checks:`` list of the config)."""

    name: str
    interval: float
    timeout: float
    spec: CheckSpec


@dataclass(frozen=True, slots=True)
class HttpTarget:
    """What one HTTP probe looks at: the site's edge, or one of its origins."""

    site: Site
    origin: Origin | None = None

    @property
    def expect(self) -> Expect:
        """What the answer must meet: the site's expectations at the edge, all but its
        latency ceiling at an origin (``Site.origin_expect``)."""
        return self.site.expect if self.origin is None else self.site.origin_expect


Monitor = Site | Check
"""Anything the scheduler fires: a site (with its origins) or a stand-alone check."""


@dataclass(frozen=True, slots=True)
class Phases:
    """Seconds spent in each phase; ``None`` for a phase never reached or not measurable.

    ``connect`` is the TCP connect alone; ``tls`` is the TLS handshake (``None`` for plain
    HTTP), as blackbox_exporter splits them.
    """

    resolve: float | None = None
    connect: float | None = None
    tls: float | None = None
    processing: float | None = None
    transfer: float | None = None
    total: float = 0.0

    def items(self) -> tuple[tuple[str, float | None], ...]:
        return tuple((name, getattr(self, name)) for name in PHASES)


@dataclass(frozen=True, slots=True)
class ProbeResult:
    """What one probe of one target saw. Failures are values here, never exceptions."""

    monitor: str
    role: Role
    origin: str | None  # the origin's name when role is ORIGIN
    time: datetime  # when the round started (UTC), given by the runner
    ok: bool
    cause: Cause
    detail: str = ""  # one human line: what went wrong, or "" when ok
    kind: Kind = Kind.HTTP
    target: str = ""  # what was probed, for people: a URL, host:port, "A shop.test @ 127.0.0.1"
    status: int | None = None
    headers: tuple[tuple[str, str], ...] = ()  # only the headers that tell who answered
    peer_ip: str | None = None
    peer_port: int | None = None
    body: bytes = b""  # the first bytes of the body, bounded
    body_truncated: bool = False
    failed: tuple[str, ...] = ()  # names of failed expectations, e.g. ("status",)
    signature: str | None = None  # a known error page (monitor.judge.signatures) that decided cause
    phases: Phases = field(default_factory=Phases)
    tls_version: str | None = None  # e.g. "TLSv1.3", when a TLS handshake completed
    cert_not_after: datetime | None = None  # the peer certificate's expiry (UTC)
    answers: tuple[str, ...] = ()  # DNS answers; ICMP round trips; a TCP reply's first line
    redirects: int = 0  # HTTP redirects followed


@dataclass(frozen=True, slots=True)
class ProbeContext:
    """Who a probe works for: the labels and clock its result carries, and its time limit."""

    monitor: str
    role: Role
    origin: str | None
    time: datetime
    timeout: float
