"""Pure: the one interface both HTTP clients stand behind, and the request they are given.

The probe plans a request (:class:`Ask`) and hands it to a :class:`Transport`: the wire
client (:class:`monitor.probes.http.direct.Direct`) when the request goes straight to the
target, aiohttp's (:class:`monitor.probes.http.session.Proxied`) when it goes through a
proxy. Either fills in the probe's :class:`~monitor.probes.http.record.Recorder` as the
answer comes, and raises what :func:`monitor.probes.classify.classify_exception` reads.
"""

from __future__ import annotations

import re
import ssl
from collections.abc import Iterable, Sized
from dataclasses import dataclass
from functools import lru_cache
from typing import NamedTuple, Protocol

from multidict import CIMultiDict
from yarl import URL

from monitor import __version__
from monitor.probes.http.record import Recorder

__all__ = [
    "BODY_LIMIT",
    "HEAD_LIMIT",
    "TOKEN_PUNCTUATION",
    "USER_AGENT",
    "Ask",
    "Redirect",
    "Transport",
    "head_size",
    "is_header_name",
]

BODY_LIMIT = 64 * 1024
"""Bytes of the body kept; the rest is never read, so a huge body cannot grow memory."""

HEAD_LIMIT = 64 * 1024
"""Bytes an answer's head (status line and headers) may take; more is a protocol error.
Servers refuse far less from clients (nginx 32 KiB, Apache 100 lines of 8 KiB), and a head
that big is a broken or hostile server, which must not grow our memory either."""

HEAD_TOO_LARGE = f"response head larger than {HEAD_LIMIT // 1024} KiB"


def head_size(headers: Iterable[tuple[Sized, Sized]]) -> int:
    """About the bytes ``headers`` took on the wire (name, ": ", value, CRLF each), as the
    wire client (str) or aiohttp (bytes) parsed them: for a head that came whole in the
    chunk that crossed :data:`HEAD_LIMIT`, whether the head itself is over it."""
    return sum(len(name) + len(value) + 4 for name, value in headers)


USER_AGENT = f"monitor/{__version__}"

TOKEN_PUNCTUATION = "!#$%&'*+-.^_`|~"
"""What a header name may hold besides ASCII letters and digits: a field name is a token
(RFC 9110, 5.1 and 5.6.2). Config's error message lists these; :data:`_TOKEN` is built
from them."""

_TOKEN = re.compile(f"[{re.escape(TOKEN_PUNCTUATION)}0-9A-Za-z]+")


def is_header_name(name: str) -> bool:
    """Whether ``name`` may stand before the colon of an HTTP header line."""
    return _TOKEN.fullmatch(name) is not None


@lru_cache(maxsize=1 << 20)  # an entry for each distinct set of configured headers
def check_header_names(headers: tuple[tuple[str, str], ...]) -> None:
    """Raise ValueError for a configured header name no request may carry (config should
    have refused it); the names a probe adds itself (Host, Authorization) are valid.

    Cached: a check's requests carry the same configured headers every time, so each set
    is read once, not a regex on each name of each request. A raise is not cached: a bad
    name raises every time.
    """
    for name, _ in headers:
        if not is_header_name(name):
            raise ValueError(f"invalid HTTP header name {name!r}")


class Ask(NamedTuple):
    """One request, planned: what to ask, where the connection goes, what to trust.

    A NamedTuple, made once a request: immutable like a frozen dataclass, at a quarter
    of its cost (a frozen dataclass sets each of these fields with object.__setattr__).
    """

    method: str
    url: URL  # as asked: its host is the Host header's and the TLS name's default
    to: URL  # where the connection goes: ``url``, or the origin's address in its place
    headers: CIMultiDict[str]  # configured, with Authorization and Host as planned
    body: bytes | None
    server_hostname: str | None  # TLS SNI and certificate name, when not ``url``'s host
    ssl: ssl.SSLContext | bool  # True: verify as usual; False: accept any certificate
    proxy: str | None
    follow: frozenset[int]  # statuses whose Location to hand back instead of reading


@dataclass(frozen=True, slots=True)
class Redirect:
    """An answer to follow: its status and Location."""

    status: int
    location: str


class Transport(Protocol):
    """Sends one request and reads its answer into ``rec``: status, headers, peer, stamps
    and at most :data:`BODY_LIMIT` bytes of body. An answer whose status is in
    ``ask.follow`` and that has a Location comes back as a :class:`Redirect` instead."""

    async def exchange(self, ask: Ask, rec: Recorder) -> Redirect | None: ...
