"""The cap on probes at once: its size from the open-files limit, what it lets run, and
that waiting for a slot is neither a target's latency nor counted against its time limit
(real rounds against a slow local site)."""

from __future__ import annotations

import asyncio
import logging
import resource

import pytest
from aiohttp import web
from prometheus_client import CollectorRegistry

from monitor.app.daemon import _probe_slots
from monitor.engine.runner import Runner
from monitor.metrics.registry import Metrics
from monitor.models import Cause, ProbeResult, Site
from monitor.probes import make_session
from monitor.probes.slots import ProbeSlots, auto_limit
from tests.support.localsite import serve


@pytest.mark.parametrize(
    ("open_files", "limit"),
    [
        (1024, 384),  # a shell's usual soft limit: (1024 - 256) / 2
        (4096, 1920),
        (524_288, 262_016),  # systemd's usual hard limit, which `monitor run` takes
        (1_048_576, 524_160),  # Docker's
        (300, 22),
        (200, 16),  # never below 16, even where the files are fewer than the reserve
        (resource.RLIM_INFINITY, 0),  # unlimited: no cap
    ],
)
def test_auto_limit(open_files: int, limit: int) -> None:
    assert auto_limit(open_files) == limit


def test_a_negative_limit_is_refused() -> None:
    with pytest.raises(ValueError, match="limit"):
        ProbeSlots(-1)


class Gate:
    """Probes that start, say so, and end when released."""

    def __init__(self) -> None:
        self.started: list[int] = []
        self.release = asyncio.Event()

    async def probe(self, n: int) -> int:
        self.started.append(n)
        await self.release.wait()
        return n


async def _settle() -> None:
    for _ in range(5):
        await asyncio.sleep(0)


async def test_at_most_limit_probes_run_and_the_rest_start_in_turn() -> None:
    waits: list[float] = []
    slots = ProbeSlots(2, waits.append)
    gate = Gate()
    runs = [asyncio.create_task(slots.run(gate.probe, n)) for n in range(5)]
    await _settle()
    assert gate.started == [0, 1]  # the others are not even called yet
    assert slots.in_flight == 2
    assert waits == []
    gate.release.set()
    assert await asyncio.gather(*runs) == [0, 1, 2, 3, 4]
    assert gate.started == [0, 1, 2, 3, 4]
    assert len(waits) == 3
    assert all(w >= 0 for w in waits)
    assert slots.in_flight == 0


async def test_no_cap_runs_everything_at_once() -> None:
    waits: list[float] = []
    slots = ProbeSlots(0, waits.append)
    gate = Gate()
    runs = [asyncio.create_task(slots.run(gate.probe, n)) for n in range(50)]
    await _settle()
    assert len(gate.started) == 50
    assert slots.in_flight == 50
    gate.release.set()
    await asyncio.gather(*runs)
    assert slots.in_flight == 0
    assert waits == []


async def test_a_probe_granted_a_slot_and_cancelled_before_it_ran_gives_it_back() -> None:
    """The slot is handed over when the holder ends, and the waiter cancelled in the same
    step, before it resumed: the slot must not be lost with it."""
    slots = ProbeSlots(1)
    holder = Gate()
    first = asyncio.create_task(slots.run(holder.probe, 1))
    await _settle()
    waiting = asyncio.create_task(slots.run(holder.probe, 2))
    await _settle()
    holder.release.set()  # the holder resumes next, ends, and hands its slot on ...
    asyncio.get_running_loop().call_soon(waiting.cancel)  # ... then this, before the waiter
    assert await first == 1
    with pytest.raises(asyncio.CancelledError):
        await waiting
    assert await asyncio.wait_for(slots.run(holder.probe, 3), 1.0) == 3
    assert holder.started == [1, 3]
    assert slots.in_flight == 0


async def test_a_probe_cancelled_while_waiting_takes_no_slot_with_it() -> None:
    slots = ProbeSlots(1)
    gate = Gate()
    first = asyncio.create_task(slots.run(gate.probe, 1))
    waiting = asyncio.create_task(slots.run(gate.probe, 2))
    await _settle()
    waiting.cancel()
    with pytest.raises(asyncio.CancelledError):
        await waiting
    gate.release.set()
    assert await first == 1
    assert await slots.run(gate.probe, 3) == 3  # the slot came back
    assert gate.started == [1, 3]
    assert slots.in_flight == 0


