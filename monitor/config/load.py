"""The config file: strict YAML in, frozen values out.

``parse_config`` is pure (text and environment in, ``Config`` out); ``load_config`` only
adds reading the file. Every mistake is a ``ConfigError`` naming file, line and field.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TypeVar
from urllib.parse import urlsplit, urlunsplit

import yaml

from monitor.config import alerts as config_alerts
from monitor.config import checks as config_checks
from monitor.config import http as config_http
from monitor.config import maintenance as config_maintenance
from monitor.config import tracking as config_tracking
from monitor.config import values as config_values
from monitor.config.durations import format_duration
from monitor.config.yamlnodes import NodeReader, compose
from monitor.errors import ConfigError
from monitor.hostport import split_host_port
from monitor.judge.alerting import AlertSettings
from monitor.judge.maintenance import Window
from monitor.judge.tracker import Tracking
from monitor.models import Check, CheckSpec, Expect, Origin, Site

DEFAULT_STORAGE_URL = "sqlite+aiosqlite:///monitor.db"
# Seconds: the longest of monitor.engine.scheduler.BEAT_STEPS; the scheduler also keeps a beat
# within a tenth of the shortest interval.
MAX_BEAT = 5.0
DEFAULT_LISTEN = "127.0.0.1:9108"
DEFAULT_INTERVAL = 30.0
DEFAULT_TIMEOUT = 10.0
MIN_INTERVAL = 1.0
STORAGE_SCHEMES = ("sqlite+aiosqlite://", "postgresql+asyncpg://")


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
    # Per-site latency histograms: 45 series a site (3 phases x 15), two thirds of the page.
    site_histograms: bool = True
    # Runs are planned on multiples of this many seconds (0: each at its own grid point;
    # None: ``auto``, chosen from the rate of runs by monitor.engine.scheduler.choose_beat).
    beat: float | None = None
    # The most probes running at once (0: no cap; None: ``auto``, from the open-files
    # limit by monitor.probes.slots.auto_limit).
    max_probes_in_flight: int | None = None


@dataclass(frozen=True, slots=True)
class Config:
    storage: Storage
    server: Server
    sites: tuple[Site, ...]
    checks: tuple[Check, ...] = ()
    maintenance: tuple[Window, ...] = ()
    tracking: Mapping[str, Tracking] = field(default_factory=dict)  # by monitor name
    alerts: AlertSettings = field(default_factory=AlertSettings)

    @property
    def monitors(self) -> tuple[Site | Check, ...]:
        """Everything the scheduler fires, sites first."""
        return (*self.sites, *self.checks)


@dataclass(frozen=True, slots=True)
class _Defaults:
    interval: float = DEFAULT_INTERVAL
    timeout: float = DEFAULT_TIMEOUT
    tracking: Tracking = field(default_factory=Tracking)


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
        message = "the config is empty (at least one site or check is required)"
        raise ConfigError(message, file=file, line=1)
    reader = NodeReader(file=file, env=env)
    keys = reader.mapping(
        root,
        "",
        allowed=frozenset({"storage", "server", "defaults", "sites", "checks", "maintenance"})
        | config_alerts.TOP_KEYS,
    )
    defaults = _parse_defaults(reader, keys["defaults"]) if "defaults" in keys else _Defaults()
    sites, checks, tracking = _parse_monitors(reader, keys, defaults)
    return Config(
        storage=_parse_storage(reader, keys["storage"])
        if "storage" in keys
        else _default_storage(),
        server=_parse_server(reader, keys["server"]) if "server" in keys else _default_server(),
        sites=sites,
        checks=checks,
        maintenance=config_maintenance.parse_windows(
            reader, keys["maintenance"], _names(sites, checks)
        )
        if "maintenance" in keys
        else (),
        tracking=tracking,
        alerts=config_alerts.parse_alerts(reader, keys, _names(sites, checks)),
    )


def _names(sites: tuple[Site, ...], checks: tuple[Check, ...]) -> tuple[str, ...]:
    return tuple(site.name for site in sites) + tuple(check.name for check in checks)


def _default_storage() -> Storage:
    return Storage(url=DEFAULT_STORAGE_URL)


def _default_server() -> Server:
    host, port = split_host_port(DEFAULT_LISTEN)
    return Server(host=host, port=port or 0)


def _parse_storage(reader: NodeReader, node: yaml.Node) -> Storage:
    keys = reader.mapping(node, "storage", allowed=frozenset({"url"}), required=frozenset({"url"}))
    url = reader.string(keys["url"], "storage.url")
    if not url.startswith(STORAGE_SCHEMES):
        schemes = " or ".join(STORAGE_SCHEMES)
        raise reader.error(keys["url"], "storage.url", f"must start with {schemes}")
    return Storage(url=url)


def _parse_server(reader: NodeReader, node: yaml.Node) -> Server:
    allowed = frozenset({"listen", "site_histograms", "beat", "max_probes_in_flight"})
    keys = reader.mapping(node, "server", allowed=allowed)
    server = _default_server()
    if "site_histograms" in keys:
        histograms = reader.boolean(keys["site_histograms"], "server.site_histograms")
        server = replace(server, site_histograms=histograms)
    if "beat" in keys:
        server = replace(server, beat=_beat(reader, keys["beat"]))
    if "max_probes_in_flight" in keys:
        cap = _probes_in_flight(reader, keys["max_probes_in_flight"])
        server = replace(server, max_probes_in_flight=cap)
    if "listen" not in keys:
        return server
    text = reader.scalar_text(keys["listen"], "server.listen")
    host, port = split_host_port(text)
    if not host or port is None or not 0 < port < 65536:
        message = "must be host:port, e.g. 127.0.0.1:9108 or [::1]:9108"
        raise reader.error(keys["listen"], "server.listen", message)
    return replace(server, host=host, port=port)


def _beat(reader: NodeReader, node: yaml.Node) -> float | None:
    """``server.beat``: ``auto`` (None), a duration up to MAX_BEAT, or 0 to plan each run
    at its own grid point."""
    if isinstance(node, yaml.ScalarNode):
        text = node.value.strip()
        if text == "auto":
            return None
        if text in ("0", "0s", "0ms"):
            return 0.0
    beat = reader.duration(node, "server.beat")
    if beat > MAX_BEAT:
        message = f"must be auto, 0, or at most {MAX_BEAT:g}s (runs are planned up to a beat late)"
        raise reader.error(node, "server.beat", message)
    return beat


def _probes_in_flight(reader: NodeReader, node: yaml.Node) -> int | None:
    """``server.max_probes_in_flight``: ``auto`` (None), or a count; 0 for no cap."""
    if isinstance(node, yaml.ScalarNode) and node.value.strip() == "auto":
        return None
    field = "server.max_probes_in_flight"
    whole = isinstance(node, yaml.ScalarNode) and node.tag == "tag:yaml.org,2002:int"
    cap = reader.integer(node, field) if whole else -1
    if cap < 0:
        raise reader.error(node, field, "must be auto, 0 (no cap) or a whole number")
    return cap


def _parse_defaults(reader: NodeReader, node: yaml.Node) -> _Defaults:
    allowed = frozenset({"interval", "timeout"}) | config_tracking.KEYS
    keys = reader.mapping(node, "defaults", allowed=allowed)
    interval = _duration(reader, keys, "interval", "defaults", DEFAULT_INTERVAL)
    timeout = _duration(reader, keys, "timeout", "defaults", min(DEFAULT_TIMEOUT, interval / 2))
    _check_timing(reader, keys, "defaults", interval, timeout)
    tracking = config_tracking.parse_tracking(reader, keys, "defaults", Tracking())
    return _Defaults(interval=interval, timeout=timeout, tracking=tracking)


_SITE_KEYS = frozenset({"name", "url", "interval", "timeout", "expect", "origins", "checks"})
_SITE_KEYS |= config_http.REQUEST_KEYS | config_tracking.KEYS
_ORIGIN_KEYS = frozenset({"name", "address", "url", "tls_verify_name", "tls_verify"})


def _parse_monitors(
    reader: NodeReader, keys: dict[str, yaml.Node], defaults: _Defaults
) -> tuple[tuple[Site, ...], tuple[Check, ...], dict[str, Tracking]]:
    """Sites and stand-alone checks, and how each is tracked; their names share one space
    (the metric label)."""
    sites = _parse_list(reader, keys.get("sites"), "sites", defaults, _parse_site)
    checks = _parse_list(reader, keys.get("checks"), "checks", defaults, _parse_check)
    if not sites and not checks:
        node = keys.get("sites") or keys.get("checks")
        line = None if node is None else node.start_mark.line + 1
        raise ConfigError(
            "at least one site or check is required", file=reader.file, line=line, field="sites"
        )
    named = [("sites", i, s.name, n) for i, (s, n) in enumerate(sites)]
    named += [("checks", i, c.name, n) for i, (c, n) in enumerate(checks)]
    seen: set[str] = set()
    for kind, index, name, node in named:
        if name in seen:
            name_node = reader.mapping_keys(node, f"{kind}[{index}]")["name"]
            message = f"duplicate name {name!r} (sites and checks share names)"
            raise reader.error(name_node, f"{kind}[{index}].name", message)
        seen.add(name)
    tracking = {
        site.name: _tracking_of(reader, node, "sites", index, site, defaults)
        for index, (site, node) in enumerate(sites)
    }
    for index, (check, node) in enumerate(checks):
        tracking[check.name] = _tracking_of(reader, node, "checks", index, check, defaults)
    return tuple(s for s, _ in sites), tuple(c for c, _ in checks), tracking


def _tracking_of(
    reader: NodeReader,
    node: yaml.Node,
    kind: str,
    index: int,
    monitor: Site | Check,
    defaults: _Defaults,
) -> Tracking:
    """The monitor's own tracking keys over the defaults; the trend forecast's limit is the
    site's max_latency, or else its timeout, unless one is set."""
    keys = reader.mapping_keys(node, f"{kind}[{index}]")
    tracking = config_tracking.parse_tracking(reader, keys, f"{kind}[{index}]", defaults.tracking)
    if tracking.trend.limit is not None:
        return tracking
    limit = monitor.expect.max_latency if isinstance(monitor, Site) else None
    return replace(tracking, trend=replace(tracking.trend, limit=limit or monitor.timeout))


