"""Judge recorded histories: pure functions from client histories to violations with witnesses.

No sockets, no threads, no clock: the checker reads :class:`harness.history.ClientHistory`
objects (what each connection sent and received, with wall-clock times) and says
what a correct server could not have produced. It can therefore be unit-tested,
run again on a recorded run (``python -m harness.checker RUN_DIR``), used by
locust users and notebooks, and aimed at any server that speaks the protocol.

Theory of operation
-------------------
1. **Parse once.** Every received line is parsed by :func:`chat.protocol.parse_server_line`
   (the one protocol implementation), through a cache keyed by the line: a
   broadcast reaches every member as the same text, so a line is parsed once
   however many members got it. Bot payloads (``b=<bot> n=<counter> t=<due>``)
   are interned as small integers, so the checks work on ints and sets of ints.
2. **Derive once** (:class:`ParsedRun`): per member, the stream of broadcasts
   after its ``OK``; the set and order of messages it received; per message,
   its sender, send time and first receipt.
3. **Check** (one pure function per check, each returning a :class:`CheckResult`):
   ``seq``, ``agreement``, ``loss``, ``fifo``, ``membership``, ``names``,
   ``liveness``. Each violation carries a minimal witness: the clients, the
   seqs or messages, the lines. See docs/checker.md for the exact rules.

Time rules are *conservative*: a check only owes a member what a correct
server must provably have delivered, given when things were sent (a lower
bound on when the server saw them, with :attr:`CheckConfig.clock_slack` for
times recorded just after a write) and when they were first received
(an upper bound on when the server broadcast them). A correct server never
fails; a server that loses, duplicates, reorders or misnumbers fails within
seconds of a swarm.
"""

from __future__ import annotations

import argparse
import bisect
import gc
import heapq
import json
import logging
import math
import re
import sys
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from itertools import pairwise, zip_longest
from pathlib import Path
from typing import Any

from chat.protocol import (
    Bye,
    Err,
    Hello,
    Join,
    Leave,
    Msg,
    Ok,
    RemoteProtocolError,
    Users,
    parse_server_line,
)
from harness.record.history import (
    ClientHistory,
    Closed,
    Connected,
    Event,
    Received,
    Sent,
    load_histories,
)
from harness.record.payload import decode_payload

log = logging.getLogger(__name__)

CHECK_NAMES = ("seq", "agreement", "loss", "fifo", "membership", "names", "liveness")

#: Witnesses kept per check in a :class:`Report` (the counts are always exact):
#: a server that loses every message must not make the report a gigabyte.
MAX_WITNESSES = 200
#: Items listed inside one witness (missing seqs, candidate clients, ...).
WITNESS_ITEMS = 10
#: Roles whose bots stop reading on purpose: they are expected to be dropped as
#: slow, owe no latency and no delivery deadline.
SLOW_ROLES = frozenset({"slow"})


# -- public data ---------------------------------------------------------------


@dataclass(frozen=True)
class Violation:
    """One thing a correct server could not have done, with the smallest evidence that shows it."""

    check: str
    message: str
    witness: dict[str, object]


@dataclass(frozen=True)
class CheckConfig:
    """Bounds and facts about the run that the histories alone do not hold."""

    #: Seconds from connect to HELLO, and from a name line to its OK/ERR.
    handshake_bound: float = 5.0
    #: Seconds from sending a message to its echo; also how long a server may
    #: take to announce a LEAVE before a member that stayed is owed it.
    delivery_bound: float = 5.0
    #: Lower-cased names that several clients race for (name-race scenario).
    contested_names: frozenset[str] = frozenset()
    #: Wall-clock time the run stopped; the end of clients with no ``Closed``.
    run_end: float | None = None
    #: Seconds by which a recorded send time may trail the real write (bots
    #: record after writing; a preempted bot records late). Widens every time
    #: rule by this much, towards owing less.
    clock_slack: float = 0.02
    #: Longest line the server accepts; longer bot messages are not owed.
    max_line: int = 4096
    #: Other clients, whose histories are not given, may share the server (a
    #: distributed locust worker judges only its own users; people may chat
    #: during a run). What needs their histories is then not judged: a name
    #: no given client offered is not a phantom, a MSG whose sender is unknown
    #: or a LEAVE seen without its JOIN owes no JOIN, a name refused as taken
    #: may have been held by one of them, and the seq rule of loss is off (one
    #: of them may have reused a name). False: the histories are the whole run.
    foreign_clients: bool = False


@dataclass
class LatencySummary:
    """Delivery latency, receiver side, from the message's *due* time (open loop)."""

    count: int = 0
    p50_ms: float = 0.0
    p95_ms: float = 0.0
    p99_ms: float = 0.0
    max_ms: float = 0.0


@dataclass
class CheckResult:
    """What one check found: the exact count and the first witnesses."""

    name: str
    count: int = 0
    violations: list[Violation] = field(default_factory=list)
    limit: int = MAX_WITNESSES

    def add(self, message: str, witness: dict[str, object]) -> None:
        self.count += 1
        if len(self.violations) < self.limit:
            self.violations.append(Violation(self.name, message, witness))

    @property
    def is_full(self) -> bool:
        """No more witnesses are kept: costly ones need not be built, only counted."""
        return len(self.violations) >= self.limit


@dataclass
class Report:
    violations: list[Violation]
    #: Violations per check, every name of :data:`CHECK_NAMES` present (exact,
    #: even when fewer witnesses are kept).
    counts: dict[str, int]
    #: MSG lines received by members.
    deliveries: int
    #: Chat messages (with a bot payload) sent by members.
    messages_sent: int
    #: Clients (connections) that got ``OK``.
    joined: int
    clients: int
    latency: LatencySummary
    #: ``numbered`` | ``unnumbered`` | ``mixed`` | ``none`` (from JOIN/LEAVE lines).
    seq_style: str
    #: Distinct bots with at least one client that got ``OK``.
    bots_joined: int = 0
    #: Whether seqs are one global counter (False: per recipient; see docs).
    seq_global: bool = False
    #: Seconds the check took.
    elapsed: float = 0.0

    def total(self) -> int:
        return sum(self.counts.values())

    def passed(self) -> bool:
        return self.total() == 0

    def summary_line(self) -> str:
        """``PASS: 0 violations in 123,456 deliveries`` or ``FAIL: 3 violations (loss 2, fifo 1)``."""
        total = self.total()
        if total == 0:
            return f"PASS: 0 violations in {self.deliveries:,} deliveries"
        order = {name: i for i, name in enumerate(CHECK_NAMES)}
        parts = sorted(((n, c) for n, c in self.counts.items() if c), key=lambda nc: (-nc[1], order[nc[0]]))
        detail = ", ".join(f"{n} {c:,}" for n, c in parts)
        return f"FAIL: {total:,} violation{'s' if total != 1 else ''} ({detail})"

    def to_dict(self) -> dict[str, object]:
        """A JSON-ready copy (for ``--json`` and summary.json)."""
        d = asdict(self)
        d["passed"] = self.passed()
        return d


def judge(report: Report, asked_clients: int) -> tuple[str, int]:
    """The verdict and exit code of a run: ``FAIL``/1, ``UNKNOWN``/3 or ``PASS``/0.

    Any violation fails the run, a liveness one included, even when as a result
    fewer bots joined than asked (see CONTRACT-NOTES). Otherwise a run with no
    delivery, or with fewer bots joined than ``asked_clients``, is ``UNKNOWN``:
    too little happened to call it a pass.
    """
    if not report.passed():
        return "FAIL", 1
    if report.deliveries == 0 or report.bots_joined < asked_clients:
        return "UNKNOWN", 3
    return "PASS", 0


def verdict_line(report: Report, asked_clients: int) -> str:
    """The one-line verdict, ``UNKNOWN`` included.

    For example ``UNKNOWN: 0 violations in 1,234 deliveries, but only 3 of 50 bots joined``.
    """
    verdict, _ = judge(report, asked_clients)
    if verdict != "UNKNOWN":
        return report.summary_line()
    if report.deliveries == 0:
        return f"UNKNOWN: 0 violations, but no message was delivered ({report.bots_joined} bots joined)"
    return (
        f"UNKNOWN: 0 violations in {report.deliveries:,} deliveries, "
        f"but only {report.bots_joined} of {asked_clients} bots joined"
    )


# -- parsing ---------------------------------------------------------------------

