"""The config file: strict YAML in, frozen values out.

``parse_config`` is pure (text and environment in, ``Config`` out); ``load_config`` only
adds reading the file. Every mistake is a ``ConfigError`` naming file, line and field.
"""

from __future__ import annotations

import contextlib
import ipaddress
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import yaml

from monitor.durations import format_duration, parse_duration
from monitor.errors import ConfigError
from monitor.models import Expect, Origin, Site, StatusRange
from monitor.yamlnodes import NodeReader, compose

DEFAULT_STORAGE_URL = "sqlite+aiosqlite:///monitor.db"
DEFAULT_LISTEN = "127.0.0.1:9108"
DEFAULT_INTERVAL = 30.0
DEFAULT_TIMEOUT = 10.0
MIN_INTERVAL = 1.0
STORAGE_SCHEMES = ("sqlite+aiosqlite://", "postgresql+asyncpg://")
_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]*")
_STATUS_RANGE = re.compile(r"(\d{3})(?:\s*-\s*(\d{3}))?")
_HOST_PORT = re.compile(r"(?:\[(?P<v6>[0-9A-Fa-f:.]+)\]|(?P<host>[^:\[\]\s/]+))(?::(?P<port>\d+))?")


@dataclass(frozen=True, slots=True)
class Storage:
    url: str

    @property
    def display_url(self) -> str:
        """The URL with any password masked, for logs and messages."""
        parts = urlsplit(self.url)
        if not parts.password:
            return self.url
        netloc = parts.netloc.replace(f":{parts.password}@", ":***@", 1)
        return urlunsplit(parts._replace(netloc=netloc))


@dataclass(frozen=True, slots=True)
class Server:
    host: str
    port: int


@dataclass(frozen=True, slots=True)
class Config:
    storage: Storage
    server: Server
    sites: tuple[Site, ...]


@dataclass(frozen=True, slots=True)
class _Defaults:
    interval: float = DEFAULT_INTERVAL
    timeout: float = DEFAULT_TIMEOUT


def load_config(path: str | Path, env: Mapping[str, str] | None = None) -> Config:
    """Read and parse the config file at ``path`` (environment from ``os.environ``)."""
    name = str(path)
    try:
        text = Path(path).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
        raise ConfigError(f"cannot read config: {reason}", file=name, line=None) from None
    return parse_config(text, file=name, env=os.environ if env is None else env)


def parse_config(text: str, *, file: str, env: Mapping[str, str]) -> Config:
    """Parse and validate a whole config; raises ConfigError at the first mistake."""
    root = compose(text, file=file)
    if root is None:
        raise ConfigError("the config is empty (at least one site is required)", file=file, line=1)
    reader = NodeReader(file=file, env=env)
    keys = reader.mapping(
        root,
        "",
        allowed=frozenset({"storage", "server", "defaults", "sites"}),
        required=frozenset({"sites"}),
    )
    defaults = _parse_defaults(reader, keys["defaults"]) if "defaults" in keys else _Defaults()
    return Config(
        storage=_parse_storage(reader, keys["storage"])
        if "storage" in keys
        else _default_storage(),
        server=_parse_server(reader, keys["server"]) if "server" in keys else _default_server(),
        sites=_parse_sites(reader, keys["sites"], defaults),
    )


def _default_storage() -> Storage:
    return Storage(url=DEFAULT_STORAGE_URL)


def _default_server() -> Server:
    host, port = _split_host_port(DEFAULT_LISTEN)
    return Server(host=host, port=port or 0)


def _parse_storage(reader: NodeReader, node: yaml.Node) -> Storage:
    keys = reader.mapping(node, "storage", allowed=frozenset({"url"}), required=frozenset({"url"}))
    url = reader.string(keys["url"], "storage.url")
    if not url.startswith(STORAGE_SCHEMES):
        schemes = " or ".join(STORAGE_SCHEMES)
        raise reader.error(keys["url"], "storage.url", f"must start with {schemes}")
    return Storage(url=url)


def _parse_server(reader: NodeReader, node: yaml.Node) -> Server:
    keys = reader.mapping(node, "server", allowed=frozenset({"listen"}))
    if "listen" not in keys:
        return _default_server()
    text = reader.scalar_text(keys["listen"], "server.listen")
    host, port = _split_host_port(text)
    if not host or port is None or not 0 < port < 65536:
        message = "must be host:port, e.g. 127.0.0.1:9108 or [::1]:9108"
        raise reader.error(keys["listen"], "server.listen", message)
    return Server(host=host, port=port)


def _parse_defaults(reader: NodeReader, node: yaml.Node) -> _Defaults:
    keys = reader.mapping(node, "defaults", allowed=frozenset({"interval", "timeout"}))
    interval = _duration(reader, keys, "interval", "defaults", DEFAULT_INTERVAL)
    timeout = _duration(reader, keys, "timeout", "defaults", min(DEFAULT_TIMEOUT, interval / 2))
    _check_timing(reader, keys, "defaults", interval, timeout)
    return _Defaults(interval=interval, timeout=timeout)


_SITE_KEYS = frozenset({"name", "url", "interval", "timeout", "expect", "origins"})


def _parse_sites(reader: NodeReader, node: yaml.Node, defaults: _Defaults) -> tuple[Site, ...]:
    items = reader.sequence(node, "sites")
    if not items:
        raise reader.error(node, "sites", "at least one site is required")
    sites: list[Site] = []
    seen: set[str] = set()
    for index, item in enumerate(items):
        field = f"sites[{index}]"
        site = _parse_site(reader, item, field, defaults)
        if site.name in seen:
            name_node = reader.mapping(item, field, allowed=_SITE_KEYS)["name"]
            raise reader.error(name_node, f"{field}.name", f"duplicate site name {site.name!r}")
        seen.add(site.name)
        sites.append(site)
    return tuple(sites)


