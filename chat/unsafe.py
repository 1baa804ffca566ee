"""The bug catalogue: the server with one classic concurrency bug injected on purpose.

Teaching code, never for real use. ``python -m chat.server --unsafe BUG``
builds the server from the pieces below instead of the safe ones: a subclass
of :class:`chat.room.Room` (or of the session, or of an outbox) that overrides
exactly the critical section the bug is about. Each override keeps the name of
the safe method it replaces, so that reading it beside :mod:`chat.room` shows
the one difference, and the instrumented lock (``--metrics-port``) reports its
sites under the same names. docs/bugs.md describes every bug: what the code
does differently, why it breaks, what a student sees, and which check of the
harness catches it.

The race window
---------------
The GIL hides many races: a thread is rarely switched out in the middle of a
few bytecodes, so a check-then-act bug may show once an hour. Each bug here
therefore pauses for ``race_window`` seconds at its racy point (``--race-window``,
with a default per bug). **That sleep is part of the injected bug, not
synchronisation**: it marks where the window is, and widening it makes the bug
show in seconds instead of hours. With ``--race-window 0`` the bugs are still
there, only rarer.

When a bug hangs the room (``lock-order-deadlock``, ``send-under-lock``), a
watchdog thread notices that the room's lock could not be had for
:data:`WATCHDOG_LIMIT` seconds and dumps every thread's stack to stderr with
:mod:`faulthandler`; ``kill -USR1 <pid>`` does the same on demand.
"""

from __future__ import annotations

import faulthandler
import logging
import socket
import sys
import threading
import time
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from types import TracebackType

from chat import protocol
from chat.delivery import BatchedOutbox, Delivery, DirectOutbox, Outbox
from chat.lockstat import InstrumentedLock, SupportsLock
from chat.protocol import ErrorCode, LeaveReason
from chat.room import Connection, Room
from chat.server import ChatServer, ServerConfig, Session

log = logging.getLogger(__name__)

#: The room's lock not obtained for this long means the room is stuck (a
#: deadlock, or a send blocked under the lock): the watchdog dumps the stacks.
#: Below the swarm's liveness bound, so that the dump is in the server's log by
#: the time the harness reports the hang.
WATCHDOG_LIMIT = 2.0

#: ``send-under-lock`` needs a small send buffer, so that a member that stops
#: reading fills it (and blocks the sender) within a second of chat, not after
#: megabytes. Linux doubles it and rounds up to its own minimum.
SMALL_SNDBUF = 4096


def pause(seconds: float) -> None:
    """The race window: part of the injected bug, deliberately NOT synchronisation."""
    if seconds > 0:
        time.sleep(seconds)


class UnsafeRoom(Room):
    """A room that knows how wide to make its race window."""

    race_window = 0.0

    def extra_locks(self) -> list[InstrumentedLock]:
        """Locks besides ``self.lock`` whose figures the metrics should show."""
        return []


# -- no-lock ------------------------------------------------------------------------


class NoLock:
    """Looks like a lock, excludes nothing."""

    def acquire(self, blocking: bool = True, timeout: float = -1) -> bool:
        return True

    def release(self) -> None:
        pass

    def locked(self) -> bool:
        return False

    def __enter__(self) -> bool:
        return True

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        pass


class NoLockRoom(UnsafeRoom):
    """``no-lock``: every critical section runs without the lock."""

    def __init__(self, *, max_clients: int, max_backlog: int, lock: SupportsLock | None = None) -> None:
        # BUG: the lock that every `with self.lock:` takes excludes nothing.
        super().__init__(max_clients=max_clients, max_backlog=max_backlog, lock=NoLock())

    def _next_seq(self) -> int:
        # `self.seq += 1` is a read, an add and a write: two threads can read
        # the same value. The pause widens the gap between the read and the write.
        seq = self.seq + 1
        pause(self.race_window)
        self.seq = seq
        return seq


# -- name-check-race ------------------------------------------------------------------


