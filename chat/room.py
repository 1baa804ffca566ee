"""The room: the one state that the server's threads share, and its one lock.

Not the sockets and not the threads: the room decides who gets which line, in
which order; the outboxes (:mod:`chat.delivery`) carry the lines.

Theory of operation
-------------------
Every thread of the server (the acceptor, one reader per connection, one writer
per connection) shares exactly one object: the :class:`Room`. It owns

* ``connections``: every open connection, handshaking or member (the slots
  that ``--max-clients`` counts);
* ``members``: the registry, lower-cased name -> connection;
* ``seq``: the global broadcast counter;
* ``_congested``: the recipients seen past the high-water mark, not yet back under it;
* ``_says``: the ``say`` requests waiting for the lock's holder (combining, below);
* the right to call ``put`` on any connection's outbox.

All of them are guarded by ``self.lock`` (``_says`` on its taking side: readers
append to it before they ask for the lock), and every public method is one
critical section that starts with ``with self.lock:`` (``admit`` and
``shutdown`` take it with a timeout instead, so that the acceptor is never stuck
behind a blocked ``direct`` send). The sections, by name:

``admit``      take a slot for a new connection, or refuse it (``ERR full``); when
               every slot is taken, a connection silent since its connect for
               ``SILENT_EVICT_AFTER`` gives its slot up (``ERR timeout``);
``heard``      note a connection's first bytes (it can no longer be evicted);
``reply``      put a line to one connection (HELLO, ERR, BYE, USERS);
``join``       check the name is free, register it, send ``OK``, broadcast JOIN;
``say``        broadcast MSG lines: its reader's and those of every reader
               queued for the lock (combining, below);
``who``        answer ``/who`` from the registry;
``outboxes``   every member's outbox, for a reader about to pause (backpressure);
``leave``      unregister, broadcast LEAVE (quit, disconnected or slow);
``release``    free the slot of a closed connection;
``shutdown``   BYE to every connection, then no more broadcasts.

The one fact that gives the protocol its guarantees: a broadcast takes its seq
and puts its line into the outbox of every member **in the same critical
section**. The registry cannot change in between, so each member receives every
broadcast from its own JOIN until it leaves (consecutive seqs), and since outboxes
are FIFO and filled in seq order, every member sees the same events in the same
order, which also keeps each sender's messages in the order it sent them.

Nothing under the lock blocks, except in the ``direct`` delivery design, which
sends under the lock on purpose (see :mod:`chat.delivery`). Readers that wait for
a congested recipient (backpressure) wait *outside* the lock: ``say`` stops at
the first recipient past the high-water mark and returns it, the reader waits
for it to drain (judging every other recipient on the same wait, so that members
that stop reading together are found together), then broadcasts the rest.
docs/architecture.md explains the rule.

Combining: a reader queues its ``say`` request (``_says``) before it asks for the
lock, and whoever holds the lock broadcasts every queued request in one round,
one ``put_many`` per member for all of them. The queue is the one structure
touched without the lock: readers only append to it (one atomic
``deque.append``), and only the lock's holder takes from it. A reader whose
request a round already broadcast finds it over and returns.

Extension points
----------------
``join``, ``say`` and ``leave`` are short sequences of the steps below, each a
method called with the lock held (hence the ``_locked`` suffix). A subclass
changes what a section does by overriding a step, never by copying a section's
body; :meth:`Room.locks` tells a monitor about any lock it adds.

``_claim_locked(conn, key)``         registry check-and-set by identity (join)
``_enrol_locked(conn, name)``        the connection becomes a member (join)
``_announce_join_locked(conn, name)``  ``OK`` to it, ``JOIN`` to all (join)
``_number_locked(name, texts)``      consecutive seqs, formatted ``MSG`` lines (say)
``_next_seq()``                      one seq (every broadcast)
``_recipients_locked()``             what a broadcast iterates (every broadcast)
``_broadcast_locked(lines)``         the fan-out to every recipient (every broadcast)
``_leave_locked(conn, reason)``      the checked leave: members only, once (leave, slow drops)
``_depart_locked(conn, reason)``     the unchecked rest of a leave
``_unregister_locked(conn)``         remove the registry entry if it is ``conn``'s
``_announce_leave_locked(conn, reason)``  ``LEAVE`` to the others
"""

from __future__ import annotations

import logging
import socket
import threading
import time
from collections import deque
from collections.abc import Callable, Collection, Sequence
from dataclasses import dataclass, field

