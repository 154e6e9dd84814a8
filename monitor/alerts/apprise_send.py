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
import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from functools import cache
from urllib.parse import urlsplit

import apprise
from apprise import NotifyFormat
from apprise.plugins import N_MGR

from monitor.alerts.model import Notifier
from monitor.errors import NotifyError


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
        for notifier in notifiers:
            service = apprise.Apprise.instantiate(notifier.url)
            if service is None:
                raise NotifyError(
                    f"notifier {notifier.name}: {url_problem(notifier.url)}", permanent=True
                )
            obj = apprise.Apprise()
            obj.add(service)
            markdown = service.resolve_format() is NotifyFormat.MARKDOWN
            self._channels[notifier.name] = _Channel(obj, markdown)

    def __contains__(self, name: object) -> bool:
        return name in self._channels

    async def send(self, name: str, title: str, body: str, markdown: str) -> None:
        """Send one message to notifier ``name``: the Markdown text where it renders
        Markdown, else the plain one. Raises NotifyError when it was not delivered (or not
        within the timeout: then the send may still arrive later)."""
        channel = self._channels.get(name)
        if channel is None:
            raise NotifyError(f"no notifier named {name!r} is configured", permanent=True)
        text, form = (
            (markdown, NotifyFormat.MARKDOWN) if channel.markdown else (body, NotifyFormat.TEXT)
        )
        try:
            result = await asyncio.wait_for(
                channel.apprise.async_notify(body=text, title=title, body_format=form),
                self._timeout,
            )
        except TimeoutError:
            raise NotifyError(f"no answer within {self._timeout:g} s", permanent=False) from None
        if not result:
            raise NotifyError(_reason(result), permanent=False)


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
