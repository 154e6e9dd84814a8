"""Validators for the values configs are made of: names, URLs, addresses, ports."""

from __future__ import annotations

import re
from urllib.parse import urlsplit

import yaml
from yarl import URL

from monitor.config.yamlnodes import NodeReader
from monitor.hostport import redacted_url, split_host_port

_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]*")


def name(reader: NodeReader, node: yaml.Node, field: str) -> str:
    """A name used as a metric label: letters, digits, ``.``, ``_`` and ``-``."""
    text = reader.string(node, field)
    if not _NAME.fullmatch(text):
        message = "may hold only letters, digits, '.', '_' and '-', starting with a letter or digit"
        raise reader.error(node, field, message)
    return text


def http_url(reader: NodeReader, node: yaml.Node, field: str) -> str:
    url = reader.string(node, field)
    try:
        parts = urlsplit(url)
        port_ok = parts.port is None or parts.port > 0
    except ValueError:
        port_ok = False
        parts = urlsplit("")
    if parts.scheme not in ("http", "https") or not parts.hostname or not port_ok or " " in url:
        shown = redacted_url(url)  # the message goes to stderr and the reload log
        raise reader.error(node, field, f"{shown!r} is not an http:// or https:// URL with a host")
    return url


def address(reader: NodeReader, node: yaml.Node, field: str) -> str:
    """``host``, ``host:port``, ``[v6]:port`` or a bare IPv6 address, as written."""
    text = reader.string(node, field)
    host, port = split_host_port(text)
    if not _usable_host(host) or (port is not None and not 0 < port < 65536):
        message = f"{text!r} is not an address like 203.0.113.10, host:8443 or [2001:db8::1]:443"
        raise reader.error(node, field, message)
    return text


def host(reader: NodeReader, node: yaml.Node, field: str) -> str:
    """A host name or IP address without a port."""
    text = reader.string(node, field)
    found, port = split_host_port(text)
    if not _usable_host(found) or port is not None:
        raise reader.error(node, field, f"{text!r} is not a host name or IP address")
    return found


def port(reader: NodeReader, node: yaml.Node, field: str) -> int:
    number = reader.integer(node, field)
    if not 0 < number < 65536:
        raise reader.error(node, field, "must be a port number from 1 to 65535")
    return number


def _usable_host(host: str) -> bool:
    """A host a URL can carry: the probes build URLs from it, so refuse it here, not per check."""
    if not host:
        return False
    try:
        URL.build(scheme="http", host=host)
    except ValueError:
        return False
    return True
