"""The runner with a judge, against a real local site: the immediate re-check."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
from aiohttp import web
from prometheus_client import CollectorRegistry

from monitor.engine.judging import Judge
from monitor.engine.runner import Runner
from monitor.judge.state import Policy, State
from monitor.judge.tracker import StateRecord, Tracker, Tracking
from monitor.metrics.registry import Metrics
from monitor.models import Cause, ProbeResult, Site
from monitor.probes import make_clients
from tests.support.localsite import serve


class Answers:
    """A site answering from a script of statuses, then 200."""

    def __init__(self) -> None:
        self.script: list[int] = []
        self.requests = 0

    async def handle(self, _: web.Request) -> web.Response:
        self.requests += 1
        status = self.script.pop(0) if self.script else 200
        return web.Response(status=status, text="hello" if status == 200 else "no")


@pytest.fixture
async def site() -> AsyncIterator[tuple[Answers, str]]:
    answers = Answers()
    async with serve(answers.handle) as url:
        yield answers, url


class Collected:
    def __init__(self) -> None:
        self.results: list[ProbeResult] = []
        self.records: list[StateRecord] = []

    def submit(self, row: ProbeResult | StateRecord) -> None:
        if isinstance(row, ProbeResult):
            self.results.append(row)
        else:
            self.records.append(row)


async def _rounds(url: str, count: int, policy: Policy) -> tuple[Tracker, Collected]:
    sink = Collected()
    tracker = Tracker({"shop": Tracking(policy=policy)})
    metrics = Metrics(CollectorRegistry())
    judge = Judge(tracker, (), sink, metrics)
    site = Site(name="shop", url=url, interval=5.0, timeout=1.0)
    async with make_clients() as clients:
        runner = Runner(clients, sink, metrics, judge)
        for _ in range(count):
            await runner.run_round(site)
    return tracker, sink


async def test_one_failed_request_is_rechecked_at_once_and_does_not_count(
    site: tuple[Answers, str],
) -> None:
    answers, url = site
    answers.script = [200, 503]  # the second round's request fails, its re-check passes
    tracker, sink = await _rounds(url, 4, Policy())
    assert answers.requests == 5
    assert [r.cause for r in sink.results] == [Cause.OK, Cause.SERVICE_UNAVAILABLE] + [Cause.OK] * 3
    assert tracker.get("shop").state.state is State.UP
    assert "down" not in tracker.get("shop").state.recent  # the failure was not counted


async def test_a_real_outage_fails_its_rechecks_and_goes_down(site: tuple[Answers, str]) -> None:
    answers, url = site
    answers.script = [200] + [503] * 20
    tracker, sink = await _rounds(url, 4, Policy())
    # Round 1 up; rounds 2-4 each fail twice (the round and its re-check).
    assert answers.requests == 7
    assert tracker.get("shop").state.state is State.DOWN
    [opened] = [r for r in sink.records if r.change is not None and r.change.opens]
    assert opened.change is not None
    assert opened.change.entries[0].event == "down"
    assert opened.change.entries[0].timings[0].startswith("edge: 503; ")
