"""Pure: what alert messages say, and which outbox rows become which message.

``render`` fills the configured templates (``str.format``) from an alert's facts. Besides
every field of ``AlertFacts`` (``monitor``, ``event``, ``state``, ``verdict``, ``cause``,
``layer``, ``summary``, ``hint``, ``evidence``, ``timings``, ``addresses``, ``opened_at``,
``time``, ``closed_at``), a template may use these derived fields:

- ``event_upper``: the event in capitals (``DOWN``, ``RECOVERED``, ...);
- ``down_for``: how long the incident has been open at the event, e.g. ``12 min``;
- ``duration``: from opening to closing (on recovery; otherwise the same as ``down_for``);
- ``evidence_lines``, ``timing_lines``: the evidence and phase timings, one per line;
- ``ref``: a reference that names the alert, ``<monitor>/<opened_at>/<event>/<offset>s``,
  so a receiver can recognise a repeat (a retried send) of the same alert.

An empty template means the built-in one. A template that fails at send time (the
config parser rejects most at load time with ``check_template``) falls back to the built-in
one and the body says so: a template mistake never loses an alert. Custom templates give
the same text to plain and Markdown channels; grouped and canary messages are built-in.

``compose`` turns the due outbox rows into messages, per notifier:

- storm: rows of one event kind, due within ``group_window`` seconds of the earliest and
  sharing an origin address or a cause, covering at least ``group_min`` (and at least two)
  monitors, become one message naming them all; an address is preferred to a cause when
  both cover as many monitors;
- wait: a row not yet tried whose group's window (from its earliest row) is still open is
  left pending in ``wait``, as more rows may join it; so no row waits longer than
  ``group_window``. Self alerts never wait and are never grouped;
- canary: while the canary fails, every row but self alerts is held (``held``: left
  pending) and each notifier with held rows gets one notice that our own network looks
  down. The notice settles no rows (``alert_ids`` is empty) and is composed on every call
  while the canary fails: the worker sends it once per notifier per canary outage.

Everything comes out in due order (``due_at``, then ``id``), notices first.
"""

from __future__ import annotations

import string
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, fields, replace
from datetime import UTC, datetime, timedelta

from monitor.judge.alerting import (
    AlertFacts,
    AlertSettings,
    Event,
    Message,
    PendingAlert,
    Templates,
)

DERIVED = ("event_upper", "down_for", "duration", "evidence_lines", "timing_lines", "ref")
FIELDS = (*(f.name for f in fields(AlertFacts)), *DERIVED)
"""Every name a template may use."""

_BUILT_IN = Templates()
_TITLE_MAX = 119
_NAMED = {  # an event as a sentence says it of one monitor, of several, and in a title
    Event.DOWN: ("is DOWN", "are DOWN", "down"),
    Event.DEGRADED: ("is DEGRADED", "are DEGRADED", "degraded"),
    Event.RECOVERED: ("has RECOVERED", "have RECOVERED", "recovered"),
    Event.FLAPPING: ("is FLAPPING", "are FLAPPING", "flapping"),
    Event.REMINDER: ("is still failing", "are still failing", "still failing"),
    Event.SELF: ("reports", "report", "self"),
}
_NETWORK_HINT = (
    "the network of the host running the monitor: its link, DNS resolvers, firewall and "
    "proxy; site alerts are sent once the canary answers again"
)


def human_duration(seconds: float) -> str:
    """``seconds`` as people say it, to the largest two units: ``45 s``, ``12 min``,
    ``1 h 5 min``, ``2 d 3 h``."""
    whole = max(0, int(seconds))
    if whole < 60:
        return f"{whole} s"
    minutes = whole // 60
    if minutes < 60:
        return f"{minutes} min"
    hours, minutes = divmod(minutes, 60)
    if hours < 24:
        return f"{hours} h {minutes} min" if minutes else f"{hours} h"
    days, hours = divmod(hours, 24)
    return f"{days} d {hours} h" if hours else f"{days} d"


def reference(facts: AlertFacts) -> str:
    """The same for every send of one alert, different for every alert."""
    offset = int(_seconds(facts.opened_at, facts.time))
    return f"{facts.monitor}/{facts.opened_at.isoformat()}/{facts.event.value}/{offset}s"


