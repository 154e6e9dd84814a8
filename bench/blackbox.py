"""The yardstick: Debian's prometheus-blackbox-exporter probing the same nginx target.

The exporter runs as a process of its own with GOMAXPROCS=1 and an ``http_2xx`` module on
127.0.0.1; ``wrk`` (a separate process, whose CPU is not counted) asks its ``/probe``
endpoint at a fixed concurrency for the sites' URLs in turn. Its CPU per probe is the
CPU seconds it used (from /proc) over the probes wrk saw answered.
"""

from __future__ import annotations

import os
import re
import subprocess
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

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

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


def measure(
    root: Path, target: Target, sites: int, *, duration: float, concurrency: int
) -> BlackboxResult:
    """Run the exporter, warm it up for 3 s, then drive it for ``duration`` seconds."""
    root.mkdir(parents=True, exist_ok=True)
    config = root / "blackbox.yml"
    config.write_text(CONFIG)
    port = procs.free_port()
    count = min(sites, MAX_TARGETS)
    step = max(1, sites // count)
    paths = ",\n".join(
        f'  "/probe?module=http_2xx&target={target.site(i * step)[1]}"' for i in range(count)
    )
    script = root / "probe.lua"
    script.write_text(WRK_SCRIPT.format(paths=paths))
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
        _wrk(base, script, 3.0, concurrency)  # warm-up: connections, GC heap, caches
        before, started = procs.cpu(proc.pid), time.monotonic()
        probes, failed = _wrk(base, script, duration, concurrency)
        after, elapsed = procs.cpu(proc.pid), time.monotonic() - started
    finally:
        procs.stop(proc)
    used = after.total - before.total
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
    )


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
