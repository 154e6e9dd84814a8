"""Turn benchmark results (JSON) into a short table and a plot of lag and CPU against N.

Repeats of the same case (N, store, interval, workers) are folded into their median; each
run's ratio to blackbox_exporter under wrk is to the mean of the exporter's figures just
before and after that run, and a row's "x blackbox" is the median of its runs' ratios
(so with repeats it need not equal the row's CPU over its "blackbox wrk ms"). Results
from before the pairing are compared with the median of every exporter figure given.
Run it alone to redo the table and plot from saved results:

    python bench/report.py bench/results/run-*.json --plot bench/results/bench.png
"""

from __future__ import annotations

import argparse
import json
import math
import statistics
from collections import defaultdict
from pathlib import Path
from typing import Any

# (heading, how to get the value from a run, format); two tables share the first three.
KEY: list[tuple[str, Any, str]] = [
    ("N", lambda r: r["sites"], "{:,.0f}"),
    ("store", lambda r: r["store"], "{}"),
    ("interval", lambda r: r["interval_s"], "{:g} s"),
    ("workers", lambda r: r.get("workers", 1), "{:g}"),
]
SPEED: list[tuple[str, Any, str]] = [
    ("runs", lambda r: r["runs"], "{}"),
    ("checks/s planned", lambda r: r["checks_per_s_planned"], "{:,.1f}"),
    ("checks/s done", lambda r: r["checks_per_s"], "{:,.1f}"),
    ("beat s", lambda r: "/".join(f"{b:g}" for b in r.get("beats_s", [])), "{}"),
    ("after grid point p99 ms", lambda r: r.get("after_grid_point_ms", {}).get("p99"), "{:,.0f}"),
    ("lag p50 ms", lambda r: r["lag_ms"]["p50"], "{:,.1f}"),
    ("lag p99 ms", lambda r: r["lag_ms"]["p99"], "{:,.1f}"),
    ("lag max ms", lambda r: r["lag_ms"]["max"], "{:,.0f}"),
    ("missed (db)", lambda r: r["missed_runs_db"], "{:,.0f}"),
    ("missed (metric)", lambda r: r["missed_runs_metric"], "{:,.0f}"),
    ("CPU s/1k checks", lambda r: r["cpu_s_per_1000_checks"], "{:.3f}"),
    ("blackbox wrk ms", lambda r: _paired_ms(r), "{:.3f}"),
    ("x blackbox", lambda r: r.get("x_blackbox"), "{:.2f}"),
    ("blackbox same rate ms", lambda r: _same_rate_ms(r), "{:.3f}"),
    ("x blackbox same rate", lambda r: r["x_blackbox_same_rate"], "{:.2f}"),
    ("daemon cores", lambda r: r["daemon_cores"], "{:.2f}"),
    ("machine busy cores", lambda r: r["machine_busy_cores"], "{:.2f}"),
    ("probe time p99 ms", lambda r: r["probe_total_ms"]["p99"], "{:,.1f}"),
    ("failed results", lambda r: _failed(r["causes"]), "{:,.0f}"),
]
SIZE: list[tuple[str, Any, str]] = [
    ("peak RSS MiB", lambda r: r["rss_peak_before_scrape_mib"], "{:,.0f}"),
    ("RSS MiB/1k sites", lambda r: r["rss_mib_per_1000_sites"], "{:,.1f}"),
    ("store write ms mean", lambda r: r["store_write"]["mean_ms"], "{:,.1f}"),
    ("store write ms p99", lambda r: r["store_write"]["p99_ms"], "{:,.0f}"),
    ("rows/batch", lambda r: r["store_write"]["rows_per_batch"], "{:,.1f}"),
    ("pending at start", lambda r: r["store_pending"]["start"], "{:,.0f}"),
    ("pending at end", lambda r: r["store_pending"]["end"], "{:,.0f}"),
    ("DB B/result", lambda r: r["db_bytes_per_result"], "{:,.0f}"),
    ("/metrics MB", lambda r: r["metrics_page"]["bytes"] / 1e6, "{:,.1f}"),
    ("/metrics render s", lambda r: r["metrics_page"]["render_s"], "{:,.2f}"),
    ("peak RSS w/ scrape MiB", lambda r: r["rss_peak_mib"], "{:,.0f}"),
    ("startup s", lambda r: r["startup_s"], "{:,.1f}"),
    ("log errors", lambda r: r["log"]["errors"]["running"], "{:,.0f}"),
    ("shutdown errors", lambda r: r["log"]["errors"]["stopping"], "{:,.0f}"),
]
COLUMNS = KEY + SPEED + SIZE


