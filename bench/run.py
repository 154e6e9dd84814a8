"""Benchmark the daemon against a local nginx, beside blackbox_exporter (issue #8).

Run by hand, never as a test. One command starts everything on loopback in a temporary
directory, measures, stops everything, and writes bench/results/run-<time>.{json,md,png}:

    python bench/run.py                                   # quick: N=1000, SQLite, 60 s
    python bench/run.py --sites 1000 10000 --interval 60 --store sqlite postgres --duration 120

For each store, interval and N (and repeat): a daemon process with a generated config of
N sites, one interval of warm-up, ``--duration`` seconds measured (see case.py). Before
the first case and after each one, blackbox_exporter probes the same nginx under wrk
(blackbox.py); a case is compared with the mean of the figures just before and after it.
The daemon's code is copied at the start, so every case runs the same code even while
the working tree changes.
"""

from __future__ import annotations

import argparse
import hashlib
import itertools
import json
import os
import platform
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from contextlib import ExitStack
from pathlib import Path
from typing import Any

BENCH = Path(__file__).resolve().parent
REPO = BENCH.parent
sys.path.insert(0, str(BENCH))

import blackbox  # noqa: E402
import case  # noqa: E402
import postgres  # noqa: E402
import report  # noqa: E402
import stores  # noqa: E402
import targets  # noqa: E402


def main() -> int:
    args = _parser().parse_args()
    if args.duration < max(args.interval):
        print("note: --duration is shorter than an interval; not every site is measured")
    # SIGTERM ends the run like Ctrl-C, through every finally block.
    signal.signal(signal.SIGTERM, signal.default_int_handler)
    stamp = time.strftime("%Y%m%d-%H%M%S")
    args.results.mkdir(parents=True, exist_ok=True)
    root = Path(tempfile.mkdtemp(prefix="monitor-bench-"))
    root.chmod(0o755)  # the postgres user must reach its directory inside
    out: dict[str, Any] = {"machine": _machine(), "args": _args_json(args), "runs": []}
    out["blackbox"], out["failed"] = [], []
    json_path = args.results / f"run-{stamp}.json"
    try:
        out["code"] = _snapshot(root / "code")
        with ExitStack() as stack:
            nginx = stack.enter_context(
                targets.nginx(root / "nginx", max(args.sites), args.nginx_workers)
            )
            nginx_pid = int((root / "nginx" / "nginx.pid").read_text())
            before = _blackbox(out, root / "blackbox-first", nginx, args)
            server = None
            if "postgres" in args.store:
                server = stack.enter_context(postgres.server(root / "pg"))
            plan = itertools.product(
                args.store, args.interval, args.sites, args.workers, range(1, args.repeat + 1)
            )
            for store, interval, sites, workers, repeat in plan:
                one = case.Case(
                    sites, store, interval, args.duration, args.timeout, repeat, workers
                )
                print(f"== {one.tag}: started {time.strftime('%H:%M:%S')}", flush=True)
                try:
                    result = _case(one, root, nginx, nginx_pid, server, args)
                except (RuntimeError, OSError, subprocess.SubprocessError) as exc:
                    # Say so and go on: a case that cannot run is a finding too.
                    out["failed"].append({"case": one.tag, "error": str(exc)})
                    print(f"   FAILED: {exc}", flush=True)
                    before = None  # minutes old by the next case: it pairs with its after
                    continue
                out["runs"].append(result)
                try:
                    _blackbox_same_rate(result, root / f"{one.tag}-blackbox", nginx, args)
                except (RuntimeError, OSError, subprocess.SubprocessError) as exc:
                    result["blackbox_same_rate_error"] = str(exc)
                    print(f"   blackbox_exporter at the same rate FAILED: {exc}", flush=True)
                after = _blackbox(out, root / f"blackbox-after-{one.tag}", nginx, args)
                _pair(result, before, after)
                before = after
                json_path.write_text(json.dumps(out, indent=1))
                print(_one_line(result), flush=True)
    finally:
        json_path.write_text(json.dumps(out, indent=1))
        if args.keep:
            print(f"kept {root}")
        else:
            shutil.rmtree(root, ignore_errors=True)
    text = report.render(out["runs"], out["blackbox"])
    (args.results / f"run-{stamp}.md").write_text(text + "\n")
    print(text)
    if out["runs"]:
        png = args.results / f"run-{stamp}.png"
        report.plot(out["runs"], report.blackbox_ms(out["blackbox"]), png)
        print(f"results: {json_path}, {png}")
    return 0


