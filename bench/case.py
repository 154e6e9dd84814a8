"""One measured run of the daemon: N sites, one store, one interval.

Timeline: start ``python -m monitor run -c generated.yaml`` → wait for its web server →
warm up for one interval (every site fires once) → scrape /metrics, wait 5 s → read CPU
(t0) → measure for ``duration`` seconds → read CPU (t1) → let the rounds planned before t1
land in the database → scrape /metrics again (timed: render time and size; then once more
with gzip) → SIGTERM → read the stored rounds of the window and the database size. No
scrape falls inside the window: at 10,000 sites a render holds the GIL for seconds.

Scheduler lag is computed from the stored results: every result of a round carries the
time the round started (``datetime.now`` in the same step as the scheduler's fire
time), each site's grid is ``start_offset(name, interval) + k * interval``, and a run is
planned on the first multiple of its worker's beat at or after its grid point (offsets,
shards and beats asked of the daemon's own code), so every run has its exact lag and a
planned run with no stored round is a missed run. How far runs start after their grid
points (the beat's rounding plus the lag) is reported too. The daemon's
``monitor_scheduler_lag_seconds`` histogram is read as a cross-check, but its buckets (1,
5, 10, 50, 100, 500 ms, ...) only bound the quantiles; its ``monitor_scheduler_beat_seconds``
is recorded beside the beats the harness computed, to compare.
"""

from __future__ import annotations

import json
import math
import os
import statistics
import subprocess
import sys
import threading
import time
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import procs
import pyspy
import scrape
from stores import StoreView
from targets import Target

SETTLE = 5.0  # seconds between the first scrape and the window


@dataclass(frozen=True, slots=True)
class Case:
    sites: int
    store: str  # sqlite or postgres
    interval: float  # seconds
    duration: float  # seconds measured
    timeout: float  # seconds, the daemon's defaults.timeout
    repeat: int  # 1, 2, ...
    workers: int = 1  # monitor run --workers

    @property
    def tag(self) -> str:
        workers = f"-w{self.workers}" if self.workers > 1 else ""
        return f"n{self.sites}-{self.store}-i{self.interval:g}{workers}-r{self.repeat}"


def write_config(path: Path, case: Case, target: Target, store_url: str, port: int) -> None:
    lines = [
        "storage:",
        f"  url: {store_url}",
        "server:",
        f"  listen: 127.0.0.1:{port}",
        "defaults:",
        f"  interval: {case.interval:g}s",
        f"  timeout: {case.timeout:g}s",
        "sites:",
    ]
    for i in range(case.sites):
        name, url = target.site(i)
        lines.append(f"  - {{name: {name}, url: '{url}'}}")
    path.write_text("\n".join(lines) + "\n")


Plan = dict[str, tuple[float, float]]  # site name -> (grid offset, its worker's beat)


def plan(code: Path, names: list[str], interval: float, workers: int) -> Plan:
    """Each site's grid offset and the beat of the worker that runs it, from the daemon's
    own ``start_offset``, ``Shard.owns`` and ``choose_beat`` (the default, ``auto``), asked
    once per worker: once per site, with the worker's whole list, was quadratic."""
    program = (
        "import json, sys\n"
        "from monitor.engine.scheduler import choose_beat, start_offset\n"
        "from monitor.app.shard import Shard\n"
        "names = json.load(sys.stdin)\n"
        f"interval, workers = {interval!r}, {workers!r}\n"
        "shards = [Shard(i, workers) for i in range(workers)]\n"
        "owned = [[n for n in names if shard.owns(n)] for shard in shards]\n"
        "beats = [choose_beat(None, [interval] * len(o)) for o in owned]\n"
        "beat = {n: b for o, b in zip(owned, beats) for n in o}\n"
        "print(json.dumps([(start_offset(n, interval), beat[n]) for n in names]))\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", program],
        input=json.dumps(names),
        capture_output=True,
        text=True,
        env={**os.environ, "PYTHONPATH": str(code)},
        cwd=code,
        check=True,
    )
    return {
        name: (offset, beat)
        for name, (offset, beat) in zip(names, json.loads(done.stdout), strict=True)
    }


class Sampler(threading.Thread):
    """The daemon's CPU seconds and RSS every second, for the JSON's time series."""

    def __init__(self, pid: int) -> None:
        super().__init__(daemon=True)
        self.pid = pid
        self.points: list[tuple[float, float, int]] = []
        self.done = threading.Event()

    def run(self) -> None:
        started = time.monotonic()
        while not self.done.wait(1.0):
            try:
                used = procs.tree(self.pid).total
                rss = procs.tree_kib(self.pid, "VmRSS")
            except (FileNotFoundError, ProcessLookupError):
                return
            self.points.append((round(time.monotonic() - started, 1), round(used, 2), rss))


