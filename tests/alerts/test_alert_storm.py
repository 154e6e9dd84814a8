"""Many alerts at once: grouping a storm, waiting for a group, holding them while our own
network is down, and the rate limit per notifier."""

from __future__ import annotations

import random
from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest

from monitor.alerts.content import compose
from monitor.alerts.ratelimit import RateLimit
from monitor.judge.alerting import AlertFacts, AlertSettings, Event, PendingAlert

T0 = datetime(2026, 11, 20, 12, 0, tzinfo=UTC)
DEAD = "203.0.113.10"
SITES = ("shop", "api", "blog", "docs", "status", "cdn", "mail", "auth", "pay", "wiki")
SETTINGS = AlertSettings(canary="canary")  # group_window 30 s, group_min 3
FACTS = AlertFacts(
    monitor="shop",
    event=Event.DOWN,
    state="down",
    verdict="origin_fault",
    cause="connect_refused",
    layer="origin",
    summary="origin web fails (connection refused), so the edge fails too",
    hint="origin web: it refuses connections: the server is down or not listening; start it",
    evidence=("origin web: connection refused after 0.00 s",),
    timings=("origin web: connect_refused; connect 0 ms, total 0 ms",),
    addresses=(DEAD,),
    opened_at=T0,
    time=T0,
)


def _row(
    id_: int,
    monitor: str,
    seconds: float = 0.0,
    notifier: str = "ops",
    event: Event = Event.DOWN,
    attempts: int = 0,
    **facts: object,
) -> PendingAlert:
    due = T0 + timedelta(seconds=seconds)
    values = {"opened_at": due, **facts}  # an opening alert, unless told otherwise
    alert = replace(FACTS, monitor=monitor, event=event, time=due, **values)  # type: ignore[arg-type]
    return PendingAlert(id_, notifier, 100 + id_, event, 1, due, due, attempts, alert)


def _at(seconds: float) -> datetime:
    return T0 + timedelta(seconds=seconds)


# Ten sites behind one dead origin address, due within 5 s, for two notifiers.
STORM = [
    _row(i + n * 10 + 1, site, seconds=i / 2, notifier=notifier)
    for n, notifier in enumerate(("ops", "chat"))
    for i, site in enumerate(SITES)
]


def test_a_storm_behind_one_address_is_one_message_per_notifier() -> None:
    composed = compose(STORM, _at(40), SETTINGS, canary_down=False)
    assert [m.notifier for m in composed.messages] == ["ops", "chat"]
    for message, ids in zip(composed.messages, (range(1, 11), range(11, 21)), strict=True):
        assert message.alert_ids == tuple(ids)
        assert message.title.startswith(f"[DOWN] 10 sites down (address {DEAD}): shop, api, ")
        assert len(message.title) < 120
        assert message.body.startswith(f"10 sites are DOWN, all with address {DEAD}:\n")
        for site in SITES:
            assert f"\n  {site}: {FACTS.summary}\n" in message.body  # just opened: no "for 0 s"
            assert f"\n- **{site}**: origin web fails" in message.markdown
        assert message.body.count("origin web: connection refused after 0.00 s") == 1
        assert "check (from shop): origin web: it refuses connections" in message.body
    assert composed.held == composed.wait == ()


def test_below_group_min_each_alert_is_its_own_message() -> None:
    rows = [_row(1, "shop"), _row(2, "api", seconds=1)]
    composed = compose(rows, _at(40), SETTINGS, canary_down=False)
    assert [m.alert_ids for m in composed.messages] == [(1,), (2,)]
    assert [m.title for m in composed.messages] == [
        f"[DOWN] shop: {FACTS.summary}",
        f"[DOWN] api: {FACTS.summary}",
    ]


def test_a_shared_cause_groups_sites_on_different_addresses() -> None:
    rows = [_row(i, site, addresses=(f"192.0.2.{i}",)) for i, site in enumerate(SITES[:3])]
    (message,) = compose(rows, _at(40), SETTINGS, canary_down=False).messages
    assert message.title == "[DOWN] 3 sites down (cause connect_refused): shop, api, blog"
    assert message.alert_ids == (0, 1, 2)


