"""Timestamps -> phase durations: a table of requests stopped at every point."""

from __future__ import annotations

import pytest

from monitor.models import Phases
from monitor.probes.phases import Stamps, to_phases

T = 100.0  # an arbitrary perf_counter() origin

CASES: list[tuple[str, Stamps, float, Phases]] = [
    (
        "complete-ip-literal-no-resolve",
        Stamps(T, connect_start=T, connect_end=T + 1, headers=T + 3, body_done=T + 4),
        T + 4,
        Phases(resolve=None, connect=1, processing=2, transfer=1, total=4),
    ),
    (
        "complete-connect-excludes-resolve",
        Stamps(
            T,
            connect_start=T,
            dns_start=T,
            dns_end=T + 1.5,
            connect_end=T + 2,
            headers=T + 3,
            body_done=T + 4,
        ),
        T + 4,
        Phases(resolve=1.5, connect=0.5, processing=1, transfer=1, total=4),
    ),
    (
        "refused-nothing-finished",
        Stamps(T, connect_start=T + 0.5),
        T + 1,
        Phases(total=1),
    ),
    (
        "dns-never-answered",
        Stamps(T, connect_start=T, dns_start=T),
        T + 2,
        Phases(total=2),
    ),
    (
        "resolved-never-connected",
        Stamps(T, connect_start=T, dns_start=T, dns_end=T + 1),
        T + 2,
        Phases(resolve=1, total=2),
    ),
    (
        "connected-no-first-byte",
        Stamps(T, connect_start=T, connect_end=T + 1),
        T + 3,
        Phases(connect=1, total=3),
    ),
    (
        "headers-body-unfinished",
        Stamps(T, connect_start=T, connect_end=T + 1, headers=T + 2),
        T + 5,
        Phases(connect=1, processing=1, total=5),
    ),
    (
        "pool-wait-excluded",
        Stamps(
            T,
            queued_start=T,
            queued_end=T + 2,
            connect_start=T + 2,
            connect_end=T + 3,
            headers=T + 4,
            body_done=T + 5,
        ),
        T + 5,
        Phases(connect=1, processing=1, transfer=1, total=3),
    ),
    (
        "still-in-pool-when-stopped",
        Stamps(T, queued_start=T + 1),
        T + 4,
        Phases(total=1),
    ),
]


@pytest.mark.parametrize(
    ("stamps", "end", "expected"), [case[1:] for case in CASES], ids=[case[0] for case in CASES]
)
def test_to_phases(stamps: Stamps, end: float, expected: Phases) -> None:
    assert to_phases(stamps, end) == expected


FINISHED = [case for case in CASES if case[1].body_done is not None]


@pytest.mark.parametrize(
    ("stamps", "end"), [case[1:3] for case in FINISHED], ids=[case[0] for case in FINISHED]
)
def test_finished_phases_add_up_to_total(stamps: Stamps, end: float) -> None:
    phases = to_phases(stamps, end)
    assert sum(value or 0.0 for _, value in phases.items()) == pytest.approx(phases.total)
