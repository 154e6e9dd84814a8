"""Read YAML as located nodes, so every config error can name its file, line and field.

PyYAML's ``compose`` keeps each node's position; this module turns nodes into plain
values one field at a time, strictly: wrong types, unknown or duplicate keys and
missing ``${ENV}`` variables are ``ConfigError``\\ s that say where they are.
"""

from __future__ import annotations

import re
from collections.abc import Mapping

import yaml

from monitor.config.durations import parse_duration
from monitor.errors import ConfigError

_STR = "tag:yaml.org,2002:str"
_INT = "tag:yaml.org,2002:int"
_FLOAT = "tag:yaml.org,2002:float"
_BOOL = "tag:yaml.org,2002:bool"
_NULL = "tag:yaml.org,2002:null"
_ENV_REF = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}")
_KIND_NAMES = {
    yaml.MappingNode: "a mapping",
    yaml.SequenceNode: "a list",
    yaml.ScalarNode: "a single value",
}


# libyaml's parser when PyYAML was built with it: 40% less time on a 100,000-site file.
_FAST_LOADER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


def compose(text: str, *, file: str) -> yaml.Node | None:
    """Parse one YAML document into nodes; a syntax error becomes a located ConfigError
    (worded by PyYAML's own parser, whose messages say more than libyaml's)."""
    try:
        return yaml.compose(text, Loader=_FAST_LOADER)
    except yaml.YAMLError:
        pass
    try:
        return yaml.compose(text, Loader=yaml.SafeLoader)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line = None if mark is None else mark.line + 1
        problem = exc.problem or exc.context or "invalid YAML"
        raise ConfigError(f"YAML syntax error: {problem}", file=file, line=line) from None
    except yaml.YAMLError as exc:
        raise ConfigError(f"YAML syntax error: {exc}", file=file, line=None) from None


