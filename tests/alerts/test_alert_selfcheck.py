"""The daemon's own trouble: each problem alerted once when it starts, once when it ends."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from monitor.alerts.selfcheck import SelfAlert, SelfSettings, SelfState, Vitals, check

T0 = datetime(2026, 11, 20, 12, 0, tzinfo=UTC)
SETTINGS = SelfSettings()
# (seconds after T0, store healthy, missed runs so far, outbox pending)
Sample = tuple[float, bool, float, int]


def _run(samples: list[Sample]) -> list[tuple[float, SelfAlert]]:
    """Every alert the samples raise, with the second it came at."""
    state: SelfState | None = None
    raised = []
    for seconds, healthy, missed, pending in samples:
        error = None if healthy else "disk I/O error"
        vitals = Vitals(T0 + timedelta(seconds=seconds), healthy, error, missed, pending)
        state, alerts = check(state, vitals, SETTINGS)
        raised += [(seconds, a) for a in alerts]
    return raised


def _healthy(step: int, until: int) -> list[Sample]:
    return [(float(s), True, 0.0, 0) for s in range(0, until + 1, step)]


def _store(failing: list[float], until: float) -> list[Sample]:
    return [(float(s), s not in failing, 0.0, 0) for s in range(0, int(until) + 1, 10)]


def _seen(raised: list[tuple[float, SelfAlert]]) -> list[tuple[float, str, bool]]:
    return [(s, a.problem, a.active) for s, a in raised]


@pytest.mark.parametrize(
    ("failing", "until", "seen"),
    [
        pytest.param(range(10, 40, 10), 100, [], id="30s-unhealthy-nothing"),
        pytest.param(range(10, 110, 10), 100, [(70, "store_unwritable", True)], id="90s-one"),
        pytest.param(
            range(10, 1000, 10), 990, [(70, "store_unwritable", True)], id="stays-no-repeat"
        ),
        pytest.param(
            range(10, 110, 10),
            200,
            [(70, "store_unwritable", True), (110, "store_unwritable", False)],
            id="healthy-again-resolved-once",
        ),
        pytest.param(
            [*range(10, 90, 10), *range(200, 300, 10)],
            400,
            [
                (70, "store_unwritable", True),
                (90, "store_unwritable", False),
                (260, "store_unwritable", True),
                (300, "store_unwritable", False),
            ],
            id="a-second-episode",
        ),
    ],
)
def test_store_unwritable(
    failing: range | list[int], until: float, seen: list[tuple[float, str, bool]]
) -> None:
    assert _seen(_run(_store([float(s) for s in failing], until))) == seen


def test_the_store_alert_says_what_failed_and_for_how_long() -> None:
    raised = _run(_store([float(s) for s in range(10, 200, 10)], 200))
    (_, down), (_, back) = raised
    assert down.title == "[SELF] the monitor cannot write to its store"
    assert down.body.startswith("the store has failed for 1 min: disk I/O error. Results,")
    assert back.title == "[SELF] the store is writable again"
    assert back.body.startswith("the store works again after failing for 3 min;")


def _missed(totals: list[tuple[float, float]]) -> list[Sample]:
    return [(s, True, total, 0) for s, total in totals]


def test_missed_runs_rising_alert_once_and_resolve_after_a_quiet_window() -> None:
    totals = [(0.0, 4.0), (60.0, 4.0), (120.0, 5.0), (180.0, 7.0), (240.0, 9.0)]
    totals += [(float(s), 9.0) for s in range(300, 601, 60)]
    raised = _run(_missed(totals))
    assert _seen(raised) == [(120, "missed_runs", True), (540, "missed_runs", False)]
    assert raised[0][1].title == "[SELF] the monitor missed 1 check run"
    assert raised[0][1].body.startswith("missed in the last 5 min: 1 check run. A run is missed")
    assert raised[1][1].body == "no scheduled check was missed in the last 5 min"


def test_missed_runs_counted_before_the_first_check_are_no_alert() -> None:
    assert _run(_missed([(0.0, 50.0), (60.0, 50.0)])) == []


def test_a_missed_runs_counter_that_restarts_is_no_rise() -> None:
    assert _run(_missed([(0.0, 50.0), (60.0, 0.0), (120.0, 0.0)])) == []


def _backlog(counts: list[tuple[float, int]]) -> list[Sample]:
    return [(s, True, 0.0, pending) for s, pending in counts]


@pytest.mark.parametrize(
    ("counts", "seen"),
    [
        pytest.param(
            [(0, 120), (60, 180), (120, 260), (180, 340), (240, 420)],
            [(120, "outbox_backlog", True)],
            id="rising-over-three-samples-once",
        ),
        pytest.param([(s, 500) for s in range(0, 600, 60)], [], id="flat-high-nothing"),
        pytest.param(
            [(0, 20), (60, 50), (120, 90), (180, 95)], [], id="rising-below-the-threshold"
        ),
        pytest.param(
            [(0, 120), (20, 180), (40, 260), (60, 270)],
            [],
            id="samples-closer-than-60s-do-not-count",
        ),
        pytest.param(
            [(0, 120), (60, 180), (120, 260), (180, 260), (240, 80), (300, 0)],
            [(120, "outbox_backlog", True), (240, "outbox_backlog", False)],
            id="flat-while-active-stays-then-drains",
        ),
    ],
)
def test_outbox_backlog(counts: list[tuple[int, int]], seen: list[tuple[float, str, bool]]) -> None:
    assert _seen(_run(_backlog([(float(s), n) for s, n in counts]))) == seen


def test_the_backlog_alert_shows_the_rise() -> None:
    ((_, alert),) = _run(_backlog([(0.0, 120), (60.0, 180), (120.0, 260)]))
    assert alert.title == "[SELF] the alert outbox is backing up: 260 pending"
    assert alert.body.startswith(
        "alerts are not getting out: pending rose 120 → 180 → 260 over 2 min."
    )


def test_a_healthy_daemon_raises_nothing() -> None:
    assert _run(_healthy(15, 3600)) == []