# A parsed server line is a tuple, shared by every member that received the same
# line: (code, seq, name, name key, message id, due, extra, line).
K_JOIN, K_MSG, K_LEAVE, K_USERS, K_OK, K_HELLO, K_ERR, K_BYE, K_BAD = range(9)
P_CODE, P_SEQ, P_NAME, P_KEY, P_MID, P_DUE, P_EXTRA, P_LINE = range(8)
_KIND_NAMES = ("JOIN", "MSG", "LEAVE", "USERS", "OK", "HELLO", "ERR", "BYE", "?")
_QUIT_LINES = ("/quit", "exit")
_INF = math.inf

#: A tuple, not a dataclass: one is built per distinct line and indexed in the
#: hot loops; its fields are typed by the P_* positions above, hence Any here.
ParsedLine = tuple[Any, ...]


class MessageTable:
    """Every bot message of the run, by a small integer id: who sent it, when, who saw it first.

    A message is identified by its payload (bot, counter, due), so that loss,
    FIFO and order can be judged without trusting the server's seq.
    """

    def __init__(self) -> None:
        self.ids: dict[tuple[str, int, float], int] = {}
        self.bot: list[str] = []
        self.n: list[int] = []
        #: Index of the sending client in ParsedRun.clients, -1 if nobody sent it.
        self.sender: list[int] = []
        #: Index in the sender's ``sent`` list.
        self.j: list[int] = []
        #: Lower bound on when the server could see it (min(sent, due) - slack).
        self.lo: list[float] = []
        #: When the sender recorded it (for liveness).
        self.ts: list[float] = []
        #: First receipt by anyone: an upper bound on its broadcast.
        self.tb: list[float] = []
        #: Receipt by its own sender (the echo).
        self.echo: list[float] = []
        #: The seq of its first receipt (numbered servers).
        self.seq: list[int | None] = []

    def intern(self, bot: str, n: int, due: float) -> int:
        key = (bot, n, due)
        mid = self.ids.get(key)
        if mid is None:
            mid = self.ids[key] = len(self.bot)
            self.bot.append(bot)
            self.n.append(n)
            self.sender.append(-1)
            self.j.append(-1)
            self.lo.append(_INF)
            self.ts.append(_INF)
            self.tb.append(_INF)
            self.echo.append(_INF)
            self.seq.append(None)
        return mid

    def __len__(self) -> int:
        return len(self.bot)

    def describe(self, mid: int) -> dict[str, object]:
        return {"bot": self.bot[mid], "n": self.n[mid]}


@dataclass
class NameAttempt:
    """A name line sent during the handshake, and what the server answered."""

    t: float
    name: str
    reply: str | None = None  # "ok", an ERR code, or None (unanswered)
    reply_t: float | None = None


@dataclass
class ParsedClient:
    """One connection as the checks see it: its handshake, and its stream once a member."""

    index: int
    client: str
    bot: str
    role: str
    connected_at: float | None = None
    #: First line from the server (HELLO, or ERR full).
    greeted_at: float | None = None
    attempts: list[NameAttempt] = field(default_factory=list)
    name: str | None = None
    key: str = ""
    ok_at: float = _INF
    #: Lower bound on when the server could see this member's /quit (inf: none sent).
    quit_lo: float = _INF
    quit_at: float = _INF
    bye_at: float = _INF
    closed: Closed | None = None
    #: The last moment this client was observed (Closed, or run end, or last event).
    end_at: float = 0.0
    #: The member's stream: each broadcast's parsed line and receipt time.
    ev: list[ParsedLine] = field(default_factory=list)
    times: list[float] = field(default_factory=list)
    #: USERS answers: (number of broadcasts before it, time, names).
    users: list[tuple[int, float, tuple[str, ...]]] = field(default_factory=list)
    #: Chat messages sent as a member, before any /quit: (sent time, message id).
    sent: list[tuple[float, int]] = field(default_factory=list)
    #: Broadcasts received before OK, and lines no event fits (protocol faults).
    early: list[str] = field(default_factory=list)
    bad: list[str] = field(default_factory=list)
    #: ERR lines received as a member (e.g. line-too-long): the server refused something.
    member_errs: int = 0
    # -- derived (see _derive) --
    recv: set[int] = field(default_factory=set)
    #: First receipt of each message, in stream order.
    order: list[int] = field(default_factory=list)
    #: (position in ev, message id) of repeated messages.
    dups: list[tuple[int, int]] = field(default_factory=list)
    #: (position, message id, sender's send index seen before) where a sender went back.
    fifo_back: list[tuple[int, int, int]] = field(default_factory=list)
    #: Per sending client: the highest index in its sent list received here.
    max_j: dict[int, int] = field(default_factory=dict)
    #: max lo() of the messages received: the server reached at least this time
    #: while this client was a member.
    end_ev: float = -_INF
    join_seq: int | None = None
    last_seq: int | None = None
    #: The end of the gap-free run of seqs from its JOIN: certainly a member up to there.
    contig_seq: int | None = None
    #: Positions of its numbered stream outside the longest increasing run.
    seq_outliers: list[int] = field(default_factory=list)
    #: MSG lines received as a member.
    deliveries: int = 0
    #: Name keys of the JOIN lines received as a member.
    joins_seen: set[str] = field(default_factory=set)
    #: Lower bound on when the server announced its leave (None: not a leaver).
    leave_lo: float | None = None

    @property
    def is_member(self) -> bool:
        return self.name is not None

    @property
    def clean_quit(self) -> bool:
        """It asked to leave and got BYE: the server flushed everything before its leave."""
        return self.quit_at <= self.bye_at < _INF

    def label(self) -> dict[str, object]:
        d: dict[str, object] = {"client": self.client}
        if self.name is not None:
            d["name"] = self.name
        return d


def _style_of(histories: Sequence[ClientHistory]) -> bool | None:
    """The numbering style from the first JOIN/LEAVE lines (unambiguous: by field count)."""
    numbered = unnumbered = 0
    for h in histories:
        seen = 0
        for e in h.events:
            if e.kind != "received":
                continue
            line = e.line
            if line.startswith("JOIN ") or line.startswith("LEAVE "):
                parts = line.split(" ")
                want = 3 if parts[0] == "JOIN" else 4
                if len(parts) == want and parts[1].isascii() and parts[1].isdigit():
                    numbered += 1
                else:
                    unnumbered += 1
                seen += 1
                if seen >= 3:
                    break
    if numbered and not unnumbered:
        return True
    if unnumbered and not numbered:
        return False
    return None


class _LineParser:
    """Parses server lines through :func:`parse_server_line`, once per distinct line."""

    #: Distinct lines cached at most; a per-recipient numbering makes every line distinct.
    CACHE_MAX = 400_000

    def __init__(self, seqs: bool | None, table: MessageTable) -> None:
        self.seqs = seqs
        self.table = table
        self.cache: dict[str, ParsedLine] = {}
        #: Distinct MSG lines (parse tuples) seen, for per-line checks.
        #: Distinct MSG lines, each with the index of the first client that got it.
        self.msg_lines: list[tuple[ParsedLine, int]] = []
        #: The client being parsed (set by the caller).
        self.current = -1
        self.numbered = 0
        self.unnumbered = 0

    def parse(self, line: str) -> ParsedLine:
        p = self.cache.get(line)
        if p is not None:
            return p
        p = self._parse(line)
        if len(self.cache) >= self.CACHE_MAX:
            self.cache.clear()
        self.cache[line] = p
        return p

    def _parse(self, line: str) -> ParsedLine:
        try:
            ev = parse_server_line(line, seqs=self.seqs)
        except RemoteProtocolError:
            return (K_BAD, None, "", "", -1, None, None, line)
        if isinstance(ev, Msg):
            mid = -1
            due = None
            payload = decode_payload(ev.text)
            if payload is not None:
                mid = self.table.intern(payload.bot, payload.n, payload.due)
                due = payload.due
            p: ParsedLine = (K_MSG, ev.seq, ev.name, ev.name.lower(), mid, due, ev.text, line)
            self.msg_lines.append((p, self.current))
            return p
        if isinstance(ev, (Join, Leave)):
            if ev.seq is None:
                self.unnumbered += 1
            else:
                self.numbered += 1
            if isinstance(ev, Join):
                return (K_JOIN, ev.seq, ev.name, ev.name.lower(), -1, None, None, line)
            return (K_LEAVE, ev.seq, ev.name, ev.name.lower(), -1, None, ev.reason, line)
        if isinstance(ev, Users):
            return (K_USERS, None, "", "", -1, None, ev.names, line)
        if isinstance(ev, Ok):
            return (K_OK, None, ev.name, ev.name.lower(), -1, None, None, line)
        if isinstance(ev, Hello):
            return (K_HELLO, None, "", "", -1, None, None, line)
        if isinstance(ev, Err):
            return (K_ERR, None, "", "", -1, None, ev.code.value, line)
        assert isinstance(ev, Bye)
        return (K_BYE, None, "", "", -1, None, ev.text, line)


