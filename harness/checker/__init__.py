"""The checker: pure judgement of recorded histories (docs/checker.md).

No sockets, no threads, no clock: it reads :class:`harness.record.history.ClientHistory`
objects (what each connection sent and received, with wall-clock times) and says what a
correct server could not have produced. The swarm calls it at the end of a run, locust
support and the notebooks' kit on histories of their own, and ``python -m harness.checker RUN``
on a recorded run.

======================  ==================================================================
module                  what it holds
======================  ==================================================================
``model``               violations, settings, results, the report and the verdict
``parse``               histories to a parsed run: lines, messages, members' streams
``order``               the ``seq``, ``agreement`` and ``fifo`` checks
``loss``                the ``loss`` check
``membership``          the ``membership`` and ``names`` checks
``liveness``            the ``liveness`` check
``leaks``               the ``leaks`` check of a soak: server resources over time, not histories
``sequences``           helpers over numbers: longest increasing run, global numbering
``suite``               every check at once: :func:`check_all`
``simulate``            the generator of correct runs
``speed``               the checker's speed measurement (``--bench``)
``cli``                 ``python -m harness.checker``
======================  ==================================================================
"""

from harness.checker.liveness import check_liveness
from harness.checker.loss import check_loss
from harness.checker.membership import check_membership, check_names
from harness.checker.model import (
    CHECK_NAMES,
    MAX_WITNESSES,
    CheckConfig,
    CheckResult,
    Judgement,
    LatencySummary,
    Report,
    SeqStyle,
    Verdict,
    Violation,
    judge,
    verdict_line,
)
from harness.checker.order import check_agreement, check_fifo, check_seq
from harness.checker.parse import ParsedClient, ParsedLine, ParsedRun, parse_run
from harness.checker.simulate import SimConfig, SimulatedRun, simulate_events, simulate_run
from harness.checker.speed import TimedCheck, bench_events, time_check
from harness.checker.suite import CHECKS, check_all, latency_summary

__all__ = [
    "CHECKS",
    "CHECK_NAMES",
    "MAX_WITNESSES",
    "CheckConfig",
    "CheckResult",
    "Judgement",
    "LatencySummary",
    "ParsedClient",
    "ParsedLine",
    "ParsedRun",
    "Report",
    "SeqStyle",
    "SimConfig",
    "SimulatedRun",
    "TimedCheck",
    "Verdict",
    "Violation",
    "bench_events",
    "check_agreement",
    "check_all",
    "check_fifo",
    "check_liveness",
    "check_loss",
    "check_membership",
    "check_names",
    "check_seq",
    "judge",
    "latency_summary",
    "parse_run",
    "simulate_events",
    "simulate_run",
    "time_check",
    "verdict_line",
]
