"""The catalogue's rooms: :class:`chat.room.Room` with one step overridden to break it.

Teaching code (see :mod:`chat.bugs`). Each room overrides the steps that
:mod:`chat.room` lists under "Extension points" (a few also wrap a public
method around ``super()``, as their docstrings say); none copies a critical
section's body, so reading an override beside the safe step shows the one
difference. The line that differs carries a ``# BUG:`` comment, and
``pause(self.race_window)`` marks the racy point.
"""

from __future__ import annotations

import threading
from collections.abc import Collection, Iterator, Sequence

from chat import protocol
from chat.bugs.race import NoLock, pause, released
from chat.delivery import Outbox
from chat.lockstat import InstrumentedLock, SupportsLock
from chat.protocol import ErrorCode, LeaveReason
from chat.room import Connection, Room


class BugRoom(Room):
    """The safe room, told how wide its bug's race window is. Itself it changes nothing but ``combines``.

    Its readers do not hand their ``say`` to the lock's holder (``Room.combines``):
    several bugs let the lock go inside a step, or take no lock at all, and a
    reader whose request sat in such a round would wait for it holding the lock
    the round needs. Each reader broadcasts its own lines, as in the original design.
    """

    combines = False

    def __init__(
        self,
        *,
        max_clients: int,
        max_backlog: int,
        lock: SupportsLock | None = None,
        race_window: float = 0.0,
    ) -> None:
        super().__init__(max_clients=max_clients, max_backlog=max_backlog, lock=lock)
        self.race_window = race_window


# -- no-lock ------------------------------------------------------------------------


class NoLockRoom(BugRoom):
    """``no-lock``: every critical section runs without the lock. Overrides the lock and ``_next_seq``."""

    def __init__(
        self,
        *,
        max_clients: int,
        max_backlog: int,
        lock: SupportsLock | None = None,
        race_window: float = 0.0,
    ) -> None:
        # BUG: the lock that every `with self.lock:` takes excludes nothing.
        super().__init__(
            max_clients=max_clients, max_backlog=max_backlog, lock=NoLock(), race_window=race_window
        )

    def _next_seq(self) -> int:
        # `self.seq += 1` is a read, an add and a write: two threads can read
        # the same value. The pause widens the gap between the read and the write.
        seq = self.seq + 1
        pause(self.race_window)
        self.seq = seq
        return seq


# -- name-check-race ------------------------------------------------------------------


class NameCheckRaceRoom(BugRoom):
    """``name-check-race``: the name is checked, the lock let go, then the name registered."""

    def _claim_locked(self, conn: Connection, key: str) -> bool:
        if key in self.members:  # BUG: checked ...
            return False
        with released(self.lock):
            pause(self.race_window)  # ... another joiner with the same name passes the check here ...
        self.members[key] = conn  # ... and both register it: the second overwrites the first.
        return True


# -- iterate-while-mutating -------------------------------------------------------------


class _PausingMembers(Collection[Connection]):
    """The live registry as a broadcast sees it, with the race window after the first recipient."""

    def __init__(self, members: dict[str, Connection], window: float) -> None:
        self._members = members
        self._window = window

    def __len__(self) -> int:
        return len(self._members)

    def __contains__(self, item: object) -> bool:
        return any(conn is item for conn in self._members.values())

    def __iter__(self) -> Iterator[Connection]:
        members = iter(self._members.values())
        for conn in members:
            yield conn
            break
        pause(self._window)  # a join or leave landing here changes the dict under the iterator
        yield from members


class IterateWhileMutatingRoom(BugRoom):
    """``iterate-while-mutating``: joins and leaves change the registry without the lock.

    Wraps ``join`` and ``leave`` around ``super()`` (to call the registry step
    before the lock), and overrides ``_recipients_locked``.
    """

    def join(self, conn: Connection, name: str) -> ErrorCode | None:
        # BUG: "one dict operation is atomic under the GIL, it needs no lock".
        # It is atomic, but a broadcast may be iterating over the dict right now.
        if not self._claim_locked(conn, protocol.name_key(name)):
            return ErrorCode.NAME_TAKEN
        return super().join(conn, name)  # claims again under the lock: already this connection's

    def leave(self, conn: Connection, reason: LeaveReason) -> bool:
        if conn.is_member and conn.name is not None:
            # BUG: unregistered outside the lock (one dict operation), while a broadcast may iterate.
            self.members.pop(protocol.name_key(conn.name), None)
        return super().leave(conn, reason)

    def _recipients_locked(self) -> Collection[Connection]:
        return _PausingMembers(self.members, self.race_window)


# -- seq-outside-lock -------------------------------------------------------------------


class SeqOutsideLockRoom(BugRoom):
    """``seq-outside-lock``: a message's seqs are fixed in one critical section, its recipients in another."""

    def _number_locked(self, name: str, texts: Sequence[str]) -> list[bytes]:
        lines = super()._number_locked(
            name, texts
        )  # the counter itself is safe: no two messages share a seq ...
        with released(self.lock):  # BUG: ... but the seqs are fixed here, and the lock let go ...
            pause(self.race_window)  # ... other messages, joins and leaves get in here ...
        return lines  # ... and the recipients are read only after.


# -- torn-writes ------------------------------------------------------------------------


