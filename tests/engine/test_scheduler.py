"""The firing grid: stable offsets, planned times, missed runs; and real APScheduler firing
(on a virtual clock: see tests.support.clock)."""

from __future__ import annotations

import asyncio
import math
from collections import Counter
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import pytest
from prometheus_client import CollectorRegistry

from monitor.engine.scheduler import (
    CheckScheduler,
    Grid,
    by_beat,
    choose_beat,
    misfire_grace,
    missed_between,
    next_tick,
    planned_time,
    start_offset,
    tick_every,
)
from monitor.metrics.registry import Metrics
from monitor.models import Monitor, Site
from tests.support.clock import VirtualClock


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> VirtualClock:
    """The tests that fire the scheduler run on a virtual clock: each run is seen at the
    very time it starts, however busy the machine, and their seconds pass at once."""
    clock = VirtualClock(start=1_790_000_000.35)
    clock.install(monkeypatch)
    return clock


def test_offset_is_stable_and_inside_the_interval() -> None:
    assert start_offset("shop", 30.0) == start_offset("shop", 30.0)
    offsets = [start_offset(f"site-{i}", 60.0) for i in range(10_000)]
    assert all(0.0 <= o < 60.0 for o in offsets)


def test_offsets_spread_evenly_over_the_interval() -> None:
    # 10,000 sites over 60 one-second slots: no second may carry far more than its share.
    per_second = Counter(int(start_offset(f"site-{i}", 60.0)) for i in range(10_000))
    assert len(per_second) == 60
    assert max(per_second.values()) < 10_000 / 60 * 1.5


@pytest.mark.parametrize(
    ("now", "offset", "interval", "expected"),
    [
        pytest.param(100.0, 0.0, 30.0, 90.0, id="between-grid-points"),
        pytest.param(90.0, 0.0, 30.0, 90.0, id="exactly-on-grid"),
        pytest.param(107.5, 7.5, 10.0, 107.5, id="offset-grid"),
        pytest.param(107.4, 7.5, 10.0, 97.5, id="just-before-offset-point"),
        pytest.param(1_700_000_012.25, 2.0, 5.0, 1_700_000_012.0, id="epoch-scale"),
    ],
)
def test_planned_time(now: float, offset: float, interval: float, expected: float) -> None:
    assert planned_time(now, offset, interval) == pytest.approx(expected)


@pytest.mark.parametrize(
    ("previous", "planned", "interval", "expected"),
    [
        pytest.param(None, 100.0, 10.0, 0, id="first-run"),
        pytest.param(90.0, 100.0, 10.0, 0, id="consecutive"),
        pytest.param(70.0, 100.0, 10.0, 2, id="two-missed"),
        pytest.param(70.0000001, 100.0, 10.0, 2, id="float-noise"),
        pytest.param(100.0, 100.0, 10.0, 0, id="same-point"),
    ],
)
def test_missed_between(
    previous: float | None, planned: float, interval: float, expected: int
) -> None:
    assert missed_between(previous, planned, interval) == expected


@pytest.mark.parametrize(
    ("interval", "grace"),
    [(1.0, 1), (2.0, 1), (30.0, 15), (61.0, 30), (3600.0, 1800)],
)
def test_misfire_grace_is_about_half_the_interval(interval: float, grace: int) -> None:
    assert misfire_grace(interval) == grace