def _parse_site(reader: NodeReader, node: yaml.Node, field: str, defaults: _Defaults) -> Site:
    keys = reader.mapping(node, field, allowed=_SITE_KEYS, required=frozenset({"name", "url"}))
    interval = _duration(reader, keys, "interval", field, defaults.interval)
    timeout = _duration(reader, keys, "timeout", field, min(defaults.timeout, interval / 2))
    _check_timing(reader, keys, field, interval, timeout)
    return Site(
        name=_name(reader, keys["name"], f"{field}.name"),
        url=_http_url(reader, keys["url"], f"{field}.url"),
        interval=interval,
        timeout=timeout,
        expect=_parse_expect(reader, keys["expect"], f"{field}.expect")
        if "expect" in keys
        else Expect(),
        origins=_parse_origins(reader, keys["origins"], f"{field}.origins")
        if "origins" in keys
        else (),
    )


def _parse_expect(reader: NodeReader, node: yaml.Node, field: str) -> Expect:
    keys = reader.mapping(node, field, allowed=frozenset({"status", "body_contains"}))
    status = Expect().status
    if "status" in keys:
        items = reader.sequence(keys["status"], f"{field}.status")
        if not items:
            raise reader.error(keys["status"], f"{field}.status", "must list at least one code")
        status = tuple(
            _status_range(reader, item, f"{field}.status[{i}]") for i, item in enumerate(items)
        )
    body = keys.get("body_contains")
    return Expect(
        status=status,
        body_contains=None if body is None else reader.string(body, f"{field}.body_contains"),
    )


def _status_range(reader: NodeReader, node: yaml.Node, field: str) -> StatusRange:
    text = reader.scalar_text(node, field)
    match = _STATUS_RANGE.fullmatch(text.strip())
    low = int(match.group(1)) if match else 0
    high = int(match.group(2) or low) if match else 0
    if not (match and 100 <= low <= high <= 599):
        message = f"{text!r} is not a status code (100-599) or a range like 200-399"
        raise reader.error(node, field, message)
    return StatusRange(low, high)


def _parse_origins(reader: NodeReader, node: yaml.Node, field: str) -> tuple[Origin, ...]:
    origins: list[Origin] = []
    for index, item in enumerate(reader.sequence(node, field)):
        where = f"{field}[{index}]"
        keys = reader.mapping(
            item, where, allowed=frozenset({"name", "address", "url"}), required=frozenset({"name"})
        )
        name = _name(reader, keys["name"], f"{where}.name")
        if any(o.name == name for o in origins):
            raise reader.error(keys["name"], f"{where}.name", f"duplicate origin name {name!r}")
        if ("address" in keys) == ("url" in keys):
            raise reader.error(item, where, "needs exactly one of address or url")
        address = keys.get("address")
        url = keys.get("url")
        origins.append(
            Origin(
                name=name,
                address=None if address is None else _address(reader, address, f"{where}.address"),
                url=None if url is None else _http_url(reader, url, f"{where}.url"),
            )
        )
    return tuple(origins)


def _duration(
    reader: NodeReader, keys: dict[str, yaml.Node], key: str, field: str, default: float
) -> float:
    if key not in keys:
        return default
    where = f"{field}.{key}"
    try:
        seconds = parse_duration(reader.scalar_text(keys[key], where))
    except ValueError as exc:
        raise reader.error(keys[key], where, str(exc)) from None
    if seconds <= 0:
        raise reader.error(keys[key], where, "must be longer than zero")
    return seconds


def _check_timing(
    reader: NodeReader, keys: dict[str, yaml.Node], field: str, interval: float, timeout: float
) -> None:
    if interval < MIN_INTERVAL and "interval" in keys:
        minimum = format_duration(MIN_INTERVAL)
        raise reader.error(keys["interval"], f"{field}.interval", f"must be at least {minimum}")
    if timeout >= interval:
        node = keys.get("timeout") or keys["interval"]
        message = f"must be shorter than interval ({format_duration(interval)})"
        raise reader.error(node, f"{field}.timeout", message)


def _name(reader: NodeReader, node: yaml.Node, field: str) -> str:
    name = reader.string(node, field)
    if not _NAME.fullmatch(name):
        message = "may hold only letters, digits, '.', '_' and '-', starting with a letter or digit"
        raise reader.error(node, field, message)
    return name


def _http_url(reader: NodeReader, node: yaml.Node, field: str) -> str:
    url = reader.string(node, field)
    try:
        parts = urlsplit(url)
        port_ok = parts.port is None or parts.port > 0
    except ValueError:
        port_ok = False
        parts = urlsplit("")
    if parts.scheme not in ("http", "https") or not parts.hostname or not port_ok or " " in url:
        raise reader.error(node, field, f"{url!r} is not an http:// or https:// URL with a host")
    return url


def _address(reader: NodeReader, node: yaml.Node, field: str) -> str:
    text = reader.string(node, field)
    host, port = _split_host_port(text)
    if not host or (port is not None and not 0 < port < 65536):
        message = f"{text!r} is not an address like 203.0.113.10, host:8443 or [2001:db8::1]:443"
        raise reader.error(node, field, message)
    return text


def _split_host_port(text: str) -> tuple[str, int | None]:
    """``host:port``, ``[v6]:port``, or a bare host; ("", None) when it is none of these."""
    text = text.strip()
    with contextlib.suppress(ValueError):
        return str(ipaddress.IPv6Address(text)), None
    match = _HOST_PORT.fullmatch(text)
    if not match:
        return "", None
    port = match.group("port")
    return match.group("v6") or match.group("host"), None if port is None else int(port)
