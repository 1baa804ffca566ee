"""The ``membership`` check (what members see of each other) and the ``names`` check (one holder
per name at a time). Pure functions of a :class:`ParsedRun`; the rules are in docs/checker.md.
"""

from __future__ import annotations

import bisect
import math
from collections.abc import Mapping, Sequence
from enum import Enum
from typing import NamedTuple

from chat.protocol import ErrorCode
from harness.checker.model import MAX_WITNESSES, SLOW_ROLES, CheckResult, short
from harness.checker.parse import LineKind, ParsedClient, ParsedLine, ParsedRun, UsersAnswer
from harness.record.history import HowClosed

_INF = math.inf


class _Presence(Enum):
    """What a member has seen of a name so far in its stream."""

    PRESENT = 1
    LEFT = 2
    #: Left, and a MSG after the LEAVE was already reported (once is enough).
    LEFT_REPORTED = 3


# -- membership -------------------------------------------------------------------------


def check_membership(run: ParsedRun, limit: int = MAX_WITNESSES) -> CheckResult:
    """Membership as each member saw it: its own JOIN first; a JOIN before a name's MSGs; no MSG
    after its LEAVE; every leave announced to those who stayed; no unknown names; USERS right."""
    res = CheckResult("membership", limit=limit)
    _add_protocol_faults(run, res)
    _add_misattributed(run, res)
    phantoms_reported: set[tuple[int, str]] = set()
    for m in run.members:
        stream = m.stream
        if not stream or stream[0].kind is not LineKind.JOIN or stream[0].key != m.key:
            res.add(
                f"{m.client} did not get its own JOIN first after OK",
                {**m.label(), "first": stream[0].line if stream else None},
            )
        leaves = _check_stream(run, m, res, phantoms_reported)
        _check_announced(run, m, leaves, res)
    return res


def _add_protocol_faults(run: ParsedRun, res: CheckResult) -> None:
    for c in run.clients:
        for line in c.early:
            res.add(f"{c.client} got a broadcast before its OK", {**c.label(), "line": line})
        for line in c.bad:
            res.add(f"{c.client} got a line that is not the protocol", {**c.label(), "line": line})


def _add_misattributed(run: ParsedRun, res: CheckResult) -> None:
    """A MSG's name is its sender's: the payload says who sent it (judged once per distinct line)."""
    table = run.table
    clients = run.clients
    for p, first in run.msg_lines:
        mid = p.mid
        if mid < 0:
            continue
        s = table.sender[mid]
        if s >= 0 and clients[s].key != p.key and clients[s].is_member:
            holder = clients[first] if first >= 0 else None
            res.add(
                f"MSG from {p.name} carries a message {clients[s].client} ({clients[s].name}) sent",
                {
                    "client": holder.client if holder else None,
                    "sender": clients[s].client,
                    "message": table.describe(mid),
                    "line": p.line,
                },
            )


def _check_stream(
    run: ParsedRun,
    m: ParsedClient,
    res: CheckResult,
    phantoms_reported: set[tuple[int, str]],
) -> dict[str, list[float]]:
    """Walk ``m``'s stream with what it knows of each name (present, left), and judge each
    broadcast and each USERS answer against it. Returns when ``m`` got each name's LEAVEs.

    One iteration per delivery, so one function with the common case (a MSG of
    a present name) first; each rule's case is a branch.
    """
    offered = run.first_offer
    foreign = run.config.foreign_clients
    numbered_global = run.numbered_global
    PRESENT, LEFT, LEFT_REPORTED = _Presence.PRESENT, _Presence.LEFT, _Presence.LEFT_REPORTED
    MSG, JOIN, LEAVE = LineKind.MSG, LineKind.JOIN, LineKind.LEAVE
    stream = m.stream
    own = m.key
    state: dict[str, _Presence] = {}
    state_get = state.get
    last_line: dict[str, str] = {}
    leaves: dict[str, list[float]] = {}
    users = m.users
    u = 0
    for pos, p in enumerate(stream):
        while u < len(users) and users[u].position == pos:
            _check_users(run, m, users[u], state, res, numbered_global, stream)
            u += 1
        code = p.kind
        k = p.key
        st = state_get(k)
        if code is MSG and st is PRESENT:
            continue  # the common case, first
        if k not in offered and not foreign and (m.index, k) not in phantoms_reported:
            phantoms_reported.add((m.index, k))
            res.add(
                f"{m.client} got {code.value} of {p.name}, a name no client ever offered",
                {**m.label(), "phantom": p.name, "position": pos, "line": p.line},
            )
        if code is MSG:
            if st is LEFT:
                res.add(
                    f"{m.client} got MSG of {p.name} after its LEAVE",
                    {**m.label(), "of": p.name, "position": pos, "line": p.line},
                )
                state[k] = LEFT_REPORTED
            elif st is None:
                fault = _missing_join(run, m, p)
                if fault is not None:
                    res.add(fault, {**m.label(), "of": p.name, "position": pos, "line": p.line})
                state[k] = PRESENT
        elif code is JOIN:
            # A repeat of the same numbered line is left to the seq check.
            if st is PRESENT and pos > 0 and not (p.seq is not None and last_line.get(k) == p.line):
                res.add(
                    f"{m.client} got JOIN of {p.name} while {p.name} was present",
                    {**m.label(), "of": p.name, "position": pos, "line": p.line},
                )
            state[k] = PRESENT
            last_line[k] = p.line
        elif code is LEAVE:
            leaves.setdefault(k, []).append(m.times[pos])
            if k == own:
                continue
            if st is LEFT or st is LEFT_REPORTED:
                if not (p.seq is not None and last_line.get(k) == p.line):
                    res.add(
                        f"{m.client} got LEAVE of {p.name}, who had already left",
                        {**m.label(), "of": p.name, "position": pos, "line": p.line},
                    )
            elif st is None and not foreign and _owed_join_before_leave(run, m, p):
                res.add(
                    f"{m.client} got LEAVE of {p.name} without its JOIN",
                    {**m.label(), "of": p.name, "position": pos, "line": p.line},
                )
            state[k] = LEFT
            last_line[k] = p.line
    while u < len(users):
        _check_users(run, m, users[u], state, res, numbered_global, stream)
        u += 1
    return leaves