def load(paths: list[Path]) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """(daemon runs, blackbox runs) of every file."""
    runs: list[dict[str, Any]] = []
    blackbox: list[dict[str, Any]] = []
    for path in paths:
        data = json.loads(path.read_text())
        runs += data["runs"]
        blackbox += data["blackbox"]
    return runs, blackbox


def blackbox_ms(blackbox: list[dict[str, Any]]) -> float | None:
    values = [b["cpu_ms_per_probe"] for b in blackbox if b["probes"] and not b["failed"]]
    return statistics.median(values) if values else None


def medians(runs: list[dict[str, Any]], bb_ms: float | None) -> list[dict[str, Any]]:
    """One row per (N, store, interval, workers): each column the median over its repeats
    (profiled runs left out when there are others)."""
    groups: dict[tuple[int, str, float, int], list[dict[str, Any]]] = defaultdict(list)
    for run in runs:
        groups[(run["sites"], run["store"], run["interval_s"], run.get("workers", 1))].append(run)
    rows = []
    for key in sorted(groups, key=lambda k: (k[1], k[2], k[3], k[0])):
        group = [r for r in groups[key] if not r.get("profiled")] or groups[key]
        row: dict[str, Any] = {"runs": len(group)}
        for heading, get, _ in COLUMNS:
            if heading == "runs":
                continue
            values = [v for v in (_get(get, r) for r in group) if v is not None and v == v]
            numbers = [v for v in values if isinstance(v, int | float) and not math.isnan(v)]
            row[heading] = statistics.median(numbers) if numbers else (values or [None])[0]
        cpu = row["CPU s/1k checks"]
        unpaired = not any("blackbox_wrk_ms" in r for r in group)
        if unpaired and bb_ms and isinstance(cpu, float | int):
            row["x blackbox"] = cpu / bb_ms  # results from before the exporter was paired
            row["blackbox wrk ms"] = bb_ms
        rows.append(row)
    return rows


def _paired_ms(run: dict[str, Any]) -> float | None:
    """The mean of the exporter's figures under wrk just before and after the run."""
    figures = run.get("blackbox_wrk_ms")
    return statistics.fmean(figures) if figures else None


def _same_rate_ms(run: dict[str, Any]) -> float | None:
    """The exporter's CPU per probe at the run's rate, when it was a fair measurement."""
    if run["x_blackbox_same_rate"] is None:
        return None
    ms: float = run["blackbox_same_rate"]["cpu_ms_per_probe"]
    return ms


def _failed(causes: dict[str, int]) -> int | None:
    """Stored results (re-checks too) with a cause other than ok; None when none stored."""
    return sum(n for cause, n in causes.items() if cause != "ok") if causes else None


def _get(get: Any, run: dict[str, Any]) -> Any:
    try:
        return get(run | {"runs": 1})
    except (KeyError, TypeError, ZeroDivisionError):
        return None