class TornRoom(BugRoom):
    """``torn-writes``: broadcasts are written by the broadcasting thread, with the lock let go."""

    def _broadcast_locked(self, lines: list[bytes]) -> Outbox | None:
        recipients = list(self._recipients_locked())  # seq and recipients are fixed under the lock ...
        self.stats.broadcasts += len(lines)
        self.stats.deliveries += len(lines) * len(recipients)
        # BUG: ... but the lines are written here, without it, by this thread, while
        # other threads write to the same sockets (there is no writer thread per
        # connection to serialise them).
        with released(self.lock):
            for line in lines:
                for r in recipients:
                    r.outbox.put(line)
        return None  # never a congested recipient: these sends do not queue


# -- lost-leave -------------------------------------------------------------------------


class LostLeaveRoom(BugRoom):
    """``lost-leave``: a member whose connection drops is removed without a LEAVE."""

    def _announce_leave_locked(self, conn: Connection, reason: LeaveReason) -> None:
        if reason is LeaveReason.DISCONNECTED:
            return  # BUG: the error path forgets what the quit path does: broadcast LEAVE.
        super()._announce_leave_locked(conn, reason)


# -- double-leave -----------------------------------------------------------------------


class DoubleLeaveRoom(BugRoom):
    """``double-leave``: "is it still a member?" is checked outside the critical section.

    Overrides ``leave`` (built from ``_depart_locked``, the unchecked part of a
    leave) and ``_unregister_locked``.
    """

    def leave(self, conn: Connection, reason: LeaveReason) -> bool:
        if not conn.is_member:  # BUG: checked before the lock ...
            return False
        pause(self.race_window)  # ... the other path (quit, or drop) checks here too ...
        with self.lock:  # ... and both act.
            if self.is_closing:
                return False
            self._depart_locked(conn, reason)
            return True

    def _unregister_locked(self, conn: Connection) -> None:
        # By name, not by identity: the second of two leaves removes whoever
        # holds the name by then, so a member that took it meanwhile goes deaf.
        assert conn.name is not None
        self.members.pop(protocol.name_key(conn.name), None)


# -- join-before-register ------------------------------------------------------------------


class JoinBeforeRegisterRoom(BugRoom):
    """``join-before-register``: JOIN is broadcast before the newcomer is in the registry.

    Wraps ``join`` around ``super()`` (to register after it), and overrides
    ``_claim_locked`` (a reservation) and ``_announce_join_locked``. The name is
    reserved from the check to the registration, so that this bug is not also
    a name race: the only symptom is what the newcomer misses.
    """

    def __init__(
        self,
        *,
        max_clients: int,
        max_backlog: int,
        lock: SupportsLock | None = None,
        race_window: float = 0.0,
    ) -> None:
        super().__init__(max_clients=max_clients, max_backlog=max_backlog, lock=lock, race_window=race_window)
        self._reserved: dict[str, Connection] = {}  # announced, not yet registered; under self.lock

    def join(self, conn: Connection, name: str) -> ErrorCode | None:
        refusal = super().join(conn, name)  # BUG: announced to the others ...
        if refusal is None:
            pause(self.race_window)  # ... broadcasts here miss the newcomer ...
            with self.lock:
                self._register_locked(conn)  # ... registered only now.
        return refusal

    def _claim_locked(self, conn: Connection, key: str) -> bool:
        return key not in self.members and self._reserved.setdefault(key, conn) is conn

    def _announce_join_locked(self, conn: Connection, name: str) -> None:
        seq = self.seq + 1  # the seq that the JOIN takes
        super()._announce_join_locked(conn, name)  # to the registry, which does not hold the newcomer
        conn.outbox.put(protocol.format_event(protocol.Join(seq, name)))  # so it gets its own JOIN here

    def _register_locked(self, conn: Connection) -> None:
        """The reservation becomes a registration, unless the newcomer left meanwhile."""
        assert conn.name is not None
        key = protocol.name_key(conn.name)
        if self._reserved.pop(key, None) is conn and conn.is_member and not self.is_closing:
            super()._claim_locked(conn, key)


# -- lock-order-deadlock ----------------------------------------------------------------------


class LockOrderDeadlockRoom(BugRoom):
    """``lock-order-deadlock``: a second lock, taken after the room's in join and before it in leave.

    Overrides ``_enrol_locked`` and ``locks``, and wraps ``leave`` around ``super()``.
    """

    def __init__(
        self,
        *,
        max_clients: int,
        max_backlog: int,
        lock: SupportsLock | None = None,
        race_window: float = 0.0,
    ) -> None:
        super().__init__(max_clients=max_clients, max_backlog=max_backlog, lock=lock, race_window=race_window)
        # Guards self.stats, "so that the metrics can read it consistently".
        self.stats_lock: SupportsLock = (
            InstrumentedLock("stats") if isinstance(lock, InstrumentedLock) else threading.Lock()
        )

    def locks(self) -> list[SupportsLock]:
        return [*super().locks(), self.stats_lock]

    def _enrol_locked(self, conn: Connection, name: str) -> None:
        pause(self.race_window)
        with self.stats_lock:  # order: the room's lock (held by join), then stats
            super()._enrol_locked(conn, name)  # counts stats.joins

    def leave(self, conn: Connection, reason: LeaveReason) -> bool:
        with self.stats_lock:  # BUG: order: stats, then the room's lock: the opposite of join
            pause(self.race_window)
            return super().leave(conn, reason)  # counts stats.leaves
