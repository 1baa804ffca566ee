"""The run's summary document: what ``--json`` prints and summary.json stores. Pure; no I/O.

Its keys are the contract of docs/run-record.md (``summary.json``); the CPU
figures are windows between two :class:`CpuMark` readings.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass
from enum import Enum
from pathlib import Path
from typing import Any

from harness.swarm.bot import Phase
from harness.swarm.scenarios import Plan, describe

#: Violations kept in the summary document; the counts always cover them all.
MAX_VIOLATIONS_KEPT = 200


@dataclass(frozen=True)
class CpuMark:
    """CPU seconds used so far, read at one moment of a run."""

    #: Wall-clock time of the reading.
    t: float
    #: The harness: this process and its worker processes.
    harness_s: float
    #: The own server; None with ``--target`` (or when it could not be read).
    server_s: float | None


def cpu_window(a: CpuMark, b: CpuMark) -> dict[str, Any]:
    """CPU used from ``a`` to ``b``: ``harness_s``, ``server_s`` (or None) and ``window_s``."""
    server = round(b.server_s - a.server_s, 3) if a.server_s is not None and b.server_s is not None else None
    return {
        "harness_s": round(b.harness_s - a.harness_s, 3),
        "server_s": server,
        "window_s": round(b.t - a.t, 3),
    }


def cpu_figures(begin: CpuMark, end: CpuMark, marks: dict[Phase, CpuMark]) -> dict[str, Any]:
    """CPU of the whole bot phase, and of the load window (the start of the chat to the quit) as ``load``."""
    out = cpu_window(begin, end)
    if Phase.JOINED in marks and Phase.DRAINED in marks:
        out["load"] = cpu_window(marks[Phase.JOINED], marks[Phase.DRAINED])
    return out


def summary_document(
    report: Any,
    *,
    verdict: str,
    exit_code: int,
    line: str,
    settings: Mapping[str, Any],
    plan_: Plan,
    target: str,
    own_server: bool,
    chat_seconds: float,
    interrupted: bool,
    run_end: float,
    cpu: dict[str, Any],
    metrics: dict[str, Any] | None,
    record_dir: Path | None,
) -> dict[str, Any]:
    """The run's summary, from the checker's :class:`harness.checker.Report` and the run's settings."""
    lat = report.latency
    violations = [
        {"check": v.check, "message": v.message, "witness": jsonable(v.witness)}
        for v in report.violations[:MAX_VIOLATIONS_KEPT]
    ]
    per_s = 1.0 / chat_seconds if chat_seconds > 0 else 0.0
    return {
        "verdict": verdict,
        "exit_code": exit_code,
        "summary": line,
        "interrupted": interrupted,
        "scenario": settings["scenario"],
        "roles": plan_.role_counts(),
        "roles_line": describe(plan_),
        "target": target,
        "own_server": own_server,
        "asked_clients": settings["clients"],
        "joined": report.bots_joined,
        "clients": report.clients,
        "clients_joined": report.joined,
        "seq_style": report.seq_style,
        "messages_sent": report.messages_sent,
        "deliveries": report.deliveries,
        "duration_s": round(chat_seconds, 3),
        "rates": {
            "sent_per_s": round(report.messages_sent * per_s, 1),
            "delivered_per_s": round(report.deliveries * per_s, 1),
        },
        "latency_ms": {
            "count": lat.count,
            "p50_ms": lat.p50_ms,
            "p95_ms": lat.p95_ms,
            "p99_ms": lat.p99_ms,
            "max_ms": lat.max_ms,
        },
        "checks": dict(report.counts),
        "violations_total": len(report.violations),
        "violations": violations,
        "cpu": cpu,
        "metrics": metrics,
        "contested_names": sorted(plan_.contested_names),
        "run_end": run_end,
        "settings": dict(settings),
        "record": str(record_dir) if record_dir is not None else None,
    }


def jsonable(value: Any) -> Any:
    """Witnesses hold tuples, sets and frozen dataclasses: make them JSON."""
    if isinstance(value, Enum):
        return jsonable(value.value)
    if isinstance(value, dict):
        return {str(jsonable(k)): jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [jsonable(v) for v in value]
    if isinstance(value, (set, frozenset)):
        return sorted(jsonable(v) for v in value)
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return jsonable(dataclasses.asdict(value))
    if isinstance(value, (str, int, float, bool)) or value is None:
        return value
    return repr(value)
