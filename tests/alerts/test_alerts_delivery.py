"""The delivery worker against real local receivers (a JSON webhook, an SMTP server, Slack's
request redirected to a local server): every pass gets its ``now`` passed in."""

from __future__ import annotations

import asyncio
import logging
import re
import threading
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator, Sequence
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import pytest
import requests.adapters
from sqlalchemy import select

from monitor.alerts import selfcheck
from monitor.alerts.apprise_send import Channels
from monitor.alerts.delivery import Delivery
from monitor.alerts.outbox import DueAlert, Outbox, Outlook, Settle
from monitor.alerts.timing import EARLY, LOOK_ALONE, POLL, next_look, to_next_pass
from monitor.errors import StoreError
from monitor.judge.alerting import AlertSettings, Event, Notifier, Route
from monitor.judge.diagnose import Diagnosis, Layer, Verdict
from monitor.judge.incidents import Entry, IncidentChange, OpenIncident
from monitor.judge.routing import routed
from monitor.judge.state import Health, MonitorState, State
from monitor.judge.tracker import StateRecord
from monitor.models import Cause
from monitor.store import SqlStore
from monitor.store.tables import alert_outbox
from tests.support.receivers import Webhook, webhook
from tests.support.smtp import smtp_server

T0 = datetime(2026, 11, 21, 9, 0, tzinfo=UTC)
SEC = timedelta(seconds=1)
MIN = timedelta(minutes=1)
QUIET = 100  # a group_min no test reaches, where grouping is not the point


def diagnosis(origin: str = "127.0.0.9", cause: Cause = Cause.CONNECT_REFUSED) -> Diagnosis:
    return Diagnosis(
        Verdict.ORIGIN_FAULT,
        cause,
        Layer.ORIGIN,
        f"origin a ({origin}) fails ({cause.value}), so the edge fails too",
        "origin a: check that it runs and listens",
        ("edge: 503 Backend fetch failed [server: Varnish]",),
    )


UP = Diagnosis(Verdict.UP, Cause.OK, Layer.NONE, "every probe answered as expected", "")


def down(
    monitor: str,
    at: datetime,
    routes: Sequence[Route],
    cause: Cause = Cause.CONNECT_REFUSED,
    address: str = "127.0.0.9",
) -> StateRecord:
    state = MonitorState(State.DOWN, since=at, recent=(Health.DOWN,), last_seen=Health.DOWN)
    entry = Entry(
        at,
        "opened",
        State.DOWN,
        "down",
        diagnosis(address, cause),
        timings=("edge: 503; connect 1 ms, TTFB 3 ms, total 4 ms", f"origin a: {cause.value}"),
        addresses=(address,),
    )
    change = IncidentChange(OpenIncident(at, State.DOWN), (entry,), opens=True)
    return StateRecord(monitor, at, state, change, routed(monitor, change, routes))


def up(monitor: str, at: datetime, opened: datetime, routes: Sequence[Route]) -> StateRecord:
    state = MonitorState(State.UP, since=at, recent=(Health.UP,), last_seen=Health.UP)
    entries = (
        Entry(at, "changed", State.UP, "recovered", UP),
        Entry(at, "closed", State.UP, None, UP),
    )
    change = IncidentChange(OpenIncident(opened, State.DOWN), entries, closes=True)
    return StateRecord(monitor, at, state, change, routed(monitor, change, routes))


class Metrics:
    def __init__(self) -> None:
        self.outcomes: list[tuple[str, str, str]] = []
        self.pending: int | None = None

    def observe_alert(self, notifier: str, event: str, outcome: str) -> None:
        self.outcomes.append((notifier, event, outcome))

    def set_outbox_pending(self, n: int) -> None:
        self.pending = n


@pytest.fixture
async def store(tmp_path: Path) -> AsyncIterator[SqlStore]:
    """SQLite only: the outbox's SQL runs on both backends in test_alerts_outbox."""
    store = SqlStore(f"sqlite+aiosqlite:///{tmp_path / 'monitor.db'}")
    await store.upgrade()
    yield store
    await store.close()


def settings(notifiers: dict[str, str], routes: Sequence[Route], **changes: Any) -> AlertSettings:
    named = tuple(Notifier(name, url) for name, url in notifiers.items())
    base = AlertSettings(notifiers=named, routes=tuple(routes), group_window=10.0, timeout=10.0)
    return replace(base, **changes)


