"""Read YAML as located nodes, so every config error can name its file, line and field.

PyYAML's ``compose`` keeps each node's position; this module turns nodes into plain
values one field at a time, strictly: wrong types, unknown or duplicate keys and
missing ``${ENV}`` variables are ``ConfigError``\\ s that say where they are.
"""

from __future__ import annotations

import re
from collections.abc import Mapping

import yaml

from monitor.errors import ConfigError

_STR = "tag:yaml.org,2002:str"
_INT = "tag:yaml.org,2002:int"
_ENV_REF = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}")
_KIND_NAMES = {
    yaml.MappingNode: "a mapping",
    yaml.SequenceNode: "a list",
    yaml.ScalarNode: "a single value",
}


def compose(text: str, *, file: str) -> yaml.Node | None:
    """Parse one YAML document into nodes; a syntax error becomes a located ConfigError."""
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
        return int(node.value.replace("_", ""), 0)

    def scalar_text(self, node: yaml.Node, field: str) -> str:
        """A number or a string, as written (for values such as ``200`` or ``"200-399"``)."""
        if not isinstance(node, yaml.ScalarNode) or node.tag not in (_STR, _INT):
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
