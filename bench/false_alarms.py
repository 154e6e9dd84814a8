"""False alarms and detection delay of the daemon under CPU contention (issue #21).

Run by hand, never as a test. One command starts, on 127.0.0.1 only and in a temporary
directory, a target server (bench/delay_target.py, aiohttp), ``--hog`` pure-Python busy
loops competing for the cores, and the daemon (``python -m monitor run -c generated.yaml``,
SQLite) watching ``--sites`` healthy sites every ``--interval``; after ``--duration`` it
stops everything and prints what the daemon's database says:

- incidents opened on the healthy sites (every one is false), by state, cause and
  verdict, per 1,000 site-hours;
- the detection delay, in rounds and seconds from the change to the site's first
  degraded or down incident, of a 3x time-to-first-byte step (200 ms -> 600 ms, half-way
  through the run) and of a 2 % per round creep (from 200 ms, from 40 % of the run), on
  sites at realistic latencies; beside them steady sites at 50, 200 and 500 ms, whose
  incidents are false alarms too.

    python bench/false_alarms.py                 # 500 sites every 5 s, 10 min, 2 hogs
    python bench/false_alarms.py --quick         # a self-check: 50 sites every 1 s, 90 s
    python bench/false_alarms.py --sites 500 --interval 5 --duration 600 --hog 2 --out f.json

The target decides each path's delay from a schedule given at its start (POSIX times), so
no control channel is needed. Every process is started in a session of its own and
stopped by its id when the run ends, by itself (duration plus a grace) or on Ctrl-C.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import shutil
import signal
import sqlite3
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections import Counter
from contextlib import ExitStack
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

BENCH = Path(__file__).resolve().parent
REPO = BENCH.parent
sys.path.insert(0, str(BENCH))

import procs  # noqa: E402
from delay_target import Spec, delay  # noqa: E402

HOG = "while True:\n    pass\n"
STEP, CREEP = "lat-step-200ms", "lat-creep-200ms"
STEADY = {"lat-steady-50ms": 0.05, "lat-steady-200ms": 0.2, "lat-steady-500ms": 0.5}
STEP_AT, CREEP_AT = 0.5, 0.4  # of the duration, after the target starts


@dataclass(frozen=True, slots=True)
class Plan:
    sites: int
    interval: float
    duration: float
    timeout: float
    hog: int
    start: float  # POSIX time the schedule counts from

    @property
    def step_at(self) -> float:
        return self.start + STEP_AT * self.duration

    @property
    def creep_at(self) -> float:
        return self.start + CREEP_AT * self.duration

    def schedule(self) -> dict[str, dict[str, float]]:
        out: dict[str, dict[str, float]] = {name: {"base": b} for name, b in STEADY.items()}
        out[STEP] = {"base": 0.2, "step_at": self.step_at, "factor": 3.0}
        cap = min(0.8, 0.8 * self.timeout)  # the creep never turns into a timeout
        out[CREEP] = {
            "base": 0.2,
            "creep_at": self.creep_at,
            "rate": 0.02,
            "every": self.interval,
            "cap": cap,
        }
        return out

    def healthy(self) -> list[str]:
        return [f"s{i + 1:06d}" for i in range(self.sites)]


def main() -> int:
    args = _parser().parse_args()
    if args.quick:
        args.sites, args.interval, args.duration = 50, 1.0, 90.0
        args.timeout = args.timeout or 0.9
    timeout = args.timeout or min(10.0, args.interval / 2)
    if timeout < 0.75:
        print("note: a timeout under 750 ms times the 600 ms step out instead of slowing it")
    # SIGTERM ends the run like Ctrl-C, through every finally block.
    signal.signal(signal.SIGTERM, signal.default_int_handler)
    root = Path(tempfile.mkdtemp(prefix="monitor-false-alarms-"))
    stamp = time.strftime("%Y%m%d-%H%M%S")
    out_path: Path = args.out or BENCH / "results" / f"false-alarms-{stamp}.json"
    plan = Plan(args.sites, args.interval, args.duration, timeout, args.hog, time.time())
    out: dict[str, Any] = {"args": {k: str(v) for k, v in vars(args).items()}}
    out |= {"machine": _machine(), "code": _code()}
    try:
        out |= _run(plan, root, args.keep)
    finally:
        if args.keep:
            print(f"kept {root}")
        else:
            shutil.rmtree(root, ignore_errors=True)
    out_path.parent.mkdir(parents=True, exist_ok=True)
    out_path.write_text(json.dumps(out, indent=1) + "\n")
    print(_report(out))
    print(f"figures: {out_path}")
    return 0


def _run(plan: Plan, root: Path, keep: bool) -> dict[str, Any]:
    target_port, daemon_port = procs.free_port(), procs.free_port()
    schedule_path = root / "schedule.json"
    schedule_path.write_text(json.dumps(plan.schedule()))
    db = root / "monitor.db"
    config = root / "generated.yaml"
    config.write_text(_config(plan, target_port, daemon_port, db))
    env = {**os.environ, "PYTHONPATH": str(REPO), "PYTHONUNBUFFERED": "1"}
    out: dict[str, Any] = {"plan": {"sites": plan.sites, "interval_s": plan.interval}}
    out["plan"] |= {"duration_s": plan.duration, "timeout_s": plan.timeout, "hogs": plan.hog}
    with ExitStack() as stack:
        target = procs.start(
            [
                sys.executable,
                str(BENCH / "delay_target.py"),
                "--port",
                str(target_port),
                "--schedule",
                str(schedule_path),
            ],
            root / "target.log",
        )
        stack.callback(procs.stop, target, 5)
        procs.wait_http(f"http://127.0.0.1:{target_port}/s000001", target, timeout=30)
        hogs = []
        for i in range(plan.hog):
            hog = procs.start([sys.executable, "-c", HOG], root / f"hog{i}.log")
            stack.callback(procs.stop, hog, 5)
            hogs.append(hog)
        argv = [sys.executable, "-m", "monitor", "run", "-c", str(config)]
        daemon = procs.start(argv, root / "daemon.log", cwd=root, env=env)
        stack.callback(procs.stop, daemon, 20)
        base = f"http://127.0.0.1:{daemon_port}"
        startup = procs.wait_http(base + "/healthz", daemon, timeout=120 + plan.sites / 100)
        print(
            f"daemon up in {startup:.1f} s: {plan.sites} healthy sites every {plan.interval:g} s"
            f" and {len(STEADY) + 2} latency sites, {plan.hog} hogs, for {plan.duration:g} s"
            f" (until {time.strftime('%H:%M:%S', time.localtime(time.time() + plan.duration))})",
            flush=True,
        )
        ready = time.time()
        pids = {"daemon": daemon.pid, "target": target.pid}
        cpu0 = {name: procs.process_cpu(pid) for name, pid in pids.items()}
        hog0 = sum(procs.process_cpu(h.pid) for h in hogs)
        busy0, load0 = procs.machine_busy(), _loadavg()
        _alive_sleep([daemon, target, *hogs], plan.duration)
        busy1, load1, end = procs.machine_busy(), _loadavg(), time.time()
        cpu1 = {name: procs.process_cpu(pid) for name, pid in pids.items()}
        hog1 = sum(procs.process_cpu(h.pid) for h in hogs)
        # Grace: the rounds planned before the end finish and are judged.
        _alive_sleep([daemon, target], plan.interval + plan.timeout + 2)
        out["metrics"] = _metrics(base + "/metrics")
        stopping = time.monotonic()
        out["daemon_exit_code"] = procs.stop(daemon, grace=20)
        out["shutdown_s"] = round(time.monotonic() - stopping, 2)
        span = end - ready
        cores = os.cpu_count() or 1
        busy = (busy1[0] - busy0[0]) / (busy1[1] - busy0[1]) * cores
        load: dict[str, Any] = {"machine_busy_cores": round(busy, 2), "cores": cores}
        load |= {f"{n}_cores": round((cpu1[n] - cpu0[n]) / span, 3) for n in pids}
        load["hogs_cores"] = round((hog1 - hog0) / span, 2)
        ours = (sum(cpu1.values()) - sum(cpu0.values()) + hog1 - hog0) / span
        load["others_cores"] = round(busy - ours, 2)  # other users of the machine
        load |= {"loadavg_start": load0, "loadavg_end": load1}
        out["load"] = load
        out["window"] = {"ready": ready, "end": end, "measured_s": round(span, 1)}
        out["startup_s"] = round(startup, 1)
        out["log_errors"] = _log_errors(root / "daemon.log")
    out |= _figures(plan, db, ready, end)
    if keep:
        out["root"] = str(root)
    return out


def _config(plan: Plan, target_port: int, daemon_port: int, db: Path) -> str:
    lines = [
        "storage:",
        f"  url: sqlite+aiosqlite:///{db}",
        "server:",
        f"  listen: 127.0.0.1:{daemon_port}",
        "defaults:",
        f"  interval: {plan.interval * 1000:g}ms",
        f"  timeout: {plan.timeout * 1000:g}ms",
        "sites:",
    ]
    names = [*plan.healthy(), *STEADY, STEP, CREEP]
    # The timeout on each site too: a site's own default is at most half its interval,
    # whatever defaults.timeout says.
    lines += [
        f"  - {{name: {n}, url: 'http://127.0.0.1:{target_port}/{n}',"
        f" timeout: {plan.timeout * 1000:g}ms}}"
        for n in names
    ]
    return "\n".join(lines) + "\n"


def _figures(plan: Plan, db: Path, ready: float, end: float) -> dict[str, Any]:
    """What the database says: false alarms, detection delays, the healthy sites' TTFB."""
    with sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=30) as con:
        incidents = con.execute(
            "SELECT m.name, i.opened_at, i.state, i.verdict, i.cause, i.layer, i.summary"
            " FROM incidents i JOIN monitors m ON m.id = i.monitor_id ORDER BY i.opened_at"
        ).fetchall()
        rounds = con.execute(
            "SELECT m.name, r.time, r.processing_s, r.total_s, r.cause"
            " FROM check_results r JOIN monitors m ON m.id = r.monitor_id"
            " WHERE r.role = 'edge' ORDER BY r.time"
        ).fetchall()
    healthy = set(plan.healthy())
    opened = [(n, _epoch(t), s, v, c, layer, text) for n, t, s, v, c, layer, text in incidents]
    false_healthy = [i for i in opened if i[0] in healthy]
    false_steady = [i for i in opened if i[0] in STEADY]
    site_hours = plan.sites * (end - ready) / 3600
    out: dict[str, Any] = {}
    out["false_alarms"] = {
        "healthy_sites": plan.sites,
        "site_hours": round(site_hours, 2),
        "incidents": len(false_healthy),
        "per_1000_site_hours": round(len(false_healthy) / site_hours * 1000, 1),
        "sites_with_incidents": len({i[0] for i in false_healthy}),
        "by_state_cause_verdict": _counts(false_healthy),
        "first_at_s": round(false_healthy[0][1] - ready, 1) if false_healthy else None,
        "examples": [i[6] for i in false_healthy[:3]],
        "steady_latency_sites": {n: sum(i[0] == n for i in false_steady) for n in STEADY},
        "steady_examples": [f"{i[0]}: {i[6]}" for i in false_steady[:3]],
    }
    ttfb = sorted(p for n, _, p, _, _ in rounds if n in healthy and p is not None)
    causes = Counter(c for n, _, _, _, c in rounds if n in healthy)
    out["healthy_rounds"] = {
        "results": sum(causes.values()),
        "causes": dict(causes),
        "ttfb_ms": {q: _ms(_rank(ttfb, share)) for q, share in (("p50", 0.5), ("p99", 0.99))}
        | {"max": _ms(ttfb[-1] if ttfb else None)},
    }
    schedule = plan.schedule()
    out["detection"] = {
        STEP: _detection(STEP, plan.step_at, schedule[STEP], opened, rounds, plan),
        CREEP: _detection(CREEP, plan.creep_at, schedule[CREEP], opened, rounds, plan),
    }
    return out


