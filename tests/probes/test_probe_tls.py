"""The TLS probe against real TLS servers on 127.0.0.1, with certificates from a test CA.

The probe trusts the test CA through SSL_CERT_FILE, as an operator would point it at a
private CA; it connects to 127.0.0.1 and asks for ``shop.test`` by SNI, so no DNS is used.
"""

from __future__ import annotations

import ssl
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import trustme
from cryptography import x509

from monitor.models import Cause, Kind, ProbeContext, ProbeResult, Role, TlsCheck
from monitor.probes import make_clients
from monitor.probes.tls import Handshake, judge, probe
from tests.support.servers import free_port, hang_up, say_nothing, serving

TIMEOUT = 1.0
NAME = "shop.test"


@pytest.fixture(scope="module")
def ca() -> trustme.CA:
    return trustme.CA()


@pytest.fixture(autouse=True)
def trust_the_test_ca(ca: trustme.CA, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    ca.cert_pem.write_to_path(str(tmp_path / "ca.pem"))
    monkeypatch.setenv("SSL_CERT_FILE", str(tmp_path / "ca.pem"))


def leaf(ca: trustme.CA, kind: str) -> trustme.LeafCert:
    """A server certificate of one kind; times are relative to the wall clock, as a CA's are."""
    now = datetime.now(UTC)
    match kind:
        case "valid":
            return ca.issue_cert(NAME)
        case "expired":
            return ca.issue_cert(NAME, not_before=now - timedelta(30), not_after=now - timedelta(1))
        case "expiring":
            return ca.issue_cert(NAME, not_after=now + timedelta(3))
        case "wrong-name":
            return ca.issue_cert("other.test")
        case "untrusted":
            return trustme.CA().issue_cert(NAME)
    raise AssertionError(kind)


def server_context(cert: trustme.LeafCert, max_version: str | None = None) -> ssl.SSLContext:
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    cert.configure_cert(context)
    if max_version is not None:
        context.maximum_version = ssl.TLSVersion[max_version]
    return context


async def run(spec: TlsCheck) -> ProbeResult:
    # The certificates' times come from the wall clock, so the round's time must too.
    ctx = ProbeContext("tls", Role.EDGE, None, datetime.now(UTC), TIMEOUT)
    async with make_clients() as clients:  # unused by TLS, but part of the signature
        return await probe(clients, ctx, spec)


@pytest.mark.parametrize(
    ("kind", "verify", "min_days", "cause", "failed", "detail"),
    [
        pytest.param("valid", True, 14, Cause.OK, (), "", id="valid"),
        pytest.param(
            "expired", True, 14, Cause.TLS_CERT_EXPIRED, (), "certificate has expired", id="expired"
        ),
        pytest.param(
            "expiring",
            True,
            14,
            Cause.TLS_CERT_EXPIRING,
            ("min_days",),
            "certificate expires in 3.0 days",
            id="expiring",
        ),
        pytest.param("expiring", True, 2, Cause.OK, (), "", id="expiring-but-enough"),
        pytest.param(
            "wrong-name",
            True,
            14,
            Cause.TLS_CERT_INVALID,
            (),
            "certificate not accepted: Hostname mismatch",
            id="wrong-name",
        ),
        pytest.param(
            "untrusted",
            True,
            14,
            Cause.TLS_CERT_INVALID,
            (),
            "certificate not accepted: unable to get local issuer certificate",
            id="untrusted-ca",
        ),
        pytest.param("wrong-name", False, 14, Cause.OK, (), "", id="unverified-wrong-name"),
        pytest.param("untrusted", False, 14, Cause.OK, (), "", id="unverified-untrusted"),
        pytest.param(
            "expired",
            False,
            14,
            Cause.TLS_CERT_EXPIRED,
            (),
            "certificate expired 1.0 days ago",
            id="unverified-expired",
        ),
    ],
)
async def test_certificate(
    ca: trustme.CA,
    kind: str,
    verify: bool,
    min_days: float,
    cause: Cause,
    failed: tuple[str, ...],
    detail: str,
) -> None:
    cert = leaf(ca, kind)
    async with serving(hang_up, server_context(cert)) as port:
        result = await run(TlsCheck("127.0.0.1", port, NAME, verify, min_days))

    assert (result.cause, result.ok, result.failed) == (cause, cause is Cause.OK, failed)
    assert result.detail.startswith(detail), result.detail
    assert (result.kind, result.target) == (Kind.TLS, f"127.0.0.1:{port} as {NAME}")
    assert result.phases.connect is not None
    if cause is Cause.OK or failed or not verify:  # the handshake completed
        expiry = x509_not_after(cert)
        assert (result.tls_version, result.cert_not_after) == ("TLSv1.3", expiry)
        assert result.phases.tls is not None
    else:
        assert (result.tls_version, result.cert_not_after, result.phases.tls) == (None, None, None)


@pytest.mark.parametrize(
    ("min_version", "cause", "failed"),
    [
        pytest.param("TLSv1.3", Cause.TLS_HANDSHAKE, ("min_version",), id="too-old"),
        pytest.param("TLSv1.2", Cause.OK, (), id="old-enough"),
    ],
)
async def test_min_version(
    ca: trustme.CA, min_version: str, cause: Cause, failed: tuple[str, ...]
) -> None:
    tls12 = server_context(leaf(ca, "valid"), max_version="TLSv1_2")
    async with serving(hang_up, tls12) as port:
        result = await run(TlsCheck("127.0.0.1", port, server_name=NAME, min_version=min_version))

    assert (result.cause, result.failed, result.tls_version) == (cause, failed, "TLSv1.2")


async def test_not_tls_at_all() -> None:
    async with serving(say_nothing) as port:
        silent = await run(TlsCheck("127.0.0.1", port, server_name=NAME))
    refused = await run(TlsCheck("127.0.0.1", free_port(), server_name=NAME))

    assert silent.cause is Cause.TLS_HANDSHAKE
    assert silent.detail == f"no TLS handshake within {TIMEOUT:g}s"
    assert refused.cause is Cause.CONNECT_REFUSED


NOW = datetime(2026, 11, 20, 12, tzinfo=UTC)


@pytest.mark.parametrize(
    ("version", "not_after", "spec", "cause", "failed", "detail"),
    [
        pytest.param(
            "TLSv1.3", NOW + timedelta(90), TlsCheck("h"), Cause.OK, (), "", id="far-from-expiry"
        ),
        pytest.param(
            "TLSv1.3",
            NOW + timedelta(3.2),
            TlsCheck("h"),
            Cause.TLS_CERT_EXPIRING,
            ("min_days",),
            "certificate expires in 3.2 days (2026-11-23), under the 14-day minimum",
            id="expiring",
        ),
        pytest.param(
            "TLSv1.3", NOW + timedelta(14), TlsCheck("h"), Cause.OK, (), "", id="exactly-min-days"
        ),
        pytest.param(
            "TLSv1.3",
            NOW + timedelta(hours=1),
            TlsCheck("h", min_days=0),
            Cause.OK,
            (),
            "",
            id="no-minimum",
        ),
        pytest.param(
            "TLSv1.3",
            NOW - timedelta(2),
            TlsCheck("h", min_days=0),
            Cause.TLS_CERT_EXPIRED,
            (),
            "certificate expired 2.0 days ago (2026-11-18)",
            id="expired",
        ),
        pytest.param(
            "TLSv1.2",
            NOW + timedelta(90),
            TlsCheck("h", min_version="TLSv1.3"),
            Cause.TLS_HANDSHAKE,
            ("min_version",),
            "server negotiated TLSv1.2, below the TLSv1.3 minimum",
            id="old-version",
        ),
        pytest.param(
            "TLSv1.2",
            NOW + timedelta(1),
            TlsCheck("h", min_version="TLSv1.3", min_days=7),
            Cause.TLS_HANDSHAKE,
            ("min_version", "min_days"),
            "server negotiated TLSv1.2, below the TLSv1.3 minimum; "
            "certificate expires in 1.0 days (2026-11-21), under the 7-day minimum",
            id="old-version-and-expiring",
        ),
    ],
)
def test_judge(
    version: str,
    not_after: datetime,
    spec: TlsCheck,
    cause: Cause,
    failed: tuple[str, ...],
    detail: str,
) -> None:
    outcome = judge(spec, Handshake(version, not_after), NOW)

    assert (outcome.cause, outcome.failed, outcome.detail) == (cause, failed, detail)


def x509_not_after(cert: trustme.LeafCert) -> datetime:
    pem = cert.cert_chain_pems[0].bytes()
    return x509.load_pem_x509_certificate(pem).not_valid_after_utc