def template_fields(facts: AlertFacts) -> dict[str, object]:
    """The values of every name in ``FIELDS`` for ``facts``."""
    values: dict[str, object] = {f.name: getattr(facts, f.name) for f in fields(facts)}
    values.update(
        event_upper=facts.event.value.upper(),
        down_for=human_duration(_seconds(facts.opened_at, facts.time)),
        duration=_how_long(facts),
        evidence_lines="\n".join(facts.evidence),
        timing_lines="\n".join(facts.timings),
        ref=reference(facts),
    )
    return values


def check_template(text: str) -> str | None:
    """Why ``text`` cannot be a template (unknown field, bad braces, ...), or None."""
    for facts in _SAMPLES:
        _, error = _fill(text, facts)
        if error is not None:
            return f"{error} (filling it for a {facts.event.value} alert)"
    return None


def render(facts: AlertFacts, templates: Templates, markdown: bool) -> tuple[str, str]:
    """The title (one line, under 120 characters) and body of the alert ``facts`` describe."""
    notes = []
    title, error = _fill(templates.title or _BUILT_IN.title, facts)
    if error is not None:
        title, _ = _fill(_BUILT_IN.title, facts)
        notes.append(f"the title template failed ({error}); the built-in title is used")
    body, error = _fill(templates.body, facts) if templates.body else ("", None)
    if error is not None:
        notes.append(f"the body template failed ({error}); the built-in body is used")
    if error is not None or not templates.body:
        body = _body(facts, markdown)
    return _one_line(title), "\n\n".join([body, *(f"note: {n}" for n in notes)])


@dataclass(frozen=True, slots=True)
class Composed:
    """What to send now, and which due rows to leave pending: ``held`` while the canary
    fails, ``wait`` while their group may still grow. Rows in neither are in a message."""

    messages: tuple[Message, ...]
    held: tuple[int, ...]
    wait: tuple[int, ...]


def compose(
    due: Sequence[PendingAlert], now: datetime, settings: AlertSettings, canary_down: bool
) -> Composed:
    """The messages for the ``due`` rows at ``now`` (see the module's docstring)."""
    rows = sorted(due, key=_order)
    held = [r for r in rows if canary_down and r.event is not Event.SELF]
    held_ids = _ids(held)
    sent: list[tuple[PendingAlert, Message]] = []
    wait: list[PendingAlert] = []
    for batch in _batches(r for r in rows if r.id not in held_ids):
        for members, key in _clusters(batch, settings):
            if _may_grow(members[0], now, settings.group_window):
                wait.extend(members)
            elif key is None:
                sent.extend((r, _single(r, settings.templates)) for r in members)
            else:
                sent.append((members[0], _storm(members, key)))
    sent.sort(key=lambda pair: _order(pair[0]))
    messages = (*_notices(held, settings.canary), *(m for _, m in sent))
    return Composed(messages, held_ids, _ids(wait))


_Key = tuple[str, str]  # ("address", "203.0.113.10") or ("cause", "connect_refused")


def _batches(rows: Iterable[PendingAlert]) -> list[list[PendingAlert]]:
    """``rows`` (in due order) by notifier and event."""
    batches: dict[tuple[str, Event], list[PendingAlert]] = {}
    for row in rows:
        batches.setdefault((row.notifier, row.event), []).append(row)
    return list(batches.values())


def _clusters(
    batch: list[PendingAlert], settings: AlertSettings
) -> list[tuple[list[PendingAlert], _Key | None]]:
    """The batch cut into groups (with the key they share) and single rows (key None):
    each takes, from the earliest row left, the rows within the window that share a key."""
    minimum = max(2, settings.group_min)
    clusters: list[tuple[list[PendingAlert], _Key | None]] = []
    left = batch
    while left:
        first = left[0]
        near = [r for r in left if _seconds(first.due_at, r.due_at) <= settings.group_window]
        key, members = (None, [first]) if first.event is Event.SELF else _best(near, minimum)
        clusters.append((members, key))
        taken = _ids(members)
        left = [r for r in left if r.id not in taken]
    return clusters


def _best(near: list[PendingAlert], minimum: int) -> tuple[_Key | None, list[PendingAlert]]:
    """The key of ``near[0]`` shared by the most monitors in ``near``, if enough share it."""
    best: tuple[_Key | None, list[PendingAlert]] = (None, near[:1])
    for key in _keys(near[0].facts):
        members = [r for r in near if key in _keys(r.facts)]
        count = len(_monitors(members))
        if count >= minimum and count > len(_monitors(best[1])):
            best = (key, members)
    return best