def _case(
    one: case.Case,
    root: Path,
    nginx: targets.Target,
    nginx_pid: int,
    server: postgres.Server | None,
    args: argparse.Namespace,
) -> dict[str, Any]:
    where = root / one.tag
    view: stores.StoreView
    if one.store == "sqlite":
        view = stores.SqliteView(where / "bench.db")
        db_pid = None
    else:
        assert server is not None
        view = stores.PostgresView(server, one.tag.replace("-", "_"))
        db_pid = server.postmaster_pid()
    try:
        return case.run(
            one,
            root=where,
            code=root / "code",
            target=nginx,
            store=view,
            nginx_pid=nginx_pid,
            db_pid=db_pid,
            profile=args.profile and min(args.profile, one.duration),
            gc_stats=args.gc_stats,
            results=args.results,
        )
    finally:
        if isinstance(view, stores.PostgresView):
            view.server.drop_database(view.database)


def _blackbox(
    out: dict[str, Any], root: Path, nginx: targets.Target, args: argparse.Namespace
) -> dict[str, Any] | None:
    """The exporter under wrk, between two cases (and before the first): its figure, or
    None when skipped or it failed (recorded in ``out``)."""
    if args.blackbox_duration <= 0:
        return None
    print(f"== blackbox_exporter under wrk for {args.blackbox_duration:g} s", flush=True)
    try:
        result = blackbox.measure(
            root,
            nginx,
            max(args.sites),
            duration=args.blackbox_duration,
            concurrency=args.blackbox_concurrency,
        ).to_json()
    except (RuntimeError, OSError, subprocess.SubprocessError) as exc:
        out["failed"].append({"case": root.name, "error": str(exc)})
        print(f"   FAILED: {exc}", flush=True)
        return None
    out["blackbox"].append(result)
    print(
        f"   {result['cpu_ms_per_probe']} ms CPU per probe, {result['probes_per_s']}/s", flush=True
    )
    return result


def _pair(
    result: dict[str, Any], before: dict[str, Any] | None, after: dict[str, Any] | None
) -> None:
    """Ours against the exporter under wrk just before and just after the case (their
    mean): the machine's speed drifts within a run, by up to a quarter here, so a figure
    from the start of a long run says little about a case at its end."""
    figures = [
        b["cpu_ms_per_probe"] for b in (before, after) if b and b["probes"] and not b["failed"]
    ]
    result["blackbox_wrk_ms"] = figures
    ours = result["cpu_s_per_1000_checks"]
    fair = figures and ours
    result["x_blackbox"] = round(ours / statistics.fmean(figures), 3) if fair else None


def _blackbox_same_rate(
    result: dict[str, Any], root: Path, nginx: targets.Target, args: argparse.Namespace
) -> None:
    """The exporter asked at the case's planned rate: its CPU per probe there, and ours
    beside it, in ``result``."""
    if args.paced_duration <= 0:
        return
    rate = result["checks_per_s_planned"]
    print(f"   blackbox_exporter at {rate:g} probes/s for {args.paced_duration:g} s", flush=True)
    paced = blackbox.measure_paced(
        root, nginx, result["sites"], duration=args.paced_duration, rate=rate
    ).to_json()
    result["blackbox_same_rate"] = paced
    ours, theirs = result["cpu_s_per_1000_checks"], paced["cpu_ms_per_probe"]
    # Failed probes mean the exporter could not keep up (one core); a driver far behind
    # its schedule did not ask at the rate: no fair figure either way.
    fair = theirs and ours and not paced["failed"] and paced["driver_behind_s"] < 0.5
    result["x_blackbox_same_rate"] = round(ours / theirs, 3) if fair else None
    print(
        f"   {theirs} ms CPU per probe ({paced['failed']} failed, in {paced['duration_s']} s, "
        f"the driver at most {paced['driver_behind_s']} s behind); "
        f"ours {result['x_blackbox_same_rate']}x that",
        flush=True,
    )


