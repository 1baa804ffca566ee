"""Histories to a :class:`ParsedRun`: every line parsed once, and what the checks share derived once.

Pure: no I/O, no clock. Server lines are parsed by :func:`chat.protocol.parse_server_line`
(the project's one parser), through a cache keyed by the line: a broadcast reaches every
member as the same text, so a line is parsed once however many members got it. Bot payloads
(``b=<bot> n=<counter> t=<due>``, :mod:`harness.record.payload`) are interned as small
integers in a :class:`MessageTable`, so that the checks work on ints and sets of ints.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from enum import Enum
from functools import partial
from typing import NamedTuple

from chat.protocol import (
    Bye,
    Err,
    ErrorCode,
    Hello,
    Join,
    Leave,
    Msg,
    Ok,
    RemoteProtocolError,
    Users,
    broadcast_numbering,
    is_leave_request,
    name_key,
    parse_server_line,
    refusal_of,
)
from harness.checker.irc import Throttle, read_irc_run
from harness.checker.model import SLOW_ROLES, CheckConfig, SeqStyle
from harness.checker.sequences import is_consecutive, lis_outliers, numbering_is_global
from harness.common.irc import casefold
from harness.record.history import ClientHistory, Closed, Event
from harness.record.payload import decode_payload

log = logging.getLogger(__name__)

_INF = math.inf

#: ERR codes that answer a connection, not a name line: they never reply to a name attempt.
_NOT_NAME_REPLIES = (ErrorCode.TIMEOUT, ErrorCode.FULL)


class LineKind(Enum):
    """What a server line is; the value is its keyword (``?`` for a line no event fits)."""

    JOIN = "JOIN"
    MSG = "MSG"
    LEAVE = "LEAVE"
    USERS = "USERS"
    OK = "OK"
    HELLO = "HELLO"
    ERR = "ERR"
    BYE = "BYE"
    BAD = "?"


@dataclass(slots=True)
class ParsedLine:
    """One distinct server line, parsed once and shared by every member that received it.

    A ``__slots__`` dataclass: the hot loops read its fields as fast as tuple items
    (a NamedTuple's named fields cost twice as much there), and building one costs
    a sixth of a frozen dataclass, which matters when every line is distinct (a
    per-recipient numbering). Shared between members, so never modified.
    """

    kind: LineKind
    #: The raw line, as the witnesses quote it.
    line: str
    #: JOIN, MSG or LEAVE: what a member's stream is made of.
    is_broadcast: bool = False
    seq: int | None = None
    name: str = ""
    #: The name's case-insensitive key (:attr:`ParsedRun.name_key`).
    key: str = ""
    #: A MSG carrying a bot payload: its message id in the :class:`MessageTable`; else -1.
    mid: int = -1
    #: That payload's due time.
    due: float | None = None
    #: MSG: its text; LEAVE: its reason; ERR: its code; BYE: its text.
    detail: str = ""
    #: USERS: the names listed.
    names: tuple[str, ...] = ()


class MessageTable:
    """Every bot message of the run, by a small integer id: who sent it, when, who saw it first.

    A message is identified by its payload (bot, counter, due), so that loss,
    FIFO and order can be judged without trusting the server's seq. One list
    per field, indexed by message id.
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


class UsersAnswer(NamedTuple):
    """A ``USERS`` line a member got: where it sits in the member's stream, and what it lists."""

    #: Broadcasts the member had received before it.
    position: int
    t: float
    names: tuple[str, ...]


class SentMessage(NamedTuple):
    """A chat message a member sent (before any /quit)."""

    t: float
    mid: int


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
    #: The member's stream: the broadcasts it received after its OK, and when.
    stream: list[ParsedLine] = field(default_factory=list)
    times: list[float] = field(default_factory=list)
    users: list[UsersAnswer] = field(default_factory=list)
    sent: list[SentMessage] = field(default_factory=list)
    #: Broadcasts received before OK, and lines no event fits (protocol faults).
    early: list[str] = field(default_factory=list)
    bad: list[str] = field(default_factory=list)
    #: ERR lines received as a member (e.g. line-too-long): the server refused something.
    member_errs: int = 0
    # -- derived (see derive) --
    recv: set[int] = field(default_factory=set)
    #: First receipt of each message, in stream order.
    order: list[int] = field(default_factory=list)
    #: (position in the stream, message id) of repeated messages.
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
    #: Whether it gets its own messages back (IRC without ``echo-message``: no).
    echoes: bool = True

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


@dataclass
class ParsedRun:
    """Every client parsed once, and what the checks share."""

    clients: list[ParsedClient]
    table: MessageTable
    config: CheckConfig
    seq_style: SeqStyle
    latencies: list[float]
    #: Distinct MSG lines, each with the index of the first client that got it (sender attribution).
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
    #: A name's key: names are unique case-insensitively (our protocol: ASCII; IRC: its CASEMAPPING).
    name_key: Callable[[str], str] = name_key
    #: IRC: members the server threw out for their pace.
    throttled: list[Throttle] = field(default_factory=list)
    #: Lazily built by the checks that need them.
    by_lo: tuple[list[float], list[int]] | None = None
    leavers: tuple[list[ParsedClient], list[float]] | None = None
    unreceived: dict[int, list[int]] | None = None

    @property
    def numbered(self) -> bool:
        """Seqs are read (any numbering, global or per recipient)."""
        return self.seq_style.has_seqs

    @property
    def numbered_global(self) -> bool:
        """Seqs are read, and they come from one global counter."""
        return self.seq_global and self.seq_style.has_seqs


# -- parsing ---------------------------------------------------------------------


def _numbering_of(histories: Sequence[ClientHistory]) -> bool | None:
    """The numbering style from each client's first JOIN/LEAVE lines; None when they disagree."""
    numbered = unnumbered = 0
    for h in histories:
        seen = 0
        for e in h.events:
            if e.kind != "received":
                continue
            has_seq = broadcast_numbering(e.line)
            if has_seq is None:
                continue
            if has_seq:
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


class LineParser:
    """Parses server lines through :func:`parse_server_line`, once per distinct line."""

    #: Distinct lines cached at most; a per-recipient numbering makes every line distinct.
    CACHE_MAX = 400_000

    def __init__(self, seqs: bool | None, table: MessageTable, key: Callable[[str], str] = name_key) -> None:
        self.seqs = seqs
        self.table = table
        self.key = key
        self.cache: dict[str, ParsedLine] = {}
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
            return ParsedLine(LineKind.BAD, line)
        if isinstance(ev, Msg):
            mid = -1
            due = None
            payload = decode_payload(ev.text)
            if payload is not None:
                mid = self.table.intern(payload.bot, payload.n, payload.due)
                due = payload.due
            p = ParsedLine(LineKind.MSG, line, True, ev.seq, ev.name, self.key(ev.name), mid, due, ev.text)
            self.msg_lines.append((p, self.current))
            return p
        if isinstance(ev, (Join, Leave)):
            if ev.seq is None:
                self.unnumbered += 1
            else:
                self.numbered += 1
            if isinstance(ev, Join):
                return ParsedLine(LineKind.JOIN, line, True, ev.seq, ev.name, self.key(ev.name))
            return ParsedLine(
                LineKind.LEAVE, line, True, ev.seq, ev.name, self.key(ev.name), detail=ev.reason
            )
        if isinstance(ev, Users):
            return ParsedLine(LineKind.USERS, line, names=ev.names)
        if isinstance(ev, Ok):
            return ParsedLine(LineKind.OK, line, name=ev.name, key=self.key(ev.name))
        if isinstance(ev, Hello):
            return ParsedLine(LineKind.HELLO, line)
        if isinstance(ev, Err):
            return ParsedLine(LineKind.ERR, line, detail=ev.code.value)
        assert isinstance(ev, Bye)
        return ParsedLine(LineKind.BYE, line, detail=ev.text)


def parse_client(
    h: ClientHistory, index: int, parser: LineParser, config: CheckConfig, latencies: list[float]
) -> ParsedClient:
    """One client's history, event by event: its handshake, its stream as a member, what it sent.

    The checker's hottest loop with :func:`derive` (one iteration per recorded
    event), hence one long function: a call per event would cost a tenth of the
    checker's time. Locals stand for attribute lookups, and the common case (a
    cached broadcast received as a member) goes first.
    """
    pc = ParsedClient(index, h.client, h.bot, h.role)
    parser.current = index
    table = parser.table
    parse = parser.parse
    cached = parser.cache.get
    slack = config.clock_slack
    stream_append = pc.stream.append
    t_append = pc.times.append
    lat_append = latencies.append if h.role not in SLOW_ROLES else None
    MSG, JOIN, USERS, OK = LineKind.MSG, LineKind.JOIN, LineKind.USERS, LineKind.OK
    HELLO, ERR, BYE = LineKind.HELLO, LineKind.ERR, LineKind.BYE
    pending = 0  # next attempt awaiting its reply
    member = False
    events: list[Event] = h.events
    for e in events:
        kind = e.kind
        if kind == "received":
            t = e.t
            line = e.line  # type: ignore[union-attr]
            p = cached(line) or parse(line)
            if p.is_broadcast:
                if not member:
                    pc.early.append(p.line)
                    continue
                stream_append(p)
                t_append(t)
                code = p.kind
                if code is MSG:
                    pc.deliveries += 1
                    if lat_append is not None and p.due is not None:
                        lat_append(t - p.due)
                elif code is JOIN:
                    pc.joins_seen.add(p.key)
                continue
            code = p.kind
            if code is USERS:
                if member:
                    pc.users.append(UsersAnswer(len(pc.stream), t, p.names))
            elif code is OK:
                if member:
                    pc.bad.append(p.line)
                    continue
                member = True
                pc.name = p.name
                pc.key = p.key
                pc.ok_at = t
                if pc.greeted_at is None:
                    pc.greeted_at = t
                if pending < len(pc.attempts):
                    a = pc.attempts[pending]
                    a.reply, a.reply_t = "ok", t
                    pending += 1
            elif code is HELLO:
                if pc.greeted_at is None:
                    pc.greeted_at = t
            elif code is ERR:
                if pc.greeted_at is None:
                    pc.greeted_at = t
                if member:
                    pc.member_errs += 1
                elif p.detail not in _NOT_NAME_REPLIES and pending < len(pc.attempts):
                    a = pc.attempts[pending]
                    a.reply, a.reply_t = p.detail, t
                    pending += 1
            elif code is BYE:
                if pc.bye_at == _INF:
                    pc.bye_at = t
            else:
                pc.bad.append(p.line)
        elif kind == "sent":
            line = e.line  # type: ignore[union-attr]
            t = e.t
            if not member:
                if is_leave_request(line):
                    continue
                pc.attempts.append(NameAttempt(t, line))
            elif pc.quit_at == _INF:
                if is_leave_request(line):
                    pc.quit_at = t
                    pc.quit_lo = t - slack
                    continue
                payload = decode_payload(line)
                if payload is None or refusal_of(line, config.max_line) is not None:
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
                pc.sent.append(SentMessage(t, mid))
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


def parse_run(histories: Sequence[ClientHistory], config: CheckConfig | None = None) -> ParsedRun:
    """Parse every history once and derive what the checks share. Pure.

    An IRC run (``config.protocol``) is first read in our protocol's terms
    (:func:`harness.checker.irc.read_irc_run`).
    """
    config = config or CheckConfig()
    key: Callable[[str], str] = name_key
    no_echo: frozenset[str] = frozenset()
    throttled: list[Throttle] = []
    if config.protocol == "irc":
        irc_run = read_irc_run(histories)
        histories = irc_run.histories
        key = partial(casefold, casemapping=irc_run.casemapping)
        no_echo, throttled = irc_run.no_echo, irc_run.throttled
    table = MessageTable()
    parser = LineParser(_numbering_of(histories), table, key)
    latencies: list[float] = []
    clients = [parse_client(h, i, parser, config, latencies) for i, h in enumerate(histories)]
    for c in clients:
        c.echoes = c.client not in no_echo
    if parser.numbered and parser.unnumbered:
        style = SeqStyle.MIXED
    elif parser.numbered:
        style = SeqStyle.NUMBERED
    elif parser.unnumbered:
        style = SeqStyle.UNNUMBERED
    else:
        style = SeqStyle.NONE
    run = ParsedRun(clients, table, config, style, latencies, parser.msg_lines, name_key=key)
    run.throttled = throttled
    run.members = [c for c in clients if c.is_member]
    slack = config.clock_slack
    for c in clients:
        for a in c.attempts:
            k = key(a.name)
            lo = a.t - slack
            if lo < run.first_offer.get(k, _INF):
                run.first_offer[k] = lo
    for m in sorted(run.members, key=lambda c: c.ok_at):
        run.holders.setdefault(m.key, []).append(m)
    derive(run)
    return run


# -- deriving ----------------------------------------------------------------------


def derive(run: ParsedRun) -> None:
    """One pass over every member's stream: receipts, order, duplicates, FIFO steps, seqs.

    The hot loop of the checker (one iteration per delivery), hence one long
    function: locals only, one dict lookup per message, and the FIFO step judged
    on the sender's send index, which grows with its counter.
    """
    table = run.table
    sender_of = table.sender
    j_of = table.j
    lo_of = table.lo
    tb = table.tb
    echo = table.echo
    first_seq = table.seq
    numbered = run.numbered
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
        for p, t in zip(m.stream, m.times, strict=True):
            pos += 1
            mid = p.mid
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
                seq = p.seq
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
            lo = lo_of[clients[s].sent[j].mid]
            if lo > end_ev:
                end_ev = lo
        m.end_ev = end_ev
        if numbered and m.stream:
            _seq_window(m)
    if numbered:
        run.seq_global = numbering_is_global(pair_diffs)
        if run.seq_global:
            _index_global_seqs(run)


def _seq_window(m: ParsedClient) -> None:
    """A numbered member's window in seqs: from its JOIN to its last seq, and its gap-free part."""
    seqs = [p.seq for p in m.stream]
    if None in seqs:
        return  # an unnumbered line among numbered ones: the seq check reports it
    numbers: list[int] = seqs  # type: ignore[assignment]
    if not is_consecutive(numbers):
        m.seq_outliers = lis_outliers(numbers)
    # Only the seqs in order are trusted for windows: one misnumbered
    # line must not stretch a member's window.
    out = set(m.seq_outliers)
    kept = [sq for i, sq in enumerate(numbers) if i not in out]
    first = m.stream[0]
    if first.kind is LineKind.JOIN and first.key == m.key and 0 not in out:
        m.join_seq = first.seq
    else:
        m.join_seq = kept[0] - 1
    m.last_seq = kept[-1]
    # Certainly a member up to the end of its first gap-free run
    # (a misnumbered last line cannot be told from a jump).
    contig = m.join_seq
    assert contig is not None
    for sq in kept:
        if sq == contig + 1:
            contig = sq
        elif sq > contig + 1:
            break
    m.contig_seq = contig


def _index_global_seqs(run: ParsedRun) -> None:
    """With one global counter: which message each seq carried, and the seqs of each name's LEAVEs."""
    msg_at_seq = run.msg_at_seq
    for mid, sq in enumerate(run.table.seq):
        if sq is not None and sq not in msg_at_seq:
            msg_at_seq[sq] = mid
    for m in run.members:
        out = set(m.seq_outliers)
        for i, p in enumerate(m.stream):
            if p.kind is LineKind.LEAVE and p.seq is not None and i not in out:
                run.leave_seqs.setdefault(p.key, []).append(p.seq)
    for seqs in run.leave_seqs.values():
        seqs[:] = sorted(set(seqs))
