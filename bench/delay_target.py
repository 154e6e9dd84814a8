"""The false-alarm benchmark's target: an aiohttp server on 127.0.0.1 whose delay per path
follows a schedule given at start (bench/false_alarms.py runs it as a subprocess).

Every path answers ``200 ok``; a path named in the schedule first waits its delay, which
depends only on the clock, so no control channel is needed:

    {"lat-step": {"base": 0.2, "step_at": 1733240000.0, "factor": 3.0},
     "lat-creep": {"base": 0.2, "creep_at": 1733240000.0, "rate": 0.02, "every": 5.0,
                   "cap": 0.8}}

``base`` seconds until ``step_at`` (POSIX time), then ``base * factor``; or ``base`` until
``creep_at``, then ``base * (1 + rate) ** k`` in the k-th ``every`` seconds after it, at
most ``cap``. A path not in the schedule answers at once.

    python bench/delay_target.py --port 8080 --schedule schedule.json
"""

from __future__ import annotations

import argparse
import asyncio
import json
import math
import time
from collections.abc import Mapping
from pathlib import Path

Spec = Mapping[str, float]


def delay(spec: Spec | None, now: float) -> float:
    """Seconds the path with ``spec`` waits before answering at POSIX time ``now``."""
    if spec is None:
        return 0.0
    base = spec.get("base", 0.0)
    if "step_at" in spec and now >= spec["step_at"]:
        return base * spec.get("factor", 1.0)
    if "creep_at" in spec and now >= spec["creep_at"]:
        k = math.floor((now - spec["creep_at"]) / spec["every"])
        grown = base * (1 + spec["rate"]) ** k
        return min(grown, spec.get("cap", math.inf))
    return base


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--schedule", type=Path, required=True, help="JSON: path -> spec")
    args = parser.parse_args()
    schedule: dict[str, Spec] = json.loads(args.schedule.read_text())
    from aiohttp import web

    async def answer(request: web.Request) -> web.Response:
        wait = delay(schedule.get(request.match_info["name"]), time.time())
        if wait > 0:
            await asyncio.sleep(wait)
        return web.Response(text="ok: monitor false-alarm target\n")

    app = web.Application()
    app.router.add_get("/{name}", answer)
    # Loopback only: nothing outside the machine can reach it.
    web.run_app(app, host="127.0.0.1", port=args.port, access_log=None, print=None)


if __name__ == "__main__":
    main()