def _missing_join(run: ParsedRun, m: ParsedClient, p: ParsedLine) -> str | None:
    """Why ``m`` getting MSG ``p`` of a name it never saw JOIN is a fault, or None if it may not be.

    Its sender x was a member with m. If x registered after m, m was owed x's
    JOIN. If x registered first, x (still a member when m joined) was owed
    m's JOIN. So it is a fault when x certainly registered after m, and also
    when x, still receiving after m registered, never saw m's JOIN either.
    """
    mid = p.mid
    if mid < 0 or run.table.sender[mid] < 0:
        if run.config.foreign_clients:
            return None  # perhaps a client whose history is not given: when it registered is unknown
        if run.first_offer.get(p.key, _INF) > m.ok_at:
            return f"{m.client} got MSG of {p.name} before its JOIN"
        return None
    x = run.clients[run.table.sender[mid]]
    if run.seq_global and x.join_seq is not None and m.join_seq is not None:
        after = x.join_seq > m.join_seq
    else:
        offers = [a.t for a in x.attempts if a.reply == "ok"]
        after = bool(offers) and offers[-1] - run.config.clock_slack > m.ok_at
    if after:
        return f"{m.client} got MSG of {p.name} before its JOIN"
    if x is not m and x.end_ev > m.ok_at and m.key not in x.joins_seen:
        return f"{m.client} got MSG of {p.name} without its JOIN, and {x.client} never saw {m.name} join"
    return None


def _owed_join_before_leave(run: ParsedRun, m: ParsedClient, p: ParsedLine) -> bool:
    """``m`` got a LEAVE of a name it never saw join: was it owed that JOIN?

    Only if the leaver registered after ``m``. With global seqs that is
    exact: the leaver is the last holder of the name whose JOIN seq is below
    the LEAVE's, and it registered after ``m`` iff its JOIN seq is above
    ``m``'s. Otherwise it is judged by time: the name was first offered after
    ``m``'s OK arrived (on a crowded machine a recorded send time can trail
    the real write, which is why the seqs are preferred).
    """
    leave_seq = p.seq
    if run.seq_global and leave_seq is not None and m.join_seq is not None:
        before = [
            x.join_seq
            for x in run.holders.get(p.key, ())
            if x.join_seq is not None and x.join_seq < leave_seq
        ]
        if before:
            return max(before) > m.join_seq
    return bool(run.first_offer.get(p.key, _INF) > m.ok_at)


def _leave_lo(run: ParsedRun, x: ParsedClient) -> float | None:
    """A lower bound on when the server announced ``x``'s leave; None if it did not leave."""
    if x.role in SLOW_ROLES:
        announced = x.end_ev > -_INF and x.closed is not None and x.closed.how is not HowClosed.STOPPED
        return x.end_ev if announced else None
    if x.quit_lo < _INF:
        return x.quit_lo
    if x.closed is None or x.closed.how is HowClosed.STOPPED:
        return None
    if x.closed.how is HowClosed.DROP:
        return x.closed.t - run.config.clock_slack
    # Closed by the server (eof, error) or given up (timeout): the server may
    # have dropped it at any time after the last broadcast it got.
    if x.bye_at < _INF:
        return None  # BYE without /quit: the server is shutting down, no LEAVE due
    return x.end_ev if x.end_ev > -_INF else None