def _detection(
    name: str,
    change: float,
    spec: Spec,
    opened: list[tuple[str, float, str, str, str, str, str]],
    rounds: list[tuple[str, str, float | None, float, str]],
    plan: Plan,
) -> dict[str, Any]:
    """Rounds and seconds from ``change`` to the first degraded or down incident of
    ``name`` opened at or after it (incidents before it are false alarms)."""
    series = [(_epoch(t), p) for n, t, p, _, _ in rounds if n == name]
    times = [t for t, _ in series]
    before = _rounds([t for t in times if t < change], plan.interval)
    mine = [i for i in opened if i[0] == name]
    caught = next((i for i in mine if i[1] >= change and i[2] in ("degraded", "down")), None)
    out: dict[str, Any] = {
        "change_s_after_start": round(change - plan.start, 1),
        "rounds_before_change": len(before),
        "ttfb_before_ms": _ms(_rank(sorted(p for t, p in series if t < change and p), 0.5)),
        "incidents_before_change": sum(i[1] < change for i in mine),
        "caught": caught is not None,
    }
    if caught is None:
        after = _rounds([t for t in times if t >= change], plan.interval)
        out["rounds_watched_after_change"] = len(after)
        return out
    at = caught[1]
    # A slow round is re-checked at once: its re-check is stored too, but is not a round.
    out["rounds"] = len(_rounds([t for t in times if change <= t <= at], plan.interval))
    out["results"] = sum(change <= t <= at for t in times)
    out["seconds"] = round(at - change, 1)
    out["state"], out["verdict"], out["cause"], out["summary"] = (*caught[2:5], caught[6])
    out["delay_at_detection_ms"] = round(delay(spec, at) * 1000)
    return out


