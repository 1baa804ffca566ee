"""Combining in ``Room.say``: the lock's holder broadcasts the lines of every reader waiting for it.

Deterministic, not timed: the test holds the room's lock itself, starts the
readers, waits until each has queued its request (``Room._says``), and only then
lets the lock go. Whichever reader gets it serves them all.
"""

from __future__ import annotations

import math
import threading
from collections.abc import Sequence

import pytest

from chat.delivery import Outbox
from chat.protocol import LeaveReason
from chat.room import Connection, Room, RoundFailed
from tests.chat.kit import FakeOutbox, Sockets, lines
from tests.server_kit import wait_for

TIMEOUT = 10.0


class CountingOutbox(FakeOutbox):
    """A fake outbox that also records the size of every ``put_many``: one entry per delivery call."""

    def __init__(self, *args: object, **kwargs: object) -> None:
        super().__init__(*args, **kwargs)  # type: ignore[arg-type]
        self.batches: list[int] = []

    def put_many(self, lines: list[bytes], send_until: float = math.inf, joined: bytes = b"") -> int:
        self.batches.append(len(lines))
        return super().put_many(lines, send_until, joined)


def member(room: Room, sockets: Sockets, name: str, *, auto: bool = True) -> Connection:
    conn = Connection(CountingOutbox(sockets.pair()[0], name, auto=auto), peer=name)
    assert room.admit(conn)
    assert room.join(conn, name) is None
    return conn


def batches(conn: Connection) -> list[int]:
    assert isinstance(conn.outbox, CountingOutbox)
    return conn.outbox.batches


class Saying:
    """Readers calling ``room.say`` while the test holds the lock; their results once they return."""

    def __init__(self, room: Room, calls: Sequence[tuple[Connection, list[str]]]) -> None:
        self.room = room
        self.results: dict[str, tuple[int, Outbox | None]] = {}
        self.raised: dict[str, Exception] = {}
        self.threads = [
            threading.Thread(target=self._say, args=(conn, texts), daemon=True) for conn, texts in calls
        ]

    def _say(self, conn: Connection, texts: list[str]) -> None:
        assert conn.name is not None
        try:
            self.results[conn.name] = self.room.say(conn, texts)
        except Exception as exc:  # noqa: BLE001 - the test reads what each reader raised
            self.raised[conn.name] = exc

    def start_queued(self) -> None:
        """Start the readers one by one, each after the previous one's request is queued: a known order."""
        assert self.room.combines, "this room does not combine: its readers never queue"
        for i, thread in enumerate(self.threads, start=1):
            thread.start()
            wait_for(lambda n=i: len(self.room._says) == n, TIMEOUT, f"{i} requests queued")

    def join(self) -> None:
        for thread in self.threads:
            thread.join(TIMEOUT)
            assert not thread.is_alive(), "a reader never returned from say"

    def run_queued(self) -> None:
        """Queue every reader while the test holds the lock, let the lock go, wait for them all."""
        with self.room.lock:
            self.start_queued()
        self.join()


def msg_lines(conn: Connection) -> list[str]:
    return [line for line in lines(conn) if line.startswith("MSG")]


def test_one_holder_broadcasts_every_waiting_readers_lines_in_one_batch_per_member(sockets: Sockets) -> None:
    room = Room(max_clients=10, max_backlog=1000)
    senders = [member(room, sockets, name) for name in ("alice", "bob", "carol")]
    watcher = member(room, sockets, "watcher")
    everyone = [*senders, watcher]
    before = {c.name: len(batches(c)) for c in everyone}
    saying = Saying(room, [(conn, [f"{conn.name}-{i}" for i in range(3)]) for conn in senders])
    saying.run_queued()
    assert saying.results == {"alice": (3, None), "bob": (3, None), "carol": (3, None)}
    # One round: each member got every sender's lines in ONE call, not one per sender.
    for conn in everyone:
        assert batches(conn)[before[conn.name] :] == [9], conn.name
    # In the order the requests were queued, on consecutive seqs, the same for every member.
    first = room.seq - 8
    expected = [
        f"MSG {first + 3 * s + i} {name} {name}-{i}"
        for s, name in enumerate(("alice", "bob", "carol"))
        for i in range(3)
    ]
    for conn in everyone:
        assert msg_lines(conn) == expected, conn.name
    assert room._says == type(room._says)()  # nothing left behind


