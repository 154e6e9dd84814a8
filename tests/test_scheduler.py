"""The firing grid: stable offsets, planned times, missed runs; and real APScheduler firing."""

from __future__ import annotations

import asyncio
import time
from collections import Counter

import pytest
from prometheus_client import CollectorRegistry

from monitor.metrics import Metrics
from monitor.models import Monitor, Site
from monitor.scheduler import (
    BEAT,
    CheckScheduler,
    Grid,
    by_beat,
    misfire_grace,
    missed_between,
    planned_time,
    start_offset,
)


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


@pytest.mark.parametrize("beat", [BEAT, 0.0], ids=["on-the-beat", "each-on-its-own"])
async def test_real_scheduler_fires_every_site_on_its_grid(beat: float) -> None:
    sites = [
        Site(name=f"s{i}", url="http://127.0.0.1/", interval=1.0, timeout=0.5) for i in range(3)
    ]
    fired: Counter[str] = Counter()
    lags: list[float] = []

    async def run_round(monitor: Monitor) -> None:
        fired[monitor.name] += 1
        now = time.time()
        lags.append(now - planned_time(now, start_offset(monitor.name, 1.0), 1.0))

    registry = CollectorRegistry()
    scheduler = CheckScheduler(sites, run_round, Metrics(registry), beat=beat)
    scheduler.start()
    try:
        await asyncio.sleep(3.2)
    finally:
        scheduler.stop_firing()
        scheduler.shutdown()
    assert set(fired) == {"s0", "s1", "s2"}
    assert all(count >= 2 for count in fired.values()), fired
    assert registry.get_sample_value("monitor_scheduler_missed_runs_total") == 0
    lag_count = registry.get_sample_value("monitor_scheduler_lag_seconds_count")
    assert lag_count == sum(fired.values())
    assert scheduler.firing_recently()
    # Never early; late by a beat at most, plus what a busy test machine adds.
    assert all(0.0 <= lag < beat + 0.25 for lag in lags), lags


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


async def test_a_round_still_running_is_not_started_twice_and_counts_as_missed() -> None:
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
    scheduler.start()
    try:
        await asyncio.sleep(3.6)
    finally:
        scheduler.stop_firing()
        scheduler.shutdown()
    assert most == 1
    assert (registry.get_sample_value("monitor_scheduler_missed_runs_total") or 0) >= 2