#: What the server refuses as ``bad-encoding`` (C0 controls but tab, and DEL), as in chat.protocol.
_CONTROL_RE = re.compile(r"[\x00-\x08\x0a-\x1f\x7f]")


def _is_refusable(line: str, max_line: int) -> bool:
    """A chat line a correct server may refuse (too long, control characters): not owed."""
    if len(line) * 4 > max_line and len(line.encode("utf-8", "replace")) > max_line:
        return True
    return _CONTROL_RE.search(line) is not None


def _parse_client(
    h: ClientHistory, index: int, parser: _LineParser, config: CheckConfig, latencies: list[float]
) -> ParsedClient:
    pc = ParsedClient(index, h.client, h.bot, h.role)
    parser.current = index
    table = parser.table
    parse = parser.parse
    cached = parser.cache.get
    slack = config.clock_slack
    ev_append = pc.ev.append
    t_append = pc.times.append
    lat_append = latencies.append if h.role not in SLOW_ROLES else None
    pending = 0  # next attempt awaiting its reply
    member = False
    events: list[Event] = h.events
    for e in events:
        kind = e.kind
        if kind == "received":
            t = e.t
            line = e.line  # type: ignore[union-attr]
            p = cached(line) or parse(line)
            code = p[0]
            if code <= K_LEAVE:
                if not member:
                    pc.early.append(p[P_LINE])
                    continue
                ev_append(p)
                t_append(t)
                if code == K_MSG:
                    pc.deliveries += 1
                elif code == K_JOIN:
                    pc.joins_seen.add(p[P_KEY])
                if lat_append is not None and code == K_MSG and p[P_DUE] is not None:
                    lat_append(t - p[P_DUE])
            elif code == K_USERS:
                if member:
                    pc.users.append((len(pc.ev), t, p[P_EXTRA]))
            elif code == K_OK:
                if member:
                    pc.bad.append(p[P_LINE])
                    continue
                member = True
                pc.name = p[P_NAME]
                pc.key = p[P_KEY]
                pc.ok_at = t
                if pc.greeted_at is None:
                    pc.greeted_at = t
                if pending < len(pc.attempts):
                    a = pc.attempts[pending]
                    a.reply, a.reply_t = "ok", t
                    pending += 1
            elif code == K_HELLO:
                if pc.greeted_at is None:
                    pc.greeted_at = t
            elif code == K_ERR:
                if pc.greeted_at is None:
                    pc.greeted_at = t
                if member:
                    pc.member_errs += 1
                elif p[P_EXTRA] not in ("timeout", "full") and pending < len(pc.attempts):
                    a = pc.attempts[pending]
                    a.reply, a.reply_t = str(p[P_EXTRA]), t
                    pending += 1
            elif code == K_BYE:
                if pc.bye_at == _INF:
                    pc.bye_at = t
            else:
                pc.bad.append(p[P_LINE])
        elif kind == "sent":
            line = e.line  # type: ignore[union-attr]
            t = e.t
            if not member:
                if line in _QUIT_LINES or line.startswith("/quit "):
                    continue
                pc.attempts.append(NameAttempt(t, line))
            elif pc.quit_at == _INF:
                if line in _QUIT_LINES or line.startswith("/quit "):
                    pc.quit_at = t
                    pc.quit_lo = t - slack
                    continue
                payload = decode_payload(line)
                if payload is None or _is_refusable(line, config.max_line):
                    continue
                mid = table.intern(payload.bot, payload.n, payload.due)
                if table.sender[mid] != -1:
                    log.warning("message b=%s n=%d sent twice; keeping the first", payload.bot, payload.n)
                    continue
                table.sender[mid] = index
                table.j[mid] = len(pc.sent)
                due = e.due if e.due is not None else payload.due  # type: ignore[union-attr]
                table.lo[mid] = min(t, due) - slack
                table.ts[mid] = t
                pc.sent.append((t, mid))
        elif kind == "connected":
            if pc.connected_at is None:
                pc.connected_at = e.t
        elif kind == "closed" and pc.closed is None:
            assert isinstance(e, Closed)
            pc.closed = e
    if pc.closed is not None:
        pc.end_at = pc.closed.t
    elif config.run_end is not None:
        pc.end_at = config.run_end
    elif events:
        pc.end_at = events[-1].t
    return pc


@dataclass
class ParsedRun:
    """Every client parsed once, and what the checks share."""

    clients: list[ParsedClient]
    table: MessageTable
    config: CheckConfig
    #: ``numbered`` | ``unnumbered`` | ``mixed`` | ``none``
    seq_style: str
    latencies: list[float]
    #: Distinct MSG lines, for per-line checks (sender attribution).
    msg_lines: list[tuple[ParsedLine, int]]
    seq_global: bool = False
    members: list[ParsedClient] = field(default_factory=list)
    #: Name key -> earliest lower bound of a handshake line offering it.
    first_offer: dict[str, float] = field(default_factory=dict)
    #: Name key -> clients that got OK with it, by OK time.
    holders: dict[str, list[ParsedClient]] = field(default_factory=dict)
    #: Name key -> seqs of LEAVE lines seen by anyone (numbered, global).
    leave_seqs: dict[str, list[int]] = field(default_factory=dict)
    #: Global seq -> message id (numbered, global), from the first receipt.
    msg_at_seq: dict[int, int] = field(default_factory=dict)
    #: Lazily built by the checks that need them.
    by_lo: tuple[list[float], list[int]] | None = None
    leavers: tuple[list[ParsedClient], list[float]] | None = None
    unreceived: dict[int, list[int]] | None = None


def parse_run(histories: Sequence[ClientHistory], config: CheckConfig | None = None) -> ParsedRun:
    """Parse every history once and derive what the checks share. Pure."""
    config = config or CheckConfig()
    table = MessageTable()
    parser = _LineParser(_style_of(histories), table)
    latencies: list[float] = []
    clients = [_parse_client(h, i, parser, config, latencies) for i, h in enumerate(histories)]
    if parser.numbered and parser.unnumbered:
        style = "mixed"
    elif parser.numbered:
        style = "numbered"
    elif parser.unnumbered:
        style = "unnumbered"
    else:
        style = "none"
    run = ParsedRun(clients, table, config, style, latencies, parser.msg_lines)
    run.members = [c for c in clients if c.is_member]
    slack = config.clock_slack
    for c in clients:
        for a in c.attempts:
            k = a.name.lower()
            lo = a.t - slack
            if lo < run.first_offer.get(k, _INF):
                run.first_offer[k] = lo
    for m in sorted(run.members, key=lambda c: c.ok_at):
        run.holders.setdefault(m.key, []).append(m)
    _derive(run)
    return run