def table(rows: list[dict[str, Any]], columns: list[tuple[str, Any, str]]) -> str:
    headings = [h for h, _, _ in columns]
    lines = ["| " + " | ".join(headings) + " |", "|" + "---|" * len(headings)]
    for row in rows:
        cells = []
        for heading, _, fmt in columns:
            value = row.get(heading)
            cells.append("-" if value is None else fmt.format(value))
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def plot(runs: list[dict[str, Any]], bb_ms: float | None, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = medians(runs, bb_ms)
    series: dict[tuple[str, float, int], list[dict[str, Any]]] = defaultdict(list)
    for row in rows:
        series[(row["store"], row["interval"], row["workers"])].append(row)
    fig, (lag_ax, cpu_ax) = plt.subplots(1, 2, figsize=(12, 4.5))
    for (store, interval, workers), points in sorted(series.items()):
        points.sort(key=lambda r: r["N"])
        n = [r["N"] for r in points]
        label = f"{store}, {interval:g} s" + (f", {workers} workers" if workers > 1 else "")
        for key, style in (("lag p50 ms", ":"), ("lag p99 ms", "-"), ("lag max ms", "--")):
            values = [r[key] if r[key] is not None else math.nan for r in points]
            lag_ax.plot(n, values, style, marker="o", label=f"{key[4:7]} {label}")
        line = cpu_ax.plot(n, [r["CPU s/1k checks"] for r in points], marker="o", label=label)
        paced = [r["blackbox same rate ms"] for r in points]
        if any(v is not None for v in paced):
            values = [v if v is not None else math.nan for v in paced]
            color = line[0].get_color()
            cpu_ax.plot(
                n,
                values,
                ":",
                marker="x",
                color=color,
                label=f"blackbox_exporter at the rate of {label}",
            )
    paired = [(r["N"], r["blackbox wrk ms"]) for r in rows if r["blackbox wrk ms"] is not None]
    if paired:
        cpu_ax.scatter(
            [n for n, _ in paired],
            [ms for _, ms in paired],
            color="grey",
            marker="_",
            s=200,
            label="blackbox_exporter under wrk, beside each case",
        )
    lag_ax.set(xscale="log", yscale="log", xlabel="sites (N)", ylabel="scheduler lag, ms")
    lag_ax.set_title("Lag: fire time minus planned time, on the beat (stored rounds)")
    cpu_ax.set(xscale="log", xlabel="sites (N)", ylabel="daemon CPU s per 1,000 checks")
    cpu_ax.set_title("CPU per check (= ms per check)")
    cpu_ax.set_ylim(bottom=0)
    for ax in (lag_ax, cpu_ax):
        ax.grid(True, which="both", alpha=0.3)
        ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def render(runs: list[dict[str, Any]], blackbox: list[dict[str, Any]]) -> str:
    bb_ms = blackbox_ms(blackbox)
    rows = medians(runs, bb_ms)
    lines = [table(rows, KEY + SPEED), "", table(rows, KEY + SIZE), ""]
    for b in blackbox:
        lines.append(
            f"blackbox_exporter ({b['version']}, GOMAXPROCS=1, wrk -c{b['concurrency']}): "
            f"{b['probes']:,} probes in {b['duration_s']:.0f} s ({b['probes_per_s']:,.0f}/s), "
            f"{b['failed']} failed, {b['cpu_ms_per_probe']:.3f} ms CPU per probe, "
            f"{b['cores_used']:.2f} cores"
        )
    for run in runs:
        paced = run.get("blackbox_same_rate")
        if paced:
            lines.append(
                f"blackbox_exporter at {run['case']}'s rate ({paced['paced_rate']:g}/s): "
                f"{paced['probes']:,} probes in {paced['duration_s']:.0f} s, "
                f"{paced['failed']} failed, {paced['cpu_ms_per_probe']:.3f} ms CPU per probe"
                + (" (not a fair figure: no ratio)" if run["x_blackbox_same_rate"] is None else "")
            )
    if bb_ms:
        lines.append(f"blackbox under wrk, median of all figures: {bb_ms:.3f} ms CPU per probe")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("files", nargs="+", type=Path)
    parser.add_argument("--plot", type=Path, help="write the plot here (PNG)")
    args = parser.parse_args()
    runs, blackbox = load(args.files)
    print(render(runs, blackbox))
    if args.plot:
        plot(runs, blackbox_ms(blackbox), args.plot)
        print(f"plot: {args.plot}")


if __name__ == "__main__":
    main()
