"""The yardstick: Debian's prometheus-blackbox-exporter probing the same nginx target.

The exporter runs as a process of its own with GOMAXPROCS=1 and an ``http_2xx`` module on
127.0.0.1. Its CPU per probe is the CPU seconds it used (from /proc) over the probes
answered, measured two ways:

- ``measure``: ``wrk`` (a separate process, whose CPU is not counted) asks its ``/probe``
  endpoint at a fixed concurrency for the sites' URLs in turn, as fast as it answers;
- ``measure_paced``: the harness asks at a fixed rate, the rate a daemon case checks at
  (N sites / interval), on kept-alive connections, each request at its own time whether
  or not earlier ones were answered (as Prometheus scrapes). At low rates each probe
  wakes an idle process, and costs it more than under full load.
"""

from __future__ import annotations

import asyncio
import os
import re
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

import aiohttp
import procs
from targets import Target

EXPORTER = "/usr/bin/prometheus-blackbox-exporter"
WRK = "/usr/bin/wrk"
MAX_TARGETS = 2000  # distinct site URLs wrk cycles through

CONFIG = """\
modules:
  http_2xx:
    prober: http
    timeout: 5s
    http:
      preferred_ip_protocol: ip4
"""

# One wrk thread: it cycles through the paths and counts answers that are not a
# successful probe, which done() prints for the harness to read.
WRK_SCRIPT = """\
local paths = {{
{paths}
}}
local i = 0
failed = 0  -- global: done() reads it with thread:get
local threads = {{}}

function setup(thread)
  table.insert(threads, thread)
end

function request()
  i = i % #paths + 1
  return wrk.format("GET", paths[i])
end

function response(status, headers, body)
  if status ~= 200 or not string.find(body, "probe_success 1", 1, true) then
    failed = failed + 1
  end
end

function done(summary, latency, requests)
  local total = 0
  for _, thread in ipairs(threads) do
    total = total + thread:get("failed")
  end
  io.write(string.format("BENCH failed=%d\\n", total))
end
"""


@dataclass(frozen=True, slots=True)
class BlackboxResult:
    version: str
    concurrency: int
    duration_s: float
    probes: int
    failed: int
    probes_per_s: float
    cpu_s: float
    cpu_ms_per_probe: float
    cores_used: float
    paced_rate: float | None = None  # probes asked for a second (measure_paced); else wrk
    driver_behind_s: float = 0.0  # measure_paced: how late the latest request was asked

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


def measure(
    root: Path, target: Target, sites: int, *, duration: float, concurrency: int
) -> BlackboxResult:
    """Run the exporter, warm it up for 3 s, then drive it with wrk for ``duration`` s."""
    root.mkdir(parents=True, exist_ok=True)
    paths = ",\n".join(f'  "{path}"' for path in _probe_paths(target, sites))
    script = root / "probe.lua"
    script.write_text(WRK_SCRIPT.format(paths=paths))
    with _exporter(root) as (base, pid):
        _wrk(base, script, 3.0, concurrency)  # warm-up: connections, GC heap, caches
        before, started = procs.cpu(pid), time.monotonic()
        probes, failed = _wrk(base, script, duration, concurrency)
        after, elapsed = procs.cpu(pid), time.monotonic() - started
    return _result(concurrency, elapsed, probes, failed, after.total - before.total)


def measure_paced(
    root: Path, target: Target, sites: int, *, duration: float, rate: float
) -> BlackboxResult:
    """Run the exporter, ask it ``rate`` probes a second for 3 s to warm it up, then for
    ``duration`` seconds measured."""
    root.mkdir(parents=True, exist_ok=True)
    paths = _probe_paths(target, sites)
    with _exporter(root) as (base, pid):
        probes, failed, behind, elapsed, used = asyncio.run(
            _paced(base, paths, rate, duration, pid)
        )
    result = _result(0, elapsed, probes, failed, used, rate)
    return replace(result, driver_behind_s=round(behind, 3))


