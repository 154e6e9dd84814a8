"""``monitor check``: one round from the shell, printed, with an exit code for scripts."""

from __future__ import annotations

import json
import sys
from datetime import UTC, datetime
from urllib.parse import urlsplit

from monitor.app.report import as_json, as_text
from monitor.config.durations import parse_duration
from monitor.config.load import Config
from monitor.engine.runner import probe_round
from monitor.errors import MonitorError
from monitor.hostport import redacted_url
from monitor.judge.diagnose import Verdict, diagnose
from monitor.judge.maintenance import Window, window_at
from monitor.models import Monitor, Origin, Site
from monitor.probes import make_clients


class UsageError(MonitorError):
    """The command line asks for something that cannot be checked."""


def site_from_arguments(url: str, origins: list[str], timeout: str) -> Site:
    """A one-off site from ``monitor check URL --origin ... --timeout ...``."""
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise UsageError(f"{redacted_url(url)!r} is not an http:// or https:// URL with a host")
    try:
        seconds = parse_duration(timeout)
    except ValueError as exc:
        raise UsageError(f"--timeout: {exc}") from None
    return Site(
        name=parts.hostname,
        url=url,
        interval=seconds * 2,
        timeout=seconds,
        origins=tuple(_origin(f"origin-{i}", text) for i, text in enumerate(origins, start=1)),
    )


def _origin(name: str, text: str) -> Origin:
    if text.startswith(("http://", "https://")):
        return Origin(name=name, url=text)
    if not text or "/" in text:
        raise UsageError(f"--origin {text!r} is neither an address (host[:port]) nor a URL")
    return Origin(name=name, address=text)


def monitor_from_config(config: Config, name: str) -> Monitor:
    for monitor in config.monitors:
        if monitor.name == name:
            return monitor
    known = ", ".join(m.name for m in config.monitors)
    raise UsageError(f"no site or check named {name!r} in the config (there are: {known})")


async def check_once(
    monitor: Monitor, *, as_json_output: bool, windows: tuple[Window, ...] = ()
) -> int:
    """Probe ``monitor`` once, print the results; 0 when it is up, 1 when not."""
    now = datetime.now(UTC)
    async with make_clients() as clients:
        results = await probe_round(clients, monitor, now)
    window = window_at(windows, monitor.name, now)
    diagnosis = diagnose(results, None if window is None else window.describe())
    if as_json_output:
        json.dump(as_json(results, diagnosis), sys.stdout, indent=2)
        sys.stdout.write("\n")
    else:
        sys.stdout.write(as_text(results, diagnosis))
    return 0 if diagnosis.verdict is Verdict.UP else 1