from chat import protocol
from chat.delivery import FAST_PATH_BUDGET, Outbox
from chat.lockstat import SupportsLock
from chat.protocol import ErrorCode, LeaveReason
from chat.ratelog import RateLimitedLog

log = logging.getLogger(__name__)
#: Lines that a client can cause over and over: at most one per interval each (chat.ratelog).
_log_unread = RateLimitedLog(log, logging.INFO)
_log_evicted = RateLimitedLog(log, logging.INFO)

SHUTDOWN_TEXT = "server shutting down"
#: Chat lines of one reader's request per round of Room.say: the rounds take
#: turns between the readers queued for the lock, a chunk of each at a time.
SAY_CHUNK = 32


#: When every slot is taken, a newcomer takes the slot of the connection that
#: has been silent (not one byte since its connect) the longest, if that is at
#: least this many seconds: silent connections cannot keep real users out, and
#: a client gets a moment to send its name before it can lose its slot
#: (docs/protocol.md, "Slots").
SILENT_EVICT_AFTER = 2.0
EVICTED_TEXT = "you sent nothing and the server is full: your slot went to a newcomer"


class Connection:
    """One client connection as the room sees it: its outbox and, once joined, its name."""

    __slots__ = ("outbox", "name", "peer", "is_member", "opened", "is_silent")

    def __init__(self, outbox: Outbox, peer: str = "") -> None:
        self.outbox = outbox
        self.peer = peer
        self.name: str | None = None
        self.is_member = False
        self.opened = time.monotonic()
        #: Nothing received from it yet (set under the lock, by ``heard``).
        self.is_silent = True

    def __repr__(self) -> str:
        return f"Connection({self.name or self.peer!r})"


@dataclass
class RoomStats:
    """Counters updated inside the room's critical sections (read without the lock)."""

    broadcasts: int = 0
    deliveries: int = 0
    joins: int = 0
    leaves: dict[str, int] = field(default_factory=lambda: {r.value: 0 for r in LeaveReason})
    refused_full: int = 0
    evicted_silent: int = 0


class SayRequest:
    """One reader's call to ``say``: its texts, how far they got, and why it returned.

    Written only by the holder of the room's lock, read by the calling reader
    once it holds the lock itself.
    """

    __slots__ = ("conn", "texts", "may_pause", "done", "congested", "is_over", "failed")

    def __init__(self, conn: Connection, texts: Sequence[str], may_pause: bool) -> None:
        self.conn = conn
        self.texts = texts
        self.may_pause = may_pause
        self.done = 0
        self.congested: Outbox | None = None
        self.is_over = False
        #: What ended the round that held this request, if one raised (see ``Room.say``).
        self.failed: BaseException | None = None


class RoundFailed(RuntimeError):
    """The ``say`` round that carried a reader's request raised, in the reader that ran it.

    Raised in every other reader whose request that round held, so that each of
    their sessions ends as it would have had its own broadcast failed (an
    internal error: logged, that client dropped, the server serving on).
    """