def worker(
    store: SqlStore,
    alerting: AlertSettings,
    metrics: Metrics,
    failing: Callable[[str], bool] = lambda _: False,
    **kwargs: Any,
) -> Delivery:
    channels = Channels(alerting.notifiers, alerting.timeout)
    return Delivery(Outbox(store), channels, alerting, metrics, failing, **kwargs)


async def deliver(delivery: Delivery, now: datetime) -> None:
    """One pass at ``now``, and its sends to the end."""
    await delivery.run_once(now)
    await delivery.idle()


async def statuses(store: SqlStore) -> list[tuple[str, str, int, str]]:
    query = select(
        alert_outbox.c.notifier,
        alert_outbox.c.event,
        alert_outbox.c.attempts,
        alert_outbox.c.status,
    ).order_by(alert_outbox.c.id)
    async with store.transaction("test") as conn:
        return [tuple(row) for row in (await conn.execute(query)).all()]


async def test_the_webhook_gets_title_body_and_a_ref(store: SqlStore) -> None:
    async with webhook() as hook:
        routes = [Route(notify=("hook",))]
        alerting = settings({"hook": hook.url}, routes)
        metrics = Metrics()
        delivery = worker(store, alerting, metrics)
        await store.write_states([down("shop", T0, routes)])
        await deliver(delivery, T0)  # within the group window: it may still grow
        assert hook.received == []
        await deliver(delivery, T0 + 11 * SEC)
        [payload] = hook.received
    assert payload["type"] == "failure"
    assert payload["title"].startswith("[DOWN] shop: origin a (127.0.0.9) fails")
    body = payload["message"]
    assert "shop is DOWN: origin a (127.0.0.9) fails" in body
    assert "cause: connect_refused" in body
    assert "edge: 503 Backend fetch failed [server: Varnish]" in body
    assert "edge: 503; connect 1 ms, TTFB 3 ms, total 4 ms" in body
    assert "check: origin a: check that it runs and listens" in body
    assert re.search(r"^ref: shop/2026-11-21T09:00:00\+00:00/down/0s$", body, re.MULTILINE)
    assert hook.headers[0]["User-Agent"] == "monitor"
    assert metrics.outcomes == [("hook", "down", "sent")]
    assert metrics.pending == 0
    assert await statuses(store) == [("hook", "down", 1, "sent")]


async def test_an_email_arrives_through_mailto_with_subject_and_body(store: SqlStore) -> None:
    async with smtp_server() as mailbox:
        url = f"mailto://127.0.0.1:{mailbox.port}?from=monitor@example.com&to=oncall@example.com"
        routes = [Route(notify=("oncall",))]
        delivery = worker(store, settings({"oncall": url}, routes), Metrics())
        await store.write_states([down("shop", T0, routes)])
        await deliver(delivery, T0 + 11 * SEC)
        await store.write_states([up("shop", T0 + 7 * MIN, T0, routes)])
        await deliver(delivery, T0 + 7 * MIN + 11 * SEC)  # 5.5 s: Apprise's throttle
        await mailbox.wait(2)
    first, second = mailbox.messages
    assert mailbox.recipients == [["oncall@example.com"], ["oncall@example.com"]]
    assert first["Subject"].startswith("[DOWN] shop: origin a (127.0.0.9) fails")
    assert first["From"] == "monitor@example.com"
    text = first.get_body(("plain",))
    assert text is not None
    assert "shop is DOWN: origin a (127.0.0.9) fails (connect_refused)" in text.get_content()
    assert "**" not in text.get_content()  # plain text for e-mail
    assert second["Subject"].startswith("[RECOVERED] shop")
    recovered = second.get_body(("plain",))
    assert recovered is not None
    assert "was failing for: 7 min" in recovered.get_content()


@pytest.fixture
def slack_hooks() -> Iterator[Webhook]:
    """Requests for hooks.slack.com go to a local receiver instead, at the HTTP layer: the
    Slack plugin's host cannot be changed through its URL."""
    hook = Webhook()
    original = requests.adapters.HTTPAdapter.send

    def send(adapter: requests.adapters.HTTPAdapter, request: Any, **kwargs: Any) -> Any:
        parts = urlsplit(request.url)
        if parts.hostname == "hooks.slack.com":
            local = ("http", f"127.0.0.1:{hook.port}", parts.path, parts.query, "")
            request.url = urlunsplit(local)
        return original(adapter, request, **kwargs)

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(requests.adapters.HTTPAdapter, "send", send)
        yield hook


