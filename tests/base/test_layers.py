"""The layer rule: an import inside monitor/ goes only down the list of layers, never up.

    cli, __main__                    commands
    app/                             wiring: daemon, workers, reload, oneshot, web
    config/                          YAML -> Config; builds every package's settings values
    alerts/                          outbox -> channels
    store/                           tables, SQL, the writer
    engine/                          scheduler, plan, runner, judging
    metrics/                         the registry and the per-site renderer
    probes/                          one module per kind
    judge/                           pure rules
    models, errors, logs, ...        shared values (any module directly under monitor/)

A module may import its own package and any layer below it. Imports read from the source
with ``ast`` (inside functions and ``TYPE_CHECKING`` blocks too), so nothing is run.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[2] / "monitor"

LAYERS = ("base", "judge", "probes", "metrics", "engine", "store", "alerts", "config", "app", "cli")
"""Lowest first."""

TOP = {"cli": "cli", "__main__": "cli"}  # modules directly under monitor/ that are not base


def layer_of(module: str) -> str:
    """The layer of a dotted module name inside ``monitor``."""
    parts = module.split(".")
    if len(parts) == 1:
        return "base"
    if parts[1] in LAYERS:
        return parts[1]
    return TOP.get(parts[1], "base")


def imports_of(module: str, source: str, is_package: bool) -> Iterator[tuple[int, str]]:
    """``(line, module)`` for every import of a ``monitor`` module in ``source``."""
    here = module.split(".") if is_package else module.split(".")[:-1]
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield node.lineno, alias.name
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = here[: len(here) - node.level + 1]
                target = ".".join([*base, node.module] if node.module else base)
            else:
                target = node.module or ""
            yield node.lineno, target
            for alias in node.names:  # `from monitor import judge` names a package
                yield node.lineno, f"{target}.{alias.name}"


def back_imports(sources: dict[str, tuple[str, bool]]) -> list[str]:
    """Every import in ``sources`` (module -> (text, is_package)) that runs up a layer."""
    rank = {name: i for i, name in enumerate(LAYERS)}
    found: dict[tuple[str, int], str] = {}
    for module, (source, is_package) in sorted(sources.items()):
        mine = layer_of(module)
        for line, target in imports_of(module, source, is_package):
            if not _names_a_module(target, sources):
                continue
            theirs = layer_of(target)
            if rank[theirs] > rank[mine]:
                where = f"{module}:{line} ({mine})"
                found.setdefault((module, line), f"{where} imports {target} ({theirs})")
    return list(found.values())


def _names_a_module(target: str, sources: dict[str, tuple[str, bool]]) -> bool:
    """Whether ``target`` is a module of ``monitor``, not ``monitor.__version__`` or a library."""
    parts = target.split(".")
    if parts[0] != "monitor":
        return False
    return len(parts) != 2 or parts[1] in LAYERS or parts[1] in TOP or target in sources


def package_sources() -> dict[str, tuple[str, bool]]:
    sources = {}
    for path in sorted(PACKAGE.rglob("*.py")):
        parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
        is_package = parts[-1] == "__init__"
        module = ".".join(parts[:-1] if is_package else parts)
        sources[module] = (path.read_text(encoding="utf-8"), is_package)
    return sources


def test_no_import_runs_up_a_layer() -> None:
    sources = package_sources()
    assert len(sources) > 50  # the walk found the package
    found = back_imports(sources)
    assert not found, "imports that run up a layer:\n" + "\n".join(found)


def test_every_package_has_a_layer() -> None:
    folders = {p.name for p in PACKAGE.iterdir() if (p / "__init__.py").is_file()}
    assert folders <= set(LAYERS), folders - set(LAYERS)


FAKE = '"""A module."""\nfrom monitor.models import Cause\n'


@pytest.mark.parametrize(
    ("module", "is_package", "line", "expected"),
    [
        ("monitor.judge.state", False, "from monitor.store import SqlStore", "judge:3"),
        ("monitor.store.states", False, "from monitor.alerts import facts", "store:3"),
        ("monitor.probes.dns", False, "from monitor.config.values import host", "probes:3"),
        ("monitor.engine.runner", False, "import monitor.app.daemon", "engine:3"),
        ("monitor.models", False, "from monitor.judge import diagnose", "base:3"),
        ("monitor.judge.state", False, "from ..alerts.outbox import Outbox", "judge:3"),
        ("monitor.judge", True, "from ..store import tables", "judge:3"),
        ("monitor.alerts.outbox", False, "    from monitor.app import web", "alerts:4"),
        ("monitor.config.load", False, "from monitor import cli", "config:3"),
    ],
    ids=lambda value: value.strip() if isinstance(value, str) and " " in value else None,
)
def test_a_back_import_is_found(module: str, is_package: bool, line: str, expected: str) -> None:
    source = FAKE + (f"def later() -> None:\n{line}\n" if line.startswith(" ") else f"{line}\n")
    (found,) = back_imports({module: (source, is_package)})
    layer, number = expected.split(":")
    assert found.startswith(f"{module}:{number} ({layer}) imports ")


@pytest.mark.parametrize(
    ("module", "line"),
    [
        ("monitor.app.daemon", "from monitor.store import SqlStore"),
        ("monitor.alerts.outbox", "from monitor.store.tables import incidents"),
        ("monitor.judge.tracker", "from monitor.judge import trends"),
        ("monitor.judge.tracker", "from . import trends"),
        ("monitor.probes.dns", "from monitor.hostport import split_host_port"),
        ("monitor.engine.runner", "from monitor import __version__, logs"),
        ("monitor.cli", "from monitor.app import oneshot"),
        ("monitor.config.load", "from monitor.alerts.apprise_send import url_problem"),
    ],
)
def test_a_downward_import_is_allowed(module: str, line: str) -> None:
    assert back_imports({module: (f"{FAKE}{line}\n", False)}) == []