class Room:
    """Members, names, the global seq and the outboxes, behind one lock.

    Each public method is one critical section (the module docstring names
    them), written as a short sequence of the steps listed under "Extension
    points" above.
    """

    def __init__(
        self,
        *,
        max_clients: int,
        max_backlog: int,
        lock: SupportsLock | None = None,
        on_slow: Callable[[Connection], None] | None = None,
    ) -> None:
        # Any lock with threading.Lock's interface: chat.lockstat.InstrumentedLock
        # (--metrics-port) counts and times each critical section below by name.
        self.lock: SupportsLock = lock if lock is not None else threading.Lock()
        self.max_clients = max_clients
        self.max_backlog = max_backlog
        #: Readers wait (outside the lock) while a recipient holds more lines
        #: than this; see :meth:`chat.delivery.Outbox.wait_below`.
        self.high_water = max(1, max_backlog // 4)
        #: ... and, once waiting, until it is back to this: one wake-up per
        #: half a high-water mark of lines, not one per line.
        self.low_water = self.high_water // 2
        #: One request's share of a round of ``say``: at most SAY_CHUNK lines,
        #: and at most half the room between the high-water mark and the slow
        #: limit (``say_batch`` below bounds the round as a whole).
        self.say_chunk = max(1, min(SAY_CHUNK, (max_backlog - self.high_water) // 2))
        self.connections: set[Connection] = set()
        self.members: dict[str, Connection] = {}
        self.seq = 0
        self.is_closing = False
        self.stats = RoomStats()
        self._on_slow = on_slow
        #: Every recipient seen past the high-water mark and not yet seen back under
        #: it (an insertion-ordered set), so that ``say`` pauses *before* adding to
        #: any of them (guarded by the lock).
        self._congested: dict[Outbox, None] = {}
        #: Lines one round of ``say`` broadcasts at most, all senders together: half
        #: the room between the high-water mark and the slow limit. Every recipient
        #: a round leaves past the mark is remembered, and no pausing request starts
        #: a round while one is still past it: so one round at most lands on a
        #: recipient above the mark, and half the room is left for what other
        #: sections add (JOIN, LEAVE, replies).
        self.say_batch = max(self.say_chunk, (max_backlog - self.high_water) // 2)
        #: The combining queue: ``say`` requests waiting for the lock's holder to
        #: broadcast them. Readers append without the lock (``deque.append`` is one
        #: atomic call); only the holder of ``self.lock`` pops (``_combine_locked``).
        self._says: deque[SayRequest] = deque()

    #: Whether ``say`` hands its texts to whoever holds the lock (see ``say``).
    #: A room whose steps let the lock go mid-section must not: another reader
    #: would find its request in a round that is not over, and wait for it
    #: holding the lock the round needs.
    combines = True

    def locks(self) -> list[SupportsLock]:
        """Every lock this room takes, ``self.lock`` first: what metrics and watchdogs watch."""
        return [self.lock]

    # -- slots ------------------------------------------------------------------
    def admit(self, conn: Connection, *, lock_timeout: float = -1) -> bool:
        """Critical section ``admit``: take a slot, or refuse when the room is full.

        Raises :class:`TimeoutError` when the lock cannot be had within
        ``lock_timeout`` seconds (only possible in the ``direct`` design, whose
        sender may be blocked under it): the accepting thread must stay free
        to notice a shutdown.
        """
        if not self.lock.acquire(timeout=lock_timeout):
            raise TimeoutError("the room's lock is held by a blocked sender")
        try:
            if self.is_closing:
                self.stats.refused_full += 1
                return False
            if len(self.connections) >= self.max_clients and not self._evict_silent_locked():
                self.stats.refused_full += 1
                return False
            self.connections.add(conn)
            return True
        finally:
            self.lock.release()

    def heard(self, conn: Connection) -> None:
        """Critical section ``heard``: ``conn`` sent its first bytes; it is no longer evictable.

        Under the lock so that ``admit`` never evicts a connection whose name
        is already on its way: once per connection, at its first ``recv``.
        """
        with self.lock:
            conn.is_silent = False

    def release(self, conn: Connection) -> None:
        """Critical section ``release``: free the slot of a closed connection."""
        with self.lock:
            self.connections.discard(conn)

    # -- replies ----------------------------------------------------------------
    def reply(self, conn: Connection, line: bytes, *, last: bool = False) -> None:
        """Critical section ``reply``: one line to one connection, in order with broadcasts.

        ``last`` finishes the outbox after the line (``BYE``, ``ERR timeout``).
        """
        with self.lock:
            n = conn.outbox.put(line)
            if last:
                conn.outbox.finish()
            elif n > self.max_backlog:
                self._overflow_locked(conn)

    # -- membership ---------------------------------------------------------------
    def join(self, conn: Connection, name: str) -> ErrorCode | None:
        """Critical section ``join``: register ``name`` for ``conn`` and announce it.

        Returns ``None`` on success, else the refusal's code. ``name`` must
        already be valid (:func:`chat.protocol.check_name`).
        """
        key = protocol.name_key(name)
        # Check, register and announce in ONE critical section: split the check
        # from the registration and two joiners get one name; announce before
        # registering and the newcomer misses what is said right after its JOIN.
        with self.lock:
            if self.is_closing:
                return ErrorCode.TIMEOUT
            if not self._claim_locked(conn, key):
                return ErrorCode.NAME_TAKEN
            self._enrol_locked(conn, name)
            self._announce_join_locked(conn, name)
            return None

    def say(
        self, conn: Connection, texts: Sequence[str], *, may_pause: bool = True
    ) -> tuple[int, Outbox | None]:
        """Critical section ``say``: broadcast texts as ``MSG`` from ``conn``, in order.

        Returns how many of ``texts`` it broadcast, and the outbox of a
        recipient past the high-water mark, if any, so that the caller can
        wait for it *outside the lock* (the backpressure rule,
        docs/architecture.md). With ``may_pause`` it stops as soon as one is
        (before the first text, too, if one still is from an earlier
        broadcast); the caller waits, then calls again with the rest. Stalled
        recipients are not paused for. Texts from a connection that is no
        longer a member are dropped (counted as done).

        Combining: the call leaves its texts in ``_says`` *before* it asks for
        the lock, and whoever holds the lock serves every waiting call at
        once (:meth:`_combine_locked`): one batch per member for several
        senders' lines, where each sender would send its own. A call whose
        request another reader's round already ended finds it over and
        returns. Raises :class:`RoundFailed` when the round that held its
        request raised in another reader.
        """
        assert conn.name is not None
        request = SayRequest(conn, texts, may_pause)
        if self.combines:
            self._says.append(request)  # one C call, atomic: no lock needed to join the queue
        # One round per hold of the lock: between rounds, the readers whose requests
        # are over get the lock, see it and go back to reading, and the other
        # sections (join, leave, shutdown) get their turn. A request that is over
        # is never written again, so its fields are read after the loop.
        is_over = False
        while not is_over:
            with self.lock:
                if not request.is_over:
                    self._combine_locked(request)
                is_over = request.is_over
        if request.failed is not None:
            raise RoundFailed("the broadcast that carried these lines failed") from request.failed
        return request.done, request.congested

    def who(self, conn: Connection) -> None:
        """Critical section ``who``: answer ``/who`` with the sorted member names."""
        with self.lock:
            names = protocol.sort_names([c.name for c in self.members.values() if c.name])
            if conn.outbox.put(protocol.format_event(protocol.Users(names))) > self.max_backlog:
                self._overflow_locked(conn)

    def outboxes(self) -> list[Outbox]:
        """Critical section ``outboxes``: every member's outbox, for a reader about to wait for one.

        What :func:`chat.delivery.wait_for_congested` watches while the reader
        waits, so that one wait judges every recipient (the backpressure rule,
        docs/architecture.md). Called only before a pause, never per broadcast.
        """
        with self.lock:
            return [c.outbox for c in self._recipients_locked()]

    def leave(self, conn: Connection, reason: LeaveReason) -> bool:
        """Critical section ``leave``: unregister ``conn`` and announce why.

        Idempotent: a connection that already left (or never joined) is not
        announced again, so a drop racing a ``/quit`` gives one LEAVE. With
        ``quit`` the leaver gets ``BYE`` first and its outbox is finished.
        """
        with self.lock:  # "is it still a member?" is asked under the lock, by _leave_locked
            return self._leave_locked(conn, reason)

    # -- shutdown ---------------------------------------------------------------
    def shutdown(self, lock_timeout: float) -> list[Connection]:
        """Critical section ``shutdown``: BYE to every connection; no broadcasts after.

        Returns every open connection. When the lock cannot be had within
        ``lock_timeout`` (the ``direct`` design's sender may be blocked under
        it; a ``batched`` broadcast holds it for at most its fast-path budget),
        BYE is queued without it, best effort: no send happens outside the
        lock, and a wake-up lost to a concurrent producer costs the writer at
        most its idle wait. :meth:`chat.delivery.Outbox.finish_with` never
        blocks, whatever the design.
        """
        bye = protocol.format_event(protocol.Bye(SHUTDOWN_TEXT))
        locked = self.lock.acquire(timeout=lock_timeout)
        try:
            self.is_closing = True
            conns = list(self.connections)
            # Within the fast path's budget, like a broadcast, so the section stays
            # short; without the lock, only queued (a send needs the lock's order).
            send_until = time.perf_counter() + FAST_PATH_BUDGET if locked else 0.0
            for conn in conns:
                conn.outbox.finish_with(bye, send_until)
            return conns
        finally:
            if locked:
                self.lock.release()

    # -- the steps: called with the lock held (see "Extension points") ------------
    def _evict_silent_locked(self) -> bool:
        """Free the slot of the longest-silent connection, if one qualifies. Called with the lock held.

        The evicted connection gets ``ERR timeout`` and its reading side is
        shut, so that its reader wakes, sees the end of input and closes it;
        its slot is given up here, at once. True when a slot was freed.
        """
        cutoff = time.monotonic() - SILENT_EVICT_AFTER
        silent = [c for c in self.connections if c.is_silent and not c.is_member and c.opened <= cutoff]
        if not silent:
            return False
        oldest = min(silent, key=lambda c: c.opened)
        self.connections.discard(oldest)
        self.stats.evicted_silent += 1
        oldest.outbox.finish_with(protocol.format_err(ErrorCode.TIMEOUT, EVICTED_TEXT))
        try:
            oldest.outbox.sock.shutdown(socket.SHUT_RD)  # wakes its reader; the ERR still goes out
        except OSError:
            pass  # already gone: its reader is ending anyway
        _log_evicted.log("slot of silent connection %s given to a newcomer", oldest.peer)
        return True

    def _next_seq(self) -> int:
        """The next broadcast's seq. Called with the lock held."""
        self.seq += 1
        return self.seq

    def _claim_locked(self, conn: Connection, key: str) -> bool:
        """Register ``conn`` under ``key`` unless another connection holds it. Called with the lock held.

        Check and set in one dict operation, by identity: idempotent for the
        same connection. False when the name is taken.
        """
        return self.members.setdefault(key, conn) is conn

    def _enrol_locked(self, conn: Connection, name: str) -> None:
        """Make ``conn`` a member named ``name`` and count the join. Called with the lock held."""
        conn.name = name
        conn.is_member = True
        self.stats.joins += 1

    def _announce_join_locked(self, conn: Connection, name: str) -> None:
        """``OK`` to the newcomer, then ``JOIN`` to every member, itself included.

        Called with the lock held.
        """
        conn.outbox.put(protocol.format_event(protocol.Ok(name)))
        self._broadcast_locked([protocol.format_event(protocol.Join(self._next_seq(), name))])

    def _combine_locked(self, own: SayRequest) -> None:
        """One round of ``say``: the next chunk of each waiting request, one broadcast. Lock held.

        Takes the requests queued in ``_says`` (or only ``own`` when the room
        does not combine), gives each its next chunk of consecutive seqs, and
        puts all of them to every member with one ``put_many`` each: members
        get the lines in seq order, each sender's in the order it sent them.
        At most ``say_batch`` lines per round, so that a round pushes no live
        recipient from the high-water mark to the slow limit (see
        ``__init__``). A request ends (``is_over``) when its texts are all
        done, when it must pause for a congested recipient, or when its sender
        is no longer a member; otherwise it goes back to the queue.
        """
        says = self._says
        # Only the lock's holder pops; readers may append meanwhile (served next round).
        taken = [says.popleft() for _ in range(len(says))] if self.combines else [own]
        if not taken:
            # ``own`` is neither over nor queued: the invariant below is broken. Fail
            # loudly rather than spin with the lock held.
            raise RuntimeError("a say request is neither over nor queued")
        try:
            self._serve_locked(taken)
        except BaseException as exc:
            # Every request this round held ends with the error: its reader raises
            # RoundFailed instead of waiting for ever for a round that is gone.
            for request in taken:
                if not request.is_over:
                    request.failed = exc
                    request.is_over = True
            raise

    def _serve_locked(self, taken: list[SayRequest]) -> None:
        """The body of a round (``_combine_locked``). Called with the lock held.

        Invariant, whatever happens: when the round ends, each request of
        ``taken`` is either over or back in ``_says`` (the caller ends them if
        this raises).
        """
        says = self._says
        blocker = self._still_congested_locked()
        lines: list[bytes] = []
        served: list[SayRequest] = []
        room_left = self.say_batch
        for i, request in enumerate(taken):
            if request.is_over:
                continue  # ended by a round that failed after putting it back
            if room_left <= 0:
                says.extendleft(reversed(taken[i:]))  # their turn is next round, ahead of newer ones
                break
            conn = request.conn
            if not conn.is_member or self.is_closing:
                request.done = len(request.texts)
                request.is_over = True
            elif request.may_pause and blocker is not None:
                request.congested = blocker
                request.is_over = True
            else:
                start = request.done
                assert conn.name is not None
                numbered = self._number_locked(
                    conn.name, request.texts[start : start + min(self.say_chunk, room_left)]
                )
                lines += numbered
                request.done = start + len(numbered)
                room_left -= len(numbered)
                served.append(request)
        worst = self._broadcast_locked(lines) if lines else None
        for request in served:
            if request.may_pause and worst is not None:
                request.congested = worst
                request.is_over = True
            elif request.done >= len(request.texts):
                request.is_over = True
            elif self.combines:
                says.append(request)
            # (not combining: the request stays its own reader's, who runs the next round)

    def _still_congested_locked(self) -> Outbox | None:
        """The most backlogged remembered recipient that a reader must still pause for, if any.

        Called with the lock held. Forgets those back under the high-water mark,
        stalled (nobody waits for them) or finishing.
        """
        remembered = self._congested
        if not remembered:
            return None
        high = self.high_water
        still = [o for o in remembered if o.backlog() > high and not o.is_stalled and not o.is_finishing]
        if len(still) != len(remembered):
            self._congested = dict.fromkeys(still)
        return max(still, key=lambda o: o.backlog()) if still else None

    def _number_locked(self, name: str, texts: Sequence[str]) -> list[bytes]:
        """``MSG`` lines from ``name``, one per text, on consecutive seqs. Called with the lock held."""
        # One _next_seq per line, called by the iterator as each line is formatted.
        return protocol.format_msgs(name, texts, iter(self._next_seq, None))

    def _recipients_locked(self) -> Collection[Connection]:
        """Who a broadcast goes to: every member. Called with the lock held, once per broadcast."""
        return self.members.values()

    def _broadcast_locked(self, lines: list[bytes]) -> Outbox | None:
        """Put ``lines`` (consecutive seqs, in order) to every recipient. Called with the lock held.

        Members whose backlog overflows are dropped as slow after the whole
        batch, each announced by a LEAVE of its own (on the next seq). Returns
        the most backlogged outbox past the high-water mark, if any, and
        remembers every one past it for the next ``say`` (backpressure).
        """
        limit = self.max_backlog
        high = self.high_water
        worst: Outbox | None = None
        worst_n = high
        congested = self._congested
        overflowed: list[Connection] | None = None
        members = self._recipients_locked()
        # batched sends straight to idle members' sockets only within this budget,
        # so that the section stays short however many members (chat.delivery).
        send_until = time.perf_counter() + FAST_PATH_BUDGET
        # One bytes object for every recipient's fast-path send, not one each.
        joined = b"".join(lines) if len(lines) > 1 else b""
        for conn in members:
            n = conn.outbox.put_many(lines, send_until, joined)
            if n > high:
                if n > limit:
                    if overflowed is None:
                        overflowed = []
                    overflowed.append(conn)
                elif not conn.outbox.is_stalled:  # nobody waits for a stalled one
                    congested[conn.outbox] = None
                    if n > worst_n:
                        worst, worst_n = conn.outbox, n
        self.stats.broadcasts += len(lines)
        self.stats.deliveries += len(members) * len(lines)
        if overflowed:
            for conn in overflowed:
                self._leave_locked(conn, LeaveReason.SLOW)
        return worst

    def _overflow_locked(self, conn: Connection) -> None:
        """A connection's own replies overflowed its backlog. Called with the lock held.

        Replies count towards the backlog like broadcasts, so a client that
        sends commands and never reads the answers cannot grow the server's
        memory without bound: a member is dropped as slow, a connection still
        in its handshake is just closed.
        """
        if conn.is_member:
            self._leave_locked(conn, LeaveReason.SLOW)
        elif not conn.outbox.is_finishing:
            _log_unread.log("closing %s: it does not read its replies", conn.peer)
            conn.outbox.abort()

    def _leave_locked(self, conn: Connection, reason: LeaveReason) -> bool:
        """A leave, checked: only a member leaves, and only once. Called with the lock held."""
        if not conn.is_member or self.is_closing:
            return False
        self._depart_locked(conn, reason)
        return True

    def _depart_locked(self, conn: Connection, reason: LeaveReason) -> None:
        """A leave, unchecked: unregister, count, ``BYE`` or abort, announce. Called with the lock held."""
        self._unregister_locked(conn)
        conn.is_member = False
        self.stats.leaves[reason.value] += 1
        if reason is LeaveReason.QUIT:
            conn.outbox.put(protocol.format_event(protocol.Bye("goodbye")))
            conn.outbox.finish()
        else:
            # Dropped or gone: nothing more is worth sending to it.
            conn.outbox.abort()
            if reason is LeaveReason.SLOW:
                log.info("dropping slow member %s", conn.name)
                if self._on_slow is not None:
                    self._on_slow(conn)
        self._announce_leave_locked(conn, reason)

    def _unregister_locked(self, conn: Connection) -> None:
        """Remove the registry entry of ``conn``'s name if it is ``conn`` (idempotent).

        Called with the lock held.
        """
        assert conn.name is not None
        key = protocol.name_key(conn.name)
        if self.members.get(key) is conn:
            del self.members[key]

    def _announce_leave_locked(self, conn: Connection, reason: LeaveReason) -> None:
        """``LEAVE`` to the remaining members, on the next seq. Called with the lock held."""
        assert conn.name is not None
        leave = protocol.Leave(self._next_seq(), conn.name, reason.value)
        self._broadcast_locked([protocol.format_event(leave)])