@pytest.mark.parametrize(
    ("configured", "intervals", "beat"),
    [
        pytest.param(None, [60.0] * 1_000, 2.5, id="1k-every-60s"),  # ~42 runs a beat
        pytest.param(None, [10.0] * 1_000, 0.5, id="1k-every-10s"),
        pytest.param(None, [60.0] * 10_000, 0.25, id="10k-every-60s"),
        pytest.param(None, [10.0] * 10_000, 0.05, id="10k-every-10s"),
        pytest.param(None, [60.0] * 50_000, 0.05, id="50k-every-60s"),
        pytest.param(None, [60.0] * 100_000, 0.05, id="busier-than-50-a-step"),
        pytest.param(None, [60.0] * 10, 5.0, id="few-sites-longest-step"),
        pytest.param(None, [3600.0] * 10, 5.0, id="never-past-the-longest-step"),
        pytest.param(None, [10.0] * 100 + [300.0] * 1_000, 1.0, id="a-tenth-of-the-shortest"),
        pytest.param(None, [1.0] * 3, 0.1, id="one-second-interval"),
        pytest.param(None, [42.0] * 100, 1.0, id="the-longest-step-dividing-42s"),
        pytest.param(None, [55.0] * 10 + [60.0] * 10, 5.0, id="5s-divides-55s-and-60s"),
        pytest.param(None, [57.0] * 10 + [60.0] * 10, 1.0, id="only-1s-divides-57s-too"),
        pytest.param(None, [12.5] * 10, 0.5, id="half-seconds"),
        pytest.param(None, [1.23] * 10, 0.1, id="none-divides-the-longest-that-fits"),
        pytest.param(None, [0.3], 0.03, id="below-the-shortest-step"),
        pytest.param(None, [], 0.05, id="no-monitors"),
        pytest.param(0.05, [60.0] * 10, 0.05, id="configured"),
        pytest.param(0.0, [60.0], 0.0, id="configured-none"),
        pytest.param(5.0, [10.0], 1.0, id="configured-capped-by-interval"),
        pytest.param(1.0, [], 1.0, id="configured-no-monitors"),
    ],
)
def test_choose_beat(configured: float | None, intervals: list[float], beat: float) -> None:
    assert choose_beat(configured, intervals) == pytest.approx(beat)


def test_runs_are_planned_and_fired_on_the_beat(clock: VirtualClock) -> None:
    # A 0.4 s beat (a tenth of 4 s): each run starts on a multiple of 0.4 s, at or after
    # its grid point, and its lag is counted from that beat, not from the grid point.
    async def main() -> None:
        sites = [
            Site(name=f"s{i}", url="http://127.0.0.1/", interval=4.0, timeout=0.5) for i in range(4)
        ]
        fired: list[tuple[float, float]] = []  # (when, its beat)

        async def run_round(monitor: Monitor) -> None:
            now = clock.time()
            grid = planned_time(now, start_offset(monitor.name, 4.0), 4.0)
            fired.append((now, math.ceil(grid / 0.4) * 0.4))

        registry = CollectorRegistry()
        scheduler = CheckScheduler(sites, run_round, Metrics(registry), beat=0.4)
        await _fire_for(scheduler, 4.3)
        assert registry.get_sample_value("monitor_scheduler_beat_seconds") == 0.4
        assert len(fired) >= 4
        assert all(0.0 <= now - beat < 0.25 for now, beat in fired), fired  # late by the machine
        lag_sum = registry.get_sample_value("monitor_scheduler_lag_seconds_sum") or 0.0
        assert registry.get_sample_value("monitor_scheduler_lag_seconds_count") == len(fired)
        # The scheduler takes its time just before the round's task does.
        since_beats = sum(now - beat for now, beat in fired)
        assert since_beats - 0.01 * len(fired) <= lag_sum <= since_beats

    clock.run(main())


