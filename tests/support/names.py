"""A resolver for made-up names (``shop.test``), so no test asks real DNS."""

from __future__ import annotations

import ipaddress
import socket

from aiohttp.abc import AbstractResolver, ResolveResult


class LocalNames(AbstractResolver):
    """Answers lookups of made-up names from a table, and notes each question."""

    def __init__(self, table: dict[str, tuple[str, ...]]) -> None:
        self.table = table
        self.asked: list[tuple[str, socket.AddressFamily]] = []

    async def resolve(
        self, host: str, port: int = 0, family: socket.AddressFamily = socket.AF_UNSPEC
    ) -> list[ResolveResult]:
        self.asked.append((host, family))
        found = [
            (address, _family(address))
            for address in self.table.get(host, ())
            if family in (socket.AF_UNSPEC, _family(address))
        ]
        if not found:
            raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")
        flags = socket.AI_NUMERICHOST | socket.AI_NUMERICSERV
        return [
            ResolveResult(hostname=host, host=a, port=port, family=f, proto=0, flags=flags)
            for a, f in found
        ]

    async def close(self) -> None:
        pass


def _family(address: str) -> socket.AddressFamily:
    return socket.AF_INET6 if ipaddress.ip_address(address).version == 6 else socket.AF_INET
