"""The HTTP parts of a site's config: how to ask (request options) and what to expect."""

from __future__ import annotations

import re

import yaml

from monitor import jsonpath
from monitor.config import values as config_values
from monitor.config.yamlnodes import NodeReader
from monitor.models import Expect, HttpRequest, IpVersion, JsonExpect, StatusRange
from monitor.probes.http.transport import TOKEN_PUNCTUATION, is_header_name

REQUEST_KEYS = frozenset(
    {
        "method",
        "headers",
        "body",
        "follow_redirects",
        "max_redirects",
        "basic_auth",
        "bearer_token",
        "ip_version",
        "proxy",
    }
)
METHODS = ("GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS")
_EXPECT_KEYS = frozenset(
    {
        "status",
        "body_contains",
        "body_not_contains",
        "body_matches",
        "json",
        "headers",
        "max_latency",
    }
)
_STATUS_RANGE = re.compile(r"(\d{3})(?:\s*-\s*(\d{3}))?")


def parse_request(reader: NodeReader, keys: dict[str, yaml.Node], field: str) -> HttpRequest:
    """The request options written among a site's keys (``method``, ``headers``, ...)."""
    follow = (
        reader.boolean(keys["follow_redirects"], f"{field}.follow_redirects")
        if ("follow_redirects" in keys)
        else False
    )
    if "max_redirects" in keys and not follow:
        message = "only applies with follow_redirects: true"
        raise reader.error(keys["max_redirects"], f"{field}.max_redirects", message)
    if "basic_auth" in keys and "bearer_token" in keys:
        raise reader.error(
            keys["bearer_token"], f"{field}.bearer_token", "cannot be used together with basic_auth"
        )
    return HttpRequest(
        method=_method(reader, keys, field),
        headers=_headers(reader, keys["headers"], f"{field}.headers") if "headers" in keys else (),
        body=reader.string(keys["body"], f"{field}.body") if "body" in keys else None,
        follow_redirects=follow,
        max_redirects=_max_redirects(reader, keys, field),
        basic_auth=_basic_auth(reader, keys["basic_auth"], f"{field}.basic_auth")
        if "basic_auth" in keys
        else None,
        bearer_token=reader.string(keys["bearer_token"], f"{field}.bearer_token")
        if "bearer_token" in keys
        else None,
        ip_version=_ip_version(reader, keys, field),
        proxy=config_values.http_url(reader, keys["proxy"], f"{field}.proxy")
        if "proxy" in keys
        else None,
    )


def _method(reader: NodeReader, keys: dict[str, yaml.Node], field: str) -> str:
    if "method" not in keys:
        return "GET"
    method = reader.string(keys["method"], f"{field}.method").upper()
    if method not in METHODS:
        message = f"must be one of {', '.join(METHODS)}"
        raise reader.error(keys["method"], f"{field}.method", message)
    return method


def _headers(reader: NodeReader, node: yaml.Node, field: str) -> tuple[tuple[str, str], ...]:
    pairs = reader.string_map(node, field)
    assert isinstance(node, yaml.MappingNode)  # string_map refuses anything else
    for (key_node, _), (name, _) in zip(node.value, pairs, strict=True):
        if not is_header_name(name):
            message = (
                f"{name!r} is not a valid header name "
                f"(letters, digits and {TOKEN_PUNCTUATION} only)"
            )
            raise reader.error(key_node, field, message)
    return pairs


def _max_redirects(reader: NodeReader, keys: dict[str, yaml.Node], field: str) -> int:
    if "max_redirects" not in keys:
        return HttpRequest().max_redirects
    count = reader.integer(keys["max_redirects"], f"{field}.max_redirects")
    if not 0 <= count <= 50:
        raise reader.error(keys["max_redirects"], f"{field}.max_redirects", "must be from 0 to 50")
    return count


