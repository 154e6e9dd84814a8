"""What one alert message says: the built-in content, custom templates, broken templates."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest

from monitor.alerts.content import check_template, human_duration, render
from monitor.judge.alerting import AlertFacts, Event, Templates

T0 = datetime(2026, 11, 20, 12, 0, tzinfo=UTC)
EVIDENCE = "edge: backend fetch failed [server: Varnish, x-varnish: 32770] after 0.00 s"
TIMING = "edge: 503; connect 1 ms, TTFB 0 ms, transfer 0 ms, total 2 ms"
DOWN = AlertFacts(
    monitor="shop",
    event=Event.DOWN,
    state="down",
    verdict="edge_fault",
    cause="backend_fetch_failed",
    layer="edge",
    summary="the edge fails (backend fetch failed) while every origin answers",
    hint="the cache cannot fetch from an origin that answers us: check the backend definition",
    evidence=(EVIDENCE,),
    timings=(TIMING, "origin o1: 200; connect 1 ms, TTFB 12 ms, transfer 1 ms, total 14 ms"),
    addresses=("203.0.113.10",),
    opened_at=T0,
    time=T0 + timedelta(minutes=12),
)
BACK = T0 + timedelta(hours=1, minutes=5)
RECOVERED = replace(
    DOWN,
    event=Event.RECOVERED,
    state="up",
    verdict="up",
    cause="ok",
    layer="",
    summary="every probe answered as expected",
    hint="",
    evidence=(),
    time=BACK,
    closed_at=BACK,
)
BUILT_IN = Templates()


@pytest.mark.parametrize(
    "line",
    [
        "shop is DOWN: the edge fails (backend fetch failed) while every origin answers",
        "verdict: edge_fault, cause: backend_fetch_failed, layer: edge",
        "down for: 12 min (since 2026-11-20 12:00:00 UTC)",
        "check: the cache cannot fetch from an origin that answers us: check the backend "
        "definition",
        f"evidence:\n  {EVIDENCE}\ntimings:\n  {TIMING}\n  origin o1: 200;",
        "ref: shop/2026-11-20T12:00:00+00:00/down/720s",
    ],
)
def test_a_down_alert_says_what_broke_and_what_to_check(line: str) -> None:
    _, body = render(DOWN, BUILT_IN, markdown=False)
    assert line in body


@pytest.mark.parametrize(
    ("facts", "line"),
    [
        pytest.param(RECOVERED, "shop has RECOVERED: every probe", id="recovered"),
        pytest.param(
            RECOVERED,
            "was failing for: 1 h 5 min (2026-11-20 12:00:00 UTC to 2026-11-20 13:05:00 UTC)",
            id="recovered-duration",
        ),
        pytest.param(
            RECOVERED, "ref: shop/2026-11-20T12:00:00+00:00/recovered/3900s", id="recovered-ref"
        ),
        pytest.param(
            replace(DOWN, event=Event.DEGRADED, state="degraded", time=T0 + timedelta(minutes=3)),
            "degraded for: 3 min",
            id="degraded",
        ),
        pytest.param(
            replace(DOWN, event=Event.REMINDER, time=T0 + timedelta(hours=2)),
            "shop is still failing: the edge fails",
            id="reminder",
        ),
        pytest.param(
            replace(DOWN, event=Event.REMINDER, time=T0 + timedelta(hours=2)),
            "down for: 2 h (since",
            id="reminder-duration",
        ),
        pytest.param(replace(DOWN, event=Event.FLAPPING), "flapping for: 12 min", id="flapping"),
        pytest.param(
            replace(DOWN, time=T0), "down since: 2026-11-20 12:00:00 UTC\n", id="just-opened"
        ),
    ],
)
def test_each_event_says_how_long(facts: AlertFacts, line: str) -> None:
    _, body = render(facts, BUILT_IN, markdown=False)
    assert line in body


def test_a_recovery_leaves_out_what_only_a_failure_has() -> None:
    _, body = render(RECOVERED, BUILT_IN, markdown=False)
    assert "verdict:" not in body
    assert "check:" not in body
    assert "evidence:" not in body


def test_a_self_alert_has_no_verdict_and_no_duration() -> None:
    facts = replace(
        DOWN, monitor="monitor", event=Event.SELF, verdict="", cause="", layer="", timings=()
    )
    title, body = render(facts, BUILT_IN, markdown=False)
    assert title.startswith("[SELF] monitor: ")
    assert body.splitlines()[0] == f"monitor reports: {DOWN.summary}"
    assert "verdict" not in body
    assert " for: " not in body


def test_the_title_is_one_short_line() -> None:
    long = replace(DOWN, summary="a summary\nthat goes on " + "and on " * 30)
    title, _ = render(long, BUILT_IN, markdown=False)
    assert "\n" not in title
    assert len(title) == 119
    assert title.startswith("[DOWN] shop: a summary that goes on and on")
    assert title.endswith("…")


def test_the_markdown_body_has_bold_labels_and_evidence_in_a_code_block() -> None:
    title, body = render(DOWN, BUILT_IN, markdown=True)
    assert title == render(DOWN, BUILT_IN, markdown=False)[0]
    assert body.startswith("**shop is DOWN**: the edge fails")
    assert "**Verdict:** `edge_fault`, **Cause:** `backend_fetch_failed`" in body
    assert "**Down for:** 12 min" in body
    assert f"**Evidence:**\n```\n{EVIDENCE}\n```" in body
    assert f"**Timings:**\n```\n{TIMING}\n" in body
    assert "**Ref:** `shop/2026-11-20T12:00:00+00:00/down/720s`" in body


@pytest.mark.parametrize(
    ("facts", "template", "expected"),
    [
        pytest.param(DOWN, "{event_upper} {monitor}", "DOWN shop", id="event_upper"),
        pytest.param(DOWN, "down {down_for}", "down 12 min", id="down_for"),
        pytest.param(RECOVERED, "back after {duration}", "back after 1 h 5 min", id="duration"),
        pytest.param(DOWN, "{evidence_lines}", EVIDENCE, id="evidence_lines"),
        pytest.param(DOWN, "{timing_lines}", "\n".join(DOWN.timings), id="timing_lines"),
        pytest.param(DOWN, "{ref}", "shop/2026-11-20T12:00:00+00:00/down/720s", id="ref"),
        pytest.param(
            DOWN,
            "{cause}/{layer} at {time:%H:%M}",
            "backend_fetch_failed/edge at 12:12",
            id="facts-and-format-spec",
        ),
        pytest.param(DOWN, "{addresses[0]} {{literal}}", "203.0.113.10 {literal}", id="index"),
    ],
)
def test_a_custom_body_fills_in_fields(facts: AlertFacts, template: str, expected: str) -> None:
    for markdown in (False, True):
        _, body = render(facts, Templates(body=template), markdown=markdown)
        assert body == expected


def test_a_custom_title_fills_in_fields() -> None:
    title, body = render(DOWN, Templates(title="{monitor} {event} for {down_for}"), False)
    assert title == "shop down for 12 min"
    assert body == render(DOWN, BUILT_IN, markdown=False)[1]


@pytest.mark.parametrize(
    ("templates", "title", "note"),
    [
        pytest.param(
            Templates(title="{monitor} {site}"),
            "[DOWN] shop: the edge fails (backend fetch failed) while every origin answers",
            "note: the title template failed (unknown field {site}; known: monitor, event,",
            id="unknown-field-in-title",
        ),
        pytest.param(
            Templates(body="{monitor is down"),
            "[DOWN] shop: the edge fails (backend fetch failed) while every origin answers",
            "note: the body template failed (bad braces: expected '}' before end of string;",
            id="bad-braces-in-body",
        ),
        pytest.param(
            Templates(body="closed at {closed_at:%H:%M}"),
            "[DOWN] shop: the edge fails (backend fetch failed) while every origin answers",
            "note: the body template failed (bad field: unsupported format string passed to "
            "NoneType.__format__); the built-in body is used",
            id="fails-for-this-alert-only",
        ),
    ],
)
def test_a_broken_template_falls_back_and_says_so(
    templates: Templates, title: str, note: str
) -> None:
    got_title, body = render(DOWN, templates, markdown=False)
    assert got_title == title
    assert body.startswith("shop is DOWN: the edge fails")
    assert note in body


@pytest.mark.parametrize(
    ("template", "error"),
    [
        pytest.param("[{event_upper}] {monitor} {down_for}", None, id="fine"),
        pytest.param("{monitor}: {{literal braces}}", None, id="escaped-braces"),
        pytest.param("", None, id="empty"),
        pytest.param("{site}", "unknown field {site}; known: monitor, event, ", id="unknown"),
        pytest.param("{monitor", "bad braces: expected '}' before end of string", id="unclosed"),
        pytest.param("monitor}", "bad braces: Single '}' encountered", id="stray-close"),
        pytest.param("{}", "bad field: Format string contains positional fields", id="positional"),
        pytest.param("{monitor.name}", "bad field: 'str' object has no attribute", id="attribute"),
        pytest.param("{time:%H}{down_for:d}", "bad field: Unknown format code 'd'", id="spec"),
        pytest.param(
            "{closed_at:%H:%M}",
            "NoneType.__format__ (filling it for a down alert)",
            id="only-works-for-recoveries",
        ),
    ],
)
def test_check_template(template: str, error: str | None) -> None:
    found = check_template(template)
    if error is None:
        assert found is None
    else:
        assert found is not None
        assert error in found


@pytest.mark.parametrize(
    ("seconds", "text"),
    [
        (0, "0 s"),
        (59.9, "59 s"),
        (60, "1 min"),
        (720, "12 min"),
        (3600, "1 h"),
        (3900, "1 h 5 min"),
        (90000, "1 d 1 h"),
        (172800, "2 d"),
        (-5, "0 s"),
    ],
)
def test_human_duration(seconds: float, text: str) -> None:
    assert human_duration(seconds) == text
