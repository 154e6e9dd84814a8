"""Paths into JSON documents, written like ``data.items[0].state``.

A path is a key, or an index in brackets for a top-level list, followed by ``.key`` and
``[index]`` steps. Keys may hold any character but ``.``, ``[`` and ``]``.
"""

from __future__ import annotations

import functools
import re

Step = str | int

_VALID = re.compile(r"(?:[^.\[\]]+|\[\d+\])(?:\.[^.\[\]]+|\[\d+\])*")
_STEP = re.compile(r"([^.\[\]]+)|\[(\d+)\]")


@functools.lru_cache(maxsize=256)
def parse(path: str) -> tuple[Step, ...]:
    """The steps of ``path``; raises ``ValueError`` for a path that is not well formed."""
    if not _VALID.fullmatch(path):
        raise ValueError(f"invalid JSON path {path!r}")
    return tuple(int(index) if index else key for key, index in _STEP.findall(path))


def find(document: object, path: str) -> object:
    """The value at ``path`` in ``document`` (as ``json.loads`` returns it).

    Raises ``LookupError`` whose message is the part of the path that is missing.
    """
    steps = parse(path)
    value = document
    for depth, step in enumerate(steps):
        if isinstance(step, int) and isinstance(value, list) and step < len(value):
            value = value[step]
            continue
        if isinstance(step, str) and isinstance(value, dict) and step in value:
            value = value[step]
            continue
        raise LookupError(text(steps[: depth + 1]))
    return value


def text(steps: tuple[Step, ...]) -> str:
    """Write ``steps`` back as a path."""
    parts = [f"[{step}]" if isinstance(step, int) else f".{step}" for step in steps]
    return "".join(parts).removeprefix(".")
