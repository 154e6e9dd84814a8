"""Processes the benchmark starts, and what /proc says about them.

Every process is started in a session of its own and stopped by its own id (its process
group), so a run leaves nothing behind and never touches processes it did not start.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path

CLK_TCK = os.sysconf("SC_CLK_TCK")
# Linux's clock id for another process's CPU time (clock_getcpuclockid): the pid, bit-
# inverted, shifted over the clock type; SCHED counts nanoseconds on a CPU, whole process.
_CPUCLOCK_SCHED = 2


@dataclass(frozen=True, slots=True)
class Cpu:
    """CPU seconds of one process (all its threads) and of its waited-for children."""

    own: float
    children: float

    @property
    def total(self) -> float:
        return self.own + self.children


def cpu(pid: int) -> Cpu:
    """utime+stime and cutime+cstime from /proc/PID/stat, in seconds."""
    text = Path(f"/proc/{pid}/stat").read_text()
    fields = text[text.rindex(")") + 2 :].split()  # the name may hold spaces and ')'
    utime, stime, cutime, cstime = (int(v) for v in fields[11:15])
    return Cpu((utime + stime) / CLK_TCK, (cutime + cstime) / CLK_TCK)


def tree(pid: int) -> Cpu:
    """CPU seconds of ``pid`` and its live children (one level) as ``own``, e.g. a
    PostgreSQL postmaster and its backends, or ``monitor run --workers N``; its reaped
    children as ``children``."""
    top = cpu(pid)
    own = top.own
    for child in children(pid):
        # A child that exited meanwhile: its time is now in the parent's cutime, or lost.
        with contextlib.suppress(FileNotFoundError):
            own += cpu(child).own
    return Cpu(own, top.children)


def process_cpu(pid: int) -> float:
    """CPU seconds of process ``pid`` (every thread, ended ones too, user + system) from
    its CPU-time clock, in nanoseconds: /proc/PID/stat rounds to ticks of 10 ms, and a
    1,000-site daemon uses about 0.3 s of CPU a minute."""
    return time.clock_gettime_ns(((~pid) << 3) | _CPUCLOCK_SCHED) / 1e9


def tree_process_cpu(pid: int) -> float:
    """:func:`process_cpu` of ``pid`` and its live children (one level)."""
    total = process_cpu(pid)
    for child in children(pid):
        with contextlib.suppress(OSError):  # a child that ended meanwhile
            total += process_cpu(child)
    return total


def tree_cpu(pid: int) -> float:
    return tree(pid).total


def tree_kib(pid: int, field: str) -> int:
    """A ``kB`` field of /proc/PID/status summed over ``pid`` and its live children: for
    VmHWM, at most the peak the processes reached together."""
    total = status_kib(pid, field)
    for child in children(pid):
        with contextlib.suppress(FileNotFoundError):
            total += status_kib(child, field)
    return total


def children(pid: int) -> list[int]:
    found: list[int] = []
    for task in Path(f"/proc/{pid}/task").iterdir():
        with contextlib.suppress(FileNotFoundError):
            found += [int(c) for c in (task / "children").read_text().split()]
    return found


def status_kib(pid: int, field: str) -> int:
    """A ``kB`` field of /proc/PID/status, e.g. VmHWM (peak RSS) or VmRSS."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    raise KeyError(field)


def machine_busy() -> tuple[float, float]:
    """(busy, total) jiffies of the whole machine from /proc/stat, for the noise figure."""
    values = [int(v) for v in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    idle = values[3] + values[4]  # idle + iowait
    total = sum(values[:8])  # without guest time, which is already in user
    return total - idle, total


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def start(
    argv: list[str], log: Path, *, cwd: Path | None = None, env: dict[str, str] | None = None
) -> subprocess.Popen[bytes]:
    """Start ``argv`` in a new session, stdout and stderr appended to ``log``."""
    with log.open("ab") as out:
        return subprocess.Popen(
            argv,
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
            cwd=cwd,
            env=env,
            start_new_session=True,
        )


def stop(proc: subprocess.Popen[bytes], grace: float = 15.0, sig: int = signal.SIGTERM) -> int:
    """Send ``sig`` to the process's group, wait up to ``grace`` seconds, then SIGKILL it."""
    if proc.poll() is None:
        _signal_group(proc.pid, sig)
        try:
            proc.wait(grace)
        except subprocess.TimeoutExpired:
            _signal_group(proc.pid, signal.SIGKILL)
            proc.wait(10)
    # Whatever it started in its group (nginx workers, ...) goes too.
    _signal_group(proc.pid, signal.SIGKILL)
    return proc.returncode


def _signal_group(pgid: int, sig: int) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.killpg(pgid, sig)


def http_get(url: str, timeout: float = 5.0) -> tuple[int, bytes]:
    """(status, body) of a GET; urllib is enough for the few requests the harness makes."""
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response:
            return response.status, response.read()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read()


def wait_http(url: str, proc: subprocess.Popen[bytes], timeout: float) -> float:
    """Wait until ``url`` answers at all; return the seconds it took. Fails if ``proc`` ends."""
    started = time.monotonic()
    while True:
        if proc.poll() is not None:
            raise RuntimeError(f"{proc.args!r} exited with {proc.returncode} before {url} answered")
        try:
            http_get(url, timeout=2.0)
            return time.monotonic() - started
        except OSError:
            if time.monotonic() - started > timeout:
                raise RuntimeError(f"{url} did not answer within {timeout:.0f} s") from None
            time.sleep(0.2)