def test_a_storm_says_how_long_each_site_has_been_down() -> None:
    rows = [_row(i, site, opened_at=_at(-60 * i)) for i, site in enumerate(SITES[:3], 1)]
    (message,) = compose(rows, _at(40), SETTINGS, canary_down=False).messages
    assert f"\n  api: {FACTS.summary} (down for 2 min)\n" in message.body


def test_recoveries_group_too() -> None:
    rows = [
        _row(i, site, event=Event.RECOVERED, cause="ok", addresses=(), closed_at=_at(0))
        for i, site in enumerate(SITES[:3])
    ]
    (message,) = compose(rows, _at(40), SETTINGS, canary_down=False).messages
    assert message.title == "[RECOVERED] 3 sites recovered: shop, api, blog"
    assert message.body.startswith("3 sites have RECOVERED:\n  shop: ")


def test_one_alert_per_site_counts_a_site_once() -> None:
    rows = [_row(1, "shop"), _row(2, "shop", seconds=1), _row(3, "api", seconds=2)]
    composed = compose(rows, _at(40), SETTINGS, canary_down=False)
    assert [m.alert_ids for m in composed.messages] == [(1,), (2,), (3,)]


@pytest.mark.parametrize(
    ("now", "wait", "sent"),
    [
        pytest.param(10, (1,), [], id="younger-than-the-window-waits"),
        pytest.param(29.9, (1,), [], id="still-inside"),
        pytest.param(30, (), [(1,)], id="window-passed-sent-alone"),
        pytest.param(300, (), [(1,)], id="long-after"),
    ],
)
def test_a_lone_alert_waits_for_the_window_only(
    now: float, wait: tuple[int, ...], sent: list[tuple[int, ...]]
) -> None:
    composed = compose([_row(1, "shop")], _at(now), SETTINGS, canary_down=False)
    assert composed.wait == wait
    assert [m.alert_ids for m in composed.messages] == sent


def test_a_group_waits_for_its_earliest_rows_window() -> None:
    rows = [_row(1, "shop"), _row(2, "api", seconds=20), _row(3, "blog", seconds=29)]
    waiting = compose(rows, _at(29.5), SETTINGS, canary_down=False)
    assert waiting.wait == (1, 2, 3)
    assert waiting.messages == ()
    (message,) = compose(rows, _at(30), SETTINGS, canary_down=False).messages
    assert message.alert_ids == (1, 2, 3)


def test_only_rows_within_the_window_of_the_earliest_join_it() -> None:
    rows = [_row(1, "shop"), _row(2, "api", seconds=10), _row(3, "blog", seconds=45)]
    at_35 = compose(rows, _at(35), SETTINGS, canary_down=False)
    assert [m.alert_ids for m in at_35.messages] == [(1,)]
    assert at_35.wait == (2, 3)  # api's own window is open until 40 s
    at_80 = compose(rows, _at(80), SETTINGS, canary_down=False)
    assert [m.alert_ids for m in at_80.messages] == [(1,), (2,), (3,)]


def test_a_retried_row_does_not_wait_again() -> None:
    composed = compose([_row(1, "shop", attempts=1)], _at(5), SETTINGS, canary_down=False)
    assert [m.alert_ids for m in composed.messages] == [(1,)]
    assert composed.wait == ()


def test_events_of_different_kinds_do_not_group() -> None:
    rows = [
        _row(1, "shop"),
        _row(2, "api", event=Event.DEGRADED),
        _row(3, "blog", event=Event.FLAPPING),
    ]
    composed = compose(rows, _at(40), SETTINGS, canary_down=False)
    assert [m.alert_ids for m in composed.messages] == [(1,), (2,), (3,)]


def test_each_notifier_keeps_its_own_groups() -> None:
    ops = [_row(i + 1, site, seconds=i / 2) for i, site in enumerate(SITES)]
    dev = [_row(21, "shop", notifier="dev"), _row(22, "api", seconds=0.5, notifier="dev")]
    composed = compose([*dev, *ops], _at(40), SETTINGS, canary_down=False)
    assert [(m.notifier, m.alert_ids) for m in composed.messages] == [
        ("ops", tuple(range(1, 11))),
        ("dev", (21,)),
        ("dev", (22,)),
    ]


