"""TLS contexts for probes, and verifying a certificate against a name other than the SNI.

Python's ``ssl`` checks the certificate against ``server_hostname``, which is also the SNI.
An origin may present the site's name in SNI but hold a certificate for its own name
(``tls_verify_name``), so for that case the chain is verified by OpenSSL as usual and the
name by :func:`names_match`, inside the handshake, before a single request byte is sent.
"""

from __future__ import annotations

import ipaddress
import ssl
from datetime import datetime

from cryptography import x509

# X509_V_ERR_HOSTNAME_MISMATCH from OpenSSL's x509_vfy.h, what Python's own check reports.
_HOSTNAME_MISMATCH = 62


class TlsContexts:
    """The SSL contexts probes share, built when first needed and then reused.

    Each reads the trust store (and ``SSL_CERT_FILE``) when it is built.
    """

    def __init__(self) -> None:
        self.verified = ssl.create_default_context()
        self._unverified: ssl.SSLContext | None = None
        self._by_name: dict[str, ssl.SSLContext] = {}

    @property
    def unverified(self) -> ssl.SSLContext:
        """A context that accepts any certificate (``tls_verify: false``)."""
        if self._unverified is None:
            context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
            context.check_hostname = False
            context.verify_mode = ssl.CERT_NONE
            self._unverified = context
        return self._unverified

    def verifying(self, name: str) -> ssl.SSLContext:
        """A context that accepts a trusted certificate valid for ``name``, whatever the SNI."""
        context = self._by_name.get(name)
        if context is None:
            context = self._by_name[name] = _NameContext.build(name)
        return context


def names_match(cert: x509.Certificate, name: str) -> bool:
    """Whether ``cert``'s subject alternative names cover ``name`` (a host name or an IP).

    A wildcard stands for exactly one whole left-most label (``*.shop.test`` covers
    ``www.shop.test``, not ``shop.test`` nor ``a.b.shop.test``). The subject's common name
    is ignored, as browsers and OpenSSL do once a certificate has alternative names.
    """
    try:
        sans = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except x509.ExtensionNotFound:
        return False
    try:
        address = ipaddress.ip_address(name)
    except ValueError:
        wanted = name.rstrip(".").lower()
        patterns = sans.get_values_for_type(x509.DNSName)
        return any(_dns_match(pattern.lower(), wanted) for pattern in patterns)
    return address in sans.get_values_for_type(x509.IPAddress)


def peer_certificate(tls: ssl.SSLObject) -> x509.Certificate | None:
    """The peer's certificate, also when the context did not verify it."""
    der = tls.getpeercert(binary_form=True)
    if der is None:
        return None
    try:
        return x509.load_der_x509_certificate(der)
    except ValueError:  # OpenSSL took it, but cryptography's stricter parser does not
        return None


def not_after(tls: ssl.SSLObject) -> datetime | None:
    """When the peer's certificate expires (UTC), if it sent one."""
    cert = peer_certificate(tls)
    return None if cert is None else cert.not_valid_after_utc


def _dns_match(pattern: str, name: str) -> bool:
    if not pattern.startswith("*."):
        return pattern == name
    label, dot, parent = name.partition(".")
    return bool(label) and bool(dot) and parent == pattern[2:]


class _NameCheckedObject(ssl.SSLObject):
    """A TLS connection that, once the chain is verified, checks its context's name."""

    def do_handshake(self) -> None:
        super().do_handshake()  # raises SSLWantReadError until the handshake is done
        context = self.context
        assert isinstance(context, _NameContext)
        cert = peer_certificate(self)
        if cert is None or not names_match(cert, context.verify_name):
            message = f"Hostname mismatch, certificate is not valid for {context.verify_name!r}."
            error = ssl.SSLCertVerificationError(1, f"certificate verify failed: {message}")
            error.verify_code = _HOSTNAME_MISMATCH
            error.verify_message = message
            raise error


class _NameContext(ssl.SSLContext):
    verify_name: str
    sslobject_class = _NameCheckedObject

    @classmethod
    def build(cls, name: str) -> _NameContext:
        # What create_default_context() does for a client, but with our own name check.
        context = cls(ssl.PROTOCOL_TLS_CLIENT)
        context.check_hostname = False  # it would check the SNI; _NameCheckedObject checks this
        context.load_default_certs()
        context.verify_name = name
        return context
