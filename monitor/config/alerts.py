"""The alert keys of the config: ``notifiers:``, ``alerts:`` (routes) and ``alerting:``.

``notifiers`` maps a name (used in routes and as a metric label) to an Apprise URL;
``alerts`` is a list of routes, each naming the notifiers that hear of which events of
which sites, and when (``after``, ``reminder``); ``alerting`` holds the settings of
delivery: the canary, grouping, the rate limit, retries, the templates and who hears of
the daemon's own trouble. Whether Apprise can use a URL is checked outside this pure
parser (``monitor validate`` and start-up); here only its form is.
"""

from __future__ import annotations

import re
from dataclasses import replace
from typing import Any

import yaml

from monitor.alerts.content import check_template
from monitor.config import values as config_values
from monitor.config.durations import format_duration
from monitor.config.yamlnodes import NodeReader
from monitor.judge.alerting import ROUTABLE, AlertSettings, Event, Notifier, Route, Templates
from monitor.judge.routing import matches

TOP_KEYS = frozenset({"notifiers", "alerts", "alerting"})
_ROUTE_KEYS = frozenset({"notify", "events", "sites", "after", "reminder"})
_ALERTING_KEYS = frozenset(
    {"canary", "group_window", "group_min", "rate_limit", "rate_period", "max_age", "timeout"}
    | {"templates", "self_notify"}
)
_URL = re.compile(r"[A-Za-z][A-Za-z0-9+.-]*://\S*")


def parse_alerts(
    reader: NodeReader, keys: dict[str, yaml.Node], monitors: tuple[str, ...]
) -> AlertSettings:
    """The alert settings of the top-level ``keys``; ``monitors`` are the configured names
    that routes and the canary must match."""
    notifiers = _notifiers(reader, keys["notifiers"]) if "notifiers" in keys else ()
    names = tuple(n.name for n in notifiers)
    routes = _routes(reader, keys["alerts"], names, monitors) if "alerts" in keys else ()
    settings = AlertSettings(notifiers=notifiers, routes=routes)
    if "alerting" in keys:
        settings = _alerting(reader, keys["alerting"], settings, names, monitors)
    return settings


def _notifiers(reader: NodeReader, node: yaml.Node) -> tuple[Notifier, ...]:
    reader.mapping_keys(node, "notifiers")  # a mapping, without duplicate names
    found: list[Notifier] = []
    for key_node, value in node.value:
        field = f"notifiers.{key_node.value}"
        name = config_values.name(reader, key_node, field)
        keys = reader.mapping(value, field, allowed=frozenset({"url"}), required=frozenset({"url"}))
        url = reader.string(keys["url"], f"{field}.url")
        if not _URL.fullmatch(url):
            message = "must be an Apprise URL like slack://..., mailtos://... or json://host/path"
            raise reader.error(keys["url"], f"{field}.url", message)
        found.append(Notifier(name, url))
    return tuple(found)


def _routes(
    reader: NodeReader, node: yaml.Node, notifiers: tuple[str, ...], monitors: tuple[str, ...]
) -> tuple[Route, ...]:
    routes: list[Route] = []
    for index, item in enumerate(reader.sequence(node, "alerts")):
        field = f"alerts[{index}]"
        keys = reader.mapping(item, field, allowed=_ROUTE_KEYS, required=frozenset({"notify"}))
        changes: dict[str, Any] = {
            "notify": _names_of(reader, keys["notify"], f"{field}.notify", notifiers)
        }
        if "events" in keys:
            changes["events"] = _events(reader, keys["events"], f"{field}.events")
        if "sites" in keys:
            changes["sites"] = _sites(reader, keys["sites"], f"{field}.sites", monitors)
        for key in ("after", "reminder"):
            if key in keys:
                changes[key] = reader.duration(keys[key], f"{field}.{key}")
        route = Route(**changes)
        if route.reminder is not None and Event.DOWN not in route.events:
            message = "reminds of down alerts only: add down to events, or drop reminder"
            raise reader.error(keys["reminder"], f"{field}.reminder", message)
        routes.append(route)
    return tuple(routes)