async def test_the_slack_request_is_markdown_to_the_channel(
    store: SqlStore, slack_hooks: Webhook
) -> None:
    await slack_hooks.up()
    try:
        url = "slack://T1JJ3T3L2/A1BRTD4JD/TIiajkdnlazkcOXrIdevi7FQ/#ops"
        routes = [Route(notify=("ops-slack",))]
        delivery = worker(store, settings({"ops-slack": url}, routes), Metrics())
        await store.write_states([down("shop", T0, routes)])
        await deliver(delivery, T0 + 11 * SEC)
    finally:
        await slack_hooks.stop()
    assert slack_hooks.paths == ["/services/T1JJ3T3L2/A1BRTD4JD/TIiajkdnlazkcOXrIdevi7FQ"]
    [payload] = slack_hooks.received
    assert payload["channel"] == "#ops"
    assert payload["mrkdwn"] is True
    [attachment] = payload["attachments"]
    assert attachment["title"].startswith("[DOWN] shop: origin a (127.0.0.9) fails")
    assert attachment["color"] == "#A32037"  # failure
    assert attachment["footer"] == "monitor"
    text = attachment["text"]  # Slack's mrkdwn: Apprise turns **bold** into *bold*
    assert text.startswith("*shop is DOWN*: origin a (127.0.0.9) fails")
    assert "```\nedge: 503 Backend fetch failed [server: Varnish]\n```" in text


@pytest.mark.parametrize("failure", ["500", "refused"])
async def test_a_receiver_failing_three_times_gets_the_alert_exactly_once(
    store: SqlStore, failure: str
) -> None:
    async with webhook(up=failure == "500") as hook:
        hook.fail = 3 if failure == "500" else 0
        routes = [Route(notify=("hook",))]
        metrics = Metrics()
        delivery = worker(store, settings({"hook": hook.url}, routes), metrics)
        await store.write_states([down("shop", T0, routes)])
        start = T0 + 11 * SEC
        # Tries at once, then after 5 s, 10 s and 20 s (each counted from the failure).
        for seconds in (0, 1, 6, 7, 17, 18, 38):
            if failure == "refused" and seconds == 38:
                await hook.up()
            await deliver(delivery, start + seconds * SEC)
        for seconds in (60, 600, 3600):
            await deliver(delivery, start + seconds * SEC)
    assert len(hook.received) == 1
    assert hook.attempts == (4 if failure == "500" else 1)
    assert [o for _, _, o in metrics.outcomes] == ["retry", "retry", "retry", "sent"]
    assert await statuses(store) == [("hook", "down", 4, "sent")]


async def test_an_alert_is_failed_once_older_than_max_age(store: SqlStore) -> None:
    async with webhook(up=False) as hook:
        routes = [Route(notify=("hook",))]
        metrics = Metrics()
        alerting = settings({"hook": hook.url}, routes, max_age=60.0)
        delivery = worker(store, alerting, metrics)
        await store.write_states([down("shop", T0, routes)])
        for seconds in (11, 17, 28, 49, 90, 200):
            await deliver(delivery, T0 + seconds * SEC)
    # Tried at 11 s, 17 s, 28 s and 49 s; at 90 s it is older than a minute: failed.
    assert [o for _, _, o in metrics.outcomes] == ["retry"] * 4 + ["failed"]
    assert await statuses(store) == [("hook", "down", 5, "failed")]


async def test_ten_sites_behind_one_dead_origin_make_one_message(store: SqlStore) -> None:
    async with webhook() as hook:
        routes = [Route(notify=("hook",))]
        delivery = worker(store, settings({"hook": hook.url}, routes), Metrics())
        sites = [f"site-{i}" for i in range(10)]
        await store.write_states([down(s, T0 + i * SEC, routes) for i, s in enumerate(sites)])
        await deliver(delivery, T0 + 9 * SEC)  # the group's window is still open
        await deliver(delivery, T0 + 11 * SEC)
        await deliver(delivery, T0 + 60 * SEC)
    [payload] = hook.received
    assert payload["title"].startswith("[DOWN] 10 sites down (address 127.0.0.9): site-0, ")
    for site in sites:
        assert f"  {site}: origin a (127.0.0.9) fails" in payload["message"]
    assert {s for _, _, _, s in await statuses(store)} == {"sent"}


