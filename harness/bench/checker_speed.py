"""The checker case: events per second through :func:`harness.checker.check_all`.

On a synthetic clean history (:func:`harness.checker.simulate_events`, the checker's generator of correct
runs: the checker must find nothing in it), or on a recorded run given with ``--checker-run``.
"""

from __future__ import annotations

import time
from typing import Any

from harness import checker
from harness.bench.goals import GOAL_CHECKER_EVENTS
from harness.record.history import ClientHistory
from harness.record.store import load_run


def synthetic_histories(
    events: int, members: int = 50, senders: int = 5
) -> tuple[list[ClientHistory], float]:
    """A clean recorded chat run of about ``events`` events, and its end time.

    ``members`` join one after the other; ``senders`` of them chat; every member receives every broadcast.
    """
    return checker.simulate_events(events, members=members, senders=senders)


def checker_speed(events: int, reduced: bool, run_dir: str | None = None) -> dict[str, Any]:
    """Time :func:`harness.checker.check_all` on ``events`` synthetic events, or on the run in ``run_dir``.

    ``reduced`` says that ``events`` was cut down by ``--quick`` or ``--tiny`` (the note says so).
    """
    source = "synthetic"
    if run_dir is not None:
        try:
            histories, summary, _ = load_run(run_dir)
        except (OSError, ValueError) as exc:
            return {"available": False, "note": f"not available: cannot load {run_dir}: {exc}"}
        end = summary.get("run_end")
        run_end = float(end) if isinstance(end, (int, float)) else None
        source = str(run_dir)
    else:
        histories, run_end = synthetic_histories(events)
    n_events = sum(len(h.events) for h in histories)
    t0 = time.perf_counter()
    report = checker.check_all(histories, checker.CheckConfig(run_end=run_end))
    seconds = time.perf_counter() - t0
    note = ""
    if n_events < GOAL_CHECKER_EVENTS:  # timed all the same, and said to be smaller
        note = f"{n_events:,} events, fewer than the goal's 1,000,000" + (" (quick mode)" if reduced else "")
    return {
        "available": True,
        "events": n_events,
        "seconds": round(seconds, 3),
        "events_per_s": round(n_events / seconds) if seconds > 0 else None,
        "violations": report.total(),
        "history": source,
        "note": note,
    }
