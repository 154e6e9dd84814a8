"""Pure: a latency trend in words, for people: the evidence and the forecast.

``trends`` decides; this module only says what a ``TrendSignal`` means, e.g. ``origin a
TTFB 3.2\u00d7 its 24 h baseline (820 ms against 256 ms; p95 1.1 s)``.
"""

from __future__ import annotations

from monitor.judge.trends import TrendSettings, TrendSignal


def describe(signal: TrendSignal, who: str, phase: str, settings: TrendSettings) -> str:
    """The evidence in words, e.g. ``origin a TTFB 3.2\u00d7 its 24 h baseline (820 ms against
    256 ms; p95 1.1 s)``: the recent level against the baseline."""
    name = f"{who} {_phase_name(phase)}"
    if signal.warming_up:
        return f"{name} {_latency(signal.value)} (its baseline is still being learned)"
    level = signal.baseline * signal.ratio
    p95 = "" if signal.p95 is None else f"; p95 {_latency(signal.p95)}"
    return (
        f"{name} {_factor(signal.ratio)}\u00d7 its {_span(settings.baseline)} baseline"
        f" ({_latency(level)} against {_latency(signal.baseline)}{p95})"
    )


def forecast(signal: TrendSignal, who: str, phase: str, settings: TrendSettings) -> str | None:
    """When the latency reaches the limit at this rate, e.g. ``at this rate origin a TTFB
    reaches the 2 s limit in about 40 min``; None when it is not heading there."""
    if signal.eta is None or settings.limit is None:
        return None
    return (
        f"at this rate {who} {_phase_name(phase)} reaches the {_latency(settings.limit)}"
        f" limit in about {_span(signal.eta)}"
    )


def _phase_name(phase: str) -> str:
    return "TTFB" if phase == "processing" else phase


def _factor(ratio: float) -> str:
    return f"{ratio:.1f}" if ratio < 10 else f"{ratio:.0f}"


def _latency(seconds: float) -> str:
    if seconds < 0.9995:
        return f"{_number(seconds * 1000)} ms"
    if seconds < 60:
        return f"{_number(seconds)} s"
    return _span(seconds)


def _span(seconds: float) -> str:
    """A duration in the unit that keeps its number small: 45 s, 30 min, 24 h, 3 days."""
    if seconds >= 2 * 86400:
        return f"{_number(seconds / 86400)} days"
    if seconds >= 3600:
        return f"{_number(seconds / 3600)} h"
    if seconds >= 60:
        return f"{_number(seconds / 60)} min"
    return f"{_number(seconds)} s"


def _number(x: float) -> str:
    return f"{x:.0f}" if x >= 10 else f"{round(x, 1):g}"
