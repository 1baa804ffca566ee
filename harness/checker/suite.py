"""The seven checks as one suite: :data:`CHECKS` and :func:`check_all`, histories in, a :class:`Report` out.

Pure: no I/O, no clock but the elapsed figure. Theory of operation (docs/checker.md):

1. **Parse once** (:mod:`harness.checker.parse`): every received line through the
   one protocol parser, once per distinct line; bot payloads interned as integers.
2. **Derive once** (:class:`ParsedRun`): per member, the stream of broadcasts after
   its ``OK``; the set and order of messages it received; per message, its sender,
   send time and first receipt.
3. **Check**: one pure function per check, each returning a :class:`CheckResult`
   whose violations carry a minimal witness.

Time rules are *conservative*: a check only owes a member what a correct server
must provably have delivered, given when things were sent (a lower bound on when
the server saw them, with :attr:`CheckConfig.clock_slack` for times recorded just
after a write) and when they were first received (an upper bound on when the
server broadcast them). A correct server never fails; a server that loses,
duplicates, reorders or misnumbers fails within seconds of a swarm.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from itertools import zip_longest

from harness.checker.irc import HINTS
from harness.checker.liveness import check_liveness
from harness.checker.loss import check_loss
from harness.checker.membership import check_membership, check_names
from harness.checker.model import CheckConfig, CheckResult, LatencySummary, Report
from harness.checker.order import check_agreement, check_fifo, check_seq
from harness.checker.parse import ParsedRun, parse_run
from harness.common.gctune import collector_paused
from harness.common.latency import percentiles
from harness.record.history import ClientHistory

#: Every check by name, in the order of :data:`harness.checker.model.CHECK_NAMES`.
CHECKS: dict[str, Callable[[ParsedRun], CheckResult]] = {
    "seq": check_seq,
    "agreement": check_agreement,
    "loss": check_loss,
    "fifo": check_fifo,
    "membership": check_membership,
    "names": check_names,
    "liveness": check_liveness,
}

_MS_PER_S = 1000.0


def latency_summary(latencies: Sequence[float]) -> LatencySummary:
    """Percentiles in ms of delivery latencies in seconds (:func:`harness.common.latency.percentiles`)."""
    figures = percentiles(latencies)
    if not figures.count:
        return LatencySummary()
    assert figures.p50 is not None and figures.p95 is not None and figures.p99 is not None
    assert figures.max is not None
    return LatencySummary(
        figures.count,
        figures.p50 * _MS_PER_S,
        figures.p95 * _MS_PER_S,
        figures.p99 * _MS_PER_S,
        figures.max * _MS_PER_S,
    )


def check_all(histories: Sequence[ClientHistory], config: CheckConfig | None = None) -> Report:
    """Run every check over a run's histories. Pure: no I/O, no clock but the elapsed figure."""
    started = time.perf_counter()
    config = config or CheckConfig()
    # Millions of small objects and no reference cycles: see harness.common.gctune.
    with collector_paused():
        run = parse_run(histories, config)
        results = [
            check(run) if name != "agreement" or config.judges_agreement else CheckResult(name)
            for name, check in CHECKS.items()
        ]
    # Round robin over the checks: the first witnesses shown cover every check
    # that fired (a root cause with few violations is not buried under the
    # many consequences another check sees).
    violations = [
        v for group in zip_longest(*(r.violations for r in results)) for v in group if v is not None
    ]
    return Report(
        violations=violations,
        counts={r.name: r.count for r in results},
        deliveries=sum(m.deliveries for m in run.members),
        messages_sent=sum(len(c.sent) for c in run.clients),
        joined=len(run.members),
        clients=len(run.clients),
        latency=latency_summary(run.latencies),
        seq_style=run.seq_style,
        bots_joined=len({m.bot for m in run.members}),
        seq_global=run.seq_global,
        elapsed=time.perf_counter() - started,
        protocol=config.protocol,
        agreement_judged=config.judges_agreement,
        throttled=[
            {"client": t.client, "name": t.name, "kind": t.kind, "text": t.text, "hint": HINTS[t.kind]}
            for t in run.throttled
        ],
    )