async def test_a_failing_canary_holds_every_page_and_sends_one_notice(store: SqlStore) -> None:
    async with webhook() as hook:
        routes = [Route(notify=("hook",))]
        alerting = settings({"hook": hook.url}, routes, canary="canary")
        canary_down = True
        delivery = worker(store, alerting, Metrics(), lambda name: canary_down)
        await store.write_states([down(f"site-{i}", T0, routes) for i in range(3)])
        await deliver(delivery, T0)
        await store.write_states([down("site-3", T0 + MIN, routes)])  # later: held too
        await deliver(delivery, T0 + MIN)
        await deliver(delivery, T0 + 2 * MIN)
        [notice] = hook.received
        assert (
            notice["title"] == "[CANARY] the monitor's own network looks down: 3 site alerts held"
        )
        # Our network is back: three sites were fine all along, one is really down.
        await store.write_states([up(f"site-{i}", T0 + 3 * MIN, T0, routes) for i in range(3)])
        canary_down = False
        await deliver(delivery, T0 + 3 * MIN)
        await deliver(delivery, T0 + 4 * MIN)
    assert len(hook.received) == 2
    assert hook.received[1]["title"].startswith("[DOWN] site-3: ")
    found = await statuses(store)
    assert sorted(found) == sorted(
        [("hook", "down", 0, "resolved")] * 3
        + [("hook", "down", 1, "sent")]
        + [("hook", "recovered", 0, "resolved")] * 3
    )


async def test_a_recovery_held_by_the_canary_follows_once_it_answers(store: SqlStore) -> None:
    async with webhook() as hook:
        routes = [Route(notify=("hook",))]
        alerting = settings({"hook": hook.url}, routes, canary="canary")
        canary_down = False
        delivery = worker(store, alerting, Metrics(), lambda name: canary_down)
        await store.write_states([down("shop", T0, routes)])
        await deliver(delivery, T0 + 11 * SEC)
        canary_down = True
        await store.write_states([up("shop", T0 + MIN, T0, routes)])
        await deliver(delivery, T0 + MIN)
        canary_down = False
        await deliver(delivery, T0 + 2 * MIN)
    assert [p["title"].split(":")[0] for p in hook.received] == [
        "[DOWN] shop",
        "[CANARY] the monitor's own network looks down",
        "[RECOVERED] shop",
    ]


async def test_reminders_while_down_and_escalation_after_ten_minutes(store: SqlStore) -> None:
    async with webhook() as chat, webhook() as pager:
        routes = [
            Route(notify=("chat",), reminder=1800.0),
            Route(notify=("pager",), events=(Event.DOWN, Event.RECOVERED), after=600.0),
        ]
        delivery = worker(
            store, settings({"chat": chat.url, "pager": pager.url}, routes), Metrics()
        )
        await store.write_states([down("shop", T0, routes)])
        await store.write_states([down("blog", T0, routes)])
        for minutes in (1, 5, 11, 20, 31, 32, 45):
            await deliver(delivery, T0 + minutes * MIN)
            if minutes == 5:  # the blog recovers before the pager would have heard of it
                await store.write_states([up("blog", T0 + 5 * MIN, T0, routes)])
        await store.write_states([up("shop", T0 + 50 * MIN, T0, routes)])
        for minutes in (51, 62, 90, 200):
            await deliver(delivery, T0 + minutes * MIN)
    said = [(p["title"].split(":")[0]) for p in chat.received]
    assert said == [
        "[DOWN] shop",
        "[DOWN] blog",
        "[RECOVERED] blog",
        "[REMINDER] shop",  # 30 min after the down was sent at 1 min
        "[RECOVERED] shop",
    ]
    assert [p["title"].split(":")[0] for p in pager.received] == ["[DOWN] shop", "[RECOVERED] shop"]
    rows = await statuses(store)
    assert ("pager", "down", 0, "resolved") in rows  # the blog's escalation
    assert ("chat", "reminder", 0, "resolved") in rows  # the shop's second reminder