def _derive(run: ParsedRun) -> None:
    """One pass over every member's stream: receipts, order, duplicates, FIFO steps, seqs.

    The hot loop of the checker (one iteration per delivery): locals only, one
    dict lookup per message, and the FIFO step judged on the sender's send
    index, which grows with its counter.
    """
    table = run.table
    sender_of = table.sender
    j_of = table.j
    lo_of = table.lo
    tb = table.tb
    echo = table.echo
    first_seq = table.seq
    numbered = run.seq_style in ("numbered", "mixed")
    # (first receiver, receiver, seq difference) -> times seen; sampled on big runs.
    pair_diffs: dict[tuple[int, int, int], int] = {}
    first_holder = [-1] * len(table) if numbered else []
    sample_mask = 0 if len(table) <= 4096 else 15
    clients = run.clients
    for m in run.members:
        recv: set[int] = set()
        order: list[int] = []
        last_j: dict[int, int] = {}
        me = m.index
        dups = m.dups
        fifo_back = m.fifo_back
        recv_add = recv.add
        order_append = order.append
        last_j_get = last_j.get
        pos = -1
        for p, t in zip(m.ev, m.times, strict=True):
            pos += 1
            mid = p[4]  # P_MID
            if mid < 0:
                continue
            if mid in recv:
                dups.append((pos, mid))
                continue
            recv_add(mid)
            order_append(mid)
            if t < tb[mid]:
                tb[mid] = t
            if numbered:
                seq = p[1]  # P_SEQ
                if seq is not None:
                    f = first_seq[mid]
                    if f is None:
                        first_seq[mid] = seq
                        first_holder[mid] = me
                    elif not (mid & sample_mask):
                        key = (first_holder[mid], me, seq - f)
                        pair_diffs[key] = pair_diffs.get(key, 0) + 1
            s = sender_of[mid]
            if s < 0:
                continue
            j = j_of[mid]
            prev = last_j_get(s, -1)
            if j > prev:
                last_j[s] = j
            else:
                fifo_back.append((pos, mid, prev))
            if s == me:
                echo[mid] = t
        m.recv = recv
        m.order = order
        m.max_j = last_j
        end_ev = -_INF
        for s, j in last_j.items():
            lo = lo_of[clients[s].sent[j][1]]
            if lo > end_ev:
                end_ev = lo
        m.end_ev = end_ev
        if numbered and m.ev:
            seqs = [p[P_SEQ] for p in m.ev]
            if None not in seqs:
                if not _consecutive(seqs):
                    m.seq_outliers = _lis_outliers(seqs)
                # Only the seqs in order are trusted for windows: one misnumbered
                # line must not stretch a member's window.
                out = set(m.seq_outliers)
                kept = [sq for i, sq in enumerate(seqs) if i not in out]
                first = m.ev[0]
                if first[P_CODE] == K_JOIN and first[P_KEY] == m.key and 0 not in out:
                    m.join_seq = first[P_SEQ]
                else:
                    m.join_seq = kept[0] - 1
                m.last_seq = kept[-1]
                # Certainly a member up to the end of its first gap-free run
                # (a misnumbered last line cannot be told from a jump).
                contig = m.join_seq
                for sq in kept:
                    if sq == contig + 1:
                        contig = sq
                    elif sq > contig + 1:
                        break
                m.contig_seq = contig
    if numbered:
        run.seq_global = _numbering_is_global(pair_diffs)
        if run.seq_global:
            msg_at_seq = run.msg_at_seq
            for mid, sq in enumerate(first_seq):
                if sq is not None and sq not in msg_at_seq:
                    msg_at_seq[sq] = mid
            for m in run.members:
                out = set(m.seq_outliers)
                for i, p in enumerate(m.ev):
                    if p[P_CODE] == K_LEAVE and p[P_SEQ] is not None and i not in out:
                        run.leave_seqs.setdefault(p[P_KEY], []).append(p[P_SEQ])
            for seqs_ in run.leave_seqs.values():
                seqs_[:] = sorted(set(seqs_))


def _numbering_is_global(pair_diffs: dict[tuple[int, int, int], int]) -> bool:
    """Whether seqs come from one global counter, from how two members numbered shared messages.

    Any numbering that counts every broadcast gives two members a constant
    difference on the messages they share: 0 for a global counter, the
    difference of their offsets for per-recipient counters. So the numbering is
    global when, for every pair of members, the most common difference is 0 (a
    broken global server misnumbers now and then; it does not shift the mode).
    With no shared message there is no evidence either way: not global.
    """
    best: dict[tuple[int, int], tuple[int, int]] = {}
    for (a, b, d), n in pair_diffs.items():
        cur = best.get((a, b))
        if cur is None or n > cur[0] or (n == cur[0] and d == 0):
            best[(a, b)] = (n, d)
    return bool(best) and all(d == 0 for _, d in best.values())


def _leave_seq_after(run: ParsedRun, key: str, after: int) -> int | None:
    seqs = run.leave_seqs.get(key)
    if not seqs:
        return None
    i = bisect.bisect_right(seqs, after)
    return seqs[i] if i < len(seqs) else None


def _short(items: Iterable[object]) -> list[object]:
    out: list[object] = []
    for i, x in enumerate(items):
        if i >= WITNESS_ITEMS:
            out.append("...")
            break
        out.append(x)
    return out


# -- the checks ---------------------------------------------------------------------


def check_seq(run: ParsedRun, limit: int = MAX_WITNESSES) -> CheckResult:
    """Per member, consecutive seqs from its own JOIN: a gap is a loss, a repeat a duplicate,
    a step back a reordering. Only for servers that number their events.

    A broken stream is described minimally: its longest increasing run is
    kept; each other event is a duplicate (its seq also arrived elsewhere) or
    reordered; a value missing between kept ones and nowhere else is a gap.
    So a swap is one reordering, not a gap plus a reordering.
    """
    res = CheckResult("seq", limit=limit)
    if run.seq_style not in ("numbered", "mixed"):
        return res
    for m in run.members:
        ev = m.ev
        if not ev:
            continue
        seqs = [p[P_SEQ] for p in ev]
        if None in seqs:
            i = seqs.index(None)
            if any(s is not None for s in seqs):
                res.add(
                    f"{m.client} got an unnumbered event among numbered ones",
                    {**m.label(), "position": i, "line": ev[i][P_LINE]},
                )
            continue
        if not m.seq_outliers and _consecutive(seqs):
            continue
        outliers = set(m.seq_outliers)
        counts: dict[int, int] = {}
        for sq in seqs:
            counts[sq] = counts.get(sq, 0) + 1
        for i in m.seq_outliers:
            if res.is_full:
                res.count += 1
                continue
            sq = seqs[i]
            prev = seqs[i - 1] if i > 0 else None
            w = {**m.label(), "seq": sq, "after": prev, "position": i, "line": ev[i][P_LINE]}
            if counts[sq] > 1:
                res.add(f"{m.client} got seq {sq} twice", w)
            else:
                res.add(f"{m.client} got seq {sq} after seq {prev} (reordered)", w)
        kept = [(i, seqs[i]) for i in range(len(seqs)) if i not in outliers]
        for (_, a), (pos, b) in pairwise(kept):
            if b - a <= 1:
                continue
            if b - a > 100_000:
                res.add(
                    f"{m.client} got seq {b} right after seq {a} (gap)",
                    {
                        **m.label(),
                        "before": a,
                        "position": pos,
                        "line": ev[pos][P_LINE],
                        "missing_count": b - a - 1,
                    },
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
                            "missing": _short(range(run_start, last + 1)),
                            "missing_count": last - run_start + 1,
                            "before": run_start - 1,
                            "position": pos,
                            "line": ev[pos][P_LINE],
                        },
                    )
                    run_start = None
    return res


def _consecutive(seqs: Sequence[int]) -> bool:
    return not seqs or (seqs[-1] - seqs[0] == len(seqs) - 1 and seqs == list(range(seqs[0], seqs[-1] + 1)))


def _ident(p: ParsedLine) -> tuple[int, str, object]:
    code = p[P_CODE]
    if code == K_MSG:
        return (code, p[P_KEY], p[P_EXTRA])
    if code == K_LEAVE:
        return (code, p[P_KEY], p[P_EXTRA])
    return (code, p[P_KEY], None)


def check_agreement(run: ParsedRun, limit: int = MAX_WITNESSES) -> CheckResult:
    """Members agree: the same seq means the same event (global numbering only), and any two
    messages two members both received come in the same order (always, by payload)."""
    res = CheckResult("agreement", limit=limit)
    if run.seq_global and run.seq_style in ("numbered", "mixed"):
        _agreement_by_seq(run, res)
    _agreement_by_order(run, res)
    return res


def _agreement_by_seq(run: ParsedRun, res: CheckResult) -> None:
    ref: dict[int, tuple[ParsedLine, ParsedClient]] = {}
    for m in run.members:
        top = -1
        for p in m.ev:
            s = p[P_SEQ]
            if s is None or s <= top:
                continue  # a repeat or a late one at this member: the seq check reports it
            top = s
            r = ref.get(s)
            if r is None:
                ref[s] = (p, m)
            elif r[0] is not p and r[0][P_LINE] != p[P_LINE] and _ident(r[0]) != _ident(p):
                other = r[1]
                res.add(
                    f"seq {s} is {_KIND_NAMES[r[0][P_CODE]]} {r[0][P_NAME]} at {other.client} "
                    f"but {_KIND_NAMES[p[P_CODE]]} {p[P_NAME]} at {m.client}",
                    {"seq": s, "clients": [other.client, m.client], "lines": [r[0][P_LINE], p[P_LINE]]},
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
        if _all_increasing(members, rank):
            return
    rank = list(table.tb)
    if _all_increasing(members, rank):
        return
    rank = _topological_rank(members, len(table), table.tb)
    if _all_increasing(members, rank):
        return
    positions: dict[int, dict[int, int]] = {}
    for m in members:
        outliers = _outliers(m.order, rank)
        if res.is_full:
            res.count += len(outliers)
            continue
        out = set(outliers)
        for i in outliers:
            if res.is_full:
                res.count += 1
                continue
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
                + (
                    f", {contra.client} the other way round" if contra is not None else ", against the others"
                ),
                witness,
            )


