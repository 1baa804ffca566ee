"""The ``loss`` check: every message reached every member provably owed it.

Pure functions of a :class:`ParsedRun`. When a message is owed (the ``time``,
``sender`` and ``seq`` rules, conservative at window edges) is explained in
docs/checker.md and in :func:`owed_missing`.
"""

from __future__ import annotations

import bisect
import math

from harness.checker.model import MAX_WITNESSES, CheckResult
from harness.checker.parse import ParsedClient, ParsedRun

_INF = math.inf

#: The rules that owe a message, as witnesses name them.
TIME_RULE = "time"
SENDER_RULE = "sender"
SEQ_RULE = "seq"


def check_loss(run: ParsedRun, limit: int = MAX_WITNESSES) -> CheckResult:
    """A message sent while another client was a member reached it (see :func:`owed_missing` for
    when a message is provably owed: conservative window edges, no false alarms)."""
    res = CheckResult("loss", limit=limit)
    table = run.table
    clients = run.clients
    for m in run.members:
        lost = owed_missing(run, m)
        for mid in sorted(lost, key=table.lo.__getitem__):
            d = table.describe(mid)
            s = table.sender[mid]
            w: dict[str, object] = {
                **m.label(),
                "sender": clients[s].client if s >= 0 else None,
                "message": d,
                "rule": lost[mid],
            }
            if table.seq[mid] is not None:
                w["seq"] = table.seq[mid]
            res.add(f"{m.client} never got b={d['bot']} n={d['n']} ({lost[mid]} rule)", w)
    return res


def owed_missing(run: ParsedRun, m: ParsedClient) -> dict[int, str]:
    """The messages ``m`` provably should have received and did not, each with the rule that owes it.

    ``time``: sent after m's OK arrived (so broadcast while m was registered)
    and first received by anyone before something m received was even sent
    (so broadcast before m's stream ended), or before m asked to leave and got
    BYE. ``sender``: sent after m's OK by a connection that m later got a later
    message from (a server handles one connection's lines in order). ``seq``:
    after a clean quit, a global numbering puts it between m's last seq and
    the seq of m's LEAVE.
    """
    missing: dict[int, str] = {}
    end = m.end_ev
    if m.clean_quit and m.quit_lo > end:
        end = m.quit_lo
    _owed_by_time(run, m, end, missing)
    _owed_by_sender(run, m, end, missing)
    if run.seq_global and m.clean_quit and not run.config.foreign_clients:
        _owed_by_seq(run, m, missing)
    return missing


def _owed_by_time(run: ParsedRun, m: ParsedClient, end: float, missing: dict[int, str]) -> None:
    tb = run.table.tb
    recv = m.recv
    los, mids = _sorted_by_lo(run)
    i = bisect.bisect_right(los, m.ok_at)
    stop = bisect.bisect_left(los, end, lo=i)
    own = -1 if m.echoes else m.index  # without echo, a sender is owed none of its own
    sender = run.table.sender
    for mid in mids[i:stop]:
        if mid not in recv and tb[mid] < end and sender[mid] != own:
            missing[mid] = TIME_RULE


def _owed_by_sender(run: ParsedRun, m: ParsedClient, end: float, missing: dict[int, str]) -> None:
    """What the time rule cannot see: messages first received after m's evidence ends (a scan back
    from m's latest message of each sender, as far as latency plausibly reaches) and messages
    nobody got."""
    lo_of = run.table.lo
    tb = run.table.tb
    recv = m.recv
    start = m.ok_at
    horizon = end - run.config.delivery_bound
    unreceived = _unreceived_by_sender(run)
    for s, maxj in m.max_j.items():
        if run.clients[s].member_errs:
            continue  # the server refused one of its lines: which one, we cannot tell
        sent = run.clients[s].sent
        for j in range(maxj - 1, -1, -1):
            mid = sent[j].mid
            lo = lo_of[mid]
            if lo <= start or lo < horizon:
                break
            if mid not in recv and not (lo < end and tb[mid] < end):
                missing[mid] = SENDER_RULE
        for j in unreceived.get(s, ()):
            if j >= maxj:
                break
            mid = sent[j].mid
            if lo_of[mid] > start:
                missing[mid] = SENDER_RULE


def _owed_by_seq(run: ParsedRun, m: ParsedClient, missing: dict[int, str]) -> None:
    """Inside m's stream a lost seq is a gap (the seq check); after it, up to m's LEAVE as the
    others numbered it, only this rule sees a loss."""
    if m.join_seq is None or m.last_seq is None:
        return
    leave_seq = _leave_seq_after(run, m.key, m.last_seq)
    # The name may be taken again later: m's LEAVE comes before the next holder's JOIN.
    next_join = min(
        (
            x.join_seq
            for x in run.holders.get(m.key, ())
            if x.join_seq is not None and x.join_seq > m.join_seq
        ),
        default=None,
    )
    if leave_seq is None or (next_join is not None and leave_seq >= next_join):
        return
    at = run.msg_at_seq
    for sq in range(m.last_seq + 1, leave_seq):
        mid = at.get(sq)
        if mid is not None and mid not in m.recv:
            missing.setdefault(mid, SEQ_RULE)


def _leave_seq_after(run: ParsedRun, key: str, after: int) -> int | None:
    """The first seq of a LEAVE of name ``key`` after seq ``after`` (global numbering)."""
    seqs = run.leave_seqs.get(key)
    if not seqs:
        return None
    i = bisect.bisect_right(seqs, after)
    return seqs[i] if i < len(seqs) else None


def _unreceived_by_sender(run: ParsedRun) -> dict[int, list[int]]:
    """Per sending client, the send indexes of its messages that nobody received (built once)."""
    if run.unreceived is None:
        table = run.table
        out: dict[int, list[int]] = {}
        for mid in range(len(table)):
            if table.sender[mid] >= 0 and table.tb[mid] == _INF:
                out.setdefault(table.sender[mid], []).append(table.j[mid])
        for js in out.values():
            js.sort()
        run.unreceived = out
    return run.unreceived


def _sorted_by_lo(run: ParsedRun) -> tuple[list[float], list[int]]:
    """Messages with a known sender, sorted by their send lower bound (built once per run)."""
    if run.by_lo is None:
        table = run.table
        mids = [mid for mid in range(len(table)) if table.sender[mid] >= 0]
        mids.sort(key=table.lo.__getitem__)
        run.by_lo = ([table.lo[mid] for mid in mids], mids)
    return run.by_lo