@pytest.mark.parametrize("beat", [None, 0.05, 0.0], ids=["auto", "on-a-beat", "each-on-its-own"])
def test_real_scheduler_fires_every_site_on_its_grid(
    clock: VirtualClock, beat: float | None
) -> None:
    async def main() -> None:
        sites = [
            Site(name=f"s{i}", url="http://127.0.0.1/", interval=1.0, timeout=0.5) for i in range(3)
        ]
        fired: Counter[str] = Counter()
        lags: list[float] = []

        async def run_round(monitor: Monitor) -> None:
            fired[monitor.name] += 1
            now = clock.time()
            lags.append(now - planned_time(now, start_offset(monitor.name, 1.0), 1.0))

        registry = CollectorRegistry()
        scheduler = CheckScheduler(sites, run_round, Metrics(registry), beat=beat)
        await _fire_for(scheduler, 3.2)
        assert set(fired) == {"s0", "s1", "s2"}
        assert all(count >= 2 for count in fired.values()), fired
        assert registry.get_sample_value("monitor_scheduler_missed_runs_total") == 0
        lag_count = registry.get_sample_value("monitor_scheduler_lag_seconds_count")
        assert lag_count == sum(fired.values())
        assert scheduler.firing_recently()
        # Never early; late by a beat at most (0.1 s under auto: a tenth of the interval),
        # plus what a busy test machine adds.
        assert all(0.0 <= lag < scheduler.beat + 0.25 for lag in lags), lags
        assert scheduler.beat == (0.1 if beat is None else beat)

    clock.run(main())


@pytest.mark.parametrize(
    ("times", "beat", "expected"),
    [
        ([], 0.05, {}),
        ([0.05], 0.05, {1: [0.05]}),  # on a beat: fired on it, not one later
        ([0.051], 0.05, {2: [0.051]}),  # just after one: the next
        ([0.01, 0.02, 0.049], 0.05, {1: [0.01, 0.02, 0.049]}),  # together, in order
        ([0.049, 0.051, 0.1, 0.1001], 0.05, {1: [0.049], 2: [0.051, 0.1], 3: [0.1001]}),
        (
            [1_790_000_000.012, 1_790_000_000.06],
            0.05,
            {35_800_000_001: [1_790_000_000.012], 35_800_000_002: [1_790_000_000.06]},
        ),
        ([0.3, 0.2], 0.1, {3: [0.3], 2: [0.2]}),
    ],
)
def test_points_fire_on_the_first_beat_at_or_after_them(
    times: list[float], beat: float, expected: dict[int, list[float]]
) -> None:
    beats = by_beat(((t, f"m{i}", 60.0) for i, t in enumerate(times)), beat)
    assert {index: [p[0] for p in points] for index, points in beats.items()} == expected
    for index, points in beats.items():
        assert all((index - 1) * beat < p[0] <= index * beat + 1e-9 for p in points)


GRID = {"a": (0.5, 10.0), "b": (9.5, 10.0), "c": (2.0, 60.0)}


@pytest.mark.parametrize(
    ("start", "end", "expected"),
    [
        (0.0, 1.0, [(0.5, "a")]),
        (0.5, 1.0, [(0.5, "a")]),  # the start is in, the end is out
        (0.0, 0.5, []),
        (9.0, 11.0, [(9.5, "b"), (10.5, "a")]),  # across a cycle
        (1001.0, 1009.0, []),
        (1019.0, 1022.0, [(1019.5, "b"), (1020.5, "a")]),
        (1021.0, 1023.0, [(1022.0, "c")]),
        (0.0, 21.0, [(0.5, "a"), (10.5, "a"), (20.5, "a"), (9.5, "b"), (19.5, "b"), (2.0, "c")]),
    ],
)
def test_grid_finds_the_points_in_a_window(
    start: float, end: float, expected: list[tuple[float, str]]
) -> None:
    assert sorted(Grid(GRID).due(start, end)) == sorted(expected)


def test_a_round_still_running_is_not_started_twice_and_counts_as_missed(
    clock: VirtualClock,
) -> None:
    async def main() -> None:
        site = Site(name="slow", url="http://127.0.0.1/", interval=1.0, timeout=0.5)
        running = 0
        most = 0

        async def run_round(_: Monitor) -> None:
            nonlocal running, most
            running += 1
            most = max(most, running)
            await asyncio.sleep(2.5)  # spans two more grid points
            running -= 1

        registry = CollectorRegistry()
        scheduler = CheckScheduler([site], run_round, Metrics(registry))
        await _fire_for(scheduler, 3.6)
        assert most == 1
        assert (registry.get_sample_value("monitor_scheduler_missed_runs_total") or 0) >= 2

    clock.run(main())