async def test_a_failing_probe_gives_its_slot_back() -> None:
    slots = ProbeSlots(1)

    async def broken() -> None:
        raise RuntimeError("ours")

    with pytest.raises(RuntimeError):
        await slots.run(broken)
    assert await asyncio.wait_for(slots.run(asyncio.sleep, 0, "free"), 1.0) == "free"


class Collected:
    def __init__(self) -> None:
        self.results: list[ProbeResult] = []

    def submit(self, result: ProbeResult) -> None:
        self.results.append(result)


SLOW = 0.3  # seconds the site takes to answer


async def test_waiting_for_a_slot_is_not_latency_and_not_timed_out() -> None:
    """Three sites on one slot against a site that answers in 0.3 s, each with a 0.5 s
    time limit: the last waits 0.6 s for its slot, yet every probe succeeds and measures
    the site's 0.3 s, and the metrics count the two waits."""

    async def slow(_: web.Request) -> web.Response:
        await asyncio.sleep(SLOW)
        return web.Response(text="hello")

    registry = CollectorRegistry()
    metrics = Metrics(registry)
    collected = Collected()
    slots = ProbeSlots(1, metrics.observe_slot_wait)
    async with serve(slow) as url, make_session() as session:
        runner = Runner(session, collected, metrics, slots=slots)
        sites = [Site(name=f"s{i}", url=url, interval=10.0, timeout=0.5) for i in range(3)]
        rounds = await asyncio.gather(*(runner.run_round(site) for site in sites))
    results = [one for results in rounds for one in results]
    assert [r.cause for r in results] == [Cause.OK] * 3
    for result in results:
        assert SLOW <= result.phases.total < 2 * SLOW, result.phases
    assert registry.get_sample_value("monitor_probe_slot_waits_total") == 2
    waited = registry.get_sample_value("monitor_probe_slot_wait_seconds_total")
    assert waited is not None
    assert 3 * SLOW * 0.9 <= waited < 6 * SLOW  # ~0.3 + ~0.6 s
    assert slots.in_flight == 0


async def test_without_the_cap_the_same_rounds_overlap() -> None:
    """The control for the test above: with no cap the three requests overlap, so nothing
    waits and the whole takes about one answer's time."""
    arrived: list[float] = []

    async def slow(_: web.Request) -> web.Response:
        arrived.append(asyncio.get_running_loop().time())
        await asyncio.sleep(SLOW)
        return web.Response(text="hello")

    registry = CollectorRegistry()
    metrics = Metrics(registry)
    async with serve(slow) as url, make_session() as session:
        runner = Runner(
            session, Collected(), metrics, slots=ProbeSlots(0, metrics.observe_slot_wait)
        )
        sites = [Site(name=f"s{i}", url=url, interval=10.0, timeout=0.5) for i in range(3)]
        await asyncio.gather(*(runner.run_round(site) for site in sites))
    assert max(arrived) - min(arrived) < SLOW
    assert registry.get_sample_value("monitor_probe_slot_waits_total") == 0


def test_the_daemon_takes_auto_from_its_open_files_limit_and_exports_the_cap() -> None:
    registry = CollectorRegistry()
    slots = _probe_slots(None, Metrics(registry))
    soft = resource.getrlimit(resource.RLIMIT_NOFILE)[0]
    assert slots.limit == auto_limit(soft)
    assert registry.get_sample_value("monitor_probes_in_flight_limit") == slots.limit
    assert registry.get_sample_value("monitor_probes_in_flight") == 0


def test_a_cap_above_what_the_open_files_allow_is_kept_and_warned_of(
    caplog: pytest.LogCaptureFixture,
) -> None:
    soft = resource.getrlimit(resource.RLIMIT_NOFILE)[0]
    if soft == resource.RLIM_INFINITY:
        pytest.skip("no open-files limit here to exceed")
    with caplog.at_level(logging.WARNING, logger="monitor.daemon"):
        slots = _probe_slots(soft, Metrics(CollectorRegistry()))
        _probe_slots(auto_limit(soft), Metrics(CollectorRegistry()))  # fits: no warning
    assert slots.limit == soft
    warned = [r.getMessage() for r in caplog.records]
    assert len(warned) == 1
    assert "probes.cap_above_open_files" in warned[0]
    assert f"open_files={soft}" in warned[0]