def test_a_request_longer_than_a_chunk_is_served_over_several_rounds_in_order(sockets: Sockets) -> None:
    room = Room(max_clients=10, max_backlog=1000)
    alice, bob = member(room, sockets, "alice"), member(room, sockets, "bob")
    long = [f"a{i}" for i in range(room.say_chunk * 2 + 5)]
    saying = Saying(room, [(alice, long), (bob, ["b0", "b1"])])
    saying.run_queued()
    assert saying.results == {"alice": (len(long), None), "bob": (2, None)}
    for conn in (alice, bob):
        seen = msg_lines(conn)
        assert [line.split(" ")[3] for line in seen if " alice " in line] == long
        assert [line.split(" ")[3] for line in seen if " bob " in line] == ["b0", "b1"]
        seqs = [int(line.split(" ")[1]) for line in seen]
        assert seqs == list(range(seqs[0], seqs[0] + len(seqs)))  # no gap, no repeat
    # The first round carried one chunk of alice's and all of bob's.
    assert batches(bob)[-3:] == [room.say_chunk + 2, room.say_chunk, 5]


def test_a_round_carries_at_most_say_batch_lines_and_the_rest_wait_their_turn(sockets: Sockets) -> None:
    room = Room(max_clients=10, max_backlog=40)  # high water 10: say_chunk and say_batch 15
    assert room.say_batch == 15
    senders = [member(room, sockets, name) for name in ("s1", "s2", "s3", "s4")]
    texts = {conn.name: [f"{conn.name}-{i}" for i in range(10)] for conn in senders}
    saying = Saying(room, [(conn, texts[str(conn.name)]) for conn in senders])
    saying.run_queued()
    assert saying.results == {name: (10, None) for name in texts}
    for conn in senders:
        assert max(batches(conn)) <= room.say_batch
        seen = msg_lines(conn)
        for name, sent in texts.items():
            assert [line.split(" ")[3] for line in seen if f" {name} " in line] == sent


def two_senders_and_a_busy_member(sockets: Sockets) -> tuple[Room, Connection, Connection, Connection]:
    """A room at high water 10 with alice and bob, and a member whose outbox drains only when told."""
    room = Room(max_clients=10, max_backlog=40)
    alice, bob = member(room, sockets, "alice"), member(room, sockets, "bob")
    busy = member(room, sockets, "busy", auto=False)
    assert isinstance(busy.outbox, FakeOutbox)
    busy.outbox.drain()
    return room, alice, bob, busy


def test_waiting_readers_pause_for_a_congested_recipient_and_broadcast_nothing(sockets: Sockets) -> None:
    room, alice, bob, busy = two_senders_and_a_busy_member(sockets)
    assert room.say(alice, [f"x{i}" for i in range(room.say_chunk)]) == (room.say_chunk, busy.outbox)
    seq = room.seq
    saying = Saying(room, [(alice, ["later"]), (bob, ["also later"])])
    saying.run_queued()
    # Each reader learns who to wait for (outside the lock), and nothing was added to the congested one.
    assert saying.results == {"alice": (0, busy.outbox), "bob": (0, busy.outbox)}
    assert room.seq == seq


def test_every_reader_served_by_a_round_that_congested_a_recipient_waits_for_it(sockets: Sockets) -> None:
    room, alice, bob, busy = two_senders_and_a_busy_member(sockets)
    saying = Saying(room, [(alice, ["a"] * 6), (bob, ["b"] * 6)])  # 12 lines: past the mark of 10
    saying.run_queued()
    assert saying.results == {"alice": (6, busy.outbox), "bob": (6, busy.outbox)}
    assert busy.is_member and busy.outbox.backlog() == 12


def test_a_request_whose_sender_left_while_it_waited_is_dropped(sockets: Sockets) -> None:
    room = Room(max_clients=10, max_backlog=1000)
    alice, bob = member(room, sockets, "alice"), member(room, sockets, "bob")
    saying = Saying(room, [(bob, ["ghost"]), (alice, ["real"])])
    with room.lock:
        saying.start_queued()
        room._leave_locked(bob, LeaveReason.DISCONNECTED)  # its drop, in a section before the round
    saying.join()
    assert saying.results == {"bob": (1, None), "alice": (1, None)}
    assert msg_lines(alice)[-1].endswith(" alice real")
    assert not any("ghost" in line for line in lines(alice))


class FailingOutbox(CountingOutbox):
    """Once armed, raises on its next ``put_many``: a bug in a round, in whichever reader runs it."""

    armed = False

    def put_many(self, lines: list[bytes], send_until: float = math.inf, joined: bytes = b"") -> int:
        if self.armed:
            self.armed = False
            raise ValueError("a bug in the fan-out")
        return super().put_many(lines, send_until, joined)