def _check_announced(
    run: ParsedRun, m: ParsedClient, leaves: dict[str, list[float]], res: CheckResult
) -> None:
    """Every member that left while ``m`` was there, with ``m`` there long enough after, was announced.

    Names are reused, so LEAVEs are matched by time, soundly: each owed leave
    is received no earlier than its lower bound, so for the i-th latest owed
    leave of a name (bound T), ``m`` must hold at least i LEAVEs of that name
    received at or after T. The holder of a name when ``m`` offered its own
    must, besides, be told before that name's next JOIN
    (:func:`_leaves_before_first_join`).
    """
    bound = run.config.delivery_bound
    owed: dict[str, list[ParsedClient]] = {}
    leavers, starts = _leavers(run)
    for x in leavers[bisect.bisect_right(starts, m.ok_at) :]:
        if (x.leave_lo or 0.0) + bound >= m.end_ev:
            break  # sorted by their bound: no later leaver is owed either
        if x is not m:
            owed.setdefault(x.key, []).append(x)
    offered_at = m.attempts[0].t if m.attempts else m.ok_at
    early_leaves: dict[str, list[float]] | None = None
    for k, xs in owed.items():
        times = sorted(leaves.get(k, ()))
        for i, x in enumerate(sorted(xs, key=lambda x: x.leave_lo or 0.0, reverse=True), 1):
            t0 = x.leave_lo or 0.0
            got = len(times) - bisect.bisect_left(times, t0)
            if got >= i and x.ok_at + run.config.clock_slack < offered_at:
                if early_leaves is None:
                    early_leaves = _leaves_before_first_join(m)
                if not any(t >= t0 for t in early_leaves.get(k, ())):
                    got = 0  # the LEAVEs counted are all later holders'
            if got < i:
                res.add(
                    f"{m.client} never got the LEAVE of {x.name} ({x.client})",
                    {
                        **m.label(),
                        "of": x.name,
                        "left": x.client,
                        "left_at": t0,
                        "leaves_seen": len(times),
                    },
                )
                break


def _leaves_before_first_join(m: ParsedClient) -> dict[str, list[float]]:
    """For each name, when ``m`` received its LEAVEs that came before the name's first JOIN in
    ``m``'s stream (by position: lines of one read share a time). Built once per member, on demand.

    Used for an owed leaver that was already a member before ``m`` offered its name: its JOIN was
    never ``m``'s, so every JOIN of its name that ``m`` got is of a later holder, which the server
    could announce only after the name was free, so after the leaver's LEAVE in ``m``'s stream (each
    connection's lines keep the server's order). Without this, a later holder's LEAVE received near
    the end (a leave not owed, so not counted) would stand in for the missing one.
    """
    joined: set[str] = set()
    before: dict[str, list[float]] = {}
    for line, t in zip(m.stream[1:], m.times[1:], strict=True):
        if line.kind is LineKind.JOIN:
            joined.add(line.key)
        elif line.kind is LineKind.LEAVE and line.key not in joined:
            before.setdefault(line.key, []).append(t)
    return before


def _leavers(run: ParsedRun) -> tuple[list[ParsedClient], list[float]]:
    """Members that left during the run, by the lower bound of their LEAVE, and those bounds
    (built once per run)."""
    if run.leavers is None:
        out = []
        for x in run.members:
            x.leave_lo = _leave_lo(run, x)
            if x.leave_lo is not None:
                out.append(x)
        out.sort(key=lambda x: x.leave_lo or 0.0)
        run.leavers = (out, [x.leave_lo or 0.0 for x in out])
    return run.leavers


def _check_users(
    run: ParsedRun,
    m: ParsedClient,
    answer: UsersAnswer,
    state: Mapping[str, _Presence],
    res: CheckResult,
    numbered_global: bool,
    stream: Sequence[ParsedLine],
) -> None:
    """A USERS answer against what ``m`` had seen at that point of its stream (and, with a global
    numbering, against every client certainly present at that seq)."""
    pos = answer.position
    names = answer.names
    name_key = run.name_key
    keys = {name_key(n) for n in names}
    w = {**m.label(), "users": short(names), "position": pos}
    if m.key not in keys:
        res.add(f"{m.client} asked /who and is not in the answer", w)
    for n in names:
        if name_key(n) not in run.first_offer and not run.config.foreign_clients:
            res.add(f"{m.client} got USERS with {n}, a name no client ever offered", {**w, "phantom": n})
    for k, st in state.items():
        if st is _Presence.PRESENT and k not in keys:
            res.add(f"{m.client} got USERS without {k}, who had joined and not left", {**w, "missing": k})
        elif st in (_Presence.LEFT, _Presence.LEFT_REPORTED) and k in keys and k != m.key:
            res.add(f"{m.client} got USERS with {k}, who had left", {**w, "extra": k})
    if numbered_global and pos > 0:
        # The seq this answer follows: the last one in order (a misnumbered line is not trusted).
        out = set(m.seq_outliers)
        i = pos - 1
        while i >= 0 and i in out:
            i -= 1
        s = stream[i].seq if i >= 0 else None
        if s is None:
            return
        for x in run.members:
            if x is m or x.key in keys or x.join_seq is None or x.contig_seq is None:
                continue
            if x.join_seq <= s <= x.contig_seq and x.key not in state:
                res.add(
                    f"{m.client} got USERS without {x.name}, a member at seq {s}",
                    {**w, "missing": x.name, "member": x.client, "seq": s},
                )


