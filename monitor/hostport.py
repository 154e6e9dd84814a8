"""Pure: split ``host:port``, ``[v6]:port`` or a bare host, as configs and probes write them."""

from __future__ import annotations

import contextlib
import ipaddress
import re

_HOST_PORT = re.compile(r"(?:\[(?P<v6>[0-9A-Fa-f:.]+)\]|(?P<host>[^:\[\]\s/]+))(?::(?P<port>\d+))?")


def split_host_port(text: str) -> tuple[str, int | None]:
    """``host:port``, ``[v6]:port``, or a bare host; ("", None) when it is none of these."""
    text = text.strip()
    with contextlib.suppress(ValueError):
        return str(ipaddress.IPv6Address(text)), None
    match = _HOST_PORT.fullmatch(text)
    if not match:
        return "", None
    found = match.group("port")
    return match.group("v6") or match.group("host"), None if found is None else int(found)


def redacted_url(url: str) -> str:
    """``url`` with its userinfo (``user:password@``) replaced by ``***@``, for people:
    a URL's credentials go to the server it names, never to logs, pages or the database.
    A scheme-relative URL (``//user:password@host/``, as a Location may be) is one too."""
    if url.startswith("//"):  # before looking for "://", which its query may hold
        scheme, sep, rest = "", "//", url[2:]
    else:
        scheme, sep, rest = url.partition("://")
    if not sep or "@" not in rest:
        return url  # the usual case, at the cost of one scan
    end = len(rest)
    for mark in "/?#":
        found = rest.find(mark)
        if 0 <= found < end:
            end = found
    _, at, host = rest[:end].rpartition("@")
    if not at:
        return url  # the @ is in the path or query, not the authority
    return f"{scheme}{sep}***@{host}{rest[end:]}"