def run(
    case: Case,
    *,
    root: Path,
    code: Path,
    target: Target,
    store: StoreView,
    nginx_pid: int,
    db_pid: int | None,
    profile: float | None,
    gc_stats: bool,
    results: Path,
) -> dict[str, Any]:
    root.mkdir(parents=True)
    config = root / "generated.yaml"
    port = procs.free_port()
    write_config(config, case, target, store.url, port)
    names = [target.site(i)[0] for i in range(case.sites)]
    grid = plan(code, names, case.interval, case.workers)
    env = {**os.environ, "PYTHONPATH": str(code), "PYTHONUNBUFFERED": "1"}
    if gc_stats:
        env["PYTHONPATH"] += os.pathsep + str(Path(__file__).parent / "gcprobe")
        env["BENCH_GC_STATS"] = str(root / "gc.json")
    argv = [sys.executable, "-m", "monitor", "run", "-c", str(config)]
    argv += ["--workers", str(case.workers)] if case.workers > 1 else []
    log = root / "daemon.log"
    pages = [f"http://127.0.0.1:{port + i}/metrics" for i in range(case.workers)]
    out: dict[str, Any] = {"case": case.tag, "sites": case.sites, "store": case.store}
    out["workers"] = case.workers
    out |= {"interval_s": case.interval, "timeout_s": case.timeout, "repeat": case.repeat}
    out["started_at"] = time.strftime("%Y-%m-%dT%H:%M:%S%z")
    proc = procs.start(argv, log, cwd=root, env=env)
    sampler = Sampler(proc.pid)
    spies: list[subprocess.Popen[bytes]] = []
    try:
        out["startup_s"] = round(
            max(
                procs.wait_http(page.replace("/metrics", "/healthz"), proc, 120 + case.sites / 200)
                for page in pages
            ),
            1,
        )
        sampler.start()
        _alive_sleep(proc, case.interval + 2)  # warm-up: every site has fired once
        out["rss_peak_before_scrape_mib"] = procs.tree_kib(proc.pid, "VmHWM") / 1024
        first = scrape.fetch_all(pages)
        _alive_sleep(proc, SETTLE)  # the rounds the render held up catch up
        machine0, cpu0, t0 = procs.machine_busy(), procs.tree(proc.pid), time.time()
        exact0 = procs.tree_process_cpu(proc.pid)
        nginx0 = procs.tree_cpu(nginx_pid)
        db0 = procs.tree_cpu(db_pid) if db_pid else 0.0
        if profile:
            spies = pyspy.start(
                proc.pid, profile, results / f"profile-{case.tag}", root / "spy.log"
            )
        _alive_sleep(proc, case.duration)
        machine1, cpu1, t1 = procs.machine_busy(), procs.tree(proc.pid), time.time()
        exact1 = procs.tree_process_cpu(proc.pid)
        nginx1 = procs.tree_cpu(nginx_pid)
        db1 = procs.tree_cpu(db_pid) if db_pid else 0.0
        out["rss_end_mib"] = procs.tree_kib(proc.pid, "VmRSS") / 1024
        pyspy.wait(spies, timeout=profile or 0)
        _drain(proc, store, t1, case)
        # Only now: the render holds the GIL for seconds at 10,000 sites, which would
        # make the last rounds of the window late or time out.
        cpu_drained = procs.tree(proc.pid)
        last = scrape.fetch_all(pages)
        cpu2 = procs.tree(proc.pid)
        zipped = scrape.fetch_all(pages, gzip=True)
        cpu3 = procs.tree(proc.pid)
        out["rss_peak_mib"] = procs.tree_kib(proc.pid, "VmHWM") / 1024
        sampler.done.set()
        log_before_stop = log.stat().st_size
        stopping = time.monotonic()
        out["daemon_exit_code"] = procs.stop(proc, grace=20)
        out["shutdown_s"] = round(time.monotonic() - stopping, 2)
    finally:
        sampler.done.set()
        for spy in spies:
            procs.stop(spy, grace=5, sig=2)
        procs.stop(proc, grace=20)
    measured = t1 - t0
    # The CPU clock's nanoseconds; stat's ticks beside them, as a check.
    daemon_cpu = exact1 - exact0
    out["cpu_stat_s"] = round(cpu1.total - cpu0.total, 3)
    out["measured_s"] = round(measured, 2)
    out |= _lags(store, grid, case.interval, t0, t1)
    done_runs = out["done_runs"]
    out["checks_per_s_planned"] = round(out["expected_runs"] / measured, 2)
    out["checks_per_s"] = round(done_runs / measured, 2)
    out["cpu_s"] = round(daemon_cpu, 4)
    out["cpu_children_s"] = round(cpu1.children - cpu0.children, 2)
    out["cpu_s_per_1000_checks"] = round(daemon_cpu / done_runs * 1000, 3) if done_runs else None
    out["daemon_cores"] = round(daemon_cpu / measured, 3)
    busy = (machine1[0] - machine0[0]) / (machine1[1] - machine0[1]) * (os.cpu_count() or 1)
    out["machine_busy_cores"] = round(busy, 2)
    out["others_cores"] = round(busy - out["daemon_cores"], 2)  # nginx, database, other users
    out["nginx_cores"] = round((nginx1 - nginx0) / measured, 3)
    out["db_server_cores"] = round((db1 - db0) / measured, 3) if db_pid else None
    out["rss_mib_per_1000_sites"] = round(out["rss_peak_before_scrape_mib"] / case.sites * 1000, 2)
    out |= _daemon_series(first, last, last.at - first.at)
    out["beats_s"] = sorted({beat for _, beat in grid.values()})
    beat_gauge = first.values.get(b"monitor_scheduler_beat_seconds")  # summed over workers
    out["beat_metric_mean_s"] = None if beat_gauge is None else beat_gauge / case.workers
    out["metrics_page"] = {
        "bytes": last.size,
        "samples": last.samples,
        # The page is sent while it is written: the render ends with its last byte.
        "render_s": round(last.fetch_s, 3),
        "first_byte_s": round(last.first_byte_s, 3),
        # The daemon's CPU while each fetch lasted: the render plus its usual probing.
        "cpu_s": round(cpu2.total - cpu_drained.total, 2),
        "gzip_bytes": zipped.size,
        "gzip_fetch_s": round(zipped.fetch_s, 3),
        "gzip_cpu_s": round(cpu3.total - cpu2.total, 2),
    }
    size = store.size()
    out["db"] = {"rows": size.rows, "bytes": size.bytes, "how": size.how}
    out["db_bytes_per_result"] = round(size.per_row, 1)
    out["log"] = _log_summary(log, log_before_stop)
    out["profiled"] = bool(profile)
    if gc_stats:
        out["gc"] = _gc_summary(root / "gc.json", t0, t1)
    out["cpu_rss_series"] = sampler.points
    return out


