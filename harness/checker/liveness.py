"""The ``liveness`` check: nothing hangs. A pure function of a :class:`ParsedRun`; the rules are in
docs/checker.md.
"""

from __future__ import annotations

import math

from harness.checker.model import MAX_WITNESSES, SLOW_ROLES, CheckResult
from harness.checker.parse import ParsedClient, ParsedRun
from harness.record.history import HowClosed

_INF = math.inf


def check_liveness(run: ParsedRun, limit: int = MAX_WITNESSES) -> CheckResult:
    """Every handshake step answered within ``handshake_bound``; no client gave up waiting; every
    message echoed to its sender within ``delivery_bound`` while the sender stayed a member."""
    res = CheckResult("liveness", limit=limit)
    for c in run.clients:
        flagged = _add_slow_handshake(run, c, res)
        if c.closed is not None and c.closed.how is HowClosed.TIMEOUT and not flagged:
            res.add(
                f"{c.client} gave up waiting for the server: {c.closed.detail or 'timeout'}",
                {**c.label(), "closed_at": c.closed.t, "detail": c.closed.detail},
            )
        if c.role not in SLOW_ROLES and c.sent and c.echoes:
            _add_late_echoes(run, c, res)
        if c.role in SLOW_ROLES and run.config.max_backlog is not None:
            _add_unbounded_backlog(run, c, res)
    return res


#: A broadcast a slow reader received this long after it was due waited for the reader (it did not read).
HELD_AFTER = 0.5
#: Bytes of a slow reader's held lines that kernel buffers account for (its small receive buffer and the
#: server's send buffer, each doubled by Linux, with room to spare): not the server's backlog.
KERNEL_SLACK_BYTES = 64 * 1024


def _add_unbounded_backlog(run: ParsedRun, c: ParsedClient, res: CheckResult) -> None:
    """A reader that stopped reading is dropped once its backlog passes the server's bound.

    What the server held for it shows when it reads again: the broadcasts that reach it long after they
    were due. Past what kernel buffers hold, more of them than ``max_backlog`` means the server queued
    without bound instead of dropping it as slow (memory grows with every non-reader).
    """
    bound = run.config.max_backlog
    assert bound is not None
    held = 0
    slack = KERNEL_SLACK_BYTES
    for p, t in zip(c.stream, c.times, strict=True):
        if p.due is None or t - p.due <= HELD_AFTER:
            continue
        if slack > 0:
            slack -= len(p.line) + 1
            continue
        held += 1
    if held > bound:
        res.add(
            f"{c.client} stopped reading and was never dropped as slow: {held:,} lines were held for it "
            f"beyond its kernel buffers, more than the server's --max-backlog {bound:,}",
            {**c.label(), "held": held, "max_backlog": bound, "kernel_slack_bytes": KERNEL_SLACK_BYTES},
        )


def _add_slow_handshake(run: ParsedRun, c: ParsedClient, res: CheckResult) -> bool:
    """HELLO and the answer to each name line within the handshake bound; True if one was late."""
    hb = run.config.handshake_bound
    flagged = False
    if c.connected_at is not None:
        if c.greeted_at is not None:
            if c.greeted_at - c.connected_at > hb:
                res.add(
                    f"{c.client} waited {c.greeted_at - c.connected_at:.2f}s for HELLO",
                    {**c.label(), "connected_at": c.connected_at, "greeted_at": c.greeted_at},
                )
                flagged = True
        elif c.end_at - c.connected_at > hb:
            res.add(
                f"{c.client} got no HELLO in {c.end_at - c.connected_at:.2f}s",
                {**c.label(), "connected_at": c.connected_at},
            )
            flagged = True
    for a in c.attempts:
        if a.reply_t is not None:
            if a.reply_t - a.t > hb:
                res.add(
                    f"{c.client} waited {a.reply_t - a.t:.2f}s for the answer to name {a.name}",
                    {**c.label(), "offered": a.name, "offered_at": a.t, "answered_at": a.reply_t},
                )
                flagged = True
        elif c.end_at - a.t > hb and c.bye_at == _INF:
            res.add(
                f"{c.client} got no answer to name {a.name} in {c.end_at - a.t:.2f}s",
                {**c.label(), "offered": a.name, "offered_at": a.t},
            )
            flagged = True
    return flagged


def _add_late_echoes(run: ParsedRun, c: ParsedClient, res: CheckResult) -> None:
    """Each message back to its sender within the delivery bound, while the sender stayed a member."""
    db = run.config.delivery_bound
    table = run.table
    member_until = min(c.end_at, c.quit_at)
    for ts, mid in c.sent:
        te = table.echo[mid]
        if te < _INF:
            if te - ts > db:
                d = table.describe(mid)
                res.add(
                    f"{c.client} got its b={d['bot']} n={d['n']} back after {te - ts:.2f}s",
                    {**c.label(), "message": d, "sent_at": ts, "echo_at": te},
                )
        elif member_until - ts > db:
            d = table.describe(mid)
            res.add(
                f"{c.client} never got its b={d['bot']} n={d['n']} back",
                {**c.label(), "message": d, "sent_at": ts, "member_until": member_until},
            )