_T = TypeVar("_T", Site, Check)


def _parse_list(
    reader: NodeReader,
    node: yaml.Node | None,
    field: str,
    defaults: _Defaults,
    parse: Callable[[NodeReader, yaml.Node, str, _Defaults], _T],
) -> list[tuple[_T, yaml.Node]]:
    if node is None:
        return []
    items = reader.sequence(node, field)
    return [(parse(reader, item, f"{field}[{i}]", defaults), item) for i, item in enumerate(items)]


def _parse_site(reader: NodeReader, node: yaml.Node, field: str, defaults: _Defaults) -> Site:
    keys = reader.mapping(node, field, allowed=_SITE_KEYS, required=frozenset({"name", "url"}))
    interval, timeout = _timing(reader, keys, field, defaults)
    url = config_values.http_url(reader, keys["url"], f"{field}.url")
    expect = (
        config_http.parse_expect(reader, keys["expect"], f"{field}.expect")
        if "expect" in keys
        else Expect()
    )
    if expect.max_latency is not None and expect.max_latency >= timeout:
        node_ = reader.mapping_keys(keys["expect"], f"{field}.expect")["max_latency"]
        message = f"must be shorter than timeout ({format_duration(timeout)})"
        raise reader.error(node_, f"{field}.expect.max_latency", message)
    return Site(
        name=config_values.name(reader, keys["name"], f"{field}.name"),
        url=url,
        interval=interval,
        timeout=timeout,
        expect=expect,
        request=config_http.parse_request(reader, keys, field),
        origins=_parse_origins(reader, keys["origins"], f"{field}.origins")
        if "origins" in keys
        else (),
        checks=_parse_site_checks(reader, keys["checks"], f"{field}.checks", url)
        if "checks" in keys
        else (),
    )