class NodeReader:
    """Turns located nodes into typed values, raising ConfigError at the node's line."""

    def __init__(self, *, file: str, env: Mapping[str, str]) -> None:
        self.file = file
        self.env = env

    def error(self, node: yaml.Node, field: str, message: str) -> ConfigError:
        return ConfigError(message, file=self.file, line=node.start_mark.line + 1, field=field)

    def mapping(
        self,
        node: yaml.Node,
        field: str,
        *,
        allowed: frozenset[str],
        required: frozenset[str] = frozenset(),
    ) -> dict[str, yaml.Node]:
        """The keys of a mapping node, refusing unknown, duplicate and missing keys."""
        if not isinstance(node, yaml.MappingNode):
            raise self.error(node, field, f"must be a mapping, not {self._kind(node)}")
        found: dict[str, yaml.Node] = {}
        for key_node, value_node in node.value:
            key = key_node.value if isinstance(key_node, yaml.ScalarNode) else None
            where = _join(field, str(key))
            if key not in allowed:
                known = ", ".join(sorted(allowed))
                raise self.error(key_node, where, f"unknown key (expected one of: {known})")
            if key in found:
                raise self.error(key_node, where, "duplicate key")
            found[key] = value_node
        for key in sorted(required - found.keys()):
            raise self.error(node, _join(field, key), "is required")
        return found

    def sequence(self, node: yaml.Node, field: str) -> list[yaml.Node]:
        if not isinstance(node, yaml.SequenceNode):
            raise self.error(node, field, f"must be a list, not {self._kind(node)}")
        return list(node.value)

    def string(self, node: yaml.Node, field: str) -> str:
        """A non-empty string, with ``${VAR}`` replaced from the environment."""
        if not isinstance(node, yaml.ScalarNode) or node.tag != _STR:
            raise self.error(node, field, f"must be a string, not {self._kind(node)}")
        value = _ENV_REF.sub(lambda m: self._env_value(node, field, m.group(1)), node.value)
        if not value.strip():
            raise self.error(node, field, "must not be empty")
        return value

    def integer(self, node: yaml.Node, field: str) -> int:
        if not isinstance(node, yaml.ScalarNode) or node.tag != _INT:
            raise self.error(node, field, f"must be a whole number, not {self._kind(node)}")
        # YAML 1.1's own reading: 010 is octal, 1:30 is 90 (int(text, 0) refused both).
        return int(yaml.safe_load(node.value))

    def number(self, node: yaml.Node, field: str) -> float:
        if not isinstance(node, yaml.ScalarNode) or node.tag not in (_INT, _FLOAT):
            raise self.error(node, field, f"must be a number, not {self._kind(node)}")
        return float(yaml.safe_load(node.value))

    def boolean(self, node: yaml.Node, field: str) -> bool:
        if not isinstance(node, yaml.ScalarNode) or node.tag != _BOOL:
            raise self.error(node, field, f"must be true or false, not {self._kind(node)}")
        return node.value.lower() in ("true", "yes", "on")

    def duration(self, node: yaml.Node, field: str) -> float:
        """Seconds from ``500ms``, ``10s``, ``1m``...; zero and negative are refused."""
        try:
            seconds = parse_duration(self.scalar_text(node, field))
        except ValueError as exc:
            raise self.error(node, field, str(exc)) from None
        if seconds <= 0:
            raise self.error(node, field, "must be longer than zero")
        return seconds

    def regex(self, node: yaml.Node, field: str) -> str:
        """A regular expression, checked here so a typo fails at load time, not per check."""
        pattern = self.string(node, field)
        try:
            re.compile(pattern)
        except re.error as exc:
            raise self.error(node, field, f"is not a valid regular expression: {exc}") from None
        return pattern

    def string_map(self, node: yaml.Node, field: str) -> tuple[tuple[str, str], ...]:
        """A mapping of names to strings, in the order written (e.g. HTTP headers)."""
        if not isinstance(node, yaml.MappingNode):
            raise self.error(node, field, f"must be a mapping, not {self._kind(node)}")
        pairs: list[tuple[str, str]] = []
        for key_node, value_node in node.value:
            key = self.string(key_node, field)
            if any(k.lower() == key.lower() for k, _ in pairs):
                raise self.error(key_node, _join(field, key), "duplicate key")
            pairs.append((key, self.scalar_text(value_node, _join(field, key))))
        return tuple(pairs)

    def string_list(self, node: yaml.Node, field: str) -> tuple[str, ...]:
        items = self.sequence(node, field)
        return tuple(self.scalar_text(item, f"{field}[{i}]") for i, item in enumerate(items))

    def plain_value(self, node: yaml.Node, field: str) -> object:
        """Any YAML value as plain Python (for comparing with JSON); strings get ``${VAR}``."""
        if isinstance(node, yaml.ScalarNode):
            if node.tag == _STR:
                return self.string(node, field)
            return None if node.tag == _NULL else yaml.safe_load(node.value)
        if isinstance(node, yaml.SequenceNode):
            return [self.plain_value(item, f"{field}[{i}]") for i, item in enumerate(node.value)]
        keys = self.mapping_keys(node, field)
        return {key: self.plain_value(value, _join(field, key)) for key, value in keys.items()}

    def mapping_keys(self, node: yaml.Node, field: str) -> dict[str, yaml.Node]:
        """A mapping with any string keys (duplicates still refused)."""
        if not isinstance(node, yaml.MappingNode):
            raise self.error(node, field, f"must be a mapping, not {self._kind(node)}")
        keys = frozenset(k.value for k, _ in node.value if isinstance(k, yaml.ScalarNode))
        return self.mapping(node, field, allowed=keys)

    def scalar_text(self, node: yaml.Node, field: str) -> str:
        """A number or a string, as written (for values such as ``200`` or ``"200-399"``)."""
        if not isinstance(node, yaml.ScalarNode) or node.tag not in (_STR, _INT, _FLOAT):
            raise self.error(node, field, f"must be a number or a string, not {self._kind(node)}")
        return self.string(node, field) if node.tag == _STR else node.value

    def _env_value(self, node: yaml.Node, field: str, name: str) -> str:
        if name not in self.env:
            raise self.error(node, field, f"environment variable {name} is not set")
        return self.env[name]

    @staticmethod
    def _kind(node: yaml.Node) -> str:
        if isinstance(node, yaml.ScalarNode) and node.tag != _STR:
            kind = node.tag.rsplit(":", 1)[-1]
            return "empty" if kind == "null" else f"{'an' if kind == 'int' else 'a'} {kind}"
        if isinstance(node, yaml.ScalarNode):
            return "a string"
        return _KIND_NAMES.get(type(node), "something else")


def _join(field: str, key: str) -> str:
    return f"{field}.{key}" if field else key