def test_the_beat_follows_the_monitors_when_they_are_replaced() -> None:
    def sites(count: int, interval: float) -> list[Site]:
        return [
            Site(name=f"s{i}", url="http://127.0.0.1/", interval=interval, timeout=1.0)
            for i in range(count)
        ]

    async def run_round(_: Monitor) -> None:
        return None

    registry = CollectorRegistry()
    scheduler = CheckScheduler(sites(10, 60.0), run_round, Metrics(registry))
    assert scheduler.beat == 5.0
    scheduler.replace_monitors(sites(1, 10.0))
    assert scheduler.beat == 1.0  # a tenth of the shortest interval
    assert registry.get_sample_value("monitor_scheduler_beat_seconds") == 1.0
    scheduler.replace_monitors(sites(20_000, 60.0))
    assert scheduler.beat == 0.1
    assert registry.get_sample_value("monitor_scheduler_beat_seconds") == 0.1


@asynccontextmanager
async def _firing(scheduler: CheckScheduler) -> AsyncIterator[None]:
    """``scheduler`` firing for the block, stopped after it."""
    scheduler.start()
    try:
        yield
    finally:
        scheduler.stop_firing()
        scheduler.shutdown()


async def _fire_for(scheduler: CheckScheduler, seconds: float) -> None:
    """Start ``scheduler``, let it fire for ``seconds``, and stop it."""
    async with _firing(scheduler):
        await asyncio.sleep(seconds)


def test_a_new_interval_counts_no_missed_runs(clock: VirtualClock) -> None:
    # The runs on the old grid are not points missed on the new one.
    async def main() -> None:
        def site(interval: float) -> Site:
            return Site(name="shop", url="http://127.0.0.1/", interval=interval, timeout=0.2)

        fired: list[float] = []

        async def run_round(monitor: Monitor) -> None:
            fired.append(monitor.interval)

        registry = CollectorRegistry()
        scheduler = CheckScheduler([site(2.0)], run_round, Metrics(registry))
        async with _firing(scheduler):
            await asyncio.sleep(2.2)
            scheduler.replace_monitors([site(0.5)])  # on the new grid from its next point
            await asyncio.sleep(3.0)
        assert 2.0 in fired
        assert fired.count(0.5) >= 2
        assert registry.get_sample_value("monitor_scheduler_missed_runs_total") == 0

    clock.run(main())


@pytest.mark.parametrize(
    ("beat", "tick"),
    [(0.0, 1.0), (0.05, 1.0), (1.0, 1.0), (2.5, 2.5), (5.0, 5.0)],
)
def test_the_tick_is_a_second_or_a_longer_beat(beat: float, tick: float) -> None:
    assert tick_every(beat) == tick


@pytest.mark.parametrize(
    ("now", "every", "expected"),
    [
        (1_790_000_000.0, 1.0, 1_790_000_001.0),  # on a tick: the next one
        (1_790_000_000.4, 1.0, 1_790_000_001.0),
        (1_790_000_001.0, 2.5, 1_790_000_002.5),  # on the beats, not a second after now
        (1_790_000_002.5, 2.5, 1_790_000_005.0),
        (1_790_000_003.0, 5.0, 1_790_000_005.0),
    ],
)
def test_ticks_fall_on_multiples_of_themselves(now: float, every: float, expected: float) -> None:
    assert next_tick(now, every) == pytest.approx(expected, abs=1e-6)


def _sites(count: int, interval: float) -> list[Site]:
    return [
        Site(name=f"s{i}", url="http://127.0.0.1/", interval=interval, timeout=1.0)
        for i in range(count)
    ]


