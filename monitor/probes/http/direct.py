"""The transport of requests that go straight to the target: the wire client, given an Ask."""

from __future__ import annotations

import ssl
from dataclasses import dataclass

import aiohttp

from monitor.probes.http.record import Recorder
from monitor.probes.http.tlsnames import TlsContexts
from monitor.probes.http.transport import BODY_LIMIT, USER_AGENT, Ask, Redirect
from monitor.probes.http.wire import Dialer, Request, encode_head

# Headers the lean request writes first, each the configured value or our default.
_SENT_FIRST = frozenset({"host", "user-agent", "accept", "accept-encoding"})


@dataclass(frozen=True, slots=True)
class Direct:
    """Sends an :class:`Ask` with :mod:`monitor.probes.http.wire`'s client."""

    dialer: Dialer
    tls: TlsContexts

    async def exchange(self, ask: Ask, rec: Recorder) -> Redirect | None:
        return await self.dialer.exchange(_request(ask, self.tls), rec, BODY_LIMIT, ask.follow)


def _request(ask: Ask, contexts: TlsContexts) -> Request:
    """The wire request of ``ask``: its head written as aiohttp would write it."""
    url, headers = ask.url, ask.headers
    if url.scheme not in ("http", "https"):
        raise aiohttp.NonHttpUrlClientError(url)
    host, port = ask.to.raw_host, ask.to.port
    if not host or port is None:
        raise aiohttp.InvalidURL(url)
    sent = [("Host", headers.get("Host") or url.host_port_subcomponent or host)]
    sent.append(("User-Agent", headers.get("User-Agent", USER_AGENT)))
    sent.append(("Accept", headers.get("Accept", "*/*")))
    # As browsers (and aiohttp) ask: a CDN may keep a plain copy apart, or not at all.
    sent.append(("Accept-Encoding", headers.get("Accept-Encoding", "gzip, deflate")))
    if ask.body is not None and "Content-Type" not in headers:
        sent.append(("Content-Type", "application/octet-stream"))
    sent.extend((name, value) for name, value in headers.items() if name.lower() not in _SENT_FIRST)
    tls: ssl.SSLContext | None = None
    if url.scheme == "https":
        tls = ask.ssl if isinstance(ask.ssl, ssl.SSLContext) else None
        if tls is None:
            tls = contexts.verified if ask.ssl else contexts.unverified
    return Request(
        head=encode_head(ask.method, ask.to.raw_path_qs or "/", sent, ask.body),
        body=ask.body,
        host=host,
        port=port,
        tls=tls,
        server_name=(ask.server_hostname or url.raw_host or host).rstrip("."),
        is_head=ask.method == "HEAD",
    )
