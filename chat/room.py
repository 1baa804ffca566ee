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
* ``_congested``: the last recipient seen past the high-water mark;
* the right to call ``put`` on any connection's outbox.

All of them are guarded by ``self.lock``, and every public method is one
critical section that starts with ``with self.lock:`` (``admit`` and
``shutdown`` take it with a timeout instead, so that the acceptor is never stuck
behind a blocked ``direct`` send). The sections, by name:

``admit``      take a slot for a new connection, or refuse it (``ERR full``); when
               every slot is taken, a connection silent since its connect for
               ``SILENT_EVICT_AFTER`` gives its slot up (``ERR timeout``);
``heard``      note a connection's first bytes (it can no longer be evicted);
``reply``      put a line to one connection (HELLO, ERR, BYE, USERS);
``join``       check the name is free, register it, send ``OK``, broadcast JOIN;
``say``        broadcast MSG lines;
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
#: Chat lines broadcast per call to each outbox (see Room.say). Small against
#: the high-water mark (a quarter of --max-backlog), so that pausing between
#: chunks still keeps every live recipient far from the slow limit.
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
        #: Chat lines numbered and put to each outbox per step of ``say``: at
        #: most SAY_CHUNK, and at most half the room between the high-water mark
        #: and the slow limit, so that a reader overshoots the mark by one chunk
        #: at most and never pushes a live recipient to the limit.
        self.say_chunk = max(1, min(SAY_CHUNK, (max_backlog - self.high_water) // 2))
        self.connections: set[Connection] = set()
        self.members: dict[str, Connection] = {}
        self.seq = 0
        self.is_closing = False
        self.stats = RoomStats()
        self._on_slow = on_slow
        #: The last recipient seen past the high-water mark, so that ``say``
        #: pauses *before* adding to it (guarded by the lock).
        self._congested: Outbox | None = None

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
        """
        name = conn.name
        assert name is not None
        # Seqs and recipients are fixed in this one critical section: that is
        # what gives every member the same order (the module docstring).
        with self.lock:
            if not conn.is_member or self.is_closing:
                return len(texts), None
            if may_pause:
                congested = self._congested
                if congested is not None:
                    if (
                        congested.backlog() > self.high_water
                        and not congested.is_stalled
                        and not congested.is_finishing
                    ):
                        return 0, congested
                    self._congested = None
            # In chunks: each takes consecutive seqs and goes to every member
            # with one put_many per member; the pause check runs between chunks.
            done = 0
            total = len(texts)
            size = self.say_chunk
            while done < total:
                lines = self._number_locked(name, texts[done : done + size])
                congested = self._broadcast_locked(lines)
                done += len(lines)
                if congested is not None and may_pause:
                    return done, congested
            return done, None

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

    def _number_locked(self, name: str, texts: Sequence[str]) -> list[bytes]:
        """``MSG`` lines from ``name``, one per text, on consecutive seqs. Called with the lock held."""
        return [protocol.format_msg(self._next_seq(), name, text) for text in texts]

    def _recipients_locked(self) -> Collection[Connection]:
        """Who a broadcast goes to: every member. Called with the lock held, once per broadcast."""
        return self.members.values()

    def _broadcast_locked(self, lines: list[bytes]) -> Outbox | None:
        """Put ``lines`` (consecutive seqs, in order) to every recipient. Called with the lock held.

        Members whose backlog overflows are dropped as slow after the whole
        batch, each announced by a LEAVE of its own (on the next seq). Returns
        the most backlogged outbox past the high-water mark, if any, and
        remembers it for the next ``say`` (backpressure).
        """
        limit = self.max_backlog
        high = self.high_water
        worst: Outbox | None = None
        worst_n = high
        overflowed: list[Connection] | None = None
        members = self._recipients_locked()
        # batched sends straight to idle members' sockets only within this budget,
        # so that the section stays short however many members (chat.delivery).
        send_until = time.perf_counter() + FAST_PATH_BUDGET
        # One bytes object for every recipient's fast-path send, not one each.
        joined = b"".join(lines) if len(lines) > 1 else b""
        for conn in members:
            n = conn.outbox.put_many(lines, send_until, joined)
            if n > worst_n:
                if n > limit:
                    if overflowed is None:
                        overflowed = []
                    overflowed.append(conn)
                elif not conn.outbox.is_stalled:  # nobody waits for a stalled one
                    worst, worst_n = conn.outbox, n
        self.stats.broadcasts += len(lines)
        self.stats.deliveries += len(members) * len(lines)
        if worst is not None:
            self._congested = worst
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
