"""A round judged against its history: diagnosis, trends and state together, ``now`` given."""

from __future__ import annotations

import random
import re
from datetime import UTC, datetime, timedelta

import pytest

from monitor.judge.diagnose import Layer, Verdict
from monitor.judge.state import Policy, State
from monitor.judge.tracker import Tracker, Tracking
from monitor.judge.trends import TrendSettings
from monitor.models import Cause, Phases, ProbeResult, Role

T0 = datetime(2026, 11, 20, 0, 0, tzinfo=UTC)
INTERVAL = timedelta(seconds=60)


def _round(time: datetime, edge_ttfb: float, origin_ttfb: float) -> list[ProbeResult]:
    def result(role: Role, origin: str | None, ttfb: float) -> ProbeResult:
        phases = Phases(0.001, 0.002, None, ttfb, 0.001, ttfb + 0.004)
        return ProbeResult("shop", role, origin, time, True, Cause.OK, status=200, phases=phases)

    return [result(Role.EDGE, None, edge_ttfb), result(Role.ORIGIN, "a", origin_ttfb)]


def _tracker(limit: float = 2.0) -> Tracker:
    trend = TrendSettings(warmup=30, limit=limit)
    return Tracker({"shop": Tracking(Policy(confirm=False), trend)})


def test_an_origin_slowing_down_makes_the_site_degraded_with_the_factor() -> None:
    tracker, noise = _tracker(), random.Random(7)
    time = T0
    for _ in range(120):  # two hours of a steady 200 ms origin behind a 20 ms cache
        found = tracker.assess("shop", _round(time, 0.02, 0.2 * noise.uniform(0.95, 1.05)), time)
        time += INTERVAL
        assert found.diagnosis.verdict is Verdict.UP
    states = []
    for _ in range(12):  # the origin's TTFB triples; the cache still answers fast
        found = tracker.assess("shop", _round(time, 0.02, 0.6 * noise.uniform(0.95, 1.05)), time)
        states.append(found.tracked.state.state)
        time += INTERVAL
    assert found.diagnosis.verdict is Verdict.DEGRADED
    assert found.diagnosis.cause is Cause.SLOW
    assert found.diagnosis.layer is Layer.ORIGIN
    assert "origin a TTFB" in found.diagnosis.summary
    factor = re.search(r"TTFB (\d+\.\d)\N{MULTIPLICATION SIGN} its", found.diagnosis.summary)
    assert factor is not None, found.diagnosis.summary
    assert 2.5 <= float(factor.group(1)) <= 3.3, found.diagnosis.summary
    assert "24 h baseline" in found.diagnosis.summary
    assert State.DEGRADED in states
    assert found.change is not None or tracker.get("shop").incident is not None


def test_warm_up_gives_no_verdict_and_a_spike_is_ignored() -> None:
    tracker, time = _tracker(), T0
    for i in range(60):
        ttfb = 3.0 if i in (5, 45) else 0.2  # a spike during warm-up, one after
        found = tracker.assess("shop", _round(time, 0.02, ttfb), time)
        assert found.diagnosis.verdict is Verdict.UP, i
        time += INTERVAL


def test_a_failing_probe_never_enters_the_baseline() -> None:
    tracker, time = _tracker(), T0
    results = _round(time, 0.02, 0.2)
    failing = [results[0], ProbeResult("shop", Role.ORIGIN, "a", time, False, Cause.TIMEOUT)]
    found = tracker.assess("shop", failing, time)
    assert [key for key, _ in found.signals] == [("edge", "", "processing")]
    assert found.diagnosis.verdict is Verdict.DEGRADED  # from the diagnosis: origin a fails
    assert found.diagnosis.cause is Cause.TIMEOUT


def test_a_creeping_origin_is_forecast_to_reach_the_limit() -> None:
    tracker, noise, time = _tracker(limit=2.0), random.Random(3), T0
    for _ in range(120):
        tracker.assess("shop", _round(time, 0.02, 0.2 * noise.uniform(0.97, 1.03)), time)
        time += INTERVAL
    ttfb, found = 0.2, None
    while ttfb < 1.0:
        ttfb *= 1.03
        found = tracker.assess("shop", _round(time, 0.02, ttfb), time)
        time += INTERVAL
        if found.diagnosis.verdict is Verdict.DEGRADED:
            break
    assert found is not None
    assert found.diagnosis.verdict is Verdict.DEGRADED
    assert ttfb < 1.0  # seen well before the 2 s limit (or a 1 s max_latency) is crossed
    assert "reaches the 2 s limit in about" in found.diagnosis.hint


def _edge_round(time: datetime, ttfb: float) -> list[ProbeResult]:
    phases = Phases(0.001, 0.002, None, ttfb, 0.001, ttfb + 0.004)
    return [ProbeResult("shop", Role.EDGE, None, time, True, Cause.OK, status=200, phases=phases)]


def _healthy_jitter(rng: random.Random, rounds: int) -> list[float]:
    """Issue #21's loopback sites: TTFB 5 ms then 8 ms, with a 17 ms spike now and then."""
    return [
        0.017 if rng.random() < 0.06 else (0.005 if i < 200 else 0.008) * rng.uniform(0.8, 1.2)
        for i in range(rounds)
    ]


# (id, edge TTFB of each round every 5 s, degraded incidents opened)
HEALTHY_OR_NOT = [
    ("healthy-5ms-to-8ms-with-spikes", _healthy_jitter(random.Random(21), 700), 0),
    ("healthy-steady-200ms", [0.2] * 300, 0),
    # Back under the baseline, with a spike every fourth round before the regression
    # cleared: once UP, then DEGRADED again on each spike, reopening the incident.
    ("regressed-then-faster-than-usual", [0.2] * 100 + [0.6] * 10 + [0.05, 0.05, 0.05, 0.6] * 5, 1),
    # Back to the baseline, spikes keeping the regression: "slower than usual: 1.0x".
    ("regressed-then-back-with-spikes", [0.2] * 100 + [0.6] * 10 + [0.2, 0.2, 0.6] * 8, 1),
    ("step-3x-on-200ms", [0.2] * 100 + [0.6] * 8, 1),
]


@pytest.mark.parametrize(
    ("ttfbs", "opens"),
    [case[1:] for case in HEALTHY_OR_NOT],
    ids=[case[0] for case in HEALTHY_OR_NOT],
)
def test_slower_than_usual_is_said_only_of_what_is_slower(ttfbs: list[float], opens: int) -> None:
    """A monitor that cries wolf is broken: healthy jitter opens nothing, a summary never
    calls a level under ``min_factor`` times its baseline "slower than usual", and a
    regression that is over does not come back on the next spike."""
    settings = TrendSettings()
    tracker = Tracker({"shop": Tracking(Policy(confirm=False), settings)})
    time, opened = T0, 0
    for ttfb in ttfbs:
        found = tracker.assess("shop", _edge_round(time, ttfb), time)
        time += timedelta(seconds=5)
        change = found.change
        opened += change is not None and change.opens
        summary = found.diagnosis.summary
        factor = re.search(r"TTFB (\d+(?:\.\d)?)\N{MULTIPLICATION SIGN} its", summary)
        if summary.startswith("slower than usual"):
            assert factor is not None, summary
            assert float(factor.group(1)) >= settings.min_factor, summary
    assert opened == opens