def _parse_site_checks(
    reader: NodeReader, node: yaml.Node, field: str, url: str
) -> tuple[CheckSpec, ...]:
    site = config_checks.SiteTarget.of(url)
    specs: list[CheckSpec] = []
    for index, item in enumerate(reader.sequence(node, field)):
        where = f"{field}[{index}]"
        kind = config_checks.kind_of(reader, reader.mapping_keys(item, where), item, where)
        allowed = config_checks.KIND_KEYS[kind] | {"kind"}
        keys = reader.mapping(item, where, allowed=allowed)
        specs.append(config_checks.parse_spec(reader, kind, keys, item, where, site))
    return tuple(specs)


def _parse_check(reader: NodeReader, node: yaml.Node, field: str, defaults: _Defaults) -> Check:
    kind = config_checks.kind_of(reader, reader.mapping_keys(node, field), node, field)
    allowed = config_checks.KIND_KEYS[kind] | {"kind", "name", "interval", "timeout"}
    allowed |= config_tracking.KEYS
    keys = reader.mapping(node, field, allowed=allowed, required=frozenset({"name"}))
    interval, timeout = _timing(reader, keys, field, defaults)
    return Check(
        name=config_values.name(reader, keys["name"], f"{field}.name"),
        interval=interval,
        timeout=timeout,
        spec=config_checks.parse_spec(reader, kind, keys, node, field, None),
    )


