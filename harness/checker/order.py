"""The order checks: ``seq`` (consecutive seqs per member), ``agreement`` (one order for all),
``fifo`` (per sender). Pure functions of a :class:`ParsedRun`; the rules are in docs/checker.md.
"""

from __future__ import annotations

import heapq
import math
from collections.abc import Sequence
from itertools import pairwise

from harness.checker.model import MAX_WITNESSES, CheckResult, short
from harness.checker.parse import LineKind, ParsedClient, ParsedLine, ParsedRun
from harness.checker.sequences import is_consecutive, lis_outliers

_INF = math.inf

#: A jump in seqs longer than this is reported as one gap, without listing what is missing.
_LONGEST_LISTED_GAP = 100_000


# -- seq ------------------------------------------------------------------------------


def check_seq(run: ParsedRun, limit: int = MAX_WITNESSES) -> CheckResult:
    """Per member, consecutive seqs from its own JOIN: a gap is a loss, a repeat a duplicate,
    a step back a reordering. Only for servers that number their events.

    A broken stream is described minimally: its longest increasing run is
    kept; each other event is a duplicate (its seq also arrived elsewhere) or
    reordered; a value missing between kept ones and nowhere else is a gap.
    So a swap is one reordering, not a gap plus a reordering.
    """
    res = CheckResult("seq", limit=limit)
    if not run.numbered:
        return res
    for m in run.members:
        stream = m.stream
        if not stream:
            continue
        seqs = [p.seq for p in stream]
        if None in seqs:
            i = seqs.index(None)
            if any(s is not None for s in seqs):
                res.add(
                    f"{m.client} got an unnumbered event among numbered ones",
                    {**m.label(), "position": i, "line": stream[i].line},
                )
            continue
        numbers: list[int] = seqs  # type: ignore[assignment]
        if not m.seq_outliers and is_consecutive(numbers):
            continue
        outliers = set(m.seq_outliers)
        counts: dict[int, int] = {}
        for sq in numbers:
            counts[sq] = counts.get(sq, 0) + 1
        for i in m.seq_outliers:
            if res.is_full:
                res.count += 1
                continue
            sq = numbers[i]
            prev = numbers[i - 1] if i > 0 else None
            w = {**m.label(), "seq": sq, "after": prev, "position": i, "line": stream[i].line}
            if counts[sq] > 1:
                res.add(f"{m.client} got seq {sq} twice", w)
            else:
                res.add(f"{m.client} got seq {sq} after seq {prev} (reordered)", w)
        kept = [(i, numbers[i]) for i in range(len(numbers)) if i not in outliers]
        _add_gaps(res, m, kept, counts)
    return res


def _add_gaps(res: CheckResult, m: ParsedClient, kept: list[tuple[int, int]], counts: dict[int, int]) -> None:
    """One violation per run of seqs missing between two kept ones (``(position, seq)`` pairs) and
    received nowhere else in ``m``'s stream."""
    for (_, a), (pos, b) in pairwise(kept):
        if b - a <= 1:
            continue
        line = m.stream[pos].line
        if b - a > _LONGEST_LISTED_GAP:
            res.add(
                f"{m.client} got seq {b} right after seq {a} (gap)",
                {**m.label(), "before": a, "position": pos, "line": line, "missing_count": b - a - 1},
            )
            continue
        run_start = None
        for v in range(a + 1, b + 1):
            if v < b and v not in counts:
                if run_start is None:
                    run_start = v
                continue
            if run_start is not None:
                last = v - 1
                res.add(
                    f"{m.client} never got seq {run_start}"
                    + (f"..{last}" if last > run_start else "")
                    + " (gap)",
                    {
                        **m.label(),
                        "missing": short(range(run_start, last + 1)),
                        "missing_count": last - run_start + 1,
                        "before": run_start - 1,
                        "position": pos,
                        "line": line,
                    },
                )
                run_start = None


# -- agreement ----------------------------------------------------------------------


def _ident(p: ParsedLine) -> tuple[LineKind, str, str | None]:
    """What makes two broadcasts the same event: kind, name and (MSG, LEAVE) text or reason."""
    if p.kind is LineKind.MSG or p.kind is LineKind.LEAVE:
        return (p.kind, p.key, p.detail)
    return (p.kind, p.key, None)


