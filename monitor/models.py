"""Frozen values and closed enums shared by every part of the daemon."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum


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
    TIMEOUT = "timeout"  # connected, but no first byte in time
    READ_TIMEOUT = "read_timeout"  # headers came, the body did not finish in time
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
class Expect:
    """What a healthy answer looks like."""

    status: tuple[StatusRange, ...] = (StatusRange(200, 399),)
    body_contains: str | None = None

    def accepts_status(self, status: int) -> bool:
        return any(status in r for r in self.status)


@dataclass(frozen=True, slots=True)
class Origin:
    """A server behind the site's edge: an ``address`` (host:port) or its own ``url``."""

    name: str
    address: str | None = None
    url: str | None = None


@dataclass(frozen=True, slots=True)
class Site:
    """One monitored site, with every default already applied."""

    name: str
    url: str
    interval: float  # seconds
    timeout: float  # seconds, always shorter than interval
    expect: Expect = Expect()
    origins: tuple[Origin, ...] = ()


@dataclass(frozen=True, slots=True)
class Phases:
    """Seconds spent in each phase; ``None`` for a phase never reached or not measurable.

    ``connect`` includes the TLS handshake: aiohttp does not report where one ends and
    the other begins, so ``tls`` stays ``None`` for HTTP probes.
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
    status: int | None = None
    headers: tuple[tuple[str, str], ...] = ()  # only the headers that tell who answered
    peer_ip: str | None = None
    body: bytes = b""  # the first bytes of the body, bounded
    body_truncated: bool = False
    failed: tuple[str, ...] = ()  # names of failed expectations, e.g. ("status",)
    phases: Phases = field(default_factory=Phases)
