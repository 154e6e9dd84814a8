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