def _alive_sleep(proc: subprocess.Popen[bytes], seconds: float) -> None:
    end = time.monotonic() + seconds
    while (left := end - time.monotonic()) > 0:
        if proc.poll() is not None:
            raise RuntimeError(f"the daemon exited with {proc.returncode}")
        time.sleep(min(left, 1.0))


def _drain(proc: subprocess.Popen[bytes], store: StoreView, t1: float, case: Case) -> None:
    """Wait until every run planned before ``t1`` could have fired (the scheduler allows
    half an interval of lag), finished (the timeout) and been written (the count of stored
    results before ``t1`` stops growing)."""
    settle = min(case.interval / 2, 30.0) + case.timeout + 1
    _alive_sleep(proc, max(0.0, t1 + settle - time.time()))
    previous, deadline = -1, time.monotonic() + 60
    while time.monotonic() < deadline:
        count = store.count_before(t1 + case.interval)
        if count == previous:
            return
        previous = count
        _alive_sleep(proc, 2.0)


def _lags(store: StoreView, grid: Plan, interval: float, t0: float, t1: float) -> dict[str, Any]:
    """Runs planned in [t0, t1): how many, how many have a stored round, and their lag."""
    expected = 0
    for offset, _ in grid.values():
        first = offset + math.ceil((t0 - offset) / interval) * interval
        expected += max(0, math.ceil((t1 - first) / interval))
    # (name, k) -> (lag from the beat, delay from the grid point, the probe's time)
    earliest: dict[tuple[str, int], tuple[float, float, float]] = {}
    causes: Counter[str] = Counter()
    for name, t, took, cause in store.rounds(t0, t1 + interval):
        offset, beat = grid[name]
        k = math.floor((t - offset) / interval)
        point = offset + k * interval
        if t0 <= point < t1:
            planned = math.ceil(point / beat) * beat if beat > 0 else point
            key = (name, k)
            run = (t - planned, t - point, took)
            earliest[key] = min(run, earliest.get(key, (math.inf, math.inf, 0.0)))
            causes[cause] += 1  # re-checks included: every target is healthy, so any
            # cause but "ok" is the daemon's own doing
    out: dict[str, Any] = {"expected_runs": expected, "done_runs": len(earliest)}
    out["missed_runs_db"] = expected - len(earliest)
    out["causes"] = dict(causes)
    if earliest:
        runs = earliest.values()
        out["lag_ms"] = _spread([lag for lag, _, _ in runs], mean=True)
        # How far after its grid point a run started: the beat's rounding plus the lag.
        out["after_grid_point_ms"] = _spread([after for _, after, _ in runs], mean=True)
        # What the daemon measured for a request nginx answers in well under 1 ms: time
        # its event loop kept the probe waiting shows up here as slowness of the site.
        out["probe_total_ms"] = _spread([took for _, _, took in runs], mean=False)
    return out


