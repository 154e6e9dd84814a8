"""A small real DNS server on the loopback interface, for the DNS probe's tests.

It answers over UDP from a zone given as a dict, follows CNAMEs inside that zone, says
NXDOMAIN for names it does not know, and can instead answer every query with SERVFAIL
or never answer at all (to test timeouts)::

    async with DnsServer({("shop.test", "A"): ("192.0.2.1",)}) as server:
        ...  # query server.address, e.g. "127.0.0.1:40123"
"""

from __future__ import annotations

import asyncio
from enum import Enum
from types import TracebackType

import dns.message
import dns.name
import dns.rcode
import dns.rdataclass
import dns.rdatatype
import dns.rrset

Zone = dict[tuple[str, str], tuple[str, ...]]
"""Records by (name, type), e.g. ``{("shop.test", "MX"): ("10 mail.shop.test.",)}``."""

TTL = 60


class Mode(Enum):
    """How the server treats every query."""

    ANSWER = "answer"
    SERVFAIL = "servfail"
    SILENT = "silent"


class DnsServer(asyncio.DatagramProtocol):
    """Serve ``zone`` on ``host`` at a free UDP port while the ``async with`` lasts."""

    def __init__(self, zone: Zone, *, mode: Mode = Mode.ANSWER, host: str = "127.0.0.1") -> None:
        self._zone = {
            (name.lower().rstrip("."), rtype): data for (name, rtype), data in zone.items()
        }
        self._mode = mode
        self._host = host
        self._transport: asyncio.DatagramTransport | None = None
        self.address = ""  # "ip:port" or "[ip]:port", as a DnsCheck's resolvers name it

    async def __aenter__(self) -> DnsServer:
        loop = asyncio.get_running_loop()
        transport, _ = await loop.create_datagram_endpoint(lambda: self, local_addr=(self._host, 0))
        self._transport = transport
        port = transport.get_extra_info("sockname")[1]
        self.address = f"[{self._host}]:{port}" if ":" in self._host else f"{self._host}:{port}"
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if self._transport is not None:
            self._transport.close()

    def datagram_received(self, data: bytes, addr: tuple[str | int, ...]) -> None:
        assert self._transport is not None
        if self._mode is Mode.SILENT:
            return
        query = dns.message.from_wire(data)
        response = dns.message.make_response(query)
        if self._mode is Mode.SERVFAIL:
            response.set_rcode(dns.rcode.SERVFAIL)
        else:
            self._answer(query.question[0], response)
        self._transport.sendto(response.to_wire(), addr)

    def _answer(self, question: dns.rrset.RRset, response: dns.message.Message) -> None:
        name = question.name
        rtype = dns.rdatatype.to_text(question.rdtype)
        # Follow CNAMEs inside the zone, as an authoritative server puts them in one answer.
        while (target := self._records(name, "CNAME")) and rtype != "CNAME":
            response.answer.append(self._rrset(name, "CNAME", target))
            name = dns.name.from_text(target[0])
        if records := self._records(name, rtype):
            response.answer.append(self._rrset(name, rtype, records))
        elif not any(known == _key(name) for known, _ in self._zone) and not response.answer:
            response.set_rcode(dns.rcode.NXDOMAIN)

    def _records(self, name: dns.name.Name, rtype: str) -> tuple[str, ...]:
        return self._zone.get((_key(name), rtype), ())

    @staticmethod
    def _rrset(name: dns.name.Name, rtype: str, records: tuple[str, ...]) -> dns.rrset.RRset:
        return dns.rrset.from_text_list(name, TTL, dns.rdataclass.IN, rtype, list(records))


def _key(name: dns.name.Name) -> str:
    return name.to_text().lower().rstrip(".")
