"""What one HTTP probe has seen so far, filled in by whichever client made the request."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from yarl import URL

from monitor.probes.phases import Stamps


@dataclass(frozen=True, slots=True)
class Peer:
    """Who answered: the address connected to, and the TLS session if there was one."""

    ip: str | None = None
    port: int | None = None
    tls_version: str | None = None
    cert_not_after: datetime | None = None


@dataclass(slots=True)
class Recorder:
    """What one probe has seen so far. Mutable on purpose: filled in as it goes, so a
    failure halfway still reports the stamps, status and body it got."""

    stamps: Stamps
    url: URL | None = None  # asked last
    redirects: int = 0  # followed so far
    status: int | None = None
    headers: tuple[tuple[str, str], ...] = ()  # all of them, as received
    peer: Peer = Peer()
    body: bytes = b""
    body_truncated: bool = False