def _rounds(times: list[float], interval: float) -> list[float]:
    """The start of each round among sorted result ``times``: a result less than half an
    interval after the round's first is its re-check."""
    starts: list[float] = []
    for t in times:
        if not starts or t - starts[-1] >= interval / 2:
            starts.append(t)
    return starts


def _metrics(url: str) -> dict[str, float]:
    """A few of the daemon's own series, summed over their labels."""
    wanted = (
        "monitor_incidents_open",
        "monitor_scheduler_missed_runs_total",
        "monitor_checks_total",
        "monitor_store_dropped_results_total",
    )
    sums = dict.fromkeys(wanted, 0.0)
    with urllib.request.urlopen(url, timeout=60) as response:
        for raw in response:
            line = raw.decode()
            name = line.split("{", 1)[0].split(" ", 1)[0]
            if name in sums:
                sums[name] += float(line.rsplit(" ", 1)[1])
    return sums


def _report(out: dict[str, Any]) -> str:
    p, fa, load = out["plan"], out["false_alarms"], out["load"]
    lines = [
        f"== {p['sites']} healthy sites every {p['interval_s']:g} s (timeout {p['timeout_s']:g} s)"
        f" for {out['window']['measured_s']:g} s, {p['hogs']} CPU hogs;"
        f" code {out['code']['git_head'][:7]}{' (dirty)' if out['code']['dirty'] else ''}",
        f"load: machine {load['machine_busy_cores']} of {load['cores']} cores busy: daemon"
        f" {load['daemon_cores']}, target {load['target_cores']}, hogs {load['hogs_cores']},"
        f" other work {load['others_cores']}; loadavg {' '.join(load['loadavg_start'])} ->"
        f" {' '.join(load['loadavg_end'])}",
        f"healthy rounds: {out['healthy_rounds']['results']} results,"
        f" causes {out['healthy_rounds']['causes']}, TTFB {out['healthy_rounds']['ttfb_ms']}",
        f"false alarms: {fa['incidents']} incident{'' if fa['incidents'] == 1 else 's'}"
        f" on {fa['sites_with_incidents']} of {fa['healthy_sites']} healthy sites in"
        f" {fa['site_hours']} site-hours = {fa['per_1000_site_hours']} per 1,000 site-hours"
        + (f", the first {fa['first_at_s']} s in" if fa["first_at_s"] is not None else ""),
    ]
    for (state, cause, verdict), count in fa["by_state_cause_verdict"]:
        lines.append(f"   {count:5d}  {state} / cause {cause} / verdict {verdict}")
    lines += [f"   e.g. {text}" for text in fa["examples"]]
    lines.append(f"steady latency sites' incidents: {fa['steady_latency_sites']}")
    lines += [f"   e.g. {text}" for text in fa["steady_examples"]]
    for name, d in out["detection"].items():
        head = (
            f"{name}: change {d['change_s_after_start']} s in, after {d['rounds_before_change']}"
            f" rounds (TTFB {d['ttfb_before_ms']} ms), {d['incidents_before_change']}"
            " incidents before it; "
        )
        if d["caught"]:
            head += (
                f"caught on round {d['rounds']} after it ({d['results']} results with"
                f" re-checks), {d['seconds']} s ({d['state']}, cause"
                f" {d['cause']}, delay then {d['delay_at_detection_ms']} ms): {d['summary']}"
            )
        else:
            head += f"NOT caught in the {d['rounds_watched_after_change']} rounds after it"
        lines.append(head)
    m = out["metrics"]
    lines.append(
        f"daemon: startup {out['startup_s']} s,"
        f" missed runs {m['monitor_scheduler_missed_runs_total']:g},"
        f" dropped results {m['monitor_store_dropped_results_total']:g}, incidents open at the"
        f" end {m['monitor_incidents_open']:g}, log errors {out['log_errors']},"
        f" exit {out['daemon_exit_code']} in {out['shutdown_s']} s"
    )
    return "\n".join(lines)


