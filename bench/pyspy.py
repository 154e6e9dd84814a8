"""Profile the running daemon with py-spy: a flame graph (SVG) and collapsed stacks, read
back into the functions that take the most samples (on their own and with callees)."""

from __future__ import annotations

import shutil
import subprocess
from collections import Counter
from pathlib import Path
from typing import Any

import procs


def start(pid: int, seconds: float, out: Path, log: Path) -> list[subprocess.Popen[bytes]]:
    """Sample ``pid`` for ``seconds`` into ``out``.svg and ``out``.txt (collapsed stacks),
    without pausing it (--nonblocking), idle threads left out."""
    py_spy = shutil.which("py-spy")
    if py_spy is None:
        raise RuntimeError("py-spy is not installed: pip install py-spy")
    common = [py_spy, "record", "--pid", str(pid), "--duration", f"{seconds:.0f}"]
    common += ["--nonblocking", "--function"]  # by function, not by line
    return [
        procs.start([*common, "--format", "flamegraph", "-o", f"{out}.svg"], log),
        procs.start([*common, "--format", "raw", "-o", f"{out}.txt"], log),
    ]


def wait(running: list[subprocess.Popen[bytes]], timeout: float) -> None:
    for proc in running:
        try:
            proc.wait(timeout)
        except subprocess.TimeoutExpired:
            procs.stop(proc, grace=5, sig=2)  # SIGINT: py-spy still writes what it has


def top(collapsed: Path, count: int = 25) -> dict[str, Any]:
    """The functions with the most samples: ``self`` (on top of the stack) and ``total``
    (anywhere on it), as percentages of all samples."""
    own: Counter[str] = Counter()
    total: Counter[str] = Counter()
    samples = 0
    for line in collapsed.read_text().splitlines():
        stack, _, n_text = line.rpartition(" ")
        if not stack:
            continue
        n = int(n_text)
        samples += n
        frames = [_short(frame) for frame in stack.split(";")]
        own[frames[-1]] += n
        for frame in set(frames):
            total[frame] += n
    if samples == 0:
        return {"samples": 0, "self": [], "total": []}

    def share(counter: Counter[str]) -> list[tuple[str, float]]:
        return [(f, round(100 * n / samples, 1)) for f, n in counter.most_common(count)]

    return {"samples": samples, "self": share(own), "total": share(total)}


def _short(frame: str) -> str:
    """``fn (/long/path/site-packages/pkg/mod.py:12)`` -> ``fn (pkg/mod.py:12)``."""
    name, _, where = frame.partition(" (")
    if not where:
        return frame
    path, _, line = where.rstrip(")").rpartition(":")
    for marker in ("site-packages/", "/lib/python3.11/", "/code/"):
        if marker in path:
            path = path.split(marker, 1)[1]
            break
    return f"{name} ({path}:{line})"
