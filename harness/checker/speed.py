"""How fast the checker judges: :func:`check_all` timed, on a simulated correct run or on given histories.

``python -m harness.checker --bench N`` prints :func:`bench_events`; harness.bench's
checker case times the same :func:`check_all` on a run of :func:`harness.checker.simulate.simulate_events`.
The goal (docs/performance.md): 1,000,000 events in under 10 s.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass

from harness.checker.model import CheckConfig, Report
from harness.checker.simulate import SimConfig, simulate_run
from harness.checker.suite import check_all
from harness.record.history import ClientHistory

#: Seconds between the simulated server's actions in a benchmark run: 20,000 messages take 10 s.
BENCH_STEP = 0.0005


@dataclass(frozen=True)
class TimedCheck:
    """One :func:`check_all`, with the time it took."""

    report: Report
    #: Events in the histories checked.
    events: int
    seconds: float
    cpu_seconds: float

    @property
    def events_per_s(self) -> float:
        return self.events / self.seconds if self.seconds > 0 else 0.0


def time_check(histories: Sequence[ClientHistory], config: CheckConfig | None = None) -> TimedCheck:
    """:func:`check_all` over ``histories``, timed by the wall clock and by this process's CPU time."""
    events = sum(len(h.events) for h in histories)
    c0 = time.process_time()
    t0 = time.perf_counter()
    report = check_all(histories, config)
    t1 = time.perf_counter()
    c1 = time.process_time()
    return TimedCheck(report, events, t1 - t0, c1 - c0)


@dataclass(frozen=True)
class CheckSpeed:
    """What ``--bench N`` reports (every figure a float, in the JSON document too)."""

    events: float
    deliveries: float
    generate_s: float
    check_s: float
    check_cpu_s: float
    events_per_s: float


def bench_events(n: int, clients: int = 50, seed: int = 1) -> CheckSpeed:
    """Time :func:`check_all` on a correct run of about ``n`` received events (``clients`` members).

    Raises AssertionError if the checker fails the run: a correct run that fails is a checker bug.
    """
    t0 = time.perf_counter()
    histories = simulate_run(
        SimConfig(clients=clients, messages=max(1, n // clients), seed=seed, step=BENCH_STEP)
    )
    generate_s = time.perf_counter() - t0
    timed = time_check(histories)
    if not timed.report.passed():
        raise AssertionError(f"the simulated correct run failed: {timed.report.summary_line()}")
    return CheckSpeed(
        events=float(timed.events),
        deliveries=float(timed.report.deliveries),
        generate_s=generate_s,
        check_s=timed.seconds,
        check_cpu_s=timed.cpu_seconds,
        events_per_s=timed.events_per_s,
    )
