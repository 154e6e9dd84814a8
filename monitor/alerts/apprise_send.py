"""The one place Apprise is called: one Apprise object per notifier, each send time-limited.

Apprise runs the blocking sends in its own worker threads (``async_notify``), so the event
loop never waits on a slow SMTP server; it reports failure as a result, which becomes a
``NotifyError`` here. One Apprise object per notifier keeps a plugin's own throttle (5.5 s
between two e-mails of one object) to that notifier: callers send to different notifiers
concurrently.
"""

from __future__ import annotations

import asyncio
import logging
import socket
import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import cache
from urllib.parse import urlsplit

import apprise
from apprise import AppriseAsset, NotifyFormat, NotifyType
from apprise.plugins import N_MGR

from monitor.errors import NotifyError
from monitor.judge.alerting import Notifier

TONES = {
    "info": NotifyType.INFO,
    "success": NotifyType.SUCCESS,
    "warning": NotifyType.WARNING,
    "failure": NotifyType.FAILURE,
}
"""How a message looks where the channel colours it (Slack, Discord, ...)."""


@dataclass(frozen=True, slots=True)
class _Channel:
    apprise: apprise.Apprise
    markdown: bool  # the channel renders Markdown (its own format, or ?format=markdown)


class Channels:
    """Sends to the configured notifiers by name."""

    def __init__(self, notifiers: Sequence[Notifier], timeout: float) -> None:
        """Raises NotifyError (permanent) for a URL Apprise cannot use."""
        _load_plugins()
        self._timeout = timeout
        self._channels: dict[str, _Channel] = {}
        asset = AppriseAsset(app_id="monitor", app_desc="monitor: uptime alerts")
        for notifier in notifiers:
            service = apprise.Apprise.instantiate(notifier.url, asset=asset)
            if service is None:
                raise NotifyError(
                    f"notifier {notifier.name}: {url_problem(notifier.url)}", permanent=True
                )
            obj = apprise.Apprise(asset=asset)
            obj.add(service)
            markdown = service.resolve_format() is NotifyFormat.MARKDOWN
            self._channels[notifier.name] = _Channel(obj, markdown)

    def __contains__(self, name: object) -> bool:
        return name in self._channels

    async def send(
        self, name: str, title: str, body: str, markdown: str, tone: str = "info"
    ) -> None:
        """Send one message to notifier ``name``: the Markdown text where it renders
        Markdown, else the plain one; ``tone`` is one of ``TONES``. Raises NotifyError when
        it was not delivered (or not within the timeout: then it may still arrive later)."""
        channel = self._channels.get(name)
        if channel is None:
            raise NotifyError(f"no notifier named {name!r} is configured", permanent=True)
        text, form = (
            (markdown, NotifyFormat.MARKDOWN) if channel.markdown else (body, NotifyFormat.TEXT)
        )
        try:
            result = await asyncio.wait_for(
                channel.apprise.async_notify(
                    body=text, title=title, body_format=form, notify_type=TONES[tone]
                ),
                self._timeout,
            )
        except TimeoutError:
            raise NotifyError(f"no answer within {self._timeout:g} s", permanent=False) from None
        if not result:
            raise NotifyError(_reason(result), permanent=False)


async def send_test(notifier: Notifier, time_limit: float) -> str | None:
    """Send a test message to ``notifier``; None when it was delivered, else why not."""
    try:
        channels = Channels((notifier,), time_limit)
        host = socket.gethostname()
        text = (
            f"A test message from the monitor on {host}: if you read this, alerts through "
            f"the notifier {notifier.name} arrive. Sent {datetime.now(UTC):%Y-%m-%d %H:%M:%S %Z}."
        )
        await channels.send(notifier.name, f"[TEST] monitor: {notifier.name} works", text, text)
    except NotifyError as exc:
        return str(exc)
    return None


def url_problem(url: str) -> str | None:
    """Why Apprise cannot use ``url``, or None when it can. Says nothing of the URL's
    fields: they hold tokens and passwords."""
    _load_plugins()
    if apprise.Apprise.instantiate(url) is not None:
        return None
    scheme = urlsplit(url).scheme if "://" in url else ""
    if not scheme or scheme.lower() not in N_MGR:
        return f"Apprise knows no service {scheme + '://' if scheme else 'in this URL'}"
    return f"Apprise cannot use this {scheme}:// URL: check its fields (tokens, host, targets)"


def _reason(result: apprise.AppriseResult) -> str:
    said = [
        entry.message for entry in result.logs() if entry.level in ("WARNING", "ERROR", "CRITICAL")
    ]
    return "; ".join(said) or f"Apprise reported {result.status.name.lower()}"


@cache
def _load_plugins() -> None:
    """Load Apprise's plugins once, up front: its e-mail plugin imports ``imghdr``, whose
    DeprecationWarning would otherwise surface at the first send (an error under -W error)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        apprise.Apprise.instantiate("json://localhost")  # loads every plugin
    # Apprise logs each send at INFO; the worker logs its own event per alert.
    logging.getLogger("apprise").setLevel(logging.WARNING)