async def test_the_rate_limit_delays_messages_and_says_so(store: SqlStore) -> None:
    async with webhook() as hook:
        routes = [Route(notify=("hook",))]
        alerting = settings({"hook": hook.url}, routes, rate_limit=2, group_min=QUIET)
        delivery = worker(store, alerting, Metrics())
        await store.write_states([down(f"site-{i}", T0, routes) for i in range(5)])
        await deliver(delivery, T0 + 11 * SEC)
        assert len(hook.received) == 2
        await deliver(delivery, T0 + 12 * SEC)
        assert len(hook.received) == 2
        await deliver(delivery, T0 + 31 * MIN)  # half the hour: one token back
        assert len(hook.received) == 3
        assert "rate limit: up to 3 messages waited at once" in hook.received[2]["message"]
        await deliver(delivery, T0 + 3 * 60 * MIN)
    assert sorted(p["title"].split(":")[0] for p in hook.received) == [
        f"[DOWN] site-{i}" for i in range(5)
    ]


async def test_a_slow_notifier_does_not_hold_up_another(store: SqlStore) -> None:
    async with smtp_server() as mailbox, webhook() as hook:
        url = f"mailto://127.0.0.1:{mailbox.port}?from=monitor@example.com&to=oncall@example.com"
        routes = [Route(notify=("mail", "hook"))]
        alerting = settings({"mail": url, "hook": hook.url}, routes, group_min=QUIET)
        delivery = worker(store, alerting, Metrics())
        await store.write_states([down(f"site-{i}", T0, routes) for i in range(2)])
        loop = asyncio.get_running_loop()
        started = loop.time()
        await delivery.run_once(T0 + 11 * SEC)  # two e-mails: Apprise waits 5.5 s between
        await hook.wait(2)
        assert loop.time() - started < 3
        assert len(mailbox.messages) < 2
        await delivery.idle()
        assert len(mailbox.messages) == 2


async def test_a_send_that_times_out_is_tried_again_with_the_same_ref(store: SqlStore) -> None:
    async with webhook() as hook:
        hook.delay = 1.5  # answers after the timeout: the first send arrives all the same
        routes = [Route(notify=("hook",))]
        metrics = Metrics()
        delivery = worker(store, settings({"hook": hook.url}, routes, timeout=0.5), metrics)
        await store.write_states([down("shop", T0, routes)])
        loop = asyncio.get_running_loop()
        started = loop.time()
        await delivery.run_once(T0 + 11 * SEC)
        assert loop.time() - started < 0.5  # the send goes on in its lane
        await delivery.idle()
        assert metrics.outcomes == [("hook", "down", "retry")]
        hook.delay = 0
        await deliver(delivery, T0 + 20 * SEC)
        await hook.wait(2)
    first, second = (p["message"].splitlines()[-1] for p in hook.received)
    assert first == second
    assert first.startswith("ref: shop/")
    assert metrics.outcomes[-1] == ("hook", "down", "sent")


class FlakyOutbox(Outbox):
    """An outbox whose store fails to settle ``failures`` times (after a send)."""

    def __init__(self, store: SqlStore, failures: int) -> None:
        super().__init__(store)
        self.failures = failures

    async def settle(self, settled: Sequence[Settle]) -> None:
        if self.failures and settled:
            self.failures -= 1
            raise StoreError("database is locked")
        await super().settle(settled)


async def test_a_store_lost_after_the_send_does_not_send_it_again(store: SqlStore) -> None:
    async with webhook() as hook:
        routes = [Route(notify=("hook",))]
        alerting = settings({"hook": hook.url}, routes)
        outbox = FlakyOutbox(store, failures=2)
        channels = Channels(alerting.notifiers, alerting.timeout)
        delivery = Delivery(outbox, channels, alerting, Metrics())
        await store.write_states([down("shop", T0, routes)])
        await deliver(delivery, T0 + 11 * SEC)  # sent; marking it fails
        assert len(hook.received) == 1
        with pytest.raises(StoreError):
            await deliver(delivery, T0 + 12 * SEC)  # marking it fails again
        for seconds in (13, 30, 60):
            await deliver(delivery, T0 + seconds * SEC)
    assert len(hook.received) == 1
    assert await statuses(store) == [("hook", "down", 1, "sent")]