class NameCheckRaceRoom(UnsafeRoom):
    """``name-check-race``: the check and the registration are two critical sections."""

    def join(self, conn: Connection, name: str) -> ErrorCode | None:
        key = protocol.name_key(name)
        with self.lock:
            if self.is_closing:
                return ErrorCode.TIMEOUT
            is_taken = key in self.members  # BUG: checked in one critical section ...
        if is_taken:
            return ErrorCode.NAME_TAKEN
        pause(self.race_window)  # ... another joiner with the same name passes the check here ...
        with self.lock:  # ... and both act on it in another.
            self.members[key] = conn
            conn.name = name
            conn.is_member = True
            self.stats.joins += 1
            conn.outbox.put(protocol.format_event(protocol.Ok(name)))
            self._broadcast(protocol.format_event(protocol.Join(self._next_seq(), name)))
            return None

    def _leave_locked(self, conn: Connection, reason: LeaveReason) -> bool:
        # The registry may hold the other owner of this name: unregister by
        # identity so that the rest of the room keeps working (the bug is in join).
        if conn.is_member and conn.name is not None:
            key = protocol.name_key(conn.name)
            if self.members.get(key) is not conn:
                self.members[key] = conn  # so that the base class can delete it
        return super()._leave_locked(conn, reason)


# -- iterate-while-mutating -------------------------------------------------------------


class IterateWhileMutatingRoom(UnsafeRoom):
    """``iterate-while-mutating``: joins and leaves change the registry without the lock."""

    def join(self, conn: Connection, name: str) -> ErrorCode | None:
        key = protocol.name_key(name)
        if self.is_closing:
            return ErrorCode.TIMEOUT
        # BUG: "one dict operation is atomic under the GIL, it needs no lock".
        # It is atomic, but a broadcast may be iterating over the dict right now.
        if self.members.setdefault(key, conn) is not conn:
            return ErrorCode.NAME_TAKEN
        with self.lock:
            conn.name = name
            conn.is_member = True
            self.stats.joins += 1
            conn.outbox.put(protocol.format_event(protocol.Ok(name)))
            self._broadcast(protocol.format_event(protocol.Join(self._next_seq(), name)))
            return None

    def leave(self, conn: Connection, reason: LeaveReason) -> bool:
        name = conn.name
        if not conn.is_member or name is None:
            return False
        # BUG: unregistered outside the lock, while a broadcast may iterate.
        if self.members.pop(protocol.name_key(name), None) is not conn:
            return False
        with self.lock:
            if not conn.is_member or self.is_closing:
                return False
            conn.is_member = False
            self.stats.leaves[reason.value] += 1
            if reason is LeaveReason.QUIT:
                conn.outbox.put(protocol.format_event(protocol.Bye("goodbye")))
                conn.outbox.finish()
            else:
                conn.outbox.abort()
            self._broadcast(protocol.format_event(protocol.Leave(self._next_seq(), name, reason.value)))
            return True

    def _broadcast(self, line: bytes) -> Outbox | None:
        # The safe loop, with the race window after the first recipient: a join
        # or leave landing there changes the dict under the iterator.
        overflowed: list[Connection] = []
        n = 0
        for conn in self.members.values():
            if conn.outbox.put(line) > self.max_backlog:
                overflowed.append(conn)
            n += 1
            if n == 1:
                pause(self.race_window)
        self.stats.broadcasts += 1
        self.stats.deliveries += n
        for conn in overflowed:
            self._leave_locked(conn, LeaveReason.SLOW)
        return None


# -- seq-outside-lock -------------------------------------------------------------------


class SeqOutsideLockRoom(UnsafeRoom):
    """``seq-outside-lock``: a message's seq is taken in one critical section, its recipients in another."""

    def take_seq(self) -> int:
        with self.lock:  # the counter itself is safe: no two messages share a seq ...
            return self._next_seq()

    def say(
        self, conn: Connection, texts: Sequence[str], *, may_pause: bool = True
    ) -> tuple[int, Outbox | None]:
        name = conn.name
        assert name is not None
        for text in texts:
            seq = self.take_seq()  # BUG: ... but the seq is fixed here ...
            pause(self.race_window)  # ... other messages, joins and leaves get in here ...
            with self.lock:  # ... and the recipients only here.
                if not conn.is_member or self.is_closing:
                    break
                self._broadcast(protocol.format_msg(seq, name, text))
        return len(texts), None


# -- torn-writes ------------------------------------------------------------------------