def test_self_alerts_are_sent_at_once_and_alone() -> None:
    rows = [_row(i, "monitor", event=Event.SELF, addresses=()) for i in (1, 2, 3)]
    composed = compose(rows, _at(0), SETTINGS, canary_down=False)
    assert [m.alert_ids for m in composed.messages] == [(1,), (2,), (3,)]
    assert composed.wait == ()


def test_while_the_canary_fails_site_alerts_are_held_and_one_notice_per_notifier() -> None:
    rows = [
        *STORM,
        _row(30, "old", seconds=1, event=Event.RECOVERED, cause="ok", closed_at=_at(1)),
        _row(31, "monitor", seconds=2, event=Event.SELF, summary="the store fails"),
        _row(32, "monitor", seconds=2, notifier="chat", event=Event.SELF),
    ]
    composed = compose(rows, _at(3), SETTINGS, canary_down=True)
    assert sorted(composed.held) == [*range(1, 21), 30]
    assert composed.wait == ()
    chat, ops, *sent = composed.messages
    assert [(m.notifier, m.alert_ids) for m in sent] == [("ops", (31,)), ("chat", (32,))]
    assert sent[0].title == "[SELF] monitor: the store fails"
    assert chat.alert_ids == ops.alert_ids == ()
    assert ops.title == "[CANARY] the monitor's own network looks down: 11 site alerts held"
    assert chat.title.endswith(": 10 site alerts held")
    assert ops.body.startswith("The canary canary fails, so the monitor's own network")
    assert "held until the canary answers: 11 site alerts\n  shop: down\n  api: down" in ops.body
    assert "\n  old: recovered\n" in ops.body
    assert "**Held until the canary answers:** 11 site alerts" in ops.markdown


def test_the_order_does_not_depend_on_the_input_order() -> None:
    rows = [*STORM, _row(40, "lone", seconds=3, addresses=("198.51.100.1",), cause="timeout")]
    expected = compose(rows, _at(40), SETTINGS, canary_down=False)
    for seed in range(5):
        shuffled = rows.copy()
        random.Random(seed).shuffle(shuffled)
        assert compose(shuffled, _at(40), SETTINGS, canary_down=False) == expected
    assert [m.alert_ids for m in expected.messages] == [
        tuple(range(1, 11)),
        tuple(range(11, 21)),
        (40,),
    ]


# -- the rate limit --------------------------------------------------------------------------

HOURLY = AlertSettings(rate_limit=20, rate_period=3600.0)


def _drain(limit: RateLimit, now: datetime, count: int) -> tuple[list[bool], RateLimit]:
    answers = []
    for _ in range(count):
        allowed, limit = limit.allow(now, HOURLY)
        answers.append(allowed)
    return answers, limit


def test_twenty_an_hour_refuses_the_21st_until_a_token_refills() -> None:
    answers, limit = _drain(RateLimit(), T0, 21)
    assert answers == [True] * 20 + [False]
    assert limit.allow(T0 + timedelta(minutes=2), HOURLY)[0] is False  # 2/3 of a token
    allowed, _ = limit.allow(T0 + timedelta(minutes=3), HOURLY)  # 3600 s / 20 per token
    assert allowed


def test_a_full_bucket_does_not_grow_beyond_its_capacity() -> None:
    _, limit = _drain(RateLimit(), T0, 20)
    answers, _ = _drain(limit, T0 + timedelta(days=2), 21)
    assert answers == [True] * 20 + [False]


def test_the_summary_counts_what_waited_since_the_last_message_sent() -> None:
    _, limit = _drain(RateLimit(), T0, 20)
    assert limit.summary() is None
    for seconds in (10, 20, 30):  # three passes offer the same three messages
        _, limit = _drain(limit, T0 + timedelta(seconds=seconds), 3)
    assert limit.summary() == (
        "rate limit: up to 3 messages waited at once since 2026-11-20 12:00:10 UTC; they "
        "stay queued and follow as the limit allows"
    )
    allowed, limit = limit.allow(T0 + timedelta(minutes=3), HOURLY)
    assert allowed
    assert limit.summary() is None


def test_a_clock_that_steps_back_refills_nothing() -> None:
    _, limit = _drain(RateLimit(), T0, 20)
    allowed, _ = limit.allow(T0 - timedelta(hours=1), HOURLY)
    assert not allowed
