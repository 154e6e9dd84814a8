"""Structured log events: one fixed event name and ``key=value`` fields per line."""

from __future__ import annotations

import logging
import sys

_SAFE = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_.:/-+@")


def event(logger: logging.Logger, name: str, level: int = logging.INFO, **fields: object) -> None:
    """Log ``name`` with ``fields`` as one logfmt line, e.g. ``check.finished monitor=shop``."""
    if logger.isEnabledFor(level):
        logger.log(level, "%s", format_event(name, fields))


def format_event(name: str, fields: dict[str, object]) -> str:
    parts = [f"event={name}"]
    for key, value in fields.items():
        parts.append(f"{key}={_format_value(value)}")
    return " ".join(parts)


def _format_value(value: object) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        return f"{value:.3f}"
    text = "" if value is None else str(value)
    if text and all(ch in _SAFE for ch in text):
        return text
    escaped = text.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")
    return f'"{escaped}"'


def configure(level: int = logging.INFO, worker: str | None = None) -> None:
    """Send the daemon's logs to stderr (journald and Docker collect them from there);
    a ``worker``'s lines name it after the logger, e.g. ``monitor.check[1/2]``."""
    handler = logging.StreamHandler(sys.stderr)
    who = "" if worker is None else f"[{worker}]"
    handler.setFormatter(logging.Formatter(f"%(asctime)s %(levelname)s %(name)s{who} %(message)s"))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    # APScheduler logs every run and Alembic its plugins at INFO; the daemon logs its own events.
    for noisy in ("apscheduler", "alembic"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