class TornOutbox(DirectOutbox):
    """Writes each line straight to the socket from the caller's thread, in two sends."""

    def __init__(self, sock: socket.socket, name: str, window: float) -> None:
        super().__init__(sock, name)
        self.window = window

    def put(self, line: bytes) -> int:
        if self.is_finishing or self.is_broken:
            return 0
        # BUG: a line goes out as two sends (say, a header then a body), from
        # whichever thread delivers it. Another thread's send to the same socket
        # can land between the two.
        cut = line.find(b" ", line.find(b" ") + 1) + 1 or len(line) // 2
        try:
            self._send_part(line[:cut])
            pause(self.window)
            self._send_part(line[cut:])
        except OSError as exc:
            self.is_broken = True
            log.debug("torn send to %s failed: %s", self.label, exc)
        return 0

    def _send_part(self, data: bytes) -> None:
        # Non-blocking, so that a member that stops reading loses lines instead
        # of stalling the room: this bug is about tearing, not about blocking.
        self.sock.send(data, socket.MSG_DONTWAIT)
        self.sends += 1
        self.bytes_sent += len(data)


class TornRoom(UnsafeRoom):
    """``torn-writes``: broadcasts are written by the senders' threads, outside the lock."""

    def say(
        self, conn: Connection, texts: Sequence[str], *, may_pause: bool = True
    ) -> tuple[int, Outbox | None]:
        name = conn.name
        assert name is not None
        with self.lock:  # seq and recipients are fixed together, as in the safe room ...
            if not conn.is_member or self.is_closing:
                return len(texts), None
            lines = [protocol.format_msg(self._next_seq(), name, text) for text in texts]
            recipients = list(self.members.values())
            self.stats.broadcasts += len(lines)
            self.stats.deliveries += len(lines) * len(recipients)
        # BUG: ... but written here, outside it, by this reader thread, while
        # other readers write to the same sockets (there is no writer thread
        # per connection to serialise them).
        for line in lines:
            for r in recipients:
                r.outbox.put(line)
        return len(texts), None


class TornSession(Session):
    """A session whose outbox has no writer thread: whoever delivers a line writes it."""

    def __init__(self, server: ChatServer, sock: socket.socket, peer: str) -> None:
        super().__init__(server, sock, peer)
        assert isinstance(self.room, UnsafeRoom)
        self.outbox = TornOutbox(self.sock, peer, self.room.race_window)
        self.conn = Connection(self.outbox, peer)


# -- lost-leave -------------------------------------------------------------------------


class LostLeaveRoom(UnsafeRoom):
    """``lost-leave``: a member whose connection drops is removed without a LEAVE."""

    def leave(self, conn: Connection, reason: LeaveReason) -> bool:
        if reason is not LeaveReason.DISCONNECTED:
            return super().leave(conn, reason)
        with self.lock:
            if not conn.is_member or self.is_closing:
                return False
            assert conn.name is not None
            del self.members[protocol.name_key(conn.name)]
            conn.is_member = False
            self.stats.leaves[reason.value] += 1
            conn.outbox.abort()
            # BUG: the error path forgets what the quit path does: broadcast LEAVE.
            return True


# -- double-leave -----------------------------------------------------------------------


class DoubleLeaveRoom(UnsafeRoom):
    """``double-leave``: "is it still a member?" is checked outside the critical section."""

    def leave(self, conn: Connection, reason: LeaveReason) -> bool:
        if not conn.is_member:  # BUG: checked before the lock ...
            return False
        pause(self.race_window)  # ... the other path (quit, or drop) checks here too ...
        with self.lock:  # ... and both act.
            name = conn.name
            assert name is not None
            if self.is_closing:
                return False
            self.members.pop(protocol.name_key(name), None)
            conn.is_member = False
            self.stats.leaves[reason.value] += 1
            if reason is LeaveReason.QUIT:
                conn.outbox.put(protocol.format_event(protocol.Bye("goodbye")))
                conn.outbox.finish()
            else:
                conn.outbox.abort()
            self._broadcast(protocol.format_event(protocol.Leave(self._next_seq(), name, reason.value)))
            return True


