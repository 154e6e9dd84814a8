"""Maintenance windows: one-off and recurring, by name or glob, at a given ``now``."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from monitor.config.load import parse_config
from monitor.judge.diagnose import Verdict, diagnose
from monitor.judge.maintenance import Window, window_at
from monitor.models import Cause, ProbeResult, Role

PARIS = ZoneInfo("Europe/Paris")
ONE_OFF = Window(
    sites=("shop*",),
    start=datetime(2026, 11, 21, 2, tzinfo=UTC),
    end=datetime(2026, 11, 21, 4, tzinfo=UTC),
)
# Sundays 03:00 Paris time, for two hours.
SUNDAYS = Window(sites=("api",), cron="0 3 * * sun", duration=7200, timezone="Europe/Paris")


@pytest.mark.parametrize(
    ("window", "monitor", "now", "active"),
    [
        pytest.param(ONE_OFF, "shop", datetime(2026, 11, 21, 2, tzinfo=UTC), True, id="at-start"),
        pytest.param(
            ONE_OFF, "shop-eu", datetime(2026, 11, 21, 3, 59, tzinfo=UTC), True, id="glob-inside"
        ),
        pytest.param(
            ONE_OFF, "shop", datetime(2026, 11, 21, 4, tzinfo=UTC), False, id="at-end-is-over"
        ),
        pytest.param(
            ONE_OFF, "blog", datetime(2026, 11, 21, 3, tzinfo=UTC), False, id="other-site"
        ),
        pytest.param(
            SUNDAYS, "api", datetime(2026, 11, 22, 3, 30, tzinfo=PARIS), True, id="recurring-inside"
        ),
        pytest.param(
            SUNDAYS,
            "api",
            datetime(2026, 11, 22, 2, 0, tzinfo=UTC),
            True,
            id="recurring-inside-seen-in-utc",
        ),
        pytest.param(
            SUNDAYS, "api", datetime(2026, 11, 22, 5, 0, tzinfo=PARIS), False, id="recurring-after"
        ),
        pytest.param(
            SUNDAYS,
            "api",
            datetime(2026, 11, 23, 3, 30, tzinfo=PARIS),
            False,
            id="recurring-monday",
        ),
        # Summer time: 03:00 Paris is 01:00 UTC in July, 02:00 UTC in November.
        pytest.param(
            SUNDAYS,
            "api",
            datetime(2026, 7, 5, 1, 30, tzinfo=UTC),
            True,
            id="recurring-summer-time",
        ),
    ],
)
def test_window_active(window: Window, monitor: str, now: datetime, active: bool) -> None:
    assert (window_at((window,), monitor, now) is window) == active


def _result(cause: Cause) -> ProbeResult:
    return ProbeResult(
        monitor="shop",
        role=Role.EDGE,
        origin=None,
        time=datetime(2026, 11, 21, tzinfo=UTC),
        ok=cause is Cause.OK,
        cause=cause,
    )


def test_failures_inside_a_window_are_maintenance_and_say_which() -> None:
    diagnosis = diagnose([_result(Cause.CONNECT_REFUSED)], window=ONE_OFF.describe())
    assert (diagnosis.verdict, diagnosis.cause) == (Verdict.MAINTENANCE, Cause.CONNECT_REFUSED)
    assert "2026-11-21T02:00:00+00:00" in diagnosis.summary
    assert diagnose([_result(Cause.OK)], window=ONE_OFF.describe()).verdict is Verdict.UP


SITES = "sites:\n  - {name: shop, url: 'https://shop.test/'}\n  - {name: api, url: 'https://api.test/'}\n"


def test_windows_parse() -> None:
    text = (
        SITES
        + """maintenance:
  - sites: ["shop*"]
    start: 2026-11-21T02:00:00Z
    end: "2026-11-21T04:00:00+00:00"
  - sites: [api]
    cron: "0 3 * * sun"
    duration: 2h
    timezone: Europe/Paris
  - start: 2026-12-24T18:00:00
    end: 2026-12-26T08:00:00
    timezone: Europe/Paris
"""
    )
    windows = parse_config(text, file="c.yaml", env={}).maintenance
    assert windows[0] == ONE_OFF
    assert windows[1] == SUNDAYS
    assert windows[2].sites == ("*",)
    assert windows[2].start == datetime(2026, 12, 24, 18, tzinfo=PARIS)
    assert windows[2].end is not None
    assert windows[2].end - windows[2].start == timedelta(hours=38)


@pytest.mark.parametrize(
    ("window", "message"),
    [
        pytest.param(
            "{sites: [nope], start: 2026-01-01T00:00:00Z, end: 2026-01-02T00:00:00Z}",
            "c.yaml:5: maintenance[0].sites[0]: 'nope' matches no site or check",
            id="unknown-site",
        ),
        pytest.param(
            "{start: 2026-01-02T00:00:00Z, end: 2026-01-01T00:00:00Z}",
            "c.yaml:5: maintenance[0].end: must be after start",
            id="end-before-start",
        ),
        pytest.param(
            "{cron: '61 * * * *', duration: 1h}",
            "c.yaml:5: maintenance[0].cron: is not a cron expression",
            id="bad-cron",
        ),
        pytest.param(
            "{cron: '0 3 * * *'}",
            "c.yaml:5: maintenance[0].duration: is required",
            id="cron-without-duration",
        ),
        pytest.param(
            "{start: 2026-01-01T00:00:00Z, end: 2026-01-02T00:00:00Z, cron: '0 3 * * *'}",
            "c.yaml:5: maintenance[0]: needs either start and end, or cron and duration",
            id="both-kinds",
        ),
        pytest.param(
            "{cron: '0 3 * * *', duration: 1h, timezone: Mars/Olympus}",
            "c.yaml:5: maintenance[0].timezone: 'Mars/Olympus' is not a time zone",
            id="bad-timezone",
        ),
        pytest.param(
            "{start: yesterday, end: 2026-01-02T00:00:00Z}",
            "c.yaml:5: maintenance[0].start: 'yesterday' is not a time",
            id="bad-time",
        ),
    ],
)
def test_bad_windows_name_file_line_and_field(window: str, message: str) -> None:
    from monitor.errors import ConfigError

    with pytest.raises(ConfigError) as caught:
        parse_config(SITES + f"maintenance:\n  - {window}\n", file="c.yaml", env={})
    assert str(caught.value).startswith(message)