class SettledWhileRead(Outbox):
    """An outbox whose read of due rows, once ``slow``, returns only after the sends in
    flight were settled: a pass that reads while a lane marks a row sent."""

    def __init__(self, store: SqlStore) -> None:
        super().__init__(store)
        self.slow = False
        self.lanes_done: Callable[[], Awaitable[None]] | None = None

    async def due(self, now: datetime, *, with_held: bool, limit: int = 500) -> list[DueAlert]:
        rows = await super().due(now, with_held=with_held, limit=limit)
        if self.slow and self.lanes_done is not None:
            self.slow = False
            await self.lanes_done()
        return rows


async def test_a_row_sent_while_a_pass_reads_it_is_not_sent_again(store: SqlStore) -> None:
    async with webhook() as hook:
        hook.delay = 0.3  # the send is still in flight when the next pass reads
        routes = [Route(notify=("hook",))]
        alerting = settings({"hook": hook.url}, routes)
        outbox = SettledWhileRead(store)
        channels = Channels(alerting.notifiers, alerting.timeout)
        delivery = Delivery(outbox, channels, alerting, Metrics())
        outbox.lanes_done = delivery.idle
        await store.write_states([down("shop", T0, routes)])
        await delivery.run_once(T0 + 11 * SEC)  # its lane starts the send
        outbox.slow = True
        await deliver(delivery, T0 + 12 * SEC)  # reads it pending; marked sent meanwhile
        await deliver(delivery, T0 + 13 * SEC)
    assert len(hook.received) == 1
    assert await statuses(store) == [("hook", "down", 1, "sent")]


class Logged(logging.Handler):
    """Sets ``seen`` when a record with ``text`` in its message is logged."""

    def __init__(self, text: str) -> None:
        super().__init__()
        self.text = text
        self.seen = asyncio.Event()

    def emit(self, record: logging.LogRecord) -> None:
        if self.text in record.getMessage():
            self.seen.set()