# -- names ------------------------------------------------------------------------------


class _Span(NamedTuple):
    """When ``client`` held (or may have held) a name."""

    start: float
    until: float
    client: ParsedClient


def check_names(run: ParsedRun, limit: int = MAX_WITNESSES) -> CheckResult:
    """No two concurrent members share a name case-insensitively; a name is refused as taken
    only while someone holds it (for contested names: exactly one holder at a time)."""
    res = CheckResult("names", limit=limit)
    _add_shared_names(run, res)
    if not run.config.foreign_clients:  # else a refused name may have been held by a client not given
        _add_false_refusals(run, res)
    return res


def _add_shared_names(run: ParsedRun, res: CheckResult) -> None:
    """Certain membership runs from OK (the server registered it before) to the latest moment it
    provably still was registered: two holders whose certain spans overlap were concurrent."""
    contested = run.config.contested_names
    for key, holders in run.holders.items():
        spans = [
            _Span(x.ok_at, max(x.ok_at, x.end_ev, x.quit_lo if x.quit_lo < _INF else -_INF), x)
            for x in holders
        ]
        spans.sort(key=lambda s: s.start)
        best: _Span | None = None  # the span seen so far that reaches furthest
        for span in spans:
            if best is not None and span.start < best.until:
                a, b = best.client, span.client
                res.add(
                    f"{a.client} and {b.client} were both members as {key}",
                    {
                        "name": key,
                        "clients": [a.client, b.client],
                        "names": [a.name, b.name],
                        "ok_at": [a.ok_at, b.ok_at],
                        "contested": key in contested,
                    },
                )
            if best is None or span.until > best.until:
                best = span


def _add_false_refusals(run: ParsedRun, res: CheckResult) -> None:
    """A ``name-taken`` refusal when nobody can have held the name at the time."""
    slack = run.config.clock_slack
    bound = run.config.delivery_bound
    contested = run.config.contested_names
    possible: dict[str, list[tuple[float, float, str]]] = {}
    name_key = run.name_key
    for c in run.clients:
        for att in c.attempts:
            if att.reply is not None and att.reply != "ok":
                continue
            if att.reply == "ok":
                if c.clean_quit:
                    until = c.bye_at
                elif c.closed is not None:
                    until = c.closed.t + bound
                else:
                    until = _INF
            else:  # unanswered: perhaps registered, we cannot tell until when
                until = c.closed.t + bound if c.closed is not None else _INF
            possible.setdefault(name_key(att.name), []).append((att.t - slack, until, c.client))
    index = {k: _HolderIndex(spans) for k, spans in possible.items()}
    for c in run.clients:
        for att in c.attempts:
            if att.reply != ErrorCode.NAME_TAKEN or att.reply_t is None:
                continue
            k = name_key(att.name)
            held = index.get(k)
            if held is None or not held.anyone_but(c.client, att.t - slack, att.reply_t):
                res.add(
                    f"{c.client} was refused {att.name} as taken while nobody held it",
                    {
                        "client": c.client,
                        "name": att.name,
                        "offered_at": att.t,
                        "refused_at": att.reply_t,
                        "contested": k in contested,
                    },
                )


class _HolderIndex:
    """Possible holding spans of one name, to ask in O(log n): did anyone but X hold it in [a, b]?

    Spans sorted by start; for each prefix, the latest end and, among the other
    clients, the next latest end. A span overlaps [a, b] iff it starts by b and ends
    at or after a, so the prefix of spans starting by b answers it.
    """

    def __init__(self, spans: list[tuple[float, float, str]]) -> None:
        spans = sorted(spans)
        self.starts = [lo for lo, _, _ in spans]
        #: Per prefix: (latest end, its client, latest end of another client).
        self.best: list[tuple[float, str, float]] = []
        top, who, second = -_INF, "", -_INF
        for _, hi, client in spans:
            if hi > top:
                if client != who:
                    second = top
                top, who = hi, client
            elif client != who and hi > second:
                second = hi
            self.best.append((top, who, second))

    def anyone_but(self, client: str, start: float, stop: float) -> bool:
        i = bisect.bisect_right(self.starts, stop) - 1
        if i < 0:
            return False
        top, who, second = self.best[i]
        return (top if who != client else second) >= start
