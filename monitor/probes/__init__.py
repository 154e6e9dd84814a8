"""Probes: one module per kind, all with one signature, registered by spec type in ``PROBES``.

``await run_probe(session, ctx, spec)`` checks one target once; a target's failure comes
back as a result with a cause, never raised.
"""

from __future__ import annotations

from typing import Any, Protocol, TypeVar

import aiohttp

from monitor.models import (
    DnsCheck,
    HttpTarget,
    IcmpCheck,
    ProbeContext,
    ProbeResult,
    TcpCheck,
    TlsCheck,
)
from monitor.probes import dns, icmp, tcp, tls
from monitor.probes.http import probe as http
from monitor.probes.http.probe import make_session

__all__ = ["PROBES", "HttpTarget", "Probe", "make_session", "run_probe"]

SpecT_contra = TypeVar("SpecT_contra", contravariant=True)


class Probe(Protocol[SpecT_contra]):
    """Check one target once; a target's failure comes back as a result, never raised."""

    async def __call__(
        self, session: aiohttp.ClientSession, ctx: ProbeContext, spec: SpecT_contra
    ) -> ProbeResult: ...


PROBES: dict[type, Probe[Any]] = {
    HttpTarget: http.probe,
    DnsCheck: dns.probe,
    TcpCheck: tcp.probe,
    TlsCheck: tls.probe,
    IcmpCheck: icmp.probe,
}


async def run_probe(session: aiohttp.ClientSession, ctx: ProbeContext, spec: object) -> ProbeResult:
    """Run the probe registered for ``type(spec)``."""
    return await PROBES[type(spec)](session, ctx, spec)