def _keys(facts: AlertFacts) -> tuple[_Key, ...]:
    return (*(("address", a) for a in facts.addresses), ("cause", facts.cause))


def _may_grow(first: PendingAlert, now: datetime, window: float) -> bool:
    """Whether the group ``first`` starts may still gain rows: a retried row does not wait."""
    young = _seconds(first.due_at, now) < window
    return young and first.attempts == 0 and first.event is not Event.SELF


def _single(row: PendingAlert, templates: Templates) -> Message:
    title, body = render(row.facts, templates, markdown=False)
    _, markdown = render(row.facts, templates, markdown=True)
    return Message(row.notifier, title, body, markdown, (row.id,))


def _storm(rows: list[PendingAlert], key: _Key) -> Message:
    first = rows[0]
    names = _monitors(rows)
    shared = f" ({_shared(key)})" if _shared(key) else ""
    word = _NAMED[first.event][2]
    title = f"[{first.event.value.upper()}] {len(names)} sites {word}{shared}: {', '.join(names)}"
    plain, markdown = (_storm_body(rows, key, md) for md in (False, True))
    return Message(first.notifier, _one_line(title), plain, markdown, _ids(rows))


def _storm_body(rows: list[PendingAlert], key: _Key, md: bool) -> str:
    first = rows[0].facts
    shared = f", all with {_shared(key)}" if _shared(key) else ""
    headline = f"{len(_monitors(rows))} sites {_NAMED[first.event][1]}{shared}:"
    sites = [_site(r.facts, md) for r in rows]
    parts = [_bold(headline, md), "\n".join(sites)]
    if first.hint:
        parts.append(_label(f"check (from {first.monitor})", first.hint, md))
    parts += _block(f"evidence (from {first.monitor})", first.evidence, md)
    ref = f"{first.event.value}/{key[0]}={key[1]}/{first.time.isoformat()}"
    return _join([*parts, _label("ref", _code(ref, md), md)], md)


def _shared(key: _Key) -> str:
    """What a group's rows share, in words; nothing for recoveries' shared ``ok``."""
    return "" if key == ("cause", "ok") else f"{key[0]} {key[1]}"


def _site(facts: AlertFacts, md: bool) -> str:
    name = f"- **{facts.monitor}**" if md else f"  {facts.monitor}"
    span = "" if _just_opened(facts) else f" ({_what(facts)} for {_how_long(facts)})"
    return f"{name}: {facts.summary}{span}"


def _notices(held: list[PendingAlert], canary: str | None) -> list[Message]:
    """One notice per notifier that has held rows, in notifier order."""
    notifiers = sorted({r.notifier for r in held})
    return [_notice([r for r in held if r.notifier == n], canary or "") for n in notifiers]


def _notice(rows: list[PendingAlert], canary: str) -> Message:
    count = f"{len(rows)} site alert{'' if len(rows) == 1 else 's'}"
    title = f"[CANARY] the monitor's own network looks down: {count} held"
    headline = (
        f"The canary {canary} fails, so the monitor's own network looks down: "
        "what it sees of the other sites now may be its own fault."
    )
    bodies = []
    for md in (False, True):
        held = [f"{'- ' if md else '  '}{r.facts.monitor}: {r.event.value}" for r in rows]
        parts = [
            _bold(headline, md),
            _label("held until the canary answers", count, md),
            "\n".join(held),
            _label("check", _NETWORK_HINT, md),
            _label("ref", _code(f"canary/{canary}/{rows[0].due_at.isoformat()}", md), md),
        ]
        bodies.append(_join(parts, md))
    return Message(rows[0].notifier, title, bodies[0], bodies[1], ())


def _body(facts: AlertFacts, md: bool) -> str:
    """The built-in body: what broke, where, since when, what shows it, what to check."""
    headline = f"{facts.monitor} {_NAMED[facts.event][0]}"
    parts = [f"**{headline}**: {facts.summary}" if md else f"{headline}: {facts.summary}"]
    if facts.event not in (Event.RECOVERED, Event.SELF):
        named = (("verdict", facts.verdict), ("cause", facts.cause), ("layer", facts.layer))
        parts.append(", ".join(_label(n, _code(v, md), md) for n, v in named if v))
    if facts.event is not Event.SELF:
        parts.append(_since(facts, md))
    if facts.hint:
        parts.append(_label("check", facts.hint, md))
    parts += _block("evidence", facts.evidence, md)
    parts += _block("timings", facts.timings, md)
    parts.append(_label("ref", _code(reference(facts), md), md))
    return _join(parts, md)