def test_a_round_that_raises_fails_every_reader_it_held_and_leaves_the_room_working(sockets: Sockets) -> None:
    room = Room(max_clients=10, max_backlog=1000)
    senders = [member(room, sockets, name) for name in ("alice", "bob", "carol")]
    broken = Connection(FailingOutbox(sockets.pair()[0], "broken"), peer="broken")
    assert room.admit(broken) and room.join(broken, "broken") is None
    assert isinstance(broken.outbox, FailingOutbox)
    broken.outbox.armed = True
    saying = Saying(room, [(conn, ["hi"]) for conn in senders])
    saying.run_queued()  # nobody waits for ever for the round that failed
    assert saying.results == {}
    errors = sorted(type(exc).__name__ for exc in saying.raised.values())
    assert errors == ["RoundFailed", "RoundFailed", "ValueError"]  # the runner's own error, and theirs
    failed = [exc for exc in saying.raised.values() if isinstance(exc, RoundFailed)]
    assert all(isinstance(exc.__cause__, ValueError) for exc in failed)
    assert room._says == type(room._says)()
    assert room.say(senders[0], ["again"]) == (1, None)  # the room still works, lock free
    assert msg_lines(senders[1])[-1].endswith(" alice again")


def test_every_recipient_past_the_mark_holds_the_next_round_not_only_the_worst(sockets: Sockets) -> None:
    """Three members stop draining; the one the readers wait for drains, the others do not.

    Remembering only the worst let the next round land on the other two, and the
    one after that pushed them past the limit: live members dropped as slow.
    """
    room = Room(max_clients=10, max_backlog=40)  # high water 10, limit 40
    alice = member(room, sockets, "alice")
    busy = [member(room, sockets, f"busy{i}", auto=False) for i in range(3)]
    for conn in busy:
        assert isinstance(conn.outbox, FakeOutbox)
        conn.outbox.drain()
    done, congested = room.say(alice, [f"a{i}" for i in range(12)])
    assert done == 12 and congested is not None
    for _ in range(3):
        assert isinstance(congested, FakeOutbox)
        congested.drain()  # only the one waited for catches up
        done, congested = room.say(alice, ["more"])
        if congested is None:
            break
        assert done == 0  # another is still past the mark: nothing added to it
    assert all(conn.is_member for conn in busy)
    assert all(conn.outbox.backlog() <= room.max_backlog for conn in busy)
    assert congested is None  # all three drained, one at a time, and the round went out


class OwnSayRoom(Room):
    combines = False


def test_a_room_that_does_not_combine_serves_each_reader_alone(sockets: Sockets) -> None:
    """However the readers meet at the lock, each broadcasts its own line: one put_many each."""
    room = OwnSayRoom(max_clients=10, max_backlog=1000)
    senders = [member(room, sockets, name) for name in ("alice", "bob", "carol")]
    before = len(batches(senders[0]))
    saying = Saying(room, [(conn, ["hi"]) for conn in senders])
    with room.lock:
        for thread in saying.threads:
            thread.start()
    saying.join()
    assert room._says == type(room._says)()
    assert batches(senders[0])[before:] == [1, 1, 1]


@pytest.mark.parametrize("readers", [2, 8])
def test_readers_racing_for_the_lock_lose_no_line_and_keep_each_senders_order(
    sockets: Sockets, readers: int
) -> None:
    """No schedule forced: real threads, each saying in many small calls, as sessions do."""
    room = Room(max_clients=readers + 2, max_backlog=10**6)
    senders = [member(room, sockets, f"r{i}") for i in range(readers)]
    watcher = member(room, sockets, "watcher")
    calls = 200

    def talk(conn: Connection) -> None:
        for i in range(calls):
            assert room.say(conn, [f"{conn.name}-{i}"]) == (1, None)

    threads = [threading.Thread(target=talk, args=(conn,), daemon=True) for conn in senders]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(TIMEOUT * 3)
        assert not thread.is_alive()
    seen = msg_lines(watcher)
    assert len(seen) == readers * calls
    seqs = [int(line.split(" ")[1]) for line in seen]
    assert seqs == list(range(seqs[0], seqs[0] + len(seqs)))
    for conn in senders:
        mine = [line.split(" ")[3] for line in seen if f" {conn.name} " in line]
        assert mine == [f"{conn.name}-{i}" for i in range(calls)]
    for conn in senders:
        assert msg_lines(conn) == seen  # every member, the same lines in the same order
