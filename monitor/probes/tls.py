"""The TLS probe: connect, handshake, and judge the certificate and the protocol version.

The handshake verifies the chain and the name as a browser would (unless ``verify`` is
off); what it does not judge — expiry against ``min_days`` and the negotiated version
against ``min_version`` — :func:`judge` does, purely, with the round's time as ``now``.
"""

from __future__ import annotations

import asyncio
import functools
import os
import ssl
from dataclasses import dataclass
from datetime import datetime, timedelta
from time import perf_counter
from typing import TYPE_CHECKING

from cryptography import x509

from monitor.models import Cause, Kind, ProbeContext, ProbeResult, TlsCheck
from monitor.probes.classify import Outcome, one_line
from monitor.probes.tcp import (
    Progress,
    connect,
    host_port,
    socket_failure,
    unconnected_timeout,
)

if TYPE_CHECKING:
    from monitor.probes.clients import Clients

# X509_V_ERR_CERT_HAS_EXPIRED from OpenSSL's x509_vfy.h; the ssl module has no name for it.
_CERT_HAS_EXPIRED = 10


@dataclass(frozen=True, slots=True)
class Handshake:
    """What a completed handshake showed."""

    version: str  # as ssl names it: "TLSv1.3"
    not_after: datetime  # the server certificate's expiry, UTC


async def probe(clients: Clients, ctx: ProbeContext, spec: TlsCheck) -> ProbeResult:
    """Handshake with ``spec.host:spec.port`` using SNI ``server_name`` (default: the host).

    ``clients`` is unused: the probe makes its own connection, but every probe takes the
    same arguments.
    """
    name = spec.server_name or spec.host
    progress = Progress(start=perf_counter())
    seen: Handshake | None = None
    writer: asyncio.StreamWriter | None = None
    try:
        async with asyncio.timeout(ctx.timeout):
            _, writer = await connect(spec.host, spec.port, progress)
            await writer.start_tls(_context(spec.verify), server_hostname=name)
            progress.handshake = perf_counter()
        seen = _handshake(writer.get_extra_info("ssl_object"))
    except TimeoutError:
        outcome = unconnected_timeout(progress, ctx.timeout) or Outcome(
            Cause.TLS_HANDSHAKE, f"no TLS handshake within {ctx.timeout:g}s"
        )
    except OSError as exc:  # ssl.SSLError is one too
        outcome = _failure(exc, progress, spec)
    except ValueError as exc:  # cryptography is stricter than OpenSSL about encodings
        outcome = Outcome(Cause.TLS_CERT_INVALID, f"certificate cannot be read: {one_line(exc)}")
    else:
        outcome = judge(spec, seen, ctx.time)
    finally:
        if writer is not None:
            writer.close()  # not awaited: how the peer says goodbye cannot change the outcome
    target = host_port(spec.host, spec.port)
    return outcome.result(
        ctx,
        Kind.TLS,
        target if name == spec.host else f"{target} as {name}",
        peer_ip=progress.peer[0] if progress.peer else None,
        peer_port=progress.peer[1] if progress.peer else None,
        phases=progress.phases(perf_counter()),
        tls_version=seen.version if seen else None,
        cert_not_after=seen.not_after if seen else None,
    )


def judge(spec: TlsCheck, seen: Handshake, now: datetime) -> Outcome:
    """Pure: is what the handshake showed good enough at ``now``?

    An expired certificate is reported alone; otherwise every failed expectation is
    named and the first decides the cause.
    """
    left = seen.not_after - now
    expiry = seen.not_after.date().isoformat()
    if left <= timedelta(0):
        return Outcome(
            Cause.TLS_CERT_EXPIRED, f"certificate expired {_days(-left)} days ago ({expiry})"
        )
    problems: list[tuple[str, Cause, str]] = []
    if spec.min_version is not None and _rank(seen.version) < _rank(spec.min_version):
        said = f"server negotiated {seen.version}, below the {spec.min_version} minimum"
        problems.append(("min_version", Cause.TLS_HANDSHAKE, said))
    if left < timedelta(days=spec.min_days):
        said = (
            f"certificate expires in {_days(left)} days ({expiry}), "
            f"under the {spec.min_days:g}-day minimum"
        )
        problems.append(("min_days", Cause.TLS_CERT_EXPIRING, said))
    if not problems:
        return Outcome(Cause.OK)
    return Outcome(problems[0][1], "; ".join(p[2] for p in problems), tuple(p[0] for p in problems))


@functools.cache
def _trust(verify: bool, cafile: str | None) -> ssl.SSLContext:
    """A client context, made once: loading the CA store is ~20 ms of blocking file I/O."""
    context = ssl.create_default_context(cafile=cafile)
    if not verify:
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
    return context


def _context(verify: bool) -> ssl.SSLContext:
    # SSL_CERT_FILE is OpenSSL's own switch for another CA file; as part of the cache key
    # it is honoured even when set after start (tests point it at their own CA).
    return _trust(verify, os.environ.get("SSL_CERT_FILE"))


def _handshake(ssl_object: ssl.SSLObject) -> Handshake:
    der = ssl_object.getpeercert(binary_form=True)
    version = ssl_object.version()
    # Both are known once a handshake completed; every cipher suite the default context
    # offers authenticates the server with a certificate.
    assert der is not None
    assert version is not None
    return Handshake(version, x509.load_der_x509_certificate(der).not_valid_after_utc)


def _failure(exc: OSError, progress: Progress, spec: TlsCheck) -> Outcome:
    """The one table from handshake errors to causes; plain socket errors go to tcp's."""
    if isinstance(exc, ssl.SSLCertVerificationError):
        if exc.verify_code == _CERT_HAS_EXPIRED:
            return Outcome(Cause.TLS_CERT_EXPIRED, "certificate has expired")
        return Outcome(Cause.TLS_CERT_INVALID, f"certificate not accepted: {exc.verify_message}")
    if isinstance(exc, ssl.SSLError):
        reason = (exc.reason or "").lower().replace("_", " ") or one_line(exc)
        return Outcome(Cause.TLS_HANDSHAKE, f"TLS handshake failed: {reason}")
    if progress.connected is not None:
        # Connected, so the handshake is what broke (a reset, or a close mid-way).
        return Outcome(Cause.TLS_HANDSHAKE, f"TLS handshake failed: {one_line(exc)}")
    return socket_failure(exc, progress, spec.host, spec.port)


def _rank(version: str) -> ssl.TLSVersion:
    return ssl.TLSVersion[version.replace(".", "_")]  # "TLSv1.2" -> TLSVersion.TLSv1_2


def _days(span: timedelta) -> str:
    return f"{span / timedelta(days=1):.1f}"
