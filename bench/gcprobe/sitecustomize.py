"""Put into the daemon by ``bench/run.py --gc-stats`` (as ``sitecustomize``, through
PYTHONPATH): times every garbage collection and writes them, as JSON, to the file named by
BENCH_GC_STATS plus ``.PID`` when the process exits. A diagnostic only; the daemon's code
is unchanged."""

import atexit
import gc
import json
import os
import time

_OUT = os.environ.get("BENCH_GC_STATS")

if _OUT:
    _started = [0.0]
    _pauses: list[tuple[float, int, float, int]] = []  # (end, generation, seconds, collected)

    def _on_gc(phase: str, info: dict[str, int]) -> None:
        now = time.perf_counter()
        if phase == "start":
            _started[0] = now
        else:
            _pauses.append((time.time(), info["generation"], now - _started[0], info["collected"]))

    def _write(path: str = _OUT) -> None:
        # One file a process: with --workers the parent and each worker write their own.
        with open(f"{path}.{os.getpid()}", "w") as out:
            json.dump(_pauses, out)

    gc.callbacks.append(_on_gc)
    atexit.register(_write)
