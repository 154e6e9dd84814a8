"""Pure: a round's results and diagnosis as text for a terminal, or as a JSON object.

The JSON keys are a public interface (``monitor check --json``).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from monitor.judge.diagnose import Diagnosis
from monitor.models import PHASES, ProbeResult, Role


def probe_name(result: ProbeResult) -> str:
    return result.origin if result.role is Role.ORIGIN and result.origin else result.monitor


def peer(result: ProbeResult) -> str | None:
    if result.peer_ip is None:
        return None
    host = f"[{result.peer_ip}]" if ":" in result.peer_ip else result.peer_ip
    return host if result.peer_port is None else f"{host}:{result.peer_port}"


def as_json(results: Sequence[ProbeResult], diagnosis: Diagnosis) -> dict[str, Any]:
    return {
        "verdict": diagnosis.verdict.value,
        "cause": diagnosis.cause.value,
        "layer": diagnosis.layer.value,
        "summary": diagnosis.summary,
        "hint": diagnosis.hint,
        "evidence": list(diagnosis.evidence),
        "probes": [_probe_json(r) for r in results],
    }


def _probe_json(result: ProbeResult) -> dict[str, Any]:
    phases: dict[str, float | None] = dict(result.phases.items())
    phases["total"] = result.phases.total
    return {
        "role": result.role.value,
        "name": probe_name(result),
        "kind": result.kind.value,
        "target": result.target,
        "ok": result.ok,
        "status": result.status,
        "cause": result.cause.value,
        "detail": result.detail,
        "failed": list(result.failed),
        "phases": phases,
        "headers": {name.lower(): value for name, value in result.headers},
        "peer": peer(result),
        "tls_version": result.tls_version,
        "cert_not_after": None
        if result.cert_not_after is None
        else result.cert_not_after.isoformat(),
        "answers": list(result.answers),
    }


def as_text(results: Sequence[ProbeResult], diagnosis: Diagnosis) -> str:
    """The verdict in plain words first, then each probe, then what to check."""
    title = diagnosis.verdict.value.replace("_", " ").upper()
    lines = [f"{title}: {diagnosis.summary}", ""]
    for result in results:
        lines.extend(_probe_lines(result))
    detail = f" (cause {diagnosis.cause.value}, layer {diagnosis.layer.value})"
    lines.append(f"verdict: {diagnosis.verdict.value}" + (detail if diagnosis.layer else ""))
    if diagnosis.hint:
        lines.append(f"hint: {diagnosis.hint}")
    return "\n".join(lines) + "\n"


def _probe_lines(result: ProbeResult) -> list[str]:
    mark = "ok  " if result.ok else "FAIL"
    role = "edge" if result.role is Role.EDGE else f"origin {result.origin}"
    head = f"{mark} {role} [{result.kind.value}] {result.target}"
    where = peer(result)
    lines = [head + (f"  peer {where}" if where else "")]
    status = f"status {result.status}  " if result.status is not None else ""
    outcome = f"    {status}cause {result.cause.value}"
    lines.append(outcome + (f"  ({result.detail})" if result.detail else ""))
    timings = "  ".join(f"{name} {_ms(result.phases.items(), name)}" for name in PHASES)
    lines.append(f"    {timings}  total {result.phases.total * 1000:.1f}ms")
    if result.headers:
        lines.append("    " + "  ".join(f"{k.lower()}: {v}" for k, v in result.headers))
    if result.tls_version or result.cert_not_after:
        expiry = result.cert_not_after.date().isoformat() if result.cert_not_after else "?"
        lines.append(f"    tls {result.tls_version or '?'}  certificate expires {expiry}")
    if result.answers:
        lines.append("    answers: " + ", ".join(result.answers))
    return lines


def _ms(phases: tuple[tuple[str, float | None], ...], name: str) -> str:
    seconds = dict(phases)[name]
    return "-" if seconds is None else f"{seconds * 1000:.1f}ms"
