"""Durations as people write them in configs: ``500ms``, ``10s``, ``1m``, ``1h``, ``1m30s``."""

from __future__ import annotations

import re

_UNIT_SECONDS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0}
_PART = re.compile(r"(\d+(?:\.\d+)?)(ms|s|m|h)")
_WHOLE = re.compile(rf"(?:{_PART.pattern})+")


def parse_duration(text: str) -> float:
    """Seconds in ``text``; raises ValueError for anything that is not a duration with units."""
    compact = text.strip()
    if not _WHOLE.fullmatch(compact):
        raise ValueError(f"{text!r} is not a duration (write it like 500ms, 10s, 1m, 1h)")
    return sum(float(n) * _UNIT_SECONDS[unit] for n, unit in _PART.findall(compact))


def format_duration(seconds: float) -> str:
    """The shortest way to write ``seconds`` back in config form (for messages)."""
    for unit in ("h", "m", "s"):
        count = seconds / _UNIT_SECONDS[unit]
        if count >= 1 and count == int(count):
            return f"{int(count)}{unit}"
    return f"{round(seconds * 1000, 3):g}ms"
