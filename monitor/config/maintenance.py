"""The ``maintenance:`` list of the config: planned windows, one-off or recurring."""

from __future__ import annotations

import fnmatch
import zoneinfo
from datetime import datetime
from zoneinfo import ZoneInfo

import yaml

from monitor.config.yamlnodes import NodeReader
from monitor.judge.maintenance import Window, trigger

_KEYS = frozenset({"sites", "start", "end", "cron", "duration", "timezone"})


def parse_windows(
    reader: NodeReader, node: yaml.Node, names: tuple[str, ...]
) -> tuple[Window, ...]:
    """Each window; ``names`` are the configured sites and checks its patterns must match."""
    windows: list[Window] = []
    for index, item in enumerate(reader.sequence(node, "maintenance")):
        field = f"maintenance[{index}]"
        keys = reader.mapping(item, field, allowed=_KEYS)
        timezone = _timezone(reader, keys, field)
        sites = _sites(reader, keys, field, names)
        one_off = "start" in keys or "end" in keys
        if one_off == ("cron" in keys or "duration" in keys):
            message = "needs either start and end, or cron and duration"
            raise reader.error(item, field, message)
        if one_off:
            windows.append(_one_off(reader, keys, item, field, sites, timezone))
        else:
            windows.append(_recurring(reader, keys, item, field, sites, timezone))
    return tuple(windows)


def _one_off(
    reader: NodeReader,
    keys: dict[str, yaml.Node],
    item: yaml.Node,
    field: str,
    sites: tuple[str, ...],
    timezone: str,
) -> Window:
    _require(reader, keys, item, field, ("start", "end"))
    start = _time(reader, keys["start"], f"{field}.start", timezone)
    end = _time(reader, keys["end"], f"{field}.end", timezone)
    if end <= start:
        raise reader.error(keys["end"], f"{field}.end", "must be after start")
    return Window(sites=sites, start=start, end=end, timezone=timezone)


def _recurring(
    reader: NodeReader,
    keys: dict[str, yaml.Node],
    item: yaml.Node,
    field: str,
    sites: tuple[str, ...],
    timezone: str,
) -> Window:
    _require(reader, keys, item, field, ("cron", "duration"))
    cron = reader.string(keys["cron"], f"{field}.cron")
    try:
        trigger(cron, timezone)
    except ValueError as exc:
        raise reader.error(
            keys["cron"], f"{field}.cron", f"is not a cron expression: {exc}"
        ) from None
    duration = reader.duration(keys["duration"], f"{field}.duration")
    return Window(sites=sites, cron=cron, duration=duration, timezone=timezone)


def _require(
    reader: NodeReader,
    keys: dict[str, yaml.Node],
    item: yaml.Node,
    field: str,
    names: tuple[str, str],
) -> None:
    for key in names:
        if key not in keys:
            raise reader.error(item, f"{field}.{key}", "is required")


def _sites(
    reader: NodeReader, keys: dict[str, yaml.Node], field: str, names: tuple[str, ...]
) -> tuple[str, ...]:
    if "sites" not in keys:
        return ("*",)
    patterns = reader.string_list(keys["sites"], f"{field}.sites")
    for index, pattern in enumerate(patterns):
        if not fnmatch.filter(names, pattern):
            where = f"{field}.sites[{index}]"
            node = reader.sequence(keys["sites"], where)[index]
            raise reader.error(node, where, f"{pattern!r} matches no site or check")
    return patterns


def _timezone(reader: NodeReader, keys: dict[str, yaml.Node], field: str) -> str:
    if "timezone" not in keys:
        return "UTC"
    name = reader.string(keys["timezone"], f"{field}.timezone")
    try:
        ZoneInfo(name)
    except (zoneinfo.ZoneInfoNotFoundError, ValueError):
        message = f"{name!r} is not a time zone (e.g. UTC, Europe/Paris)"
        raise reader.error(keys["timezone"], f"{field}.timezone", message) from None
    return name


def _time(reader: NodeReader, node: yaml.Node, field: str, timezone: str) -> datetime:
    """An ISO 8601 time; without an offset it is read in the window's time zone."""
    text = node.value if isinstance(node, yaml.ScalarNode) else ""
    try:
        moment = datetime.fromisoformat(str(text).replace("Z", "+00:00"))
    except ValueError:
        message = f"{text!r} is not a time like 2026-11-21T02:00:00Z"
        raise reader.error(node, field, message) from None
    return moment if moment.tzinfo else moment.replace(tzinfo=ZoneInfo(timezone))