class ReportingOutbox(BatchedOutbox):
    """A writer that reports a failed send itself: the second path that announces a drop."""

    def __init__(self, sock: socket.socket, name: str, on_broken: Callable[[], None]) -> None:
        super().__init__(sock, name)
        self._on_broken = on_broken

    def _run(self) -> None:
        super()._run()
        if self.is_broken and not self.is_finishing:
            self._on_broken()  # the peer is gone: "announce it right away"


class DoubleLeaveSession(Session):
    """A session whose writer announces a broken connection as well as its reader."""

    def __init__(self, server: ChatServer, sock: socket.socket, peer: str) -> None:
        super().__init__(server, sock, peer)
        self.outbox = ReportingOutbox(self.sock, peer, self._writer_saw_drop)
        self.conn = Connection(self.outbox, peer)

    def _writer_saw_drop(self) -> None:
        self.room.leave(self.conn, LeaveReason.DISCONNECTED)


# -- join-before-register ------------------------------------------------------------------


class JoinBeforeRegisterRoom(UnsafeRoom):
    """``join-before-register``: JOIN is broadcast before the newcomer is in the registry."""

    def __init__(self, *, max_clients: int, max_backlog: int, lock: SupportsLock | None = None) -> None:
        super().__init__(max_clients=max_clients, max_backlog=max_backlog, lock=lock)
        self._reserved: set[str] = set()  # names announced but not yet registered; under self.lock

    def join(self, conn: Connection, name: str) -> ErrorCode | None:
        key = protocol.name_key(name)
        with self.lock:
            if self.is_closing:
                return ErrorCode.TIMEOUT
            if key in self.members or key in self._reserved:
                return ErrorCode.NAME_TAKEN
            self._reserved.add(key)
            conn.name = name
            conn.is_member = True  # its session may chat; it only misses what others say
            conn.outbox.put(protocol.format_event(protocol.Ok(name)))
            join = protocol.format_event(protocol.Join(self._next_seq(), name))
            self._broadcast(join)  # BUG: announced to the others ...
            conn.outbox.put(join)
        pause(self.race_window)  # ... broadcasts here miss the newcomer ...
        self.register(conn, key)  # ... registered only now.
        return None

    def register(self, conn: Connection, key: str) -> None:
        with self.lock:
            self._reserved.discard(key)
            if conn.is_member and not self.is_closing:  # unless it left meanwhile
                self.members[key] = conn
                self.stats.joins += 1

    def _leave_locked(self, conn: Connection, reason: LeaveReason) -> bool:
        # A newcomer may leave before it is registered: let the base class find it.
        if conn.is_member and conn.name is not None:
            self.members.setdefault(protocol.name_key(conn.name), conn)
        return super()._leave_locked(conn, reason)


# -- lock-order-deadlock ----------------------------------------------------------------------


class LockOrderDeadlockRoom(UnsafeRoom):
    """``lock-order-deadlock``: a second lock, taken before the room's on one path and after it on another."""

    def __init__(self, *, max_clients: int, max_backlog: int, lock: SupportsLock | None = None) -> None:
        super().__init__(max_clients=max_clients, max_backlog=max_backlog, lock=lock)
        # Guards self.stats, "so that the metrics can read it consistently".
        self.stats_lock: SupportsLock = (
            InstrumentedLock("stats") if isinstance(lock, InstrumentedLock) else threading.Lock()
        )

    def extra_locks(self) -> list[InstrumentedLock]:
        return [self.stats_lock] if isinstance(self.stats_lock, InstrumentedLock) else []

    def join(self, conn: Connection, name: str) -> ErrorCode | None:
        key = protocol.name_key(name)
        with self.lock:  # order: registry, then stats
            if self.is_closing:
                return ErrorCode.TIMEOUT
            if key in self.members:
                return ErrorCode.NAME_TAKEN
            self.members[key] = conn
            conn.name = name
            conn.is_member = True
            pause(self.race_window)
            with self.stats_lock:
                self.stats.joins += 1
            conn.outbox.put(protocol.format_event(protocol.Ok(name)))
            self._broadcast(protocol.format_event(protocol.Join(self._next_seq(), name)))
            return None

    def leave(self, conn: Connection, reason: LeaveReason) -> bool:
        with self.stats_lock:  # BUG: order: stats, then registry: the opposite of join
            pause(self.race_window)
            with self.lock:
                return self._leave_locked(conn, reason)  # counts stats.leaves