def test_after_a_reload_to_a_long_beat_every_point_fires_on_its_beat(clock: VirtualClock) -> None:
    # 200 sites move from 10 s (a 1 s beat, ticks every second) to 25 s (a 2.5 s beat and
    # tick). The new grid's points up to where the last tick planned are armed at the
    # reload; those after it, by the new tick, which falls on the beat they run on.
    async def main() -> None:
        fired: list[tuple[str, float]] = []

        async def run_round(monitor: Monitor) -> None:
            fired.append((monitor.name, clock.time()))

        registry = CollectorRegistry()
        scheduler = CheckScheduler(_sites(200, 10.0), run_round, Metrics(registry), beat=2.5)
        assert (scheduler.beat, scheduler.tick) == (1.0, 1.0)
        async with _firing(scheduler):
            # Reload 0.2 s after a multiple of 2.5 s: the old ticks planned 1.3-1.8 s ahead,
            # and the next tick of 2.5 s is 2.3 s away.
            since = clock.time() % 2.5
            await asyncio.sleep(0.2 - since + (2.5 if since > 0.1 else 0.0))
            reloaded = clock.time()
            fired.clear()
            scheduler.replace_monitors(_sites(200, 25.0))
            assert (scheduler.beat, scheduler.tick) == (2.5, 2.5)
            await asyncio.sleep(5.3)
        offsets = {f"s{i}": (start_offset(f"s{i}", 25.0), 25.0) for i in range(200)}
        due = sorted(Grid(offsets).due(reloaded, reloaded + 4.5))
        assert len(due) >= 25
        runs = {name: at for name, at in fired}
        for planned, name in due:
            beat = math.ceil(planned / 2.5) * 2.5
            assert name in runs, (name, planned - reloaded)
            assert 0.0 <= runs[name] - beat < 0.25, (name, planned - reloaded, runs[name] - beat)
        assert registry.get_sample_value("monitor_scheduler_missed_runs_total") == 0

    clock.run(main())


def test_a_monitor_removed_and_added_again_within_a_tick_runs_once_a_point(
    clock: VirtualClock,
) -> None:
    # Its points stay armed from before; arming them again must not run them twice.
    async def main() -> None:
        fired: Counter[str] = Counter()

        async def run_round(monitor: Monitor) -> None:
            fired[monitor.name] += 1

        registry = CollectorRegistry()
        sites = _sites(5, 1.0)
        scheduler = CheckScheduler(sites, run_round, Metrics(registry))
        async with _firing(scheduler):
            await asyncio.sleep(0.3)
            scheduler.replace_monitors([])
            scheduler.replace_monitors(sites)
            fired.clear()
            await asyncio.sleep(2.5)
        assert set(fired) == {site.name for site in sites}
        assert all(2 <= count <= 3 for count in fired.values()), fired
        assert registry.get_sample_value("monitor_scheduler_missed_runs_total") == 0

    clock.run(main())


def test_after_a_reload_to_a_shorter_tick_no_point_runs_twice(clock: VirtualClock) -> None:
    # 200 sites every 25 s on a 2.5 s beat and tick: the ticks planned 2.5-5 s ahead. A
    # site every 5 s joins: the beat and the tick fall to 0.5 s and 1 s, and the new ticks
    # plan from where the old plan ended, not from nearer (which armed points twice).
    async def main() -> None:
        fired: Counter[str] = Counter()

        async def run_round(monitor: Monitor) -> None:
            fired[monitor.name] += 1

        registry = CollectorRegistry()
        scheduler = CheckScheduler(_sites(200, 25.0), run_round, Metrics(registry), beat=2.5)
        async with _firing(scheduler):
            since = clock.time() % 2.5
            await asyncio.sleep(2.5 - since + 0.3)  # just after a tick of 2.5 s
            fast = Site(name="fast", url="http://127.0.0.1/", interval=5.0, timeout=1.0)
            scheduler.replace_monitors([*_sites(200, 25.0), fast])
            assert (scheduler.beat, scheduler.tick) == (0.5, 1.0)
            await asyncio.sleep(5.0)
        assert sum(fired.values()) >= 40
        twice = {name: count for name, count in fired.items() if count > 1 and name != "fast"}
        assert not twice
        assert registry.get_sample_value("monitor_scheduler_missed_runs_total") == 0

    clock.run(main())
