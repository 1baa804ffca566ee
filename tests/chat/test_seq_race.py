"""The seq-outside-lock race, forced by a schedule instead of hoped for, for every delivery design.

Two members say one line each. The first sayer is stopped right after it takes its seq (the ``_next_seq``
step, an extension point of :class:`chat.room.Room`; for ``--unsafe seq-outside-lock``, its race window)
until the second sayer has either said its line or is blocked on the room's lock. Where the seq is taken
inside the critical section that puts the line in every outbox (the safe room), the second sayer blocks,
and every member gets consecutive seqs. Where the seq is taken outside it, the second line goes out first
with the later seq, and members see seq n+1 before n: deterministically, with no timing involved.
"""

from __future__ import annotations

import socket
import threading
from collections.abc import Iterator
from types import TracebackType

import pytest

from chat import protocol
from chat.bugs import rooms
from chat.config import Delivery
from chat.delivery import make_outbox
from chat.room import Connection, Room
from tests.chat.kit import Sockets, read_lines

SAFETY = 10.0  #: a bound on every wait, so that a broken test fails instead of hanging
FIRST, SECOND = "sayer-first", "sayer-second"


class Schedule:
    """The forced interleaving: the first sayer waits, after its seq, for the second's progress."""

    def __init__(self) -> None:
        self.second_go = threading.Event()
        #: Set when the second sayer finished its say, or found the lock held and is about to block.
        self.second_progress = threading.Event()
        self.hit = False

    def window(self) -> None:
        """Called where the first sayer holds its seq and has put nothing yet."""
        if threading.current_thread().name != FIRST or self.hit:
            return
        self.hit = True
        self.second_go.set()
        assert self.second_progress.wait(SAFETY), "the second sayer made no progress"


class GateLock:
    """``threading.Lock`` that tells the schedule when the second sayer finds it held (it then blocks)."""

    def __init__(self, schedule: Schedule) -> None:
        self._lock = threading.Lock()
        self._schedule = schedule

    def acquire(self, blocking: bool = True, timeout: float = -1) -> bool:
        if self._lock.acquire(blocking=False):
            return True
        if threading.current_thread().name == SECOND:
            self._schedule.second_progress.set()
        if not blocking:
            return False
        return self._lock.acquire(True, timeout)

    def release(self) -> None:
        self._lock.release()

    def locked(self) -> bool:
        return self._lock.locked()

    def __enter__(self) -> bool:
        return self.acquire()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.release()


class HookedRoom(Room):
    """The safe room, with the schedule's window in its ``_next_seq`` step."""

    schedule: Schedule

    def _next_seq(self) -> int:
        seq = super()._next_seq()
        self.schedule.window()
        return seq


@pytest.fixture
def sockets() -> Iterator[Sockets]:
    found = Sockets()
    yield found
    found.close()


def run_race(room: Room, schedule: Schedule, design: Delivery, sockets: Sockets) -> list[list[int]]:
    """Three members; the first two race one line each; the seqs each member received, in order."""
    peers: list[socket.socket] = []
    conns = []
    for name in ("alice", "bob", "carol"):
        ours, theirs = sockets.pair()
        outbox = make_outbox(design, ours, name)
        outbox.start()
        conn = Connection(outbox, peer=name)
        assert room.admit(conn) and room.join(conn, name) is None
        peers.append(theirs)
        conns.append(conn)

    def first() -> None:
        room.say(conns[0], ["from alice"])

    def second() -> None:
        assert schedule.second_go.wait(SAFETY)
        room.say(conns[1], ["from bob"])
        schedule.second_progress.set()

    threads = [threading.Thread(target=first, name=FIRST), threading.Thread(target=second, name=SECOND)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(SAFETY)
    assert not any(t.is_alive() for t in threads)
    assert schedule.hit, "the window was never reached"
    # alice: OK, 3 JOINs, 2 MSGs; bob: OK, 2 JOINs, 2 MSGs; carol: OK, 1 JOIN, 2 MSGs
    received = [read_lines(peer, n) for peer, n in zip(peers, (6, 5, 4), strict=True)]
    for conn in conns:
        conn.outbox.finish()
    for conn in conns:
        if conn.outbox.thread is not None:
            conn.outbox.thread.join(SAFETY)
    seqs = []
    for raw in received:
        events = [protocol.parse_server_line(line.decode()) for line in raw]
        seqs.append([e.seq for e in events if hasattr(e, "seq")])
    return seqs


@pytest.mark.parametrize("design", list(Delivery), ids=[d.value for d in Delivery])
def test_safe_room_keeps_seqs_in_order_under_the_forced_schedule(design: Delivery, sockets: Sockets) -> None:
    schedule = Schedule()
    room = HookedRoom(max_clients=5, max_backlog=100, lock=GateLock(schedule))
    room.schedule = schedule
    seqs = run_race(room, schedule, design, sockets)
    for member in seqs:
        assert member == sorted(member) and len(set(member)) == len(member), seqs
    assert [s[-2:] for s in seqs] == [[4, 5]] * 3


@pytest.mark.parametrize("design", list(Delivery), ids=[d.value for d in Delivery])
def test_seq_outside_lock_is_caught_by_the_same_schedule(
    design: Delivery, sockets: Sockets, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The control the other way: the same schedule on ``--unsafe seq-outside-lock`` shows the bug."""
    schedule = Schedule()
    monkeypatch.setattr(rooms, "pause", lambda seconds: schedule.window())  # its race window
    room = rooms.SeqOutsideLockRoom(max_clients=5, max_backlog=100, lock=GateLock(schedule), race_window=0.01)
    seqs = run_race(room, schedule, design, sockets)
    assert [s[-2:] for s in seqs] == [[5, 4]] * 3  # bob's later seq reached everyone first