# -- lost-wakeup ------------------------------------------------------------------------------


class LostWakeupOutbox(Outbox):
    """A writer thread that announces it is going to sleep *after* it looked at the queue."""

    has_writer = True

    def __init__(self, sock: socket.socket, name: str, window: float) -> None:
        super().__init__(sock, name)
        self.window = window
        self._lines: deque[bytes] = deque()
        self._wake = threading.Event()
        self.is_sleeping = False  # "the writer is waiting: wake it" (read and written without a lock)

    def put(self, line: bytes) -> int:
        if self.is_finishing:
            return 0
        self._lines.append(line)
        n = len(self._lines)
        if n == 1 and self.is_sleeping:  # only a sleeping writer needs waking ...
            self._wake.set()
        return n

    def backlog(self) -> int:
        return len(self._lines)

    def finish(self) -> None:
        super().finish()
        self._wake.set()

    def abort(self) -> None:
        super().abort()
        self._wake.set()

    def _write_loop(self) -> None:
        lines = self._lines
        while True:
            while lines and not self.is_aborted:
                self._send(b"".join([lines.popleft() for _ in range(len(lines))]))
            if self.is_aborted or self.is_finishing:
                if not lines or self.is_aborted:
                    return
                continue
            # BUG: "is there work?" was answered above, "I am asleep" is said
            # here. A put in between finds the queue empty and the writer not
            # asleep, so it wakes nobody; the writer then sleeps on a queue
            # that has a line in it, and later puts (not empty to non-empty)
            # never wake it either.
            pause(self.window)
            self.is_sleeping = True
            self._wake.wait()  # no timeout: it trusts that a put will wake it
            self._wake.clear()
            self.is_sleeping = False


class LostWakeupSession(Session):
    """A session whose writer can miss its wake-up."""

    def __init__(self, server: ChatServer, sock: socket.socket, peer: str) -> None:
        super().__init__(server, sock, peer)
        assert isinstance(self.room, UnsafeRoom)
        self.outbox = LostWakeupOutbox(self.sock, peer, self.room.race_window)
        self.conn = Connection(self.outbox, peer)


# -- the catalogue --------------------------------------------------------------------------


@dataclass(frozen=True)
class Bug:
    """One entry of the catalogue."""

    name: str
    summary: str
    room: type[UnsafeRoom]
    window: float
    """Default race window in seconds (``--race-window``); 0 where the bug needs none."""
    session: type[Session] = Session
    configure: Callable[[ServerConfig], ServerConfig] | None = None
    scenario: str = "mixed"
    """The swarm scenario that exposes it."""


def _send_under_lock_config(config: ServerConfig) -> ServerConfig:
    sndbuf = min(config.sndbuf or SMALL_SNDBUF, SMALL_SNDBUF)
    return replace(config, delivery=Delivery.DIRECT, sndbuf=sndbuf)


BUGS: dict[str, Bug] = {
    b.name: b
    for b in (
        Bug("no-lock", "registry changes and broadcasts without the lock", NoLockRoom, 0.0005),
        Bug(
            "name-check-race",
            "check-then-act on usernames: two members with one name",
            NameCheckRaceRoom,
            0.02,
        ),
        Bug(
            "iterate-while-mutating",
            "broadcasts iterate the live registry while joins and leaves change it",
            IterateWhileMutatingRoom,
            0.0005,
        ),
        Bug(
            "seq-outside-lock",
            "seq taken outside the critical section that fixes the recipients",
            SeqOutsideLockRoom,
            0.001,
        ),
        Bug(
            "torn-writes",
            "several threads write one member's socket, each line in two sends",
            TornRoom,
            0.0005,
            session=TornSession,
        ),
        Bug(
            "send-under-lock",
            "broadcasts send synchronously under the registry lock; one slow member stalls all",
            UnsafeRoom,
            0.0,
            configure=_send_under_lock_config,
        ),
        Bug("lost-leave", "a dropped member is removed with no LEAVE broadcast", LostLeaveRoom, 0.0),
        Bug(
            "double-leave",
            "a connection that drops while it is quitting is announced twice",
            DoubleLeaveRoom,
            0.03,
            session=DoubleLeaveSession,
        ),
        Bug(
            "join-before-register",
            "JOIN broadcast before the newcomer is registered: it misses what follows",
            JoinBeforeRegisterRoom,
            0.005,
        ),
        Bug(
            "lock-order-deadlock",
            "two locks taken in opposite orders on two paths: the server hangs",
            LockOrderDeadlockRoom,
            0.005,
        ),
        Bug(
            "lost-wakeup",
            "a writer checks its queue, then says it sleeps: a line put in between wakes nobody",
            UnsafeRoom,
            0.0005,
            session=LostWakeupSession,
        ),
    )
}


