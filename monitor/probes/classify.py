"""The one place that says why an HTTP check failed: a response or an exception -> a cause.

Rules run from the most specific to the most general, so an aiohttp wrapper never hides
the socket or TLS error that says what really happened.
"""

from __future__ import annotations

import errno
import socket
import ssl
from dataclasses import dataclass
from typing import Any

import aiohttp

from monitor.judge.signatures import identify, is_maintenance
from monitor.models import Cause, Expect, Kind, ProbeContext, ProbeResult
from monitor.probes.expect import Answer, unmet
from monitor.probes.http import wire
from monitor.probes.phases import Stamps

# X509_V_ERR_CERT_HAS_EXPIRED from OpenSSL's x509_vfy.h; the ssl module has no name for it.
_CERT_HAS_EXPIRED = 10

_STATUS_CAUSES = {
    429: Cause.RATE_LIMITED,
    502: Cause.BAD_GATEWAY,
    503: Cause.SERVICE_UNAVAILABLE,
    504: Cause.GATEWAY_TIMEOUT,
}

_UNREACHABLE = {
    errno.ENETUNREACH: "network unreachable",
    errno.EHOSTUNREACH: "host unreachable",
}

_DETAIL_LIMIT = 160


class RedirectError(Exception):
    """A redirect the probe would not follow: too many of them, or to an unusable URL."""


@dataclass(frozen=True, slots=True)
class Outcome:
    """How one check ended (its cause, and why), ready to put on a ``ProbeResult``.

    Not :class:`monitor.judge.diagnose.Verdict`, which judges a whole round.
    """

    cause: Cause
    detail: str = ""
    failed: tuple[str, ...] = ()  # names of the failed expectations
    signature: str | None = None  # the known error page that decided the cause

    @property
    def ok(self) -> bool:
        return self.cause is Cause.OK

    def result(self, ctx: ProbeContext, kind: Kind, target: str, **facts: Any) -> ProbeResult:
        """The ProbeResult of this outcome: ``ctx``'s labels and time, plus what the probe
        saw (``facts``: status, phases, peer, answers ... as ProbeResult names them)."""
        return ProbeResult(
            monitor=ctx.monitor,
            role=ctx.role,
            origin=ctx.origin,
            time=ctx.time,
            ok=self.ok,
            cause=self.cause,
            detail=self.detail,
            failed=self.failed,
            signature=self.signature,
            kind=kind,
            target=target,
            **facts,
        )


def classify_response(answer: Answer, expect: Expect) -> Outcome:
    """Judge an answer the server did send, against what the site expects.

    A failed status decides the cause; else any failed content expectation makes it
    ``content_mismatch``; else only the latency failed: ``slow``. The detail names the
    first failure; ``failed`` names them all.
    """
    failures = unmet(answer, expect)
    if not failures:
        return Outcome(Cause.OK)
    first = failures[0]  # ``unmet`` lists status first and latency last
    names = tuple(failure.name for failure in failures)
    if first.name == "status":
        return _failed_status(answer, first.detail, names)
    cause = Cause.SLOW if first.name == "max_latency" else Cause.CONTENT_MISMATCH
    return Outcome(cause, first.detail, names)


def _failed_status(answer: Answer, detail: str, names: tuple[str, ...]) -> Outcome:
    """Who answered with the wrong status, and why: a cache's or CDN's own error page
    wins over ``Retry-After`` (Varnish sends one with its failure page)."""
    signature = identify(answer.status, answer.headers, answer.body)
    if signature is not None:
        said = f"{signature.says} (HTTP {answer.status})"
        return Outcome(signature.cause, said, names, signature.name)
    if is_maintenance(answer.status, answer.headers):
        retry = next(v for n, v in answer.headers if n.lower() == "retry-after")
        said = f"HTTP 503 with Retry-After: {retry}: down for maintenance, back later"
        return Outcome(Cause.MAINTENANCE, said, names)
    return Outcome(_status_cause(answer.status), detail, names)