def _probe_paths(target: Target, sites: int) -> list[str]:
    """The exporter's /probe paths for up to MAX_TARGETS of the sites, spread over all."""
    count = min(sites, MAX_TARGETS)
    step = max(1, sites // count)
    return [f"/probe?module=http_2xx&target={target.site(i * step)[1]}" for i in range(count)]


@contextmanager
def _exporter(root: Path) -> Iterator[tuple[str, int]]:
    """The exporter running on a free port: (its base URL, its pid)."""
    config = root / "blackbox.yml"
    config.write_text(CONFIG)
    port = procs.free_port()
    env = {**os.environ, "GOMAXPROCS": "1"}
    argv = [
        EXPORTER,
        f"--config.file={config}",
        f"--web.listen-address=127.0.0.1:{port}",
        "--log.level=warn",
    ]
    proc = procs.start(argv, root / "blackbox.log", env=env)
    try:
        base = f"http://127.0.0.1:{port}"
        procs.wait_http(f"{base}/metrics", proc, timeout=30)
        yield base, proc.pid
    finally:
        procs.stop(proc)


def _result(
    concurrency: int,
    elapsed: float,
    probes: int,
    failed: int,
    used: float,
    rate: float | None = None,
) -> BlackboxResult:
    return BlackboxResult(
        version=_version(),
        concurrency=concurrency,
        duration_s=round(elapsed, 2),
        probes=probes,
        failed=failed,
        probes_per_s=round(probes / elapsed, 1),
        cpu_s=round(used, 2),
        cpu_ms_per_probe=round(used / probes * 1000, 4) if probes else float("nan"),
        cores_used=round(used / elapsed, 3),
        paced_rate=rate,
    )


async def _paced(
    base: str, paths: list[str], rate: float, duration: float, pid: int
) -> tuple[int, int, float, float, float]:
    """3 s of warm-up, then ``duration`` s measured, on one session (kept-alive
    connections): ask for ``paths`` in turn, request i at i / ``rate`` s from the start.
    Return (probes, probes that were not a success, how far the asking fell behind its
    schedule at most, seconds, the exporter's CPU seconds) of the measured part."""
    connector = aiohttp.TCPConnector(limit=256)
    timeout = aiohttp.ClientTimeout(total=10.0)
    async with aiohttp.ClientSession(base, connector=connector, timeout=timeout) as session:

        async def probe(path: str) -> bool:
            try:
                async with session.get(path) as response:
                    body = await response.text()
            except (aiohttp.ClientError, TimeoutError):
                return False
            return response.status == 200 and "probe_success 1" in body

        async def ask(seconds: float) -> tuple[list[bool], float]:
            loop = asyncio.get_running_loop()
            start, behind, asked = loop.time(), 0.0, []
            for i in range(max(1, round(seconds * rate))):
                wait = start + i / rate - loop.time()
                if wait > 0:
                    await asyncio.sleep(wait)
                behind = max(behind, -wait)
                asked.append(asyncio.create_task(probe(paths[i % len(paths)])))
            return await asyncio.gather(*asked), behind

        await ask(3.0)  # warm-up: connections, the exporter's heap and caches
        before, started = procs.cpu(pid), time.monotonic()
        answers, behind = await ask(duration)
        after, elapsed = procs.cpu(pid), time.monotonic() - started
    return len(answers), answers.count(False), behind, elapsed, after.total - before.total


def _wrk(base: str, script: Path, duration: float, concurrency: int) -> tuple[int, int]:
    """Run wrk; return (answers, answers that were not a successful probe)."""
    argv = [WRK, "-t1", f"-c{concurrency}", f"-d{duration:.0f}s", "--timeout", "10s"]
    done = subprocess.run(
        [*argv, "-s", str(script), base], capture_output=True, text=True, timeout=duration + 60
    )
    if done.returncode != 0:
        raise RuntimeError(f"wrk failed: {done.stderr or done.stdout}")
    requests = re.search(r"(\d+) requests in", done.stdout)
    failed = re.search(r"BENCH failed=(\d+)", done.stdout)
    errors = re.search(r"Socket errors: .*", done.stdout)
    if requests is None or failed is None:
        raise RuntimeError(f"cannot read wrk's output:\n{done.stdout}")
    if errors is not None:
        raise RuntimeError(f"wrk saw socket errors: {errors.group(0)}")
    return int(requests.group(1)), int(failed.group(1))


def _version() -> str:
    done = subprocess.run([EXPORTER, "--version"], capture_output=True, text=True)
    first = (done.stdout or done.stderr).splitlines()[:1]
    return first[0] if first else "unknown"
