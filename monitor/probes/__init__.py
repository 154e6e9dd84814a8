"""Probes: one module per kind, all with one signature, registered by spec type in ``PROBES``.

``await run_probe(clients, ctx, spec)`` checks one target once; a target's failure comes
back as a result with a cause, never raised. ``clients`` (:func:`make_clients`) holds what
probes send with; each takes what it needs.
"""

from __future__ import annotations

from typing import Any, Protocol, TypeVar

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
from monitor.probes.clients import Clients, make_clients
from monitor.probes.http import probe as http

__all__ = ["PROBES", "Clients", "HttpTarget", "Probe", "make_clients", "run_probe"]

SpecT_contra = TypeVar("SpecT_contra", contravariant=True)


class Probe(Protocol[SpecT_contra]):
    """Check one target once; a target's failure comes back as a result, never raised."""

    async def __call__(
        self, clients: Clients, ctx: ProbeContext, spec: SpecT_contra
    ) -> ProbeResult: ...


PROBES: dict[type, Probe[Any]] = {
    HttpTarget: http.probe,
    DnsCheck: dns.probe,
    TcpCheck: tcp.probe,
    TlsCheck: tls.probe,
    IcmpCheck: icmp.probe,
}


async def run_probe(clients: Clients, ctx: ProbeContext, spec: object) -> ProbeResult:
    """Run the probe registered for ``type(spec)``."""
    return await PROBES[type(spec)](clients, ctx, spec)