def _all_increasing(members: Sequence[ParsedClient], rank: Sequence[float]) -> bool:
    for m in members:
        prev = -_INF
        for mid in m.order:
            r = rank[mid]
            if r < prev:
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
        w, t, v = heapq.heappop(heap)
        if rank[v] != _INF or w != indeg[v]:
            continue
        rank[v] = done
        done += 1
        for b, wb in succ.get(v, ()):
            if rank[b] == _INF:
                indeg[b] -= wb
                heapq.heappush(heap, (indeg[b], tb[b], b))
    return rank


def _outliers(order: Sequence[int], rank: Sequence[float]) -> list[int]:
    """Positions not in a longest increasing (by rank) subsequence: the fewest moved messages."""
    return _lis_outliers([rank[mid] for mid in order])


def _lis_outliers(values: Sequence[float]) -> list[int]:
    """Positions not in a longest strictly increasing subsequence of ``values`` (O(n log n))."""
    n = len(values)
    tails: list[float] = []
    tails_pos: list[int] = []
    parent = [-1] * n
    for i, r in enumerate(values):
        k = bisect.bisect_left(tails, r)
        if k < len(tails) and tails[k] == r:
            continue  # an equal value: keep the earlier one (a repeat is the outlier)
        if k == len(tails):
            tails.append(r)
            tails_pos.append(i)
        else:
            tails[k] = r
            tails_pos[k] = i
        parent[i] = tails_pos[k - 1] if k > 0 else -1
    keep = set()
    i = tails_pos[-1] if tails_pos else -1
    while i >= 0:
        keep.add(i)
        i = parent[i]
    return [i for i in range(n) if i not in keep]


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
                {**m.label(), "message": d, "position": pos, "line": m.ev[pos][P_LINE]},
            )
        for pos, mid, prev_j in m.fifo_back:
            d = table.describe(mid)
            s = table.sender[mid]
            prev = table.n[clients[s].sent[prev_j][1]]
            res.add(
                f"{m.client} got b={d['bot']} n={d['n']} after n={prev} from the same sender",
                {
                    **m.label(),
                    "sender": clients[s].client if s >= 0 else None,
                    "message": d,
                    "after_n": prev,
                    "position": pos,
                    "line": m.ev[pos][P_LINE],
                },
            )
    return res


def _owed_missing(run: ParsedRun, m: ParsedClient) -> dict[int, str]:
    """The messages ``m`` provably should have received and did not, each with the rule that owes it.

    ``time``: sent after m's OK arrived (so broadcast while m was registered)
    and first received by anyone before something m received was even sent
    (so broadcast before m's stream ended), or before m asked to leave and got
    BYE. ``sender``: sent after m's OK by a connection that m later got a later
    message from (a server handles one connection's lines in order). ``seq``:
    after a clean quit, a global numbering puts it between m's last seq and
    the seq of m's LEAVE.
    """
    table = run.table
    recv = m.recv
    missing: dict[int, str] = {}
    start = m.ok_at
    end = m.end_ev
    if m.clean_quit and m.quit_lo > end:
        end = m.quit_lo
    lo_of = table.lo
    tb = table.tb
    los, mids = _sorted_by_lo(run)
    i = bisect.bisect_right(los, start)
    stop = bisect.bisect_left(los, end, lo=i)
    for mid in mids[i:stop]:
        if mid not in recv and tb[mid] < end:
            missing[mid] = "time"
    # The sender rule adds what the time rule cannot see: messages first
    # received after m's evidence ends (a scan back from m's latest message of
    # each sender, as far as latency plausibly reaches) and messages nobody got.
    horizon = end - run.config.delivery_bound
    unreceived = _unreceived_by_sender(run)
    for s, maxj in m.max_j.items():
        if run.clients[s].member_errs:
            continue  # the server refused one of its lines: which one, we cannot tell
        sent = run.clients[s].sent
        for j in range(maxj - 1, -1, -1):
            mid = sent[j][1]
            lo = lo_of[mid]
            if lo <= start or lo < horizon:
                break
            if mid not in recv and not (lo < end and tb[mid] < end):
                missing[mid] = "sender"
        for j in unreceived.get(s, ()):
            if j >= maxj:
                break
            mid = sent[j][1]
            if lo_of[mid] > start:
                missing[mid] = "sender"
    if (
        run.seq_global
        and m.clean_quit
        and m.join_seq is not None
        and m.last_seq is not None
        and not run.config.foreign_clients
    ):
        # Inside m's stream a lost seq is a gap (the seq check); after it, up to
        # m's LEAVE as the others numbered it, only this rule sees a loss.
        ls = _leave_seq_after(run, m.key, m.last_seq)
        # The name may be taken again later: m's LEAVE comes before the next holder's JOIN.
        next_join = min(
            (
                x.join_seq
                for x in run.holders.get(m.key, ())
                if x.join_seq is not None and x.join_seq > m.join_seq
            ),
            default=None,
        )
        if ls is not None and (next_join is None or ls < next_join):
            at = run.msg_at_seq
            for sq in range(m.last_seq + 1, ls):
                mid_ = at.get(sq)
                if mid_ is not None and mid_ not in recv:
                    missing.setdefault(mid_, "seq")
    return missing


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


def check_loss(run: ParsedRun, limit: int = MAX_WITNESSES) -> CheckResult:
    """A message sent while another client was a member reached it (see :func:`_owed` for
    when a message is provably owed: conservative window edges, no false alarms)."""
    res = CheckResult("loss", limit=limit)
    table = run.table
    clients = run.clients
    for m in run.members:
        lost = _owed_missing(run, m)
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


_PRESENT, _LEFT, _LEFT_REPORTED = 1, 2, 3


def check_membership(run: ParsedRun, limit: int = MAX_WITNESSES) -> CheckResult:
    """Membership as each member saw it: its own JOIN first; a JOIN before a name's MSGs; no MSG
    after its LEAVE; every leave announced to those who stayed; no unknown names; USERS right."""
    res = CheckResult("membership", limit=limit)
    table = run.table
    clients = run.clients
    offered = run.first_offer
    numbered_global = run.seq_global and run.seq_style in ("numbered", "mixed")
    foreign = run.config.foreign_clients
    holders: dict[str, list[ParsedClient]] = {}  # name key -> the clients that offered it
    for c in clients:
        holders.setdefault(c.key, []).append(c)
    phantoms_reported: set[tuple[int, str]] = set()
    for c in run.clients:
        for line in c.early:
            res.add(f"{c.client} got a broadcast before its OK", {**c.label(), "line": line})
        for line in c.bad:
            res.add(f"{c.client} got a line that is not the protocol", {**c.label(), "line": line})
    # Sender attribution, once per distinct line: the payload says who sent it.
    for p, first in run.msg_lines:
        mid = p[P_MID]
        if mid < 0:
            continue
        s = table.sender[mid]
        if s >= 0 and clients[s].key != p[P_KEY] and clients[s].is_member:
            holder = clients[first] if first >= 0 else None
            res.add(
                f"MSG from {p[P_NAME]} carries a message {clients[s].client} ({clients[s].name}) sent",
                {
                    "client": holder.client if holder else None,
                    "sender": clients[s].client,
                    "message": table.describe(mid),
                    "line": p[P_LINE],
                },
            )
    for m in run.members:
        ev = m.ev
        own = m.key
        if not ev or ev[0][P_CODE] != K_JOIN or ev[0][P_KEY] != own:
            res.add(
                f"{m.client} did not get its own JOIN first after OK",
                {**m.label(), "first": ev[0][P_LINE] if ev else None},
            )
        state: dict[str, int] = {}
        last_line: dict[str, str] = {}
        leaves: dict[str, list[float]] = {}
        users = m.users
        u = 0
        for pos, p in enumerate(ev):
            while u < len(users) and users[u][0] == pos:
                _check_users(run, m, users[u], state, res, numbered_global, ev)
                u += 1
            code = p[P_CODE]
            k = p[P_KEY]
            st = state.get(k)
            if code == K_MSG and st == _PRESENT:
                continue  # the common case, first
            if k not in offered and not foreign and (m.index, k) not in phantoms_reported:
                phantoms_reported.add((m.index, k))
                res.add(
                    f"{m.client} got {_KIND_NAMES[code]} of {p[P_NAME]}, a name no client ever offered",
                    {**m.label(), "phantom": p[P_NAME], "position": pos, "line": p[P_LINE]},
                )
            if code == K_MSG:
                if st == _LEFT:
                    res.add(
                        f"{m.client} got MSG of {p[P_NAME]} after its LEAVE",
                        {**m.label(), "of": p[P_NAME], "position": pos, "line": p[P_LINE]},
                    )
                    state[k] = _LEFT_REPORTED
                elif st is None:
                    fault = _missing_join(run, m, p)
                    if fault is not None:
                        res.add(
                            fault,
                            {**m.label(), "of": p[P_NAME], "position": pos, "line": p[P_LINE]},
                        )
                    state[k] = _PRESENT
            elif code == K_JOIN:
                if (
                    st == _PRESENT
                    and pos > 0
                    and not (p[P_SEQ] is not None and last_line.get(k) == p[P_LINE])
                ):
                    res.add(
                        f"{m.client} got JOIN of {p[P_NAME]} while {p[P_NAME]} was present",
                        {**m.label(), "of": p[P_NAME], "position": pos, "line": p[P_LINE]},
                    )
                state[k] = _PRESENT
                last_line[k] = p[P_LINE]
            elif code == K_LEAVE:
                leaves.setdefault(k, []).append(m.times[pos])
                if k == own:
                    continue
                if st in (_LEFT, _LEFT_REPORTED):
                    if not (p[P_SEQ] is not None and last_line.get(k) == p[P_LINE]):
                        res.add(
                            f"{m.client} got LEAVE of {p[P_NAME]}, who had already left",
                            {**m.label(), "of": p[P_NAME], "position": pos, "line": p[P_LINE]},
                        )
                elif st is None and not foreign and _owed_join_before_leave(run, m, p, holders):
                    res.add(
                        f"{m.client} got LEAVE of {p[P_NAME]} without its JOIN",
                        {**m.label(), "of": p[P_NAME], "position": pos, "line": p[P_LINE]},
                    )
                state[k] = _LEFT
                last_line[k] = p[P_LINE]
        while u < len(users):
            _check_users(run, m, users[u], state, res, numbered_global, ev)
            u += 1
        _check_announced(run, m, leaves, res)
    return res


