"""Structured log lines: one event name, then key=value fields that survive odd values."""

from __future__ import annotations

import logging

import pytest

from monitor.logs import event, format_event


@pytest.mark.parametrize(
    ("fields", "expected"),
    [
        pytest.param({}, "event=x", id="no-fields"),
        pytest.param({"ok": True, "n": 3}, "event=x ok=true n=3", id="bool-and-int"),
        pytest.param({"ms": 12.34567}, "event=x ms=12.346", id="float-rounded"),
        pytest.param({"origin": None}, 'event=x origin=""', id="none-empty"),
        pytest.param({"detail": 'say "hi"\nbye'}, r'event=x detail="say \"hi\"\nbye"', id="quoted"),
        pytest.param({"url": "sqlite:///m.db"}, "event=x url=sqlite:///m.db", id="url-bare"),
    ],
)
def test_format_event(fields: dict[str, object], expected: str) -> None:
    assert format_event("x", fields) == expected


def test_event_logs_one_line(caplog: pytest.LogCaptureFixture) -> None:
    logger = logging.getLogger("monitor.test")
    with caplog.at_level(logging.INFO, logger="monitor.test"):
        event(logger, "check.finished", monitor="shop", ok=False)
    assert caplog.messages == ["event=check.finished monitor=shop ok=false"]