def check_agreement(run: ParsedRun, limit: int = MAX_WITNESSES) -> CheckResult:
    """Members agree: the same seq means the same event (global numbering only), and any two
    messages two members both received come in the same order (always, by payload)."""
    res = CheckResult("agreement", limit=limit)
    if run.numbered_global:
        _agreement_by_seq(run, res)
    _agreement_by_order(run, res)
    return res


def _agreement_by_seq(run: ParsedRun, res: CheckResult) -> None:
    # seq -> the first event seen with it, and the member that got it
    ref: dict[int, tuple[ParsedLine, ParsedClient]] = {}
    for m in run.members:
        top = -1
        for p in m.stream:
            s = p.seq
            if s is None or s <= top:
                continue  # a repeat or a late one at this member: the seq check reports it
            top = s
            first = ref.get(s)
            if first is None:
                ref[s] = (p, m)
                continue
            q, other = first
            if q is not p and q.line != p.line and _ident(q) != _ident(p):
                res.add(
                    f"seq {s} is {q.kind.value} {q.name} at {other.client} "
                    f"but {p.kind.value} {p.name} at {m.client}",
                    {"seq": s, "clients": [other.client, m.client], "lines": [q.line, p.line]},
                )


def _agreement_by_order(run: ParsedRun, res: CheckResult) -> None:
    """Order agreement in O(total): find one order every member is consistent with.

    A cheap candidate first (the seq for a global numbering, else the first
    receipt time); if some member contradicts it, a topological order of
    "came right after" edges over all members, which exists iff every member
    is consistent with one total order. Cycles are broken at the message the
    fewest members disagree on; then each member's messages that are not in
    its longest run consistent with that order are the disagreements.
    """
    table = run.table
    members = [m for m in run.members if len(m.order) > 1]
    if not members:
        return
    if run.seq_global:
        rank: list[float] = [s if s is not None else _INF for s in table.seq]
        if _all_increasing(members, rank, strict=True):
            return
    rank = list(table.tb)
    if _all_increasing(members, rank, strict=True):
        return
    rank = _topological_rank(members, len(table), table.tb)
    if _all_increasing(members, rank):
        return
    positions: dict[int, dict[int, int]] = {}
    for m in members:
        outliers = lis_outliers([rank[mid] for mid in m.order])
        if res.is_full:
            res.count += len(outliers)
            continue
        out = set(outliers)
        for i in outliers:
            if res.is_full:
                res.count += 1
                continue
            _add_disagreement(run, res, members, m, i, out, rank, positions)


def _add_disagreement(
    run: ParsedRun,
    res: CheckResult,
    members: Sequence[ParsedClient],
    m: ParsedClient,
    i: int,
    out: set[int],
    rank: Sequence[float],
    positions: dict[int, dict[int, int]],
) -> None:
    """The witness for ``m``'s ``i``-th message being out of the common order."""
    table = run.table
    mid = m.order[i]
    # The neighbour it is misplaced against: the nearest kept one before or after.
    other_mid, before = _neighbour(m.order, out, i, rank)
    witness: dict[str, object] = {
        "client": m.client,
        "messages": [table.describe(other_mid), table.describe(mid)]
        if before
        else [table.describe(mid), table.describe(other_mid)],
    }
    first, second = (other_mid, mid) if before else (mid, other_mid)
    contra = _find_contrary(run, members, m, first, second, positions)
    if contra is not None:
        witness["clients"] = [m.client, contra.client]
    a, b = table.describe(first), table.describe(second)
    res.add(
        f"{m.client} got b={a['bot']} n={a['n']} before b={b['bot']} n={b['n']}"
        + (f", {contra.client} the other way round" if contra is not None else ", against the others"),
        witness,
    )


def _all_increasing(members: Sequence[ParsedClient], rank: Sequence[float], *, strict: bool = False) -> bool:
    """Every member's messages in ``rank`` order. ``strict``: a tie is not an order, so two members that
    got two messages in opposite orders are not both "consistent" with a candidate that ranks them equal
    (two first receipts at one instant); the exact topological order then decides."""
    for m in members:
        prev = -_INF
        for mid in m.order:
            r = rank[mid]
            if r < prev or (strict and r == prev):
                return False
            prev = r
    return True