def _missing_join(run: ParsedRun, m: ParsedClient, p: ParsedLine) -> str | None:
    """Why ``m`` getting MSG ``p`` of a name it never saw JOIN is a fault, or None if it may not be.

    Its sender x was a member with m. If x registered after m, m was owed x's
    JOIN. If x registered first, x (still a member when m joined) was owed
    m's JOIN. So it is a fault when x certainly registered after m, and also
    when x, still receiving after m registered, never saw m's JOIN either.
    """
    mid = p[P_MID]
    if mid < 0 or run.table.sender[mid] < 0:
        if run.config.foreign_clients:
            return None  # perhaps a client whose history is not given: when it registered is unknown
        if run.first_offer.get(p[P_KEY], _INF) > m.ok_at:
            return f"{m.client} got MSG of {p[P_NAME]} before its JOIN"
        return None
    x = run.clients[run.table.sender[mid]]
    if run.seq_global and x.join_seq is not None and m.join_seq is not None:
        after = x.join_seq > m.join_seq
    else:
        offers = [a.t for a in x.attempts if a.reply == "ok"]
        after = bool(offers) and offers[-1] - run.config.clock_slack > m.ok_at
    if after:
        return f"{m.client} got MSG of {p[P_NAME]} before its JOIN"
    if x is not m and x.end_ev > m.ok_at and m.key not in x.joins_seen:
        return f"{m.client} got MSG of {p[P_NAME]} without its JOIN, and {x.client} never saw {m.name} join"
    return None


def _owed_join_before_leave(
    run: ParsedRun, m: ParsedClient, p: ParsedLine, holders: Mapping[str, list[ParsedClient]]
) -> bool:
    """``m`` got a LEAVE of a name it never saw join: was it owed that JOIN?

    Only if the leaver registered after ``m``. With global seqs that is
    exact: the leaver is the last holder of the name whose JOIN seq is below
    the LEAVE's, and it registered after ``m`` iff its JOIN seq is above
    ``m``'s. Otherwise it is judged by time: the name was first offered after
    ``m``'s OK arrived (on a crowded machine a recorded send time can trail
    the real write, which is why the seqs are preferred).
    """
    leave_seq = p[P_SEQ]
    if run.seq_global and leave_seq is not None and m.join_seq is not None:
        before = [
            x.join_seq for x in holders.get(p[P_KEY], ()) if x.join_seq is not None and x.join_seq < leave_seq
        ]
        if before:
            return max(before) > m.join_seq
    return bool(run.first_offer.get(p[P_KEY], _INF) > m.ok_at)


