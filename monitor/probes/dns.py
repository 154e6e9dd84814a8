"""The DNS probe: ask every resolver the same question at once and compare the answers.

Each resolver is asked on its own (no failover to the next), so a resolver that is down,
says NXDOMAIN or has stale data shows up by name. Answers are compared with the expected
set and with each other: resolvers that disagree mean propagation in progress or a split
horizon, which a person wants to see even when no answer is expected in particular.
"""

from __future__ import annotations

import asyncio
import functools
import ipaddress
import math
from dataclasses import dataclass
from time import perf_counter
from typing import TYPE_CHECKING

import dns.asyncresolver
import dns.exception
import dns.message
import dns.name
import dns.nameserver
import dns.rcode
import dns.rdata
import dns.rdatatype
import dns.rdtypes.txtbase
import dns.resolver

from monitor.hostport import split_host_port
from monitor.models import Cause, DnsCheck, Kind, Phases, ProbeContext, ProbeResult
from monitor.probes.classify import Outcome, one_line

if TYPE_CHECKING:
    from monitor.probes.clients import Clients

SYSTEM = "system"
"""How the system's resolver (from /etc/resolv.conf) is named in details and answers."""


@dataclass(frozen=True, slots=True)
class Lookup:
    """What one resolver said: a set of normalised answers, or why there is none."""

    resolver: str  # as configured, or SYSTEM
    answers: frozenset[str] = frozenset()
    failure: Outcome | None = None


async def probe(clients: Clients, ctx: ProbeContext, spec: DnsCheck) -> ProbeResult:
    """Resolve ``spec.query`` at every resolver; a resolver's failure is a value, not raised.

    ``clients`` is unused: DNS needs none, but every probe takes the same arguments.
    """
    name = dns.name.from_text(spec.query)  # a bad name is bad config: raised, not judged
    rdtype = dns.rdatatype.from_text(spec.record)

    async def bounded(resolver: str) -> Lookup:
        # A limit per resolver, so the slow one is named and the others' answers are kept.
        try:
            async with asyncio.timeout(ctx.timeout):
                return await _lookup(name, rdtype, resolver)
        except TimeoutError:
            detail = f"no answer within {ctx.timeout:g}s"
            return Lookup(resolver, failure=Outcome(Cause.DNS_TIMEOUT, detail))

    start = perf_counter()
    lookups = await asyncio.gather(*(bounded(r) for r in spec.resolvers or (SYSTEM,)))
    elapsed = perf_counter() - start  # lookups run side by side: the slowest decides
    outcome = judge(spec, lookups)
    return outcome.result(
        ctx,
        Kind.DNS,
        f"{spec.record} {spec.query} @ {', '.join(spec.resolvers) or SYSTEM}",
        phases=Phases(resolve=elapsed, total=elapsed),
        answers=tuple(f"{x.resolver}={a}" for x in lookups for a in sorted(x.answers)),
    )


def judge(spec: DnsCheck, lookups: list[Lookup]) -> Outcome:
    """Pure: a failed resolver first, then the expected set, then agreement between resolvers."""
    failures = [(x.resolver, x.failure) for x in lookups if x.failure is not None]
    if failures:
        detail = "; ".join(f"{resolver}: {failure.detail}" for resolver, failure in failures)
        return Outcome(failures[0][1].cause, detail)
    failed: list[str] = []
    expect = frozenset(normalise(spec.record, value) for value in spec.expect)
    if expect and any(x.answers != expect for x in lookups):
        failed.append("expect")
    if len({x.answers for x in lookups}) > 1:
        failed.append("consistent")
    if not failed:
        return Outcome(Cause.OK)
    if "consistent" in failed:
        said = "; ".join(f"{x.resolver} → {_listed(x.answers)}" for x in lookups)
        detail = f"resolvers disagree: {said}"
    else:
        detail = f"expected {_listed(expect)}, got {_listed(lookups[0].answers)}"
    return Outcome(Cause.CONTENT_MISMATCH, detail, tuple(failed))