def _basic_auth(reader: NodeReader, node: yaml.Node, field: str) -> tuple[str, str]:
    keys = reader.mapping(
        node,
        field,
        allowed=frozenset({"user", "password"}),
        required=frozenset({"user", "password"}),
    )
    return reader.string(keys["user"], f"{field}.user"), reader.string(
        keys["password"], f"{field}.password"
    )


def _ip_version(reader: NodeReader, keys: dict[str, yaml.Node], field: str) -> IpVersion:
    if "ip_version" not in keys:
        return IpVersion.ANY
    text = reader.scalar_text(keys["ip_version"], f"{field}.ip_version").lower()
    try:
        return IpVersion(text)
    except ValueError:
        raise reader.error(
            keys["ip_version"], f"{field}.ip_version", "must be 4, 6 or any"
        ) from None


def parse_expect(reader: NodeReader, node: yaml.Node, field: str) -> Expect:
    keys = reader.mapping(node, field, allowed=_EXPECT_KEYS)

    def text(key: str) -> str | None:
        return reader.string(keys[key], f"{field}.{key}") if key in keys else None

    return Expect(
        status=_statuses(reader, keys["status"], f"{field}.status")
        if "status" in keys
        else Expect().status,
        body_contains=text("body_contains"),
        body_not_contains=text("body_not_contains"),
        body_matches=reader.regex(keys["body_matches"], f"{field}.body_matches")
        if "body_matches" in keys
        else None,
        json=_json_expects(reader, keys["json"], f"{field}.json") if "json" in keys else (),
        headers=_header_expects(reader, keys["headers"], f"{field}.headers")
        if "headers" in keys
        else (),
        max_latency=reader.duration(keys["max_latency"], f"{field}.max_latency")
        if "max_latency" in keys
        else None,
    )


def _statuses(reader: NodeReader, node: yaml.Node, field: str) -> tuple[StatusRange, ...]:
    items = reader.sequence(node, field)
    if not items:
        raise reader.error(node, field, "must list at least one code")
    return tuple(_status_range(reader, item, f"{field}[{i}]") for i, item in enumerate(items))


def _status_range(reader: NodeReader, node: yaml.Node, field: str) -> StatusRange:
    text = reader.scalar_text(node, field)
    match = _STATUS_RANGE.fullmatch(text.strip())
    low = int(match.group(1)) if match else 0
    high = int(match.group(2) or low) if match else 0
    if not (match and 100 <= low <= high <= 599):
        message = f"{text!r} is not a status code (100-599) or a range like 200-399"
        raise reader.error(node, field, message)
    return StatusRange(low, high)


def _json_expects(reader: NodeReader, node: yaml.Node, field: str) -> tuple[JsonExpect, ...]:
    expects: list[JsonExpect] = []
    for index, item in enumerate(reader.sequence(node, field)):
        where = f"{field}[{index}]"
        keys = reader.mapping(
            item,
            where,
            allowed=frozenset({"path", "equals", "matches"}),
            required=frozenset({"path"}),
        )
        path = reader.string(keys["path"], f"{where}.path")
        try:
            jsonpath.parse(path)
        except ValueError:
            message = f"{path!r} is not a path like data.items[0].state"
            raise reader.error(keys["path"], f"{where}.path", message) from None
        if ("equals" in keys) == ("matches" in keys):
            raise reader.error(item, where, "needs exactly one of equals or matches")
        expects.append(
            JsonExpect(
                path=path,
                equals=reader.plain_value(keys["equals"], f"{where}.equals")
                if "equals" in keys
                else None,
                matches=reader.regex(keys["matches"], f"{where}.matches")
                if "matches" in keys
                else None,
            )
        )
    return tuple(expects)


def _header_expects(reader: NodeReader, node: yaml.Node, field: str) -> tuple[tuple[str, str], ...]:
    keys = reader.mapping_keys(node, field)
    return tuple((name, reader.regex(value, f"{field}.{name}")) for name, value in keys.items())