def _leave_lo(run: ParsedRun, x: ParsedClient) -> float | None:
    """A lower bound on when the server announced ``x``'s leave; None if it did not leave."""
    if x.role in SLOW_ROLES:
        return x.end_ev if x.end_ev > -_INF and x.closed is not None and x.closed.how != "stopped" else None
    if x.quit_lo < _INF:
        return x.quit_lo
    if x.closed is None or x.closed.how == "stopped":
        return None
    if x.closed.how == "drop":
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
    received at or after T.
    """
    bound = run.config.delivery_bound
    owed: dict[str, list[ParsedClient]] = {}
    leavers, starts = _leavers(run)
    for x in leavers[bisect.bisect_right(starts, m.ok_at) :]:
        if (x.leave_lo or 0.0) + bound >= m.end_ev:
            break  # sorted by their bound: no later leaver is owed either
        if x is not m:
            owed.setdefault(x.key, []).append(x)
    for k, xs in owed.items():
        times = sorted(leaves.get(k, ()))
        for i, x in enumerate(sorted(xs, key=lambda x: x.leave_lo or 0.0, reverse=True), 1):
            t0 = x.leave_lo or 0.0
            got = len(times) - bisect.bisect_left(times, t0)
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
    answer: tuple[int, float, tuple[str, ...]],
    state: dict[str, int],
    res: CheckResult,
    numbered_global: bool,
    ev: Sequence[ParsedLine],
) -> None:
    """A USERS answer against what ``m`` had seen at that point of its stream (and, with a global
    numbering, against every client certainly present at that seq)."""
    pos, t, names = answer
    keys = {n.lower() for n in names}
    w = {**m.label(), "users": _short(names), "position": pos}
    if m.key not in keys:
        res.add(f"{m.client} asked /who and is not in the answer", w)
    for n in names:
        if n.lower() not in run.first_offer and not run.config.foreign_clients:
            res.add(f"{m.client} got USERS with {n}, a name no client ever offered", {**w, "phantom": n})
    for k, st in state.items():
        if st == _PRESENT and k not in keys:
            res.add(f"{m.client} got USERS without {k}, who had joined and not left", {**w, "missing": k})
        elif st in (_LEFT, _LEFT_REPORTED) and k in keys and k != m.key:
            res.add(f"{m.client} got USERS with {k}, who had left", {**w, "extra": k})
    if numbered_global and pos > 0:
        # The seq this answer follows: the last one in order (a misnumbered line is not trusted).
        out = set(m.seq_outliers)
        i = pos - 1
        while i >= 0 and i in out:
            i -= 1
        s = ev[i][P_SEQ] if i >= 0 else None
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


def check_names(run: ParsedRun, limit: int = MAX_WITNESSES) -> CheckResult:
    """No two concurrent members share a name case-insensitively; a name is refused as taken
    only while someone holds it (for contested names: exactly one holder at a time)."""
    res = CheckResult("names", limit=limit)
    slack = run.config.clock_slack
    contested = run.config.contested_names
    # Certain membership: from OK (the server registered it before) to the
    # latest moment it provably still was registered.
    for key, holders in run.holders.items():
        spans = []
        for x in holders:
            until = max(x.ok_at, x.end_ev, x.quit_lo if x.quit_lo < _INF else -_INF)
            spans.append((x.ok_at, until, x))
        spans.sort(key=lambda s: s[0])
        best: tuple[float, float, ParsedClient] | None = None
        for span in spans:
            if best is not None and span[0] < best[1]:
                a, b = best[2], span[2]
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
            if best is None or span[1] > best[1]:
                best = span
    if run.config.foreign_clients:
        return res  # a refused name may have been held by a client whose history is not given
    # Refusals: someone must possibly have held the name then.
    possible: dict[str, list[tuple[float, float, str]]] = {}
    for c in run.clients:
        for att in c.attempts:
            if att.reply is not None and att.reply != "ok":
                continue
            if att.reply == "ok":
                if c.clean_quit:
                    until = c.bye_at
                elif c.closed is not None:
                    until = c.closed.t + run.config.delivery_bound
                else:
                    until = _INF
            else:  # unanswered: perhaps registered, we cannot tell until when
                until = c.closed.t + run.config.delivery_bound if c.closed is not None else _INF
            possible.setdefault(att.name.lower(), []).append((att.t - slack, until, c.client))
    index = {k: _HolderIndex(spans) for k, spans in possible.items()}
    for c in run.clients:
        for att in c.attempts:
            if att.reply != "name-taken" or att.reply_t is None:
                continue
            k = att.name.lower()
            start, stop = att.t - slack, att.reply_t
            held = index.get(k)
            if held is None or not held.anyone_but(c.client, start, stop):
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
    return res


class _HolderIndex:
    """Possible holding spans of one name, to ask in O(log n): did anyone but X hold it in [a, b]?

    Spans sorted by start; for each prefix, the latest end and, among the other
    clients, the next latest end. A span overlaps [a, b] iff it starts by b and ends
    at or after a, so the prefix of spans starting by b answers it.
    """

    def __init__(self, spans: list[tuple[float, float, str]]) -> None:
        spans = sorted(spans)
        self.starts = [lo for lo, _, _ in spans]
        self.best: list[tuple[float, str, float]] = []  # (latest end, its client, latest end of another)
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


def check_liveness(run: ParsedRun, limit: int = MAX_WITNESSES) -> CheckResult:
    """Every handshake step answered within ``handshake_bound``; no client gave up waiting; every
    message echoed to its sender within ``delivery_bound`` while the sender stayed a member."""
    res = CheckResult("liveness", limit=limit)
    cfg = run.config
    hb = cfg.handshake_bound
    db = cfg.delivery_bound
    table = run.table
    for c in run.clients:
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
        if c.closed is not None and c.closed.how == "timeout" and not flagged:
            res.add(
                f"{c.client} gave up waiting for the server: {c.closed.detail or 'timeout'}",
                {**c.label(), "closed_at": c.closed.t, "detail": c.closed.detail},
            )
        if c.role in SLOW_ROLES or not c.sent:
            continue
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
    return res


CHECKS = {
    "seq": check_seq,
    "agreement": check_agreement,
    "loss": check_loss,
    "fifo": check_fifo,
    "membership": check_membership,
    "names": check_names,
    "liveness": check_liveness,
}


def latency_summary(latencies: Sequence[float]) -> LatencySummary:
    """Percentiles (nearest rank) in ms."""
    if not latencies:
        return LatencySummary()
    xs = sorted(latencies)
    n = len(xs)

    def pct(q: float) -> float:
        return xs[min(n - 1, max(0, math.ceil(q * n) - 1))] * 1000.0

    return LatencySummary(n, pct(0.50), pct(0.95), pct(0.99), xs[-1] * 1000.0)


def check_all(histories: Sequence[ClientHistory], config: CheckConfig | None = None) -> Report:
    """Run every check over a run's histories. Pure: no I/O, no clock but the elapsed figure."""
    started = time.perf_counter()
    config = config or CheckConfig()
    # Millions of small tuples and no reference cycles: the cyclic collector
    # would rescan them again and again (quadratic in effect). Off, then on.
    gc_was_enabled = gc.isenabled()
    gc.disable()
    try:
        run = parse_run(histories, config)
        results = [fn(run) for fn in CHECKS.values()]
    finally:
        if gc_was_enabled:
            gc.enable()
    # Round robin over the checks: the first witnesses shown cover every check
    # that fired (a root cause with few violations is not buried under the
    # many consequences another check sees).
    violations = [
        v for group in zip_longest(*(r.violations for r in results)) for v in group if v is not None
    ]
    counts = {r.name: r.count for r in results}
    return Report(
        violations=violations,
        counts=counts,
        deliveries=sum(m.deliveries for m in run.members),
        messages_sent=sum(len(c.sent) for c in run.clients),
        joined=len(run.members),
        clients=len(run.clients),
        latency=latency_summary(run.latencies),
        seq_style=run.seq_style,
        bots_joined=len({m.bot for m in run.members}),
        seq_global=run.seq_global,
        elapsed=time.perf_counter() - started,
    )


# -- synthetic histories: a correct server, simulated -----------------------------------


@dataclass
class _SimClient:
    history: ClientHistory
    lag: float
    name: str = ""
    is_member: bool = False
    ok_at: float = _INF
    last_t: float = 0.0
    #: Receipts at or after this are not recorded (it closed, or stopped reading).
    stop_t: float = _INF
    n: int = 0
    own_seq: int = 0
    left: bool = False


@dataclass(frozen=True)
class SimConfig:
    """What :func:`simulate_run` simulates; every knob keeps the server correct."""

    clients: int = 6
    messages: int = 60
    seed: int = 0
    #: ``global`` (one counter), ``per-recipient`` (a counter per member) or ``none``.
    numbering: str = "global"
    seq_start: int = 1
    #: Members that leave by /quit (and are replaced by a new client).
    quits: int = 0
    #: Members that close abruptly (the server notices a few steps later).
    drops: int = 0
    #: Members that stop reading and are dropped as slow.
    slow: int = 0
    #: /who requests.
    whos: int = 0
    #: Clients that race for one contested name.
    racers: int = 0
    #: Server steps (seconds) between actions, and the largest receive lag.
    step: float = 0.001
    lag: float = 0.003
    start: float = 1_700_000_000.0


def simulate_run(cfg: SimConfig = SimConfig()) -> list[ClientHistory]:
    """The histories a correct server would give: a pure function of ``cfg``.

    One broadcast order, every member gets every broadcast from its JOIN until
    it leaves, receive times lag by a random amount per delivery (so members
    see the same event at different times), abrupt drops lose what was in
    flight, slow members stop reading and are dropped. The checker must pass
    every such run; the property tests then break them on purpose.
    """
    import random

    rng = random.Random(cfg.seed)
    clients: list[_SimClient] = []
    members: dict[str, _SimClient] = {}
    seq = cfg.seq_start - 1
    now = cfg.start
    step = cfg.step
    pending_notice: list[tuple[int, _SimClient, str]] = []  # (action index, client, reason)
    bots = 0

    def new_client(role: str = "chat", bot: str | None = None) -> _SimClient:
        nonlocal bots
        if bot is None:
            bot = f"b{bots}"
            bots += 1
        client = bot if not any(c.history.bot == bot for c in clients) else f"{bot}.{len(clients)}"
        c = _SimClient(ClientHistory(client, bot, role), lag=rng.uniform(0.0, cfg.lag))
        clients.append(c)
        return c

    def deliver(c: _SimClient, line: str, t: float) -> None:
        t = max(c.last_t + 1e-6, t + rng.uniform(0.0, c.lag))
        if t >= c.stop_t:
            c.last_t = t
            return
        c.history.events.append(Received(t, line))
        c.last_t = t

    def broadcast(kind: str, name: str, rest: str, t: float) -> None:
        nonlocal seq
        seq += 1
        for c in list(members.values()):
            if cfg.numbering == "global":
                line = f"{kind} {seq} {name}{rest}"
            elif cfg.numbering == "per-recipient":
                c.own_seq += 1
                line = f"{kind} {c.own_seq} {name}{rest}"
            else:
                line = f"{kind} {name}{rest}"
            deliver(c, line, t)

    def try_join(c: _SimClient, name: str, t: float) -> bool:
        ev = c.history.events
        if not any(e.kind == "connected" for e in ev):
            ev.append(Connected(t - 0.6 * step, t - 0.7 * step))
            c.last_t = t - 0.5 * step
            ev.append(Received(c.last_t, "HELLO welcome"))
        ev.append(Sent(t - 0.3 * step, name))
        if name.lower() in members:
            deliver(c, "ERR name-taken the name is taken", t)
            return False
        members[name.lower()] = c
        c.name = name
        c.is_member = True
        c.own_seq = rng.randrange(0, 1000)
        deliver(c, f"OK {name}", t)
        c.ok_at = c.last_t
        broadcast("JOIN", name, "", t)
        return True

    def leave(c: _SimClient, reason: str, t: float) -> None:
        del members[c.name.lower()]
        c.is_member = False
        c.left = True
        broadcast("LEAVE", c.name, f" {reason}", t)

    # Everyone joins first (racers race later).
    for _ in range(cfg.clients):
        c = new_client()
        now += step
        try_join(c, c.history.bot, now)
    racers = [new_client("racer") for _ in range(cfg.racers)]
    actions = ["msg"] * cfg.messages + ["quit"] * cfg.quits + ["drop"] * cfg.drops
    actions += ["slow"] * cfg.slow + ["who"] * cfg.whos + ["race"] * (2 * cfg.racers)
    rng.shuffle(actions)
    for index, action in enumerate(actions):
        now += step
        for notice in [p for p in pending_notice if p[0] <= index]:
            pending_notice.remove(notice)
            if notice[1].is_member:
                leave(notice[1], notice[2], now)
            now += step
        ready = [c for c in members.values() if c.ok_at < now - 2 * step and c.stop_t == _INF]
        if action == "race" and racers:
            r = rng.choice(racers)
            if r.is_member and r.ok_at < now - 2 * step:
                r.history.events.append(Sent(now - 0.2 * step, "/quit"))
                deliver(r, "BYE goodbye", now)
                leave(r, "quit", now)
                r.history.events.append(Closed(r.last_t + 1e-6, "quit"))
                racers.remove(r)
                racers.append(new_client("racer", r.history.bot))
            elif not r.left and not r.is_member:
                name = rng.choice(["race0", "Race0", "RACE0"])
                try_join(r, name, now)
            continue
        if not ready:
            continue
        c = rng.choice(ready)
        if action == "msg":
            due = now - rng.uniform(0.2, 0.4) * step
            text = f"b={c.history.bot} n={c.n} t={due:.6f}"
            c.n += 1
            c.history.events.append(Sent(due + 0.05 * step, text, due))
            rest = f" {text}"
            broadcast("MSG", c.name, rest, now)
        elif action == "who":
            c.history.events.append(Sent(now - 0.2 * step, "/who"))
            names = sorted((m.name for m in members.values()), key=lambda n: (n.lower(), n))
            deliver(c, " ".join(["USERS", *names]), now)
        elif action == "quit":
            c.history.events.append(Sent(now - 0.2 * step, "/quit"))
            deliver(c, "BYE goodbye", now)
            leave(c, "quit", now)
            c.history.events.append(Closed(c.last_t + 1e-6, "quit"))
            fresh = new_client()
            now += step
            try_join(fresh, fresh.history.bot, now)
        elif action == "drop":
            c.stop_t = now - 0.1 * step
            c.history.events.append(Closed(c.stop_t, "drop"))
            pending_notice.append((index + rng.randint(1, 4), c, "disconnected"))
        elif action == "slow":
            c.history.role = "slow"
            c.stop_t = now
            pending_notice.append((index + rng.randint(2, 6), c, "slow"))
    now += 3 * step
    for p in pending_notice:
        if p[1].is_member:
            leave(p[1], p[2], now)
    end = now + cfg.lag + step
    for c in clients:
        if not any(e.kind == "closed" for e in c.history.events):
            how = "eof" if c.left else "stopped"
            c.history.events.append(Closed(end, how))
        c.history.events.sort(key=lambda e: e.t)
    return [c.history for c in clients if c.history.events]