def _counts(incidents: list[tuple[str, float, str, str, str, str, str]]) -> list[Any]:
    counted = Counter((state, cause, verdict) for _, _, state, verdict, cause, _, _ in incidents)
    return [[list(key), n] for key, n in counted.most_common()]


def _alive_sleep(watched: list[subprocess.Popen[bytes]], seconds: float) -> None:
    end = time.monotonic() + seconds
    while (left := end - time.monotonic()) > 0:
        for proc in watched:
            if proc.poll() is not None:
                raise RuntimeError(f"{proc.args!r} exited with {proc.returncode}")
        time.sleep(min(left, 1.0))


def _log_errors(log: Path) -> int:
    with log.open("rb") as text:
        return sum(b" ERROR " in line or b"Traceback" in line for line in text)


def _epoch(text: str) -> float:
    """A time as SQLAlchemy stores it in SQLite (UTC, naive), in POSIX seconds."""
    return datetime.fromisoformat(text).replace(tzinfo=UTC).timestamp()


def _rank(ordered: list[float], share: float) -> float | None:
    return ordered[max(0, math.ceil(share * len(ordered)) - 1)] if ordered else None


def _ms(seconds: float | None) -> float | None:
    return None if seconds is None else round(seconds * 1000, 2)


def _loadavg() -> list[str]:
    return Path("/proc/loadavg").read_text().split()[:3]


