"""The captured Varnish and nginx responses in tests/fixtures/error-pages, parsed."""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "error-pages"


@dataclass(frozen=True, slots=True)
class Captured:
    status: int
    headers: tuple[tuple[str, str], ...]
    body: bytes
    seconds: float  # curl's time_total


def load(name: str) -> Captured:
    """Parse one ``curl -sv`` transcript: ``< `` header lines, then the verbatim body."""
    text = (FIXTURES / f"{name}.txt").read_text(encoding="utf-8")
    response = [line[2:] for line in text.splitlines() if line.startswith("< ")]
    status = int(response[0].split()[1])
    headers = tuple(
        (name.strip(), value.strip())
        for name, _, value in (line.partition(":") for line in response[1:] if ":" in line)
    )
    body = text.split("----- body (verbatim) -----\n", 1)[1].split("----- end body -----")[0]
    seconds = re.search(r"time_total=([\d.]+)s", text)
    return Captured(status, headers, body.encode(), float(seconds.group(1)) if seconds else 0.0)
