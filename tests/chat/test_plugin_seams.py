"""The seams the bug catalogue plugs into: each one used by the catalogue, and each harmless when safe.

The safe server knows nothing of chat.bugs (the lint env's import contracts say so); these
tests pin down the extension points themselves: the room's steps, Room.locks(), the outboxes'
put_last, the session's outbox step and the server's session factory.
"""

from __future__ import annotations

import socket
import sys
from collections.abc import Iterator

import pytest

from chat import bugs
from chat.bugs import rooms
from chat.config import ServerConfig
from chat.delivery import BatchedOutbox, Delivery, DirectOutbox, Outbox, QueuedOutbox
from chat.lockstat import InstrumentedLock
from chat.metrics import RoomCollector
from chat.room import Connection, Room
from chat.session import Session
from tests.helpers import ServerProcess

#: The public methods a bug room may override, and why: each is a bug about WHEN a safe step runs
#: (before the lock, or in the wrong order), built from the safe steps, never a copy of a body.
PUBLIC_OVERRIDES = {
    rooms.IterateWhileMutatingRoom: {"join", "leave"},  # the registry step called before the lock
    rooms.DoubleLeaveRoom: {"leave"},  # "still a member?" asked before the lock
    rooms.JoinBeforeRegisterRoom: {"join"},  # the welcome step before the register step
    rooms.LockOrderDeadlockRoom: {"leave", "locks"},  # a second lock around the safe leave
    rooms.NoLockRoom: {"locks"},  # no lock to report
}


@pytest.fixture
def pair() -> Iterator[tuple[socket.socket, socket.socket]]:
    a, b = socket.socketpair()
    yield a, b
    a.close()
    b.close()


def public_overrides(cls: type[Room]) -> set[str]:
    return {
        name
        for klass in cls.__mro__
        if klass not in (Room, object) and issubclass(klass, Room)
        for name in vars(klass)
        if not name.startswith("_") and callable(getattr(Room, name, None))
    }


@pytest.mark.parametrize("bug", list(bugs.BUGS.values()), ids=list(bugs.BUGS))
def test_bug_rooms_override_steps_not_sections(bug: bugs.Bug) -> None:
    assert public_overrides(bug.room) <= PUBLIC_OVERRIDES.get(bug.room, set())


def test_every_bug_changes_something_and_parts_build() -> None:
    for name, bug in bugs.BUGS.items():
        assert bug.room is not rooms.UnsafeRoom or bug.session is not Session or bug.configure, name
        parts = bugs.build(name, ServerConfig(), race_window=0.0)
        assert parts.room.race_window == 0.0
        assert parts.banner.splitlines()[1].startswith(f"!! UNSAFE SERVER: bug '{name}'")


def test_safe_room_reports_its_one_lock() -> None:
    lock = InstrumentedLock("registry")
    room = Room(max_clients=1, max_backlog=10, lock=lock)
    assert room.locks() == [lock]
    assert RoomCollector(room).locks == [lock]
    assert RoomCollector(Room(max_clients=1, max_backlog=10)).locks == []  # a plain lock has no figures


def test_deadlock_room_reports_its_second_lock() -> None:
    parts = bugs.build("lock-order-deadlock", ServerConfig(), lock=InstrumentedLock("registry"))
    names = [lk.statistics().name for lk in RoomCollector(parts.room).locks]
    assert names == ["registry", "stats"]


@pytest.mark.parametrize("cls", [QueuedOutbox, BatchedOutbox, DirectOutbox])
def test_put_last_delivers_and_finishes(cls: type[Outbox], pair: tuple[socket.socket, socket.socket]) -> None:
    ours, peer = pair
    outbox = cls(ours, "x")
    outbox.start()
    outbox.put(b"first\n")
    outbox.put_last(b"BYE bye\n")
    assert outbox.is_finishing
    assert outbox.join(5.0)
    peer.settimeout(5.0)
    got = b""
    while got.count(b"\n") < 2:
        got += peer.recv(100)
    assert got == b"first\nBYE bye\n"


def test_session_makes_one_outbox_through_its_step(pair: tuple[socket.socket, socket.socket]) -> None:
    made: list[Outbox] = []

    class Recording(Session):
        def _make_outbox(self) -> Outbox:
            made.append(super()._make_outbox())
            return made[-1]

    room = Room(max_clients=1, max_backlog=10)
    session = Recording(room, ServerConfig(delivery=Delivery.QUEUED), pair[0], "peer")
    assert made == [session.outbox]
    assert session.conn.outbox is session.outbox
    assert isinstance(session.outbox, QueuedOutbox)


def test_bug_sessions_swap_the_outbox_without_a_second_one(pair: tuple[socket.socket, socket.socket]) -> None:
    for name in ("torn-writes", "double-leave", "lost-wakeup"):
        parts = bugs.build(name, ServerConfig(), race_window=0.0)
        session = parts.session_factory(parts.room, parts.config, pair[0], "peer")
        assert session.conn.outbox is session.outbox
        assert type(session.outbox).__module__ == "chat.bugs.outboxes", name


def test_registry_steps_are_identity_safe() -> None:
    room = Room(max_clients=3, max_backlog=10)
    a, b = (Connection(DirectOutbox(socket.socket(), n), n) for n in "ab")
    try:
        assert room._is_free_locked("x", a)
        room._register_locked("x", a)
        assert room._is_free_locked("x", a)  # its own name
        assert not room._is_free_locked("x", b)
        b.name = "x"
        room._unregister_locked(b)  # not b's entry: left alone
        assert room.members == {"x": a}
        a.name = "x"
        room._unregister_locked(a)
        room._unregister_locked(a)  # idempotent
        assert room.members == {}
    finally:
        for c in (a, b):
            c.outbox.sock.close()


@pytest.mark.e2e
def test_unsafe_server_imports_the_server_once_and_the_catalogue_only_then() -> None:
    """``python -m chat.server`` must not import its own module twice (the old cycle made two ChatServers)."""
    base = [sys.executable, "-X", "importtime", "-m", "chat.server", "--host", "127.0.0.1", "--port", "0"]
    for extra, wants_bugs in (([], False), (["--unsafe", "no-lock"], True)):
        srv = ServerProcess(command=base + extra).start()
        log = srv.stop()
        imported = [line.rsplit("|", 1)[-1].strip() for line in log.splitlines() if "import time:" in line]
        assert imported.count("chat.server.core") == 1, imported
        assert ("chat.bugs" in imported) is wants_bugs
        assert "chat.unsafe" not in imported
