"""What probes reach targets with: made once by :func:`make_clients`, shared, closed last."""

from __future__ import annotations

from dataclasses import dataclass
from types import TracebackType

import aiohttp
from aiohttp.abc import AbstractResolver

from monitor.probes.http.direct import Direct
from monitor.probes.http.session import FamilyResolver, proxied_session
from monitor.probes.http.tlsnames import TlsContexts
from monitor.probes.http.wire import Dialer

__all__ = ["Clients", "make_clients"]


@dataclass(frozen=True, slots=True)
class Clients:
    """The clients HTTP probes send with; other probes open their own connections.

    Close it last (``await clients.close()``, or ``async with make_clients() as clients``).
    """

    tls: TlsContexts  # built once and shared: a context costs milliseconds to build
    direct: Direct  # the wire client: requests that go straight to the target
    proxied: aiohttp.ClientSession  # aiohttp's client: requests through a proxy

    async def close(self) -> None:
        await self.proxied.close()

    async def __aenter__(self) -> Clients:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()


def make_clients(*, limit: int = 0, resolver: AbstractResolver | None = None) -> Clients:
    """The clients every probe shares; make them in the running loop.

    ``limit`` caps connections open at once, for each client (0: no cap, the default). A
    probe waiting for a slot is not timed, but its time limit runs: with a cap, hung
    targets that hold every slot would make healthy ones time out, so the daemon leaves it
    off and relies on each site running one round at a time.
    ``resolver`` looks names up (default: aiohttp's, i.e. the system's); tests pass one
    that knows their made-up names.
    """
    tls = TlsContexts()
    family_resolver = FamilyResolver(resolver or aiohttp.DefaultResolver())
    return Clients(
        tls=tls,
        direct=Direct(Dialer(family_resolver, limit), tls),
        proxied=proxied_session(limit=limit, resolver=family_resolver, tls=tls),
    )
