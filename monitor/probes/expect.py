"""Judge an HTTP answer against a site's expectations: which ones it fails, and why.

Pure: no I/O, no clock. Each expectation is named after its ``Expect`` field, so the names
in ``ProbeResult.failed`` match the config.
"""

from __future__ import annotations

import functools
import json
import re
from collections.abc import Iterator
from dataclasses import dataclass

from monitor import jsonpath
from monitor.models import Expect, JsonExpect, StatusRange

_VALUE_LIMIT = 60


@dataclass(frozen=True, slots=True)
class Answer:
    """What a server answered, as far as the expectations look."""

    status: int
    body: bytes = b""  # the first bytes of the body only
    body_truncated: bool = False
    headers: tuple[tuple[str, str], ...] = ()  # every response header, as received
    latency: float = 0.0  # the probe's total, seconds


@dataclass(frozen=True, slots=True)
class Failure:
    """One unmet expectation: its name and one human line about it."""

    name: str
    detail: str


def unmet(answer: Answer, expect: Expect) -> tuple[Failure, ...]:
    """The expectations ``answer`` fails, in the order of ``Expect``'s fields.

    Body expectations look only at the bytes kept, decoded as UTF-8.
    """
    return tuple(_unmet(answer, expect))


def _unmet(answer: Answer, expect: Expect) -> Iterator[Failure]:
    if not expect.accepts_status(answer.status):
        yield Failure("status", f"expected status {ranges(expect.status)}, got {answer.status}")
    text = answer.body.decode("utf-8", "replace")
    if expect.body_contains is not None and expect.body_contains not in text:
        yield Failure("body_contains", f"body does not contain {expect.body_contains!r}")
    if expect.body_not_contains is not None and expect.body_not_contains in text:
        yield Failure("body_not_contains", f"body contains {expect.body_not_contains!r}")
    if expect.body_matches is not None and not _regex(expect.body_matches).search(text):
        yield Failure("body_matches", f"body does not match {expect.body_matches!r}")
    json_problem = _json_problem(answer, expect.json)
    if json_problem is not None:
        yield Failure("json", json_problem)
    header_problem = _header_problem(answer.headers, expect.headers)
    if header_problem is not None:
        yield Failure("headers", header_problem)
    if expect.max_latency is not None and answer.latency > expect.max_latency:
        yield Failure(
            "max_latency", f"took {answer.latency:.3g}s, more than {expect.max_latency:g}s"
        )


def ranges(status: tuple[StatusRange, ...]) -> str:
    """Accepted status ranges for people: ``200 or 301-302``."""
    return " or ".join(str(r.low) if r.low == r.high else f"{r.low}-{r.high}" for r in status)


@functools.lru_cache(maxsize=256)
def _regex(pattern: str) -> re.Pattern[str]:
    # Patterns come from the config, a handful per site: compile each once, not per check.
    return re.compile(pattern)


def _json_problem(answer: Answer, expects: tuple[JsonExpect, ...]) -> str | None:
    if not expects:
        return None
    try:
        document = json.loads(answer.body)
    except (ValueError, RecursionError):  # a hostile server can nest deeper than Python goes
        cut = f" (cut at {len(answer.body)} bytes)" if answer.body_truncated else ""
        return f"json {expects[0].path}: body is not JSON{cut}"
    for expect in expects:
        problem = _json_value_problem(document, expect)
        if problem is not None:
            return f"json {expect.path}: {problem}"
    return None


def _json_value_problem(document: object, expect: JsonExpect) -> str | None:
    try:
        value = jsonpath.find(document, expect.path)
    except LookupError as missing:
        return f"{missing} not found"
    if expect.matches is not None:
        text = value if isinstance(value, str) else json.dumps(value)
        if not _regex(expect.matches).search(text):
            return f"{_show(value)} does not match {expect.matches!r}"
    elif not _json_equal(value, expect.equals):
        return f"expected {_show(expect.equals)}, got {_show(value)}"
    return None


def _json_equal(a: object, b: object) -> bool:
    """JSON equality: ``true`` is not ``1`` (as Python's ``==`` would say), ``1`` is ``1.0``."""
    if isinstance(a, bool) or isinstance(b, bool):
        return a is b
    if isinstance(a, list) and isinstance(b, list):
        return len(a) == len(b) and all(map(_json_equal, a, b))
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(_json_equal(a[key], b[key]) for key in a)
    return a == b


def _header_problem(
    headers: tuple[tuple[str, str], ...], expects: tuple[tuple[str, str], ...]
) -> str | None:
    for name, pattern in expects:
        values = [value for key, value in headers if key.lower() == name.lower()]
        if not values:
            return f"header {name} missing"
        if not any(_regex(pattern).search(value) for value in values):
            return f"header {name}: {_show(values[0])} does not match {pattern!r}"
    return None


def _show(value: object) -> str:
    """A JSON value for a detail line, cut short so the line stays one short line."""
    shown = json.dumps(value, ensure_ascii=False, default=str)  # YAML may give a date
    return shown if len(shown) <= _VALUE_LIMIT else shown[: _VALUE_LIMIT - 3] + "..."
