"""The rooms of the bug catalogue: each one safe :class:`chat.room.Room` with one step done wrong.

Each class overrides the smallest step of the room that its bug is about (the
steps are listed in chat/room.py, "steps: each called with the lock held"), and
keeps the step's name, so that reading it beside chat/room.py shows the one
difference. Where a bug is about *when* a step runs (before the lock, after
letting go of it), the override calls the safe step at the wrong moment rather
than copying it. ``pause(self.race_window)`` marks each racy point (window.py).
"""

from __future__ import annotations

import threading
from collections.abc import Iterable, Iterator, Sequence
from types import TracebackType

from chat import protocol
from chat.bugs.window import pause, released
from chat.lockstat import InstrumentedLock, SupportsLock
from chat.protocol import ErrorCode, LeaveReason
from chat.room import Connection, Room


class UnsafeRoom(Room):
    """A room that knows how wide to make its race window."""

    race_window = 0.0


# -- no-lock ------------------------------------------------------------------------


class NoLock:
    """Looks like a lock, excludes nothing."""

    def acquire(self, blocking: bool = True, timeout: float = -1) -> bool:
        return True

    def release(self) -> None:
        pass  # nothing was held

    def locked(self) -> bool:
        return False

    def __enter__(self) -> bool:
        return True

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        pass  # nothing to release


class NoLockRoom(UnsafeRoom):
    """``no-lock``: every critical section runs without the lock."""

    def __init__(self, *, max_clients: int, max_backlog: int, lock: SupportsLock | None = None) -> None:
        # BUG: the lock that every `with self.lock:` takes excludes nothing.
        super().__init__(max_clients=max_clients, max_backlog=max_backlog, lock=NoLock())

    def locks(self) -> list[SupportsLock]:
        return []  # there is no lock to count

    def _next_seq(self) -> int:
        # `self.seq += 1` is a read, an add and a write: two threads can read
        # the same value. The pause widens the gap between the read and the write.
        seq = self.seq + 1
        pause(self.race_window)
        self.seq = seq
        return seq


# -- name-check-race ------------------------------------------------------------------


class NameCheckRaceRoom(UnsafeRoom):
    """``name-check-race``: "is the name free?" and "register it" are two critical sections."""

    def _register_locked(self, key: str, conn: Connection) -> None:
        # join checked that the name is free just before this step.
        with released(self.lock):  # BUG: the lock is let go between the check and the act ...
            pause(self.race_window)  # ... another joiner with the same name passes the check here ...
        super()._register_locked(key, conn)  # ... and both register it (the second one wins the registry)


# -- iterate-while-mutating -------------------------------------------------------------


class IterateWhileMutatingRoom(UnsafeRoom):
    """``iterate-while-mutating``: joins and leaves change the registry without the lock."""

    say_chunk = 1  # one broadcast, and so one iteration of the registry, per chat line

    def join(self, conn: Connection, name: str) -> ErrorCode | None:
        key = protocol.name_key(name)
        # BUG: "one dict operation is atomic under the GIL, it needs no lock". It is
        # atomic, but a broadcast may be iterating over the dict right now.
        if self._is_free_locked(key, conn):
            self._register_locked(key, conn)
        return super().join(conn, name)  # the safe join finds the name already its own

    def leave(self, conn: Connection, reason: LeaveReason) -> bool:
        self._unregister_locked(conn)  # BUG: unregistered outside the lock, while a broadcast may iterate
        return super().leave(conn, reason)

    def _recipients_locked(self) -> Iterable[Connection]:
        return self._live_members()

    def _live_members(self) -> Iterator[Connection]:
        # The live dict, not a copy, with the race window after the first
        # recipient: a join or leave landing there changes the dict under the iterator.
        for i, conn in enumerate(self.members.values()):
            yield conn
            if i == 0:
                pause(self.race_window)


# -- seq-outside-lock -------------------------------------------------------------------


class SeqOutsideLockRoom(UnsafeRoom):
    """``seq-outside-lock``: a message's seq is taken in one critical section, its recipients in another."""

    say_chunk = 1  # one seq, one window and one fan-out per chat line

    def _number_locked(self, name: str, texts: Sequence[str]) -> list[bytes]:
        lines = super()._number_locked(name, texts)  # the seqs are fixed here (no two messages share one) ...
        with released(self.lock):  # BUG: ... then the lock is let go ...
            pause(self.race_window)  # ... other messages, joins and leaves get in here ...
        return lines  # ... and the recipients are fixed only after, by a section that took its seqs later


