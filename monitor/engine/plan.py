"""What one round of a monitor probes: pure, so the plan is tested without a network.

A site's round is its edge, each of its origins, and its extra checks; a TLS check of a
site also looks at every origin given by address, since an origin's certificate can
expire behind a CDN that still serves a valid one. A stand-alone check is one probe.

``expect.max_latency`` judges the edge alone: an origin's ``HttpTarget`` is judged by
``Site.origin_expect``, derived once when the site is made, so a round allocates nothing
for it.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import datetime
from urllib.parse import urlsplit

from monitor.hostport import split_host_port
from monitor.models import (
    CheckSpec,
    HttpTarget,
    Monitor,
    Origin,
    ProbeContext,
    Role,
    Site,
    TlsCheck,
)

Spec = HttpTarget | CheckSpec


@dataclass(frozen=True, slots=True)
class PlannedProbe:
    ctx: ProbeContext
    spec: Spec


def plan_round(monitor: Monitor, time: datetime) -> tuple[PlannedProbe, ...]:
    """Every probe of ``monitor``'s round at ``time``, edge first."""
    if not isinstance(monitor, Site):
        return (PlannedProbe(_ctx(monitor.name, monitor.timeout, time), monitor.spec),)
    site = monitor
    planned = [PlannedProbe(_ctx(site.name, site.timeout, time), HttpTarget(site))]
    for origin in site.origins:
        ctx = _ctx(site.name, site.timeout, time, origin)
        planned.append(PlannedProbe(ctx, HttpTarget(site, origin)))
    for spec in site.checks:
        planned.append(PlannedProbe(_ctx(site.name, site.timeout, time), spec))
        if isinstance(spec, TlsCheck):
            planned.extend(_origin_tls(site, spec, time))
    return tuple(planned)


def _origin_tls(site: Site, spec: TlsCheck, time: datetime) -> list[PlannedProbe]:
    """The site's TLS check against each address origin, named and verified as the site."""
    site_host = urlsplit(site.url).hostname or ""
    planned: list[PlannedProbe] = []
    for origin in site.origins:
        if origin.address is None:
            continue
        host, port = split_host_port(origin.address)
        verify_as = origin.tls_verify_name or spec.server_name or site_host
        origin_spec = replace(
            spec,
            host=host,
            port=port or spec.port,
            server_name=verify_as,
            verify=spec.verify and origin.tls_verify,
        )
        planned.append(PlannedProbe(_ctx(site.name, site.timeout, time, origin), origin_spec))
    return planned


def _ctx(
    monitor: str, timeout: float, time: datetime, origin: Origin | None = None
) -> ProbeContext:
    role = Role.EDGE if origin is None else Role.ORIGIN
    return ProbeContext(
        monitor=monitor,
        role=role,
        origin=None if origin is None else origin.name,
        time=time,
        timeout=timeout,
    )