def _topological_rank(members: Sequence[ParsedClient], n: int, tb: Sequence[float]) -> list[float]:
    """Kahn's algorithm over "b came right after a at some member" edges, weighted by how many
    members saw that edge; when stuck in a cycle, take the node with the least in-weight."""
    edges: dict[int, int] = {}
    for m in members:
        order = m.order
        for a, b in pairwise(order):
            e = a * n + b
            edges[e] = edges.get(e, 0) + 1
    succ: dict[int, list[tuple[int, int]]] = {}
    indeg = [0] * n
    for e, w in edges.items():
        a, b = divmod(e, n)
        succ.setdefault(a, []).append((b, w))
        indeg[b] += w
    nodes = set()
    for m in members:
        nodes.update(m.order)
    heap = [(indeg[v], tb[v], v) for v in nodes]
    heapq.heapify(heap)
    rank = [_INF] * n
    done = 0
    while heap:
        w, _, v = heapq.heappop(heap)
        if rank[v] != _INF or w != indeg[v]:
            continue
        rank[v] = done
        done += 1
        for b, wb in succ.get(v, ()):
            if rank[b] == _INF:
                indeg[b] -= wb
                heapq.heappush(heap, (indeg[b], tb[b], b))
    return rank


def _neighbour(order: Sequence[int], out: set[int], i: int, rank: Sequence[float]) -> tuple[int, bool]:
    """A kept message that ``order[i]`` is out of order with; True if it came before it."""
    r = rank[order[i]]
    for k in range(i - 1, -1, -1):
        if k not in out:
            if rank[order[k]] > r:
                return order[k], True
            break
    for k in range(i + 1, len(order)):
        if k not in out:
            if rank[order[k]] < r:
                return order[k], False
            break
    # Fall back to any kept message on the wrong side.
    for k in range(len(order)):
        if k not in out and ((k < i and rank[order[k]] > r) or (k > i and rank[order[k]] < r)):
            return order[k], k < i
    return order[i - 1 if i > 0 else i + 1], i > 0


def _find_contrary(
    run: ParsedRun,
    members: Sequence[ParsedClient],
    m: ParsedClient,
    first: int,
    second: int,
    positions: dict[int, dict[int, int]],
) -> ParsedClient | None:
    """A member that got ``second`` before ``first`` (``m`` got them the other way round)."""
    sender = run.table.sender[first]
    candidates = list(members)
    if sender >= 0:  # the sender's own echo order first: the most telling witness
        candidates.sort(key=lambda c: c.index != sender)
    for c in candidates[:64]:
        if c is m or first not in c.recv or second not in c.recv:
            continue
        pos = positions.get(c.index)
        if pos is None:
            pos = positions[c.index] = {mid: i for i, mid in enumerate(c.order)}
        if pos[second] < pos[first]:
            return c
    return None


# -- fifo ---------------------------------------------------------------------------------


def check_fifo(run: ParsedRun, limit: int = MAX_WITNESSES) -> CheckResult:
    """Per sender connection, each receiver sees the sender's counters strictly increase:
    no message twice, no message after a later one of the same sender."""
    res = CheckResult("fifo", limit=limit)
    table = run.table
    clients = run.clients
    for m in run.members:
        if res.is_full:
            res.count += len(m.dups) + len(m.fifo_back)
            continue
        for pos, mid in m.dups:
            d = table.describe(mid)
            res.add(
                f"{m.client} got b={d['bot']} n={d['n']} twice",
                {**m.label(), "message": d, "position": pos, "line": m.stream[pos].line},
            )
        for pos, mid, prev_j in m.fifo_back:
            d = table.describe(mid)
            s = table.sender[mid]
            prev = table.n[clients[s].sent[prev_j].mid]
            res.add(
                f"{m.client} got b={d['bot']} n={d['n']} after n={prev} from the same sender",
                {
                    **m.label(),
                    "sender": clients[s].client if s >= 0 else None,
                    "message": d,
                    "after_n": prev,
                    "position": pos,
                    "line": m.stream[pos].line,
                },
            )
    return res