# -- torn-writes ------------------------------------------------------------------------


class TornRoom(UnsafeRoom):
    """``torn-writes``: broadcasts are written by the broadcasters' threads, outside the lock."""

    def _broadcast_many(self, lines: list[bytes]) -> None:
        recipients = list(self._recipients_locked())  # seq and recipients are fixed under the lock ...
        self.stats.broadcasts += len(lines)
        self.stats.deliveries += len(lines) * len(recipients)
        # BUG: ... but the lines are written here, outside it, by this thread, while other
        # threads write to the same sockets (the torn session has no writer thread per
        # connection to serialise them, and each line goes out in two sends).
        with released(self.lock):
            for line in lines:
                for r in recipients:
                    r.outbox.put(line)


# -- lost-leave -------------------------------------------------------------------------


class LostLeaveRoom(UnsafeRoom):
    """``lost-leave``: a member whose connection drops is removed without a LEAVE."""

    def _announce_leave_locked(self, conn: Connection, reason: LeaveReason) -> None:
        if reason is LeaveReason.DISCONNECTED:
            return  # BUG: the error path forgets what the quit path does: broadcast LEAVE
        super()._announce_leave_locked(conn, reason)


# -- double-leave -----------------------------------------------------------------------


class DoubleLeaveRoom(UnsafeRoom):
    """``double-leave``: "is it still a member?" is checked outside the critical section."""

    def leave(self, conn: Connection, reason: LeaveReason) -> bool:
        if not conn.is_member:  # BUG: checked before the lock ...
            return False
        pause(self.race_window)  # ... the other path (quit, or drop) checks here too ...
        with self.lock:  # ... and both act
            if self.is_closing:
                return False
            self._depart_locked(conn, reason)
            return True


# -- join-before-register ------------------------------------------------------------------


class JoinBeforeRegisterRoom(UnsafeRoom):
    """``join-before-register``: JOIN is broadcast before the newcomer is in the registry."""

    def __init__(self, *, max_clients: int, max_backlog: int, lock: SupportsLock | None = None) -> None:
        super().__init__(max_clients=max_clients, max_backlog=max_backlog, lock=lock)
        # Names announced but not yet registered, under self.lock: they stay unique,
        # so that the one symptom is what the newcomer misses.
        self._reserved: set[str] = set()

    def join(self, conn: Connection, name: str) -> ErrorCode | None:
        key = protocol.name_key(name)
        with self.lock:
            if self.is_closing:
                return ErrorCode.TIMEOUT
            if key in self._reserved or not self._is_free_locked(key, conn):
                return ErrorCode.NAME_TAKEN
            self._reserved.add(key)
            join = self._welcome_locked(conn, name)  # BUG: announced to the room ...
            conn.outbox.put(join)  # (the newcomer, not among the recipients yet, is told too)
        pause(self.race_window)  # ... what is said here misses the newcomer ...
        with self.lock:
            self._reserved.discard(key)
            if conn.is_member and not self.is_closing:  # unless it left meanwhile
                self._register_locked(key, conn)  # ... registered only now
        return None


# -- lock-order-deadlock ----------------------------------------------------------------------


class LockOrderDeadlockRoom(UnsafeRoom):
    """``lock-order-deadlock``: a second lock, taken after the room's in join and before it in leave."""

    def __init__(self, *, max_clients: int, max_backlog: int, lock: SupportsLock | None = None) -> None:
        super().__init__(max_clients=max_clients, max_backlog=max_backlog, lock=lock)
        # Guards the join and leave counts, "so that the metrics can read them consistently".
        self.stats_lock: SupportsLock = (
            InstrumentedLock("stats") if isinstance(lock, InstrumentedLock) else threading.Lock()
        )

    def locks(self) -> list[SupportsLock]:
        return [*super().locks(), self.stats_lock]

    def _register_locked(self, key: str, conn: Connection) -> None:
        pause(self.race_window)
        with self.stats_lock:  # order in join: the room's lock (held), then stats
            super()._register_locked(key, conn)

    def leave(self, conn: Connection, reason: LeaveReason) -> bool:
        with self.stats_lock:  # BUG: order in leave: stats, then the room's lock: the opposite of join
            pause(self.race_window)
            return super().leave(conn, reason)