async def test_the_worker_lives_through_a_dead_database(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    dead = SqlStore(f"sqlite+aiosqlite:///{tmp_path / 'missing' / 'monitor.db'}")
    delivery = Delivery(Outbox(dead), Channels((), 1.0), AlertSettings(), Metrics())
    failed = Logged("event=alerts.store_failed")
    logging.getLogger("monitor.alerts").addHandler(failed)
    delivery.start()
    try:
        async with asyncio.timeout(10):
            await failed.seen.wait()
    finally:
        logging.getLogger("monitor.alerts").removeHandler(failed)
    await delivery.close(1.0)
    await dead.close()
    # aiosqlite ends the thread of a failed connect without waiting for it: the thread
    # still posts its last result to this loop, which must not be closed before.
    for thread in threading.enumerate():
        if thread.name.endswith("(_connection_worker_thread)"):
            thread.join(5.0)
    assert "event=alerts.store_failed" in caplog.text


class DeadOutbox(Outbox):
    """An outbox whose database is gone."""

    async def due(self, now: datetime, *, with_held: bool, limit: int = 500) -> list[DueAlert]:
        raise StoreError("unable to open database file")


async def test_self_alerts_go_out_from_memory_while_the_store_is_down(store: SqlStore) -> None:
    def vitals(now: datetime, pending: int) -> selfcheck.Vitals:
        return selfcheck.Vitals(now, False, "unable to open database file", 0.0, pending)

    async with webhook() as hook:
        hook.fail = 1
        alerting = settings({"hook": hook.url}, ())
        channels = Channels(alerting.notifiers, alerting.timeout)
        metrics = Metrics()
        delivery = Delivery(DeadOutbox(store), channels, alerting, metrics, vitals=vitals)
        for seconds in (0, 61, 67, 80):  # the store fails for 60 s: alert; retried once
            with pytest.raises(StoreError):
                await delivery.run_once(T0 + seconds * SEC)
            await delivery.idle()
    [payload] = hook.received
    assert payload["title"] == "[SELF] the monitor cannot write to its store"
    assert "unable to open database file" in payload["message"]
    assert payload["type"] == "warning"
    assert hook.attempts == 2
    assert metrics.outcomes == [("hook", "self", "retry"), ("hook", "self", "sent")]


async def test_a_worker_without_the_outbox_sends_only_its_own_alerts_named(
    store: SqlStore,
) -> None:
    """Worker 1 of 2 never reads the outbox (worker 0 sends its rows) but tells of its
    own trouble, saying which worker it is."""
    routes = [Route(notify=("hook",))]
    await store.write_states([down("shop", T0, routes)])  # a row worker 0 would send

    def vitals(now: datetime, pending: int) -> selfcheck.Vitals:
        return selfcheck.Vitals(now, False, "database is locked", 0.0, pending)

    async with webhook() as hook:
        alerting = settings({"hook": hook.url}, routes)
        channels = Channels(alerting.notifiers, alerting.timeout)
        delivery = Delivery(None, channels, alerting, Metrics(), vitals=vitals, who="worker 1/2")
        for seconds in (0, 61):
            await delivery.run_once(T0 + seconds * SEC)
            await delivery.idle()
    [payload] = hook.received
    assert payload["title"] == "[SELF] the monitor cannot write to its store (worker 1/2)"
    assert await statuses(store) == [("hook", "down", 0, "pending")]


@pytest.mark.parametrize(
    ("outlook", "expected"),
    [
        (Outlook(0, False, None), T0 + MIN),  # empty: only the safety look
        (Outlook(1, False, T0 + 10 * SEC), T0 + 10 * SEC),  # a retry or an escalation
        (Outlook(1, False, T0 + 10 * MIN), T0 + MIN),  # a reminder: the safety look first
        (Outlook(2, False, T0 - SEC), T0 - SEC),  # due (being sent): every pass
        (Outlook(1, True, T0 + 10 * MIN), T0),  # held: the canary may answer any pass
        (Outlook(1, True, None), T0),
    ],
)
def test_when_the_outbox_is_read_next(outlook: Outlook, expected: datetime) -> None:
    assert next_look(T0, outlook, every=60.0) == expected


class CountingOutbox(Outbox):
    """Counts the reads of due rows."""

    reads = 0

    async def due(self, now: datetime, *, with_held: bool, limit: int = 500) -> list[DueAlert]:
        self.reads += 1
        return await super().due(now, with_held=with_held, limit=limit)


async def test_an_idle_worker_reads_the_outbox_when_woken_not_every_second(
    store: SqlStore,
) -> None:
    """Alone, the worker reads the outbox once, then only when woken (the store wrote
    alerts) or when a row falls due; it still passes every second for the self-check."""
    routes = [Route(notify=("hook",))]
    async with webhook() as hook:
        alerting = settings({"hook": hook.url}, routes, group_window=1.0)
        outbox = CountingOutbox(store)
        channels = Channels(alerting.notifiers, alerting.timeout)
        checked: list[datetime] = []
        three = asyncio.Event()

        def vitals(now: datetime, pending: int) -> selfcheck.Vitals:
            checked.append(now)
            if len(checked) >= 3:
                three.set()
            return selfcheck.Vitals(now, True, None, 0.0, pending)

        delivery = Delivery(outbox, channels, alerting, Metrics(), vitals=vitals, look_every=60)
        delivery.start()
        try:
            async with asyncio.timeout(10):
                await three.wait()  # three passes, each a second apart
            assert outbox.reads == 1
            assert len(checked) >= 3
            await store.write_states([down("shop", datetime.now(UTC), routes)])
            delivery.wake()
            await hook.wait(1, 10.0)
        finally:
            await delivery.close(5.0)
    assert outbox.reads >= 2
    [payload] = hook.received
    assert "shop" in payload["title"]


@pytest.mark.parametrize("tick", [1.0, 2.0])
async def test_a_worker_beside_others_reads_the_outbox_every_second(
    store: SqlStore, tick: float
) -> None:
    """Under --workers others insert rows, so it passes and reads the outbox every second
    (on whole seconds), whatever the tick, even when a pass runs a little before the
    second its look was due at."""
    alerting = settings({"hook": "json://127.0.0.1:9/"}, [Route(notify=("hook",))])
    outbox = CountingOutbox(store)
    passes: list[datetime] = []
    four = asyncio.Event()

    def vitals(now: datetime, pending: int) -> selfcheck.Vitals:
        passes.append(now)
        if len(passes) >= 4:
            four.set()  # the pass reads the outbox (or not) before the test runs again
        return selfcheck.Vitals(now, True, None, 0.0, pending)

    channels = Channels(alerting.notifiers, alerting.timeout)
    delivery = Delivery(
        outbox,
        channels,
        alerting,
        Metrics(),
        vitals=vitals,
        look_every=POLL,
        pass_every=lambda: tick,
    )
    delivery.start()
    try:
        async with asyncio.timeout(4 * tick + 5):
            await four.wait()
    finally:
        await delivery.close(5.0)
    assert len(passes) >= 4
    assert outbox.reads == len(passes)


async def test_passes_keep_to_the_schedulers_tick(store: SqlStore) -> None:
    """With a tick longer than a second (a long beat), the worker passes once a tick, on
    the tick's multiples of Unix time, and follows the tick when it changes."""
    alerting = settings({"hook": "json://127.0.0.1:9/"}, [Route(notify=("hook",))])
    passes: list[float] = []
    tick = [2.0]
    wanted = [3]  # passes to wait for
    enough = asyncio.Event()

    def vitals(now: datetime, pending: int) -> selfcheck.Vitals:
        passes.append(now.timestamp())
        if len(passes) >= wanted[0]:
            enough.set()
        return selfcheck.Vitals(now, True, None, 0.0, pending)

    channels = Channels(alerting.notifiers, alerting.timeout)
    delivery = Delivery(
        Outbox(store),
        channels,
        alerting,
        Metrics(),
        vitals=vitals,
        look_every=LOOK_ALONE,
        pass_every=lambda: tick[0],
    )
    delivery.start()
    try:
        async with asyncio.timeout(10):
            await enough.wait()  # the first pass, then two on the 2 s tick
        on_two = len(passes)
        tick[0] = 0.5  # from the pass after the one already waited for
        wanted[0] = on_two + 3
        enough.clear()
        async with asyncio.timeout(10):
            await enough.wait()
    finally:
        await delivery.close(5.0)
    assert 2 <= on_two <= 3, passes  # the first, then one every 2 s
    late = [p % 2.0 for p in passes[1:on_two]]
    assert all(lateness < 0.1 or lateness > 2.0 - EARLY for lateness in late), passes
    assert len(passes) - on_two >= 3, passes  # then every 0.5 s


@pytest.mark.parametrize(
    ("now", "every", "wait"),
    [
        pytest.param(1_790_000_000.0, 1.0, 1.0, id="on-a-second-the-next"),
        pytest.param(1_790_000_000.25, 1.0, 0.75, id="woken-between"),
        pytest.param(1_790_000_000.899, 1.0, 0.101, id="just-over-a-tenth-before"),
        pytest.param(1_790_000_000.995, 1.0, 1.005, id="early-by-a-timer-counts-as-that-second"),
        pytest.param(1_790_000_000.0, 2.5, 2.5, id="on-a-tick-of-a-beat-the-next"),
        pytest.param(1_790_000_001.0, 2.5, 1.5, id="woken-between-beats"),
        pytest.param(1_790_000_002.45, 2.5, 2.55, id="early-counts-as-that-beat"),
    ],
)
def test_passes_fall_on_the_ticks(now: float, every: float, wait: float) -> None:
    assert to_next_pass(now, every) == pytest.approx(wait, abs=1e-6)
    assert (now + wait) % every == pytest.approx(0.0, abs=1e-6)


@pytest.mark.parametrize(
    ("now", "look_at", "wait"),
    [
        pytest.param(1_790_000_000.0, 1_790_000_002.0, 2.0, id="a-row-due-before-the-tick"),
        pytest.param(1_790_000_000.0, 1_790_000_000.05, 0.05, id="due-in-a-moment"),
        pytest.param(1_790_000_000.0, 1_790_000_007.0, 5.0, id="due-after-the-tick"),
        pytest.param(1_790_000_000.0, 1_790_000_000.0, 5.0, id="held-rows-look-on-the-tick"),
        pytest.param(1_790_000_000.0, 1_789_999_990.0, 5.0, id="overdue-on-the-tick"),
        pytest.param(1_790_000_000.0, None, 5.0, id="nothing-due"),
    ],
)
def test_a_row_falling_due_before_the_tick_brings_the_pass_forward(
    now: float, look_at: float | None, wait: float
) -> None:
    assert to_next_pass(now, 5.0, look_at) == pytest.approx(wait, abs=1e-6)
