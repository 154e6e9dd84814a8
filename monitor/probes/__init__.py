"""Probes: one module per kind, all with one signature, registered by name in ``PROBES``."""

from __future__ import annotations

from datetime import datetime
from typing import Protocol

import aiohttp

from monitor.models import ProbeResult, Site
from monitor.probes import http
from monitor.probes.http import make_session

__all__ = ["PROBES", "Probe", "make_session"]


class Probe(Protocol):
    """Check one site once; a target's failure comes back as a result, never raised."""

    async def __call__(
        self, session: aiohttp.ClientSession, site: Site, time: datetime
    ) -> ProbeResult: ...


PROBES: dict[str, Probe] = {"http": http.probe}