def _names_of(
    reader: NodeReader, node: yaml.Node, field: str, notifiers: tuple[str, ...]
) -> tuple[str, ...]:
    """A list of configured notifier names (at least one)."""
    names = reader.string_list(node, field)
    if not names:
        raise reader.error(node, field, "must name at least one notifier")
    for index, name in enumerate(names):
        if name not in notifiers:
            known = ", ".join(notifiers) or "none are configured under notifiers:"
            item = reader.sequence(node, field)[index]
            raise reader.error(item, f"{field}[{index}]", f"no notifier {name!r} (known: {known})")
    return names


def _events(reader: NodeReader, node: yaml.Node, field: str) -> tuple[Event, ...]:
    events = reader.string_list(node, field)
    if not events:
        raise reader.error(node, field, "must name at least one event")
    allowed = {e.value for e in ROUTABLE}
    for index, event in enumerate(events):
        if event not in allowed:
            item = reader.sequence(node, field)[index]
            known = ", ".join(e.value for e in ROUTABLE)
            raise reader.error(
                item, f"{field}[{index}]", f"unknown event (expected one of: {known})"
            )
    return tuple(Event(e) for e in events)


def _sites(
    reader: NodeReader, node: yaml.Node, field: str, monitors: tuple[str, ...]
) -> tuple[str, ...]:
    patterns = reader.string_list(node, field)
    if not patterns:
        raise reader.error(node, field, "must name at least one site or check")
    for index, pattern in enumerate(patterns):
        if not any(matches(name, (pattern,)) for name in monitors):
            item = reader.sequence(node, field)[index]
            raise reader.error(item, f"{field}[{index}]", f"{pattern!r} matches no site or check")
    return patterns


def _alerting(
    reader: NodeReader,
    node: yaml.Node,
    settings: AlertSettings,
    notifiers: tuple[str, ...],
    monitors: tuple[str, ...],
) -> AlertSettings:
    keys = reader.mapping(node, "alerting", allowed=_ALERTING_KEYS)
    changes: dict[str, Any] = {}
    if "canary" in keys:
        canary = reader.string(keys["canary"], "alerting.canary")
        if canary not in monitors:
            message = f"no site or check named {canary!r}"
            raise reader.error(keys["canary"], "alerting.canary", message)
        changes["canary"] = canary
    for key in ("group_window", "rate_period", "max_age", "timeout"):
        if key in keys:
            changes[key] = reader.duration(keys[key], f"alerting.{key}")
    for key, minimum in (("group_min", 2), ("rate_limit", 1)):
        if key in keys:
            changes[key] = _count(reader, keys[key], f"alerting.{key}", minimum)
    if "templates" in keys:
        changes["templates"] = _templates(reader, keys["templates"])
    if "self_notify" in keys:
        names = reader.string_list(keys["self_notify"], "alerting.self_notify")
        if names:  # an empty list: the daemon's own trouble is only logged
            names = _names_of(reader, keys["self_notify"], "alerting.self_notify", notifiers)
        changes["self_notify"] = names
    settings = replace(settings, **changes)
    if settings.timeout >= settings.max_age:
        node_ = keys.get("timeout") or keys["max_age"]
        message = f"must be shorter than alerting.max_age ({format_duration(settings.max_age)})"
        raise reader.error(node_, "alerting.timeout", message)
    return settings


def _templates(reader: NodeReader, node: yaml.Node) -> Templates:
    keys = reader.mapping(node, "alerting.templates", allowed=frozenset({"title", "body"}))
    changes: dict[str, str] = {}
    for key in ("title", "body"):
        if key in keys:
            field = f"alerting.templates.{key}"
            text = reader.string(keys[key], field)
            problem = check_template(text)
            if problem is not None:
                raise reader.error(keys[key], field, problem)
            changes[key] = text
    return replace(Templates(), **changes)


def _count(reader: NodeReader, node: yaml.Node, field: str, minimum: int) -> int:
    value = reader.integer(node, field)
    if value < minimum:
        raise reader.error(node, field, f"must be at least {minimum}")
    return value