def _parse_origins(reader: NodeReader, node: yaml.Node, field: str) -> tuple[Origin, ...]:
    origins: list[Origin] = []
    for index, item in enumerate(reader.sequence(node, field)):
        where = f"{field}[{index}]"
        keys = reader.mapping(item, where, allowed=_ORIGIN_KEYS, required=frozenset({"name"}))
        name = config_values.name(reader, keys["name"], f"{where}.name")
        if any(o.name == name for o in origins):
            raise reader.error(keys["name"], f"{where}.name", f"duplicate origin name {name!r}")
        if ("address" in keys) == ("url" in keys):
            raise reader.error(item, where, "needs exactly one of address or url")
        origins.append(_origin(reader, keys, where, name))
    return tuple(origins)


def _origin(reader: NodeReader, keys: dict[str, yaml.Node], where: str, name: str) -> Origin:
    address = keys.get("address")
    url = keys.get("url")
    verify_name = keys.get("tls_verify_name")
    return Origin(
        name=name,
        address=None
        if address is None
        else config_values.address(reader, address, f"{where}.address"),
        url=None if url is None else config_values.http_url(reader, url, f"{where}.url"),
        tls_verify_name=None
        if verify_name is None
        else config_values.host(reader, verify_name, f"{where}.tls_verify_name"),
        tls_verify=reader.boolean(keys["tls_verify"], f"{where}.tls_verify")
        if "tls_verify" in keys
        else True,
    )


def _timing(
    reader: NodeReader, keys: dict[str, yaml.Node], field: str, defaults: _Defaults
) -> tuple[float, float]:
    interval = _duration(reader, keys, "interval", field, defaults.interval)
    timeout = _duration(reader, keys, "timeout", field, min(defaults.timeout, interval / 2))
    _check_timing(reader, keys, field, interval, timeout)
    return interval, timeout


def _duration(
    reader: NodeReader, keys: dict[str, yaml.Node], key: str, field: str, default: float
) -> float:
    return reader.duration(keys[key], f"{field}.{key}") if key in keys else default


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


def check_notifiers(path: str, config: Config) -> None:
    """Every notifier URL is one Apprise can use; ConfigError naming the first that is not
    (routes name real notifiers: the parser checks that). Apprise loads only when needed."""
    if not config.alerts.notifiers:
        return
    from monitor.alerts.apprise_send import url_problem  # Apprise only when there are any

    for notifier in config.alerts.notifiers:
        problem = url_problem(notifier.url)
        if problem is not None:
            raise ConfigError(problem, file=path, line=None, field=f"notifiers.{notifier.name}.url")