def bug_names() -> list[str]:
    return list(BUGS)


class UnknownBug(ValueError):
    """A name that is not in the catalogue (a usage error)."""


def get_bug(name: str) -> Bug:
    try:
        return BUGS[name]
    except KeyError:
        raise UnknownBug(f"unknown --unsafe bug {name!r}; valid: {', '.join(BUGS)}") from None


# -- the server ---------------------------------------------------------------------------------


class LockWatchdog:
    """Dumps every thread's stack once the room's lock cannot be had for ``limit`` seconds.

    It takes the lock briefly every ``limit`` seconds (a negligible load) and
    re-arms after the lock is free again, so a stall is reported once.
    """

    def __init__(self, lock: SupportsLock, limit: float = WATCHDOG_LIMIT) -> None:
        self.lock = lock
        self.limit = limit
        self.stalls = 0
        self.stalled = threading.Event()  # set at the first report
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="lock-watchdog", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self, timeout: float = 1.0) -> None:
        self._stop.set()
        self._thread.join(timeout)

    def _run(self) -> None:
        lock: SupportsLock = self.lock
        if isinstance(lock, InstrumentedLock):
            lock = lock.section("watchdog")
        armed = True
        while not self._stop.is_set():
            if lock.acquire(timeout=self.limit):
                lock.release()
                armed = True
                self._stop.wait(self.limit)
            elif armed and not self._stop.is_set():
                armed = False
                self.stalls += 1
                self._report()

    def _report(self) -> None:
        holder = ""
        if isinstance(self.lock, InstrumentedLock):
            st = self.lock.statistics()
            holder = f" (held by section {st.holder!r}, thread {st.holder_thread!r}, for {st.held_for:.1f} s)"
        log.error(
            "watchdog: the room's lock was not free for %.1f s%s: a deadlock or a blocked send? "
            "Every thread's stack follows.",
            self.limit,
            holder,
        )
        faulthandler.dump_traceback(file=sys.stderr, all_threads=True)
        self.stalled.set()


class UnsafeServer(ChatServer):
    """The chat server with one bug of the catalogue, and a lock watchdog."""

    room: UnsafeRoom

    def __init__(self, config: ServerConfig, bug: Bug, room: UnsafeRoom) -> None:
        super().__init__(config, room)
        self.room = room
        self.bug = bug
        self.session_class = bug.session
        self.watchdog = LockWatchdog(room.lock)

    def serve_forever(self) -> None:
        self.watchdog.start()
        try:
            super().serve_forever()
        finally:
            self.watchdog.stop()


def build_server(
    config: ServerConfig, name: str, *, race_window: float | None = None, lock: SupportsLock | None = None
) -> UnsafeServer:
    """The server with bug ``name``; raises :class:`UnknownBug`."""
    bug = get_bug(name)
    if bug.configure is not None:
        config = bug.configure(config)
    room = bug.room(max_clients=config.max_clients, max_backlog=config.max_backlog, lock=lock)
    room.race_window = bug.window if race_window is None else race_window
    return UnsafeServer(config, bug, room)


def banner(server: ChatServer) -> str:
    """The loud warning the CLI prints on stderr."""
    assert isinstance(server, UnsafeServer)
    bug = server.bug
    race_window = server.room.race_window
    lines = [
        f"UNSAFE SERVER: bug '{bug.name}' injected on purpose.",
        bug.summary,
        f"race window {race_window:g} s; scenario that exposes it: {bug.scenario}",
        "For teaching the harness only: never use this server for anything else.",
    ]
    width = max(len(s) for s in lines) + 6
    bar = "!" * width
    body = [f"!! {s.ljust(width - 6)} !!" for s in lines]
    return "\n".join([bar, *body, bar])