def bench_events(n: int, clients: int = 50, seed: int = 1) -> dict[str, float]:
    """Time :func:`check_all` on a correct run of about ``n`` received events (``clients`` members)."""
    t0 = time.perf_counter()
    histories = simulate_run(
        SimConfig(clients=clients, messages=max(1, n // clients), seed=seed, step=0.0005)
    )
    t1 = time.perf_counter()
    events = sum(len(h.events) for h in histories)
    c1 = time.process_time()
    report = check_all(histories)
    t2 = time.perf_counter()
    c2 = time.process_time()
    if not report.passed():
        raise AssertionError(f"the simulated correct run failed: {report.summary_line()}")
    return {
        "events": float(events),
        "deliveries": float(report.deliveries),
        "generate_s": t1 - t0,
        "check_s": t2 - t1,
        "check_cpu_s": c2 - c1,
        "events_per_s": events / (t2 - t1) if t2 > t1 else 0.0,
    }


# -- command line -------------------------------------------------------------------


def _read_record(run_dir: Path) -> dict[str, object]:
    """What the run record says about the run (summary.json, then meta.json): settings to reuse.

    Missing or unreadable files give an empty record: the defaults apply.
    """
    merged: dict[str, object] = {}
    for name in ("meta.json", "summary.json"):
        path = run_dir / name
        if not path.is_file():
            continue
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            continue
        if isinstance(data, dict):
            settings = data.get("settings")
            if isinstance(settings, dict):
                merged.update(settings)
            merged.update({k: v for k, v in data.items() if k != "settings"})
    return merged


def _number(value: object) -> float | None:
    return float(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else None


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m harness.checker",
        description="Check a recorded run again (RUN_DIR/events.jsonl), or measure the checker (--bench N).",
    )
    parser.add_argument(
        "run", nargs="?", help="a run directory (holding events.jsonl) or an events.jsonl file"
    )
    parser.add_argument("--json", action="store_true", help="print the report as one JSON document")
    parser.add_argument(
        "--bench", type=int, metavar="N", help="time the checker on a correct run of ~N events"
    )
    parser.add_argument("--handshake-bound", type=float, help="seconds (default: the run's, else 5)")
    parser.add_argument("--delivery-bound", type=float, help="seconds (default: the run's, else 5)")
    parser.add_argument("--contested", default=None, help="comma-separated contested names")
    parser.add_argument("--asked", type=int, help="bots asked for (default: the run's, else the bots seen)")
    parser.add_argument("--witnesses", type=int, default=20, help="witnesses printed (default 20)")
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s", stream=sys.stderr
    )
    if args.bench is not None:
        if args.bench < 1:
            print("error: --bench N needs N >= 1", file=sys.stderr)
            return 2
        figures = bench_events(args.bench)
        if args.json:
            print(json.dumps(figures))
        else:
            print(
                f"checked {figures['events']:,.0f} events ({figures['deliveries']:,.0f} deliveries) "
                f"in {figures['check_s']:.2f}s ({figures['check_cpu_s']:.2f}s CPU): "
                f"{figures['events_per_s']:,.0f} events/s (generated in {figures['generate_s']:.2f}s)"
            )
        return 0
    if args.run is None:
        print("error: give a run directory (or --bench N)", file=sys.stderr)
        return 2
    path = Path(args.run)
    run_dir = path if path.is_dir() else path.parent
    events = path / "events.jsonl" if path.is_dir() else path
    if not events.is_file():
        print(f"error: {events} not found", file=sys.stderr)
        return 2
    try:
        histories = load_histories(events)
    except (OSError, ValueError, KeyError, TypeError) as exc:
        print(f"error: cannot read {events}: {exc}", file=sys.stderr)
        return 2
    record = _read_record(run_dir)
    contested: frozenset[str]
    if args.contested is not None:
        contested = frozenset(n.strip().lower() for n in args.contested.split(",") if n.strip())
    else:
        found = record.get("contested_names")
        contested = frozenset(str(n).lower() for n in found) if isinstance(found, list) else frozenset()
    config = CheckConfig(
        handshake_bound=args.handshake_bound or _number(record.get("handshake_bound")) or 5.0,
        delivery_bound=args.delivery_bound or _number(record.get("delivery_bound")) or 5.0,
        contested_names=contested,
        run_end=_number(record.get("run_end")),
    )
    report = check_all(histories, config)
    asked = args.asked
    if asked is None:
        # The swarm's record: "asked_clients" in summary.json ("clients" counts connections there).
        found_asked = _number(record.get("asked_clients"))
        asked = int(found_asked) if found_asked is not None else len({h.bot for h in histories})
    verdict, code = judge(report, asked)
    if args.json:
        doc = report.to_dict()
        doc["verdict"] = verdict
        doc["exit_code"] = code
        print(json.dumps(doc, default=str))
        return code
    print(verdict_line(report, asked))
    for v in report.violations[: max(0, args.witnesses)]:
        print(f"  [{v.check}] {v.message}  {json.dumps(v.witness, default=str)}")
    shown = min(len(report.violations), max(0, args.witnesses))
    if report.total() > shown:
        print(f"  ... {report.total() - shown:,} more")
    print(
        f"{report.clients} clients, {report.joined} joined, {report.messages_sent:,} sent, "
        f"{report.deliveries:,} delivered, seqs {report.seq_style}; "
        f"latency p50 {report.latency.p50_ms:.1f} ms p99 {report.latency.p99_ms:.1f} ms; "
        f"checked in {report.elapsed:.2f}s",
        file=sys.stderr,
    )
    return code