def _what(facts: AlertFacts) -> str:
    """What the monitor is (or was) in the incident: "down", "was failing", ..."""
    if facts.event is Event.RECOVERED:
        return "was failing"
    return "flapping" if facts.event is Event.FLAPPING else facts.state


def _how_long(facts: AlertFacts) -> str:
    return human_duration(_seconds(facts.opened_at, facts.closed_at or facts.time))


def _just_opened(facts: AlertFacts) -> bool:
    """The alert of an incident's opening: saying "for 0 s" would tell nothing."""
    return facts.event is not Event.RECOVERED and facts.time <= facts.opened_at


def _since(facts: AlertFacts, md: bool) -> str:
    opened = _when(facts.opened_at)
    if facts.event is Event.RECOVERED:
        closed = _when(facts.closed_at or facts.time)
        return _label(f"{_what(facts)} for", f"{_how_long(facts)} ({opened} to {closed})", md)
    if _just_opened(facts):
        return _label(f"{_what(facts)} since", opened, md)
    return _label(f"{_what(facts)} for", f"{_how_long(facts)} (since {opened})", md)


def _label(name: str, value: str, md: bool) -> str:
    return f"**{name[:1].upper()}{name[1:]}:** {value}" if md else f"{name}: {value}"


def _bold(text: str, md: bool) -> str:
    return f"**{text}**" if md else text


def _code(text: str, md: bool) -> str:
    return f"`{text}`" if md else text


def _block(name: str, lines: Sequence[str], md: bool) -> list[str]:
    """Lines under a label (in a code block for Markdown), or nothing if there are none."""
    if not lines:
        return []
    if md:
        return [f"**{name[:1].upper()}{name[1:]}:**\n```\n" + "\n".join(lines) + "\n```"]
    return [f"{name}:\n" + "\n".join(f"  {line}" for line in lines)]


def _join(parts: Iterable[str], md: bool) -> str:
    """Markdown renderers may merge single line breaks, so there each part is a paragraph."""
    return ("\n\n" if md else "\n").join(parts)


def _fill(template: str, facts: AlertFacts) -> tuple[str, str | None]:
    """``template`` filled from ``facts``, or ("", why it cannot be)."""
    try:
        list(_FORMATTER.parse(template))
    except ValueError as exc:
        return "", f"bad braces: {exc}; write {{{{ or }}}} for a brace itself"
    try:
        return template.format_map(template_fields(facts)), None
    except KeyError as exc:
        return "", f"unknown field {{{exc.args[0]}}}; known: {', '.join(FIELDS)}"
    except (ValueError, AttributeError, IndexError, TypeError) as exc:
        return "", f"bad field: {exc}"


def _one_line(text: str) -> str:
    line = " ".join(text.split())
    return line if len(line) <= _TITLE_MAX else line[: _TITLE_MAX - 1] + "…"


def _when(time: datetime) -> str:
    return time.strftime("%Y-%m-%d %H:%M:%S %Z").rstrip()


def _seconds(start: datetime, end: datetime) -> float:
    return (end - start).total_seconds()


def _order(row: PendingAlert) -> tuple[datetime, int]:
    return row.due_at, row.id


def _ids(rows: Iterable[PendingAlert]) -> tuple[int, ...]:
    return tuple(r.id for r in rows)


def _monitors(rows: Iterable[PendingAlert]) -> list[str]:
    return list(dict.fromkeys(r.facts.monitor for r in rows))


_FORMATTER = string.Formatter()
_T0 = datetime(2026, 1, 1, tzinfo=UTC)
_LATER = _T0 + timedelta(minutes=5)
_DOWN = AlertFacts(
    monitor="shop",
    event=Event.DOWN,
    state="down",
    verdict="origin_fault",
    cause="connect_refused",
    layer="origin",
    summary="origin o1 fails (connection refused), so the edge fails too",
    hint="start it",
    evidence=("origin o1: connection refused after 0.00 s",),
    timings=("origin o1: connect_refused; connect 1 ms, total 1 ms",),
    addresses=("192.0.2.1",),
    opened_at=_T0,
    time=_T0,
)
_SAMPLES = (
    _DOWN,
    replace(_DOWN, event=Event.RECOVERED, state="up", time=_LATER, closed_at=_LATER),
)
"""Templates are checked against a down and a recovery: a template must work for both."""