def _machine() -> dict[str, Any]:
    return {"cpus": os.cpu_count(), "python": sys.version.split()[0], "started": time.ctime()}


def _code() -> dict[str, Any]:
    def git(*argv: str) -> str:
        done = subprocess.run(["git", "-C", str(REPO), *argv], capture_output=True, text=True)
        return done.stdout.strip()

    return {
        "git_head": git("rev-parse", "HEAD"),
        "dirty": bool(git("status", "--porcelain", "--", "monitor")),
    }


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--sites", type=int, default=500, help="healthy sites (500)")
    parser.add_argument("--interval", type=float, default=5.0, help="seconds (5)")
    parser.add_argument("--duration", type=float, default=600.0, help="seconds measured (600)")
    parser.add_argument(
        "--timeout",
        type=float,
        help="the daemon's timeout, seconds (its default: half the interval)",
    )
    parser.add_argument("--hog", type=int, default=2, help="busy-loop processes beside it (2)")
    parser.add_argument(
        "--out", type=Path, help="the figures as JSON (bench/results/false-alarms-<time>.json)"
    )
    parser.add_argument(
        "--quick", action="store_true", help="a self-check: 50 sites every 1 s for 90 s"
    )
    parser.add_argument("--keep", action="store_true", help="keep the temporary directory")
    return parser


if __name__ == "__main__":
    sys.exit(main())