def normalise(record: str, text: str) -> str:
    """One spelling per value, so the configured and the served text compare equal.

    Names are case-insensitive and may end in a dot; addresses have many spellings; TXT
    data is case-sensitive (tokens, keys), so only its quoting goes.
    """
    record = record.upper()
    if record == "TXT":
        return text
    text = " ".join(text.split()).lower().rstrip(".")
    if record in ("A", "AAAA"):
        try:
            return str(ipaddress.ip_address(text))
        except ValueError:
            return text  # not an address: it can only mismatch, and the detail shows it
    return text


async def _lookup(name: dns.name.Name, rdtype: dns.rdatatype.RdataType, resolver: str) -> Lookup:
    try:
        answer = await _resolver(resolver).resolve(name, rdtype, search=False)
    except dns.exception.DNSException as exc:
        return Lookup(resolver, failure=_failure(exc, name, rdtype))
    assert answer.rrset is not None  # resolve() raises NoAnswer rather than return none
    record = dns.rdatatype.to_text(rdtype)
    return Lookup(resolver, frozenset(normalise(record, _text(r)) for r in answer.rrset))


@functools.cache
def _system_nameservers() -> tuple[str | dns.nameserver.Nameserver, ...]:
    """The system's resolvers, read from /etc/resolv.conf once: reading the file is blocking
    I/O, which has no place in the event loop on every check. A change needs a restart."""
    return tuple(dns.resolver.Resolver().nameservers)


def _resolver(resolver: str) -> dns.asyncresolver.Resolver:
    chosen = dns.asyncresolver.Resolver(configure=False)
    if resolver == SYSTEM:
        chosen.nameservers = list(_system_nameservers())
    else:
        host, port = split_host_port(resolver)  # config has checked it is an address
        chosen.nameservers = [dns.nameserver.Do53Nameserver(host, port or 53)]
    # The probe's asyncio.timeout is the limit; within it dnspython retries a silent server.
    chosen.lifetime = math.inf
    return chosen


def _failure(
    exc: dns.exception.DNSException, name: dns.name.Name, rdtype: dns.rdatatype.RdataType
) -> Outcome:
    """The one table from dnspython's exceptions to causes."""
    shown = name.to_text(omit_final_dot=True)
    if isinstance(exc, dns.resolver.NXDOMAIN):
        return Outcome(Cause.DNS_NXDOMAIN, f"NXDOMAIN: {shown} does not exist")
    if isinstance(exc, dns.resolver.NoAnswer):
        # The name exists but has no such record; getaddrinfo calls this EAI_NODATA and
        # the HTTP probe counts that as not found too.
        record = dns.rdatatype.to_text(rdtype)
        return Outcome(Cause.DNS_NXDOMAIN, f"no {record} record for {shown}")
    if isinstance(exc, dns.exception.Timeout):
        return Outcome(Cause.DNS_TIMEOUT, one_line(exc))
    if isinstance(exc, dns.resolver.NoNameservers):
        return Outcome(Cause.DNS_ERROR, _servers_said(exc))
    return Outcome(Cause.DNS_ERROR, one_line(exc))


def _servers_said(exc: dns.resolver.NoNameservers) -> str:
    """SERVFAIL, REFUSED or the socket error, rather than dnspython's long sentence."""
    said = []
    for _server, _tcp, _port, error, response in exc.kwargs.get("errors", ()):
        if isinstance(response, dns.message.Message):
            said.append(dns.rcode.to_text(response.rcode()))
        else:
            said.append(one_line(error))
    return ", ".join(dict.fromkeys(said)) or one_line(exc)  # dict: unique, in order


def _text(rdata: dns.rdata.Rdata) -> str:
    if isinstance(rdata, dns.rdtypes.txtbase.TXTBase):  # the data, not its quoted spelling
        return b"".join(rdata.strings).decode(errors="replace")
    return rdata.to_text()


def _listed(answers: frozenset[str]) -> str:
    return ", ".join(sorted(answers)) or "(nothing)"
