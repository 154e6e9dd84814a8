"""``monitor run --workers N``: N worker processes, each firing its share of the monitors.

One event loop uses one core; past about 1,000 checks a second a single process has no
headroom left. The parent runs ``monitor db upgrade`` first (it checks the config, with
the usual located errors and exit code 2, and applies the schema once: N workers doing
it at once would race), then starts ``monitor run --shard i/N`` for
each ``i`` (see :mod:`monitor.app.shard`: worker ``i`` listens on the configured port plus
``i`` and worker 0 sends every alert), passes SIGTERM, SIGINT and SIGHUP on to all of them,
and waits. A worker that dies on its own takes the others down with it and the parent
exits 1, so the service manager restarts the whole set, with its shares unchanged.
"""

from __future__ import annotations

import ctypes
import logging
import os
import signal
import subprocess
import sys
from collections.abc import Callable
from types import FrameType

from monitor import logs

log = logging.getLogger("monitor.workers")

_PASSED_ON = (signal.SIGTERM, signal.SIGINT, signal.SIGHUP)


def worker_argv(config_path: str, log_level: str, index: int, count: int) -> list[str]:
    return [
        sys.executable,
        "-m",
        "monitor",
        "run",
        "-c",
        config_path,
        "--log-level",
        log_level,
        "--shard",
        f"{index}/{count}",
    ]


def run_workers(config_path: str, count: int, log_level: str) -> int:
    """Run ``count`` workers until a signal stops them; return the exit code."""
    upgrade = [sys.executable, "-m", "monitor", "db", "upgrade", "-c", config_path]
    checked = subprocess.run(upgrade, stdout=subprocess.DEVNULL, check=False)
    if checked.returncode != 0:
        return checked.returncode  # it said why on stderr
    workers: dict[int, subprocess.Popen[bytes]] = {}
    stopping = False

    def pass_on(signum: int, _frame: FrameType | None) -> None:
        nonlocal stopping
        if signum != signal.SIGHUP:
            stopping = True
        for worker in workers.values():
            if worker.returncode is None:
                worker.send_signal(signum)

    previous = {sig: signal.signal(sig, pass_on) for sig in _PASSED_ON}
    try:
        for index in range(count):
            argv = worker_argv(config_path, log_level, index, count)
            workers[index] = subprocess.Popen(argv, preexec_fn=_die_with_parent)
        pids = ",".join(str(w.pid) for w in workers.values())
        logs.event(log, "workers.started", count=count, pids=pids)
        failed = _wait_all(workers, lambda: stopping)
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    logs.event(log, "workers.stopped", logging.ERROR if failed else logging.INFO, failed=failed)
    return 1 if failed else 0


def _die_with_parent() -> None:
    """In the child before exec (Linux): SIGTERM when the parent dies, even by SIGKILL,
    so no worker goes on alone firing its share with nobody to restart the set."""
    if sys.platform == "linux":
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)


_PR_SET_PDEATHSIG = 1


def _wait_all(workers: dict[int, subprocess.Popen[bytes]], stopping: Callable[[], bool]) -> int:
    """Wait for every worker; the first that exits unasked stops the rest. Returns how
    many exited with an error, or unasked."""
    by_pid = {worker.pid: index for index, worker in workers.items()}
    failed = 0
    told = False  # the rest were stopped because one died
    while by_pid:
        pid, status = os.wait()  # a signal runs pass_on, then the wait goes on
        index = by_pid.pop(pid, None)
        if index is None:
            continue
        code = os.waitstatus_to_exitcode(status)
        workers[index].returncode = code
        asked = told or stopping()
        if code == 0 and asked:
            continue
        failed += 1
        logs.event(log, "worker.exited", logging.ERROR, worker=index, code=code, asked=asked)
        if not asked:
            told = True
            for other in workers.values():
                if other.returncode is None:
                    other.send_signal(signal.SIGTERM)
    return failed
