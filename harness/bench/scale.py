"""The scale swarm: the largest member count at which a whole ``python -m harness.swarm`` run passes.

Part of the memory case. A scale test, not a stress test: about :data:`SWARM_TOTAL_RATE` messages per
second in all (each bot parses and records every line it gets), bots spread over processes, and
liveness bounds that allow for a thousand joins and quits arriving at once (each one is a broadcast
that wakes every member's writer), so that the run is judged for correctness, not for speed. The sizes
are tried in order; the first that does not pass ends the case.
"""

from __future__ import annotations

import shlex
from collections.abc import Callable
from typing import Any

from harness.bench.settings import Settings
from harness.checker import Verdict
from harness.swarm.invoke import SwarmOutcome, SwarmSpec, run_swarm, swarm_command

#: Messages per second over all the swarm's bots.
SWARM_TOTAL_RATE = 20.0
#: Seconds a handshake may take, and a delivery: room for a thousand joins at once.
SWARM_HANDSHAKE_BOUND = 60.0
SWARM_DELIVERY_BOUND = 30.0
#: Seconds one swarm may take, start to verdict.
SWARM_TIMEOUT = 600.0
#: From this many bots on, they are spread over two processes.
TWO_PROCESSES_FROM = 200
#: Violations quoted per run in the summary and the progress line.
QUOTED_VIOLATIONS = 3


def swarm_spec(settings: Settings, clients: int) -> SwarmSpec:
    extra = [
        "--rate",
        f"{SWARM_TOTAL_RATE / clients:.4g}",
        "--procs",
        "2" if clients >= TWO_PROCESSES_FROM else "1",
        "--handshake-bound",
        str(SWARM_HANDSHAKE_BOUND),
        "--delivery-bound",
        str(SWARM_DELIVERY_BOUND),
    ]
    if settings.target:
        extra += ["--target", str(settings.target)]
    return SwarmSpec(clients=clients, duration=settings.swarm_seconds, extra=tuple(extra))


def _verdict_text(out: SwarmOutcome) -> str:
    """The swarm's verdict, or why there is none."""
    if out.verdict is not None:
        return out.verdict.value
    if out.exit_code is None:
        return f"error: the swarm did not end within {SWARM_TIMEOUT:g} s"
    return f"no verdict ({out.last_error_line[:200]})"


def swarm_scale(settings: Settings, progress: Callable[[str], None]) -> dict[str, Any]:
    """The largest member count of ``settings.swarm_sizes`` reached with a PASS swarm, and every run."""
    results = []
    largest = 0
    for clients in settings.swarm_sizes:
        spec = swarm_spec(settings, clients)
        out = run_swarm(spec, timeout=SWARM_TIMEOUT)
        doc = out.document or {}
        verdict = _verdict_text(out)
        violations = (doc.get("violations") or [])[:QUOTED_VIOLATIONS]
        first = [str(v.get("message") if isinstance(v, dict) else v) for v in violations]
        results.append(
            {
                "clients": clients,
                "verdict": verdict,
                "exit_code": out.exit_code,
                "joined": doc.get("joined"),
                "violations_total": doc.get("violations_total"),
                "checks": doc.get("checks"),
                "first_violations": first,
                "seconds": round(out.seconds, 1),
                "command": shlex.join(["python", *swarm_command(spec)[1:]]),
            }
        )
        progress(f"swarm {clients} clients: {verdict} " + "; ".join(first))
        if out.verdict is not Verdict.PASS:
            break
        largest = clients
    return {"available": True, "largest_pass": largest, "runs": results}
