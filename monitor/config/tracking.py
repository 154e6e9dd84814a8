"""The state and trend settings of the config, under ``defaults:`` or per site and check.

The keys are a public interface: ``failure_threshold``, ``recovery_threshold``,
``failure_window``, ``confirm``, ``flap_threshold``, ``flap_window`` and ``trend:``.
A site's keys override the defaults one by one, inside ``trend:`` too.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import yaml

from monitor.config.yamlnodes import NodeReader
from monitor.judge.state import Policy
from monitor.judge.tracker import Tracking
from monitor.judge.trends import TrendSettings
from monitor.models import PHASES

KEYS = frozenset(
    {
        "failure_threshold",
        "recovery_threshold",
        "failure_window",
        "confirm",
        "flap_threshold",
        "flap_window",
        "trend",
    }
)
_TREND_KEYS = frozenset(
    {"enabled", "phases", "baseline", "warmup", "min_factor", "anomalous", "window", "recovery"}
    | {"min_delta", "limit"}
)
TREND_PHASES = (*PHASES, "total")


def parse_tracking(
    reader: NodeReader, keys: dict[str, yaml.Node], field: str, base: Tracking
) -> Tracking:
    """``base`` with the keys of ``keys`` that are tracking settings applied."""
    policy = _policy(reader, keys, field, base.policy)
    trend = base.trend
    if "trend" in keys:
        trend = _trend(reader, keys["trend"], f"{field}.trend" if field else "trend", trend)
    return Tracking(policy, trend)


def _policy(reader: NodeReader, keys: dict[str, yaml.Node], field: str, base: Policy) -> Policy:
    def where(key: str) -> str:
        return f"{field}.{key}" if field else key

    counts: dict[str, Any] = {
        key: _count(reader, keys[key], where(key), minimum)
        for key, minimum in (
            ("failure_threshold", 1),
            ("recovery_threshold", 1),
            ("failure_window", 1),
            ("flap_threshold", 2),
        )
        if key in keys
    }
    policy = replace(base, **counts)
    if "confirm" in keys:
        policy = replace(policy, confirm=reader.boolean(keys["confirm"], where("confirm")))
    if "flap_window" in keys:
        window = reader.duration(keys["flap_window"], where("flap_window"))
        policy = replace(policy, flap_window=window)
    if policy.failure_window is not None and policy.failure_window < policy.failure_threshold:
        node = keys.get("failure_window") or keys["failure_threshold"]
        message = f"must be at least failure_threshold ({policy.failure_threshold})"
        raise reader.error(node, where("failure_window"), message)
    return policy


def _trend(reader: NodeReader, node: yaml.Node, field: str, base: TrendSettings) -> TrendSettings:
    keys = reader.mapping(node, field, allowed=_TREND_KEYS)
    changes: dict[str, Any] = {}
    if "enabled" in keys:
        changes["enabled"] = reader.boolean(keys["enabled"], f"{field}.enabled")
    if "phases" in keys:
        changes["phases"] = _phases(reader, keys["phases"], f"{field}.phases")
    for key in ("baseline", "min_delta", "limit"):
        if key in keys:
            changes[key] = reader.duration(keys[key], f"{field}.{key}")
    for key in ("warmup", "anomalous", "window", "recovery"):
        if key in keys:
            changes[key] = _count(reader, keys[key], f"{field}.{key}", 1)
    if "min_factor" in keys:
        changes["min_factor"] = reader.number(keys["min_factor"], f"{field}.min_factor")
        if changes["min_factor"] <= 1:
            raise reader.error(keys["min_factor"], f"{field}.min_factor", "must be more than 1")
    anomalous = changes.get("anomalous", base.anomalous)
    window = changes.get("window", base.window)
    if anomalous > window:
        node_ = keys.get("anomalous") or keys.get("window") or node
        message = f"must be at most trend.window ({window})"
        raise reader.error(node_, f"{field}.anomalous", message)
    trend = replace(base, **changes)
    return trend


def _phases(reader: NodeReader, node: yaml.Node, field: str) -> tuple[str, ...]:
    phases = reader.string_list(node, field)
    for index, phase in enumerate(phases):
        if phase not in TREND_PHASES:
            item = reader.sequence(node, field)[index]
            known = ", ".join(TREND_PHASES)
            raise reader.error(
                item, f"{field}[{index}]", f"unknown phase (expected one of: {known})"
            )
    if not phases:
        raise reader.error(node, field, "must name at least one phase")
    return phases


def _count(reader: NodeReader, node: yaml.Node, field: str, minimum: int) -> int:
    value = reader.integer(node, field)
    if value < minimum:
        raise reader.error(node, field, f"must be at least {minimum}")
    return value