def _spread(values: list[float], *, mean: bool) -> dict[str, float]:
    """p50, p99, max (and the mean) of ``values`` seconds, in milliseconds."""
    ordered = sorted(values)
    out = {
        "p50": round(_percentile(ordered, 0.50) * 1000, 2),
        "p99": round(_percentile(ordered, 0.99) * 1000, 2),
        "max": round(ordered[-1] * 1000, 2),
    }
    if mean:
        out["mean"] = round(statistics.fmean(ordered) * 1000, 2)
    return out


def _percentile(ordered: list[float], q: float) -> float:
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def _daemon_series(first: scrape.Scrape, last: scrape.Scrape, span: float) -> dict[str, Any]:
    """Increases between the two scrapes, which span the window and the drain after it."""
    lag, write = b"monitor_scheduler_lag_seconds", b"monitor_store_write_seconds"
    batches = scrape.delta(last, first, write + b"_count")
    rows = scrape.delta(last, first, b"monitor_store_written_results_total")
    return {
        "lag_hist_ms": {
            "p50": round(scrape.quantile(last, first, lag, 0.50) * 1000, 2),
            "p99": round(scrape.quantile(last, first, lag, 0.99) * 1000, 2),
            "count": scrape.delta(last, first, lag + b"_count"),
        },
        "missed_runs_metric": scrape.delta(last, first, b"monitor_scheduler_missed_runs_total"),
        "missed_runs_metric_total": last.values.get(b"monitor_scheduler_missed_runs_total"),
        "checks_metric": scrape.delta(last, first, b"monitor_checks_total"),
        "store_write": {
            "batches": batches,
            "rows_per_batch": round(rows / batches, 1) if batches else None,
            "mean_ms": round(scrape.delta(last, first, write + b"_sum") / batches * 1000, 2)
            if batches
            else None,
            "p50_ms": round(scrape.quantile(last, first, write, 0.50) * 1000, 2),
            "p99_ms": round(scrape.quantile(last, first, write, 0.99) * 1000, 2),
            "busy_share": round(scrape.delta(last, first, write + b"_sum") / span, 3),
        },
        "store_pending": {
            "start": first.values.get(b"monitor_store_pending_results"),
            "end": last.values.get(b"monitor_store_pending_results"),
        },
        "scrape_span_s": round(span, 1),
    }


def _log_summary(log: Path, stopped_at: int) -> dict[str, Any]:
    """Lines of the daemon's log; errors while it ran apart from errors after SIGTERM
    (byte ``stopped_at`` on)."""
    lines = checks = 0
    errors = {"running": 0, "stopping": 0}
    first: dict[str, str | None] = {"running": None, "stopping": None}
    offset = 0
    with log.open("rb") as text:
        for raw in text:
            when = "running" if offset < stopped_at else "stopping"
            offset += len(raw)
            line = raw.decode(errors="replace")
            lines += 1
            if "event=check.finished" in line:
                checks += 1
            elif " ERROR " in line or "Traceback" in line:
                errors[when] += 1
                first[when] = first[when] or line.strip()[:300]
    return {"lines": lines, "check_lines": checks, "errors": errors, "first_error": first}


def _gc_summary(path: Path, t0: float, t1: float) -> dict[str, Any]:
    """Garbage collections that ended in [t0, t1), by generation: how many, how long
    (every process's, from PATH.PID; a share of time above 1 is possible with workers)."""
    pauses = [
        p
        for one in path.parent.glob(path.name + ".*")
        for p in json.loads(one.read_text())
        if t0 <= p[0] < t1
    ]
    out: dict[str, Any] = {}
    for gen in (0, 1, 2):
        times = sorted(seconds for _, g, seconds, _ in pauses if g == gen)
        out[f"gen{gen}"] = {
            "count": len(times),
            "total_s": round(sum(times), 3),
            "max_ms": round(times[-1] * 1000, 1) if times else None,
            "p50_ms": round(_percentile(times, 0.5) * 1000, 2) if times else None,
        }
    out["share_of_time"] = round(sum(p[2] for p in pauses) / (t1 - t0), 3)
    return out
