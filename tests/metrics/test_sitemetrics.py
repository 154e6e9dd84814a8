"""The per-site series' own text writer: escaping, histograms, grouping, absence."""

from __future__ import annotations

import math
from datetime import UTC, datetime

import pytest
from prometheus_client import CollectorRegistry
from prometheus_client.parser import text_string_to_metric_families

from monitor.metrics.registry import Metrics
from monitor.metrics.sites import escape, number
from monitor.models import Cause, Kind, Phases, ProbeResult, Role

T0 = datetime(2026, 11, 21, 12, 0, tzinfo=UTC)


def _result(monitor: str, total: float, status: int | None = 200, **kw: object) -> ProbeResult:
    return ProbeResult(
        monitor=monitor,
        role=kw.pop("role", Role.EDGE),  # type: ignore[arg-type]
        origin=kw.pop("origin", None),  # type: ignore[arg-type]
        time=T0,
        ok=status == 200,
        cause=Cause.OK if status == 200 else Cause.CONNECT_REFUSED,
        kind=Kind.HTTP,
        status=status,
        phases=Phases(connect=total / 4, processing=total / 2, total=total),
    )


def _samples(metrics: Metrics) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    page = metrics.render().decode()
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(page)
        for s in family.samples
    }


@pytest.mark.parametrize(
    ("raw", "written"),
    [
        ("shop", "shop"),
        ('say "hi"', 'say \\"hi\\"'),
        ("back\\slash", "back\\\\slash"),
        ("two\nlines", "two\\nlines"),
    ],
)
def test_label_values_are_escaped_and_read_back_unchanged(raw: str, written: str) -> None:
    assert escape(raw) == written
    metrics = Metrics(CollectorRegistry())
    metrics.observe_probe(_result(raw, 0.1, origin=None))
    labels = (("kind", "http"), ("monitor", raw), ("origin", ""), ("role", "edge"))
    assert _samples(metrics)[("probe_success", labels)] == 1.0


@pytest.mark.parametrize(
    ("value", "text"),
    [(0.25, "0.25"), (3.0, "3.0"), (math.inf, "+Inf"), (-math.inf, "-Inf"), (math.nan, "NaN")],
)
def test_numbers(value: float, text: str) -> None:
    assert number(value) == text


def test_histogram_buckets_are_cumulative_with_count_and_sum() -> None:
    metrics = Metrics(CollectorRegistry())
    for total in (0.004, 0.2, 0.2, 40.0):  # 40 s is above the last bound
        metrics.observe_probe(_result("shop", total))
    got = _samples(metrics)

    def bucket(le: str) -> float:
        labels = (("le", le), ("monitor", "shop"), ("phase", "total"), ("role", "edge"))
        return got[("monitor_check_duration_seconds_bucket", labels)]

    assert [bucket(le) for le in ("0.005", "0.1", "0.25", "30.0", "+Inf")] == [1, 1, 3, 3, 4]
    where = (("monitor", "shop"), ("phase", "total"), ("role", "edge"))
    assert got[("monitor_check_duration_seconds_count", where)] == 4
    assert got[("monitor_check_duration_seconds_sum", where)] == pytest.approx(40.404)


def test_a_probe_with_no_answer_is_not_counted_in_the_histogram() -> None:
    metrics = Metrics(CollectorRegistry())
    metrics.observe_probe(_result("shop", 0.001, status=None))
    names = {name for name, _ in _samples(metrics)}
    assert "monitor_check_duration_seconds_count" not in names
    assert "probe_ssl_earliest_cert_expiry" not in names  # never seen: absent, not NaN


def test_every_family_is_one_block_whatever_the_order_sites_arrive_in() -> None:
    metrics = Metrics(CollectorRegistry())
    for name in ("b", "a", "c"):
        metrics.observe_probe(_result(name, 0.1))
        metrics.observe_probe(_result(name, 0.1, role=Role.ORIGIN, origin="o1"))
        metrics.observe_state(name, "up", "up")
        metrics.observe_trend(name, "edge", "", "processing", 0.1, 1.2)
    seen: list[str] = []
    for line in metrics.render().decode().splitlines():
        if line.startswith("# TYPE "):
            family = line.split()[2]
            assert family not in seen
            seen.append(family)
        elif not line.startswith("#"):
            base = line.split("{")[0].split(" ")[0]
            assert base.startswith(seen[-1].removesuffix("_total")), line
    assert "monitor_latency_ratio" in seen
    assert "monitor_state" in seen


@pytest.mark.parametrize("lines_per_chunk", [1, 7, 10_000])
def test_the_page_in_pieces_is_the_page_cut_at_line_ends(lines_per_chunk: int) -> None:
    metrics = Metrics(CollectorRegistry())
    for i in range(20):
        metrics.observe_probe(_result(f"site-{i}", 0.01 * (i + 1)))
    whole = metrics.sites.render()
    pieces = list(metrics.sites.chunks(lines_per_chunk))
    assert "".join(pieces) == whole
    assert all(piece.endswith("\n") for piece in pieces)
    # A piece ends after the site that filled it, so all but the last hold at least as many
    # lines as asked for, and a page longer than that comes in more than one piece.
    assert all(piece.count("\n") >= lines_per_chunk for piece in pieces[:-1])
    assert (len(pieces) > 1) == (whole.count("\n") > lines_per_chunk)


def test_without_site_histograms_the_page_has_every_other_family_and_no_histogram() -> None:
    full, lean = Metrics(CollectorRegistry()), Metrics(CollectorRegistry(), site_histograms=False)
    for metrics in (full, lean):
        metrics.observe_probe(_result("shop", 0.2))
    with_histograms, without = (
        {key: value for key, value in _samples(m).items() if ("monitor", "shop") in key[1]}
        for m in (full, lean)
    )
    histogram = {key for key in with_histograms if key[0].startswith("monitor_check_duration")}
    assert len(histogram) == 3 * 15  # connect, processing, total: 13 buckets, count, sum
    assert without == {key: with_histograms[key] for key in with_histograms.keys() - histogram}
    assert "monitor_check_duration_seconds" not in lean.render().decode()
