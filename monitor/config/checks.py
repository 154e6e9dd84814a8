"""Checks of other kinds (dns, tcp, tls, icmp): stand-alone under ``checks:``, or in a site.

In a site, a check's host and port default to the site's URL, so
``checks: [{kind: tls}]`` is enough to watch the site's certificate.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from urllib.parse import urlsplit

import yaml

from monitor.config import values as config_values
from monitor.config.yamlnodes import NodeReader
from monitor.models import CheckSpec, DnsCheck, IcmpCheck, TcpCheck, TlsCheck

RECORD_TYPES = ("A", "AAAA", "CNAME", "MX", "NS", "TXT")
TLS_VERSIONS = ("TLSv1.2", "TLSv1.3")
KIND_KEYS = {
    "dns": frozenset({"query", "record", "resolvers", "expect"}),
    "tcp": frozenset({"host", "port", "send", "expect_reply"}),
    "tls": frozenset({"host", "port", "server_name", "verify", "min_days", "min_version"}),
    "icmp": frozenset({"host", "count", "max_loss", "max_rtt"}),
}


@dataclass(frozen=True, slots=True)
class SiteTarget:
    """What a site's checks default to: the host and port of its URL."""

    host: str
    port: int

    @classmethod
    def of(cls, url: str) -> SiteTarget:
        parts = urlsplit(url)
        default = 443 if parts.scheme == "https" else 80
        return cls(host=parts.hostname or "", port=parts.port or default)


def kind_of(reader: NodeReader, keys: dict[str, yaml.Node], node: yaml.Node, field: str) -> str:
    if "kind" not in keys:
        raise reader.error(node, f"{field}.kind", "is required")
    kind = reader.string(keys["kind"], f"{field}.kind")
    if kind not in KIND_KEYS:
        message = f"must be one of {', '.join(KIND_KEYS)}"
        raise reader.error(keys["kind"], f"{field}.kind", message)
    return kind


def parse_spec(
    reader: NodeReader,
    kind: str,
    keys: dict[str, yaml.Node],
    node: yaml.Node,
    field: str,
    site: SiteTarget | None,
) -> CheckSpec:
    """One check's own keys; ``site`` supplies defaults when the check belongs to a site."""
    parse: Callable[[_Keys, SiteTarget | None], CheckSpec] = _PARSERS[kind]
    return parse(_Keys(reader, keys, node, field), site)


@dataclass(frozen=True, slots=True)
class _Keys:
    reader: NodeReader
    keys: dict[str, yaml.Node]
    node: yaml.Node
    field: str

    def where(self, key: str) -> str:
        return f"{self.field}.{key}"

    def host(self, key: str, site: SiteTarget | None) -> str:
        if key in self.keys:
            return config_values.host(self.reader, self.keys[key], self.where(key))
        if site is None:
            raise self.reader.error(self.node, self.where(key), "is required")
        return site.host

    def opt_string(self, key: str) -> str | None:
        return self.reader.string(self.keys[key], self.where(key)) if key in self.keys else None


def _dns(k: _Keys, site: SiteTarget | None) -> DnsCheck:
    record = (
        k.reader.string(k.keys["record"], k.where("record")).upper()
        if ("record" in k.keys)
        else "A"
    )
    if record not in RECORD_TYPES:
        message = f"must be one of {', '.join(RECORD_TYPES)}"
        raise k.reader.error(k.keys["record"], k.where("record"), message)
    resolvers: tuple[str, ...] = ()
    if "resolvers" in k.keys:
        nodes = k.reader.sequence(k.keys["resolvers"], k.where("resolvers"))
        resolvers = tuple(
            config_values.address(k.reader, n, f"{k.where('resolvers')}[{i}]")
            for i, n in enumerate(nodes)
        )
    expect = k.reader.string_list(k.keys["expect"], k.where("expect")) if "expect" in k.keys else ()
    return DnsCheck(query=k.host("query", site), record=record, resolvers=resolvers, expect=expect)


def _tcp(k: _Keys, site: SiteTarget | None) -> TcpCheck:
    if "port" in k.keys:
        port = config_values.port(k.reader, k.keys["port"], k.where("port"))
    elif site is not None:
        port = site.port
    else:
        raise k.reader.error(k.node, k.where("port"), "is required")
    return TcpCheck(
        host=k.host("host", site),
        port=port,
        send=k.opt_string("send"),
        expect_reply=k.opt_string("expect_reply"),
    )


def _tls(k: _Keys, site: SiteTarget | None) -> TlsCheck:
    default_port = site.port if site is not None else 443
    min_version = k.opt_string("min_version")
    if min_version is not None and min_version not in TLS_VERSIONS:
        message = f"must be one of {', '.join(TLS_VERSIONS)}"
        raise k.reader.error(k.keys["min_version"], k.where("min_version"), message)
    min_days = TlsCheck(host="").min_days
    if "min_days" in k.keys:
        min_days = k.reader.number(k.keys["min_days"], k.where("min_days"))
        if min_days < 0:
            raise k.reader.error(k.keys["min_days"], k.where("min_days"), "must not be negative")
    return TlsCheck(
        host=k.host("host", site),
        port=config_values.port(k.reader, k.keys["port"], k.where("port"))
        if "port" in k.keys
        else default_port,
        server_name=config_values.host(k.reader, k.keys["server_name"], k.where("server_name"))
        if "server_name" in k.keys
        else None,
        verify=k.reader.boolean(k.keys["verify"], k.where("verify"))
        if "verify" in k.keys
        else True,
        min_days=min_days,
        min_version=min_version,
    )


def _icmp(k: _Keys, site: SiteTarget | None) -> IcmpCheck:
    count = k.reader.integer(k.keys["count"], k.where("count")) if "count" in k.keys else 3
    if not 1 <= count <= 100:
        raise k.reader.error(k.keys["count"], k.where("count"), "must be from 1 to 100")
    max_loss = (
        k.reader.number(k.keys["max_loss"], k.where("max_loss")) if ("max_loss" in k.keys) else 0.0
    )
    if not 0.0 <= max_loss <= 1.0:
        message = "must be a fraction from 0 to 1 (0.25 = a quarter of the pings)"
        raise k.reader.error(k.keys["max_loss"], k.where("max_loss"), message)
    return IcmpCheck(
        host=k.host("host", site),
        count=count,
        max_loss=max_loss,
        max_rtt=k.reader.duration(k.keys["max_rtt"], k.where("max_rtt"))
        if "max_rtt" in k.keys
        else None,
    )


_PARSERS: dict[str, Callable[[_Keys, SiteTarget | None], CheckSpec]] = {
    "dns": _dns,
    "tcp": _tcp,
    "tls": _tls,
    "icmp": _icmp,
}