def _snapshot(code: Path) -> dict[str, Any]:
    """Copy monitor/ (and its migrations) to ``code``; return what was copied."""
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc")
    shutil.copytree(REPO / "monitor", code / "monitor", ignore=ignore)
    shutil.copytree(REPO / "migrations", code / "monitor" / "migrations", ignore=ignore)
    digest = hashlib.sha256()
    for path in sorted((code / "monitor").rglob("*.py")):
        digest.update(str(path.relative_to(code)).encode() + b"\0" + path.read_bytes())
    head = subprocess.run(
        ["git", "-C", str(REPO), "rev-parse", "HEAD"], capture_output=True, text=True
    ).stdout.strip()
    dirty = subprocess.run(
        ["git", "-C", str(REPO), "status", "--porcelain", "--", "monitor", "migrations"],
        capture_output=True,
        text=True,
    ).stdout.split("\n")
    return {"git_head": head, "dirty_files": [d for d in dirty if d], "sha256": digest.hexdigest()}


def _machine() -> dict[str, Any]:
    cpu_model = next(
        (
            line.split(":", 1)[1].strip()
            for line in Path("/proc/cpuinfo").read_text().splitlines()
            if line.startswith("model name")
        ),
        "unknown",
    )
    mem_kib = int(Path("/proc/meminfo").read_text().split()[1])
    return {
        "cpus": os.cpu_count(),
        "cpu_model": cpu_model,
        "mem_gib": round(mem_kib / 2**20, 1),
        "kernel": platform.release(),
        "python": platform.python_version(),
        "loadavg_at_start": Path("/proc/loadavg").read_text().split()[:3],
    }


def _args_json(args: argparse.Namespace) -> dict[str, Any]:
    return {k: str(v) if isinstance(v, Path) else v for k, v in vars(args).items()}


def _one_line(r: dict[str, Any]) -> str:
    lag = r.get("lag_ms", {})
    return (
        f"   {r['checks_per_s']}/{r['checks_per_s_planned']} checks/s, "
        f"beat {'/'.join(f'{b:g}' for b in r.get('beats_s', []))} s, "
        f"lag p50 {lag.get('p50')} p99 {lag.get('p99')} max {lag.get('max')} ms, "
        f"missed {r['missed_runs_db']} (metric {r['missed_runs_metric']}), "
        f"{r['cpu_s_per_1000_checks']} CPU s/1k checks ({r.get('x_blackbox')}x blackbox "
        f"under wrk beside it), {r['daemon_cores']} cores "
        f"(machine {r['machine_busy_cores']}), peak RSS {r['rss_peak_before_scrape_mib']:.0f} MiB, "
        f"/metrics {r['metrics_page']['bytes'] / 1e6:.1f} MB in {r['metrics_page']['render_s']} s, "
        f"log errors {r['log']['errors']}, exit {r['daemon_exit_code']} in {r['shutdown_s']} s"
    )


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--sites", type=int, nargs="+", default=[1000], help="N values (1000)")
    parser.add_argument("--interval", type=float, nargs="+", default=[60.0], help="seconds (60)")
    parser.add_argument(
        "--store", nargs="+", choices=["sqlite", "postgres"], default=["sqlite"], help="(sqlite)"
    )
    parser.add_argument("--duration", type=float, default=60.0, help="seconds measured (60)")
    parser.add_argument(
        "--workers", type=int, nargs="+", default=[1], help="monitor run --workers values (1)"
    )
    parser.add_argument("--timeout", type=float, default=5.0, help="the daemon's timeout (5)")
    parser.add_argument("--repeat", type=int, default=1, help="runs of each case (1)")
    parser.add_argument("--nginx-workers", type=int, default=4, help="(4)")
    parser.add_argument(
        "--blackbox-duration",
        type=float,
        default=20.0,
        help="seconds of blackbox_exporter under wrk before the first case and after "
        "each (20; 0: skip)",
    )
    parser.add_argument("--blackbox-concurrency", type=int, default=8, help="wrk -c (8)")
    parser.add_argument(
        "--paced-duration",
        type=float,
        default=30.0,
        help="seconds of blackbox_exporter asked at each case's rate, after it (30; 0: skip)",
    )
    parser.add_argument(
        "--profile",
        type=float,
        metavar="SECONDS",
        help="py-spy every case for this long from the start of its measurement "
        "(marks those runs profiled: its sampling costs CPU)",
    )
    parser.add_argument(
        "--gc-stats",
        action="store_true",
        help="time the daemon's garbage collections (bench/gcprobe/sitecustomize.py)",
    )
    parser.add_argument("--results", type=Path, default=BENCH / "results", help="(bench/results)")
    parser.add_argument("--keep", action="store_true", help="keep the temporary directory")
    return parser


if __name__ == "__main__":
    sys.exit(main())