def classify_exception(exc: Exception, stamps: Stamps, timeout: float) -> Outcome:
    """Translate what the HTTP client raised (aiohttp, or :mod:`monitor.probes.http.wire`) into
    a cause, using ``stamps`` to see how far it got."""
    root: Exception = exc
    where = ""
    if isinstance(exc, aiohttp.ClientConnectorError | wire.ConnectFailed):
        root, where = exc.os_error, f" ({exc.host}:{exc.port})"
    connected = stamps.connect_end is not None
    if isinstance(root, RedirectError):
        return Outcome(Cause.PROTOCOL_ERROR, str(root))
    if isinstance(root, ssl.SSLCertVerificationError):
        return _certificate(root)
    if isinstance(root, ssl.SSLError):
        reason = (root.reason or "").lower().replace("_", " ") or one_line(root)
        return Outcome(Cause.TLS_HANDSHAKE, f"TLS handshake failed: {reason}")
    if isinstance(root, socket.gaierror):
        return _dns(root, exc)
    if isinstance(root, TimeoutError):
        return _timeout(stamps, timeout)
    errno_ = root.errno if isinstance(root, OSError) else None
    if isinstance(root, ConnectionRefusedError) or errno_ == errno.ECONNREFUSED:
        return Outcome(Cause.CONNECT_REFUSED, f"connection refused{where}")
    if errno_ in _UNREACHABLE:
        return Outcome(Cause.NETWORK_UNREACHABLE, f"{_UNREACHABLE[errno_]}{where}")
    if isinstance(root, ConnectionResetError) or errno_ == errno.ECONNRESET:
        # A plain-HTTP connection is ready as soon as TCP connects, so a reset before it
        # is ready can only come from the TLS handshake.
        if not connected:
            return Outcome(Cause.TLS_HANDSHAKE, f"connection reset during TLS handshake{where}")
        return Outcome(Cause.PROTOCOL_ERROR, "connection reset by the server")
    if isinstance(root, aiohttp.ServerDisconnectedError | wire.Disconnected):
        return Outcome(Cause.PROTOCOL_ERROR, "server closed the connection without answering")
    if isinstance(root, aiohttp.ClientResponseError):
        return Outcome(Cause.PROTOCOL_ERROR, f"invalid HTTP response: {one_line(root.message)}")
    if isinstance(root, wire.BadResponse):
        return Outcome(Cause.PROTOCOL_ERROR, f"invalid HTTP response: {one_line(root)}")
    if isinstance(root, aiohttp.ClientPayloadError | wire.BrokenBody):
        return Outcome(Cause.PROTOCOL_ERROR, f"broken body: {one_line(root)}")
    # Anything else from the socket: the network if we never got a connection, else the
    # conversation with the server broke.
    if not connected:
        return Outcome(Cause.NETWORK_UNREACHABLE, f"cannot connect: {one_line(root)}{where}")
    return Outcome(Cause.PROTOCOL_ERROR, one_line(root))


def _status_cause(status: int) -> Cause:
    if status in _STATUS_CAUSES:
        return _STATUS_CAUSES[status]
    if 500 <= status <= 599:
        return Cause.SERVER_ERROR
    if 400 <= status <= 499:
        return Cause.CLIENT_ERROR
    return Cause.UNEXPECTED_STATUS


def _certificate(error: ssl.SSLCertVerificationError) -> Outcome:
    if error.verify_code == _CERT_HAS_EXPIRED:
        return Outcome(Cause.TLS_CERT_EXPIRED, "certificate has expired")
    message = error.verify_message or one_line(error)
    return Outcome(Cause.TLS_CERT_INVALID, f"certificate not accepted: {message}")


def _dns(error: socket.gaierror, exc: Exception) -> Outcome:
    host = exc.host if isinstance(exc, aiohttp.ClientConnectorError | wire.ConnectFailed) else "?"
    if error.errno in (socket.EAI_NONAME, socket.EAI_NODATA):
        return Outcome(Cause.DNS_NXDOMAIN, f"name not found ({host})")
    return Outcome(Cause.DNS_ERROR, f"DNS lookup failed: {one_line(error)} ({host})")


def _timeout(stamps: Stamps, timeout: float) -> Outcome:
    """Name a timeout after the phase the request was stuck in."""
    limit = f"within {timeout:g}s"
    if stamps.dns_start is not None and stamps.dns_end is None:
        return Outcome(Cause.DNS_TIMEOUT, f"no DNS answer {limit}")
    if stamps.connect_end is None:
        if stamps.tls_start is not None and stamps.tls_end is None:
            return Outcome(Cause.CONNECT_TIMEOUT, f"connected, but no TLS handshake {limit}")
        return Outcome(Cause.CONNECT_TIMEOUT, f"no connection {limit}")
    if stamps.first_byte is None and stamps.headers is None:
        return Outcome(Cause.TIMEOUT, f"no first byte {limit}")
    if stamps.headers is None:
        assert stamps.first_byte is not None
        after = stamps.first_byte - stamps.connect_end
        return Outcome(
            Cause.READ_TIMEOUT,
            f"response head not complete {limit} (its first bytes came after {after:.3g}s)",
        )
    return Outcome(Cause.READ_TIMEOUT, f"body not complete {limit}")


def one_line(error: object) -> str:
    """One short line from an error or a reply that may span several (parser errors do)."""
    if isinstance(error, OSError) and error.strerror:
        error = error.strerror.lower()  # without the "[Errno n]" prefix
    line = " ".join(str(error).split())
    return line if len(line) <= _DETAIL_LIMIT else line[: _DETAIL_LIMIT - 3] + "..."
