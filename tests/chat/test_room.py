"""The room (chat/room.py), single-threaded, with fake outboxes.

The room's guarantees come from each method being one critical section, so what
matters is what one call does to every outbox. The outboxes themselves are
tested in ``test_delivery.py``.
"""

from __future__ import annotations

import pytest

from chat.delivery import DirectOutbox
from chat.lockstat import InstrumentedLock
from chat.protocol import ErrorCode, LeaveReason
from chat.room import Connection, Room
from tests.chat.kit import FakeOutbox, Sockets, connect, lines

# -- membership and broadcasts --------------------------------------------------------


def test_join_sends_ok_then_join_to_everyone_and_seq_starts_at_1(sockets: Sockets) -> None:
    room = Room(max_clients=5, max_backlog=100)
    alice = connect(room, sockets, "alice")
    bob = connect(room, sockets, "bob")
    assert lines(alice) == ["OK alice", "JOIN 1 alice", "JOIN 2 bob"]
    assert lines(bob) == ["OK bob", "JOIN 2 bob"]
    assert room.seq == 2


def test_join_refuses_a_taken_name_case_insensitively_without_a_broadcast(sockets: Sockets) -> None:
    room = Room(max_clients=5, max_backlog=100)
    alice = connect(room, sockets, "Alice")
    other = connect(room, sockets)
    assert room.join(other, "aLICE") is ErrorCode.NAME_TAKEN
    assert not other.is_member
    assert lines(other) == []
    assert lines(alice) == ["OK Alice", "JOIN 1 Alice"]


def test_say_reaches_every_member_including_the_sender(sockets: Sockets) -> None:
    room = Room(max_clients=5, max_backlog=100)
    alice, bob = connect(room, sockets, "alice"), connect(room, sockets, "bob")
    handshaking = connect(room, sockets)
    assert room.say(alice, ["one", "two"]) == (2, None)
    assert lines(alice)[-2:] == lines(bob)[-2:] == ["MSG 3 alice one", "MSG 4 alice two"]
    assert lines(handshaking) == []  # not a member: no broadcasts


def test_say_from_a_connection_that_left_is_dropped(sockets: Sockets) -> None:
    room = Room(max_clients=5, max_backlog=100)
    alice, bob = connect(room, sockets, "alice"), connect(room, sockets, "bob")
    room.leave(bob, LeaveReason.DISCONNECTED)
    assert room.say(bob, ["ghost"]) == (1, None)
    assert "ghost" not in " ".join(lines(alice))


def test_who_lists_members_sorted_case_insensitively(sockets: Sockets) -> None:
    room = Room(max_clients=5, max_backlog=100)
    conns = [connect(room, sockets, name) for name in ("bob", "Alice", "carol", "_x")]
    connect(room, sockets)  # handshaking: not listed
    room.who(conns[0])
    assert lines(conns[0])[-1] == "USERS _x Alice bob carol"


def test_leave_quit_sends_bye_to_the_leaver_and_leave_to_the_others(sockets: Sockets) -> None:
    room = Room(max_clients=5, max_backlog=100)
    alice, bob = connect(room, sockets, "alice"), connect(room, sockets, "bob")
    assert room.leave(bob, LeaveReason.QUIT) is True
    assert lines(bob)[-1].startswith("BYE ")
    assert bob.outbox.is_finishing and not bob.outbox.is_aborted
    assert lines(alice)[-1] == "LEAVE 3 bob quit"
    assert "LEAVE" not in " ".join(lines(bob))  # the leaver gets BYE, not its own LEAVE
    assert room.join(connect(room, sockets), "BOB") is None  # the name is free again


def test_leave_is_idempotent_so_a_drop_racing_a_quit_gives_one_leave(sockets: Sockets) -> None:
    room = Room(max_clients=5, max_backlog=100)
    alice, bob = connect(room, sockets, "alice"), connect(room, sockets, "bob")
    assert room.leave(bob, LeaveReason.QUIT) is True
    assert room.leave(bob, LeaveReason.DISCONNECTED) is False
    assert room.leave(bob, LeaveReason.QUIT) is False
    assert [line for line in lines(alice) if line.startswith("LEAVE")] == ["LEAVE 3 bob quit"]
    never_joined = connect(room, sockets)
    assert room.leave(never_joined, LeaveReason.DISCONNECTED) is False
    assert room.seq == 3


def test_leave_disconnected_aborts_the_outbox(sockets: Sockets) -> None:
    room = Room(max_clients=5, max_backlog=100)
    alice, bob = connect(room, sockets, "alice"), connect(room, sockets, "bob")
    room.leave(bob, LeaveReason.DISCONNECTED)
    assert bob.outbox.is_aborted
    assert lines(alice)[-1] == "LEAVE 3 bob disconnected"


# -- slots and shutdown -----------------------------------------------------------------


def test_admit_counts_every_connection_and_release_frees_a_slot(sockets: Sockets) -> None:
    room = Room(max_clients=2, max_backlog=100)
    a = connect(room, sockets, "a")
    connect(room, sockets)  # handshaking counts too
    third = Connection(FakeOutbox(sockets.pair()[0], "third"))
    assert room.admit(third) is False
    assert room.stats.refused_full == 1
    room.release(a)
    assert room.admit(third) is True


def test_admit_gives_up_on_a_busy_lock_instead_of_blocking_the_acceptor(sockets: Sockets) -> None:
    room = Room(max_clients=2, max_backlog=100)
    conn = Connection(FakeOutbox(sockets.pair()[0], "c"))
    with room.lock, pytest.raises(TimeoutError, match=r"^the room's lock is held by a blocked sender$"):
        room.admit(conn, lock_timeout=0.01)
    assert room.admit(conn, lock_timeout=0.01) is True


def test_shutdown_says_bye_to_every_connection_then_nothing_more(sockets: Sockets) -> None:
    room = Room(max_clients=5, max_backlog=100)
    alice = connect(room, sockets, "alice")
    handshaking = connect(room, sockets)
    assert set(room.shutdown(lock_timeout=1.0)) == {alice, handshaking}
    for conn in (alice, handshaking):
        assert lines(conn)[-1] == "BYE server shutting down"
        assert conn.outbox.is_finishing
    assert room.say(alice, ["late"]) == (1, None)
    assert room.leave(alice, LeaveReason.QUIT) is False
    assert room.join(Connection(FakeOutbox(sockets.pair()[0], "x")), "x") is not None  # refused
    assert room.admit(Connection(FakeOutbox(sockets.pair()[0], "y"))) is False
    assert lines(alice)[-1] == "BYE server shutting down"


def test_shutdown_of_a_direct_room_whose_lock_is_stuck_still_says_bye(sockets: Sockets) -> None:
    room = Room(max_clients=5, max_backlog=100)
    ours, peer = sockets.pair()
    conn = Connection(DirectOutbox(ours, "d"))
    assert room.admit(conn)
    with room.lock:  # a sender blocked under the lock, as in the direct design
        room.shutdown(lock_timeout=0.01)
    peer.settimeout(5)
    assert peer.recv(100) == b"BYE server shutting down\n"


# -- slow consumers and backpressure ----------------------------------------------------


def test_a_member_that_does_not_drain_is_dropped_as_slow(sockets: Sockets) -> None:
    room = Room(max_clients=5, max_backlog=4)
    alice = connect(room, sockets, "alice")
    lazy = connect(room, sockets, "lazy", auto=False)
    lazy.outbox.is_stalled = True  # nobody waits for it: it overflows
    done, congested = room.say(alice, [f"m{i}" for i in range(6)])
    assert (done, congested) == (6, None)
    assert lazy.outbox.is_aborted and not lazy.is_member
    seen = lines(alice)
    leaves = [line for line in seen if line.startswith("LEAVE")]
    assert len(leaves) == 1 and leaves[0].endswith(" lazy slow")
    # Wherever the LEAVE took its place, alice's view has no gap, repeat or step back.
    seqs = [int(line.split(" ")[1]) for line in seen[1:]]
    assert seqs == list(range(1, room.seq + 1))
    assert [line.rsplit(" ", 1)[1] for line in seen if line.startswith("MSG")] == [f"m{i}" for i in range(6)]
    assert room.stats.leaves["slow"] == 1


@pytest.mark.parametrize("max_backlog", [8, 40, 1000])
def test_say_pauses_at_the_high_water_mark_and_before_adding_to_a_congested_outbox(
    sockets: Sockets, max_backlog: int
) -> None:
    """A recipient that drains whenever the room pauses for it is never dropped, whatever the limit."""
    room = Room(max_clients=5, max_backlog=max_backlog)
    assert (room.high_water, room.low_water) == (max(1, max_backlog // 4), max(1, max_backlog // 4) // 2)
    alice = connect(room, sockets, "alice")
    busy = connect(room, sockets, "busy", auto=False)
    assert isinstance(busy.outbox, FakeOutbox)
    busy.outbox.drain()
    count = 3 * max_backlog
    texts = [f"m{i}" for i in range(count)]
    pauses = 0
    while texts:
        done, congested = room.say(alice, texts)
        texts = texts[done:]
        assert busy.is_member, f"dropped with a backlog of {busy.outbox.backlog()}"
        if congested is None:
            assert not texts
            break
        pauses += 1
        assert congested is busy.outbox
        assert room.high_water < busy.outbox.backlog() <= room.max_backlog  # stopped at the mark
        if texts:  # still congested: nothing is added before it drains
            assert room.say(alice, texts) == (0, busy.outbox)
        busy.outbox.drain()  # its writer caught up
    assert pauses >= 2
    msgs = [line for line in lines(busy) if line.startswith("MSG")]
    assert msgs == [f"MSG {i + 3} alice m{i}" for i in range(count)]  # every line, once, in order


def test_say_does_not_pause_for_a_stalled_outbox_nor_when_told_not_to(sockets: Sockets) -> None:
    room = Room(max_clients=5, max_backlog=40)
    alice = connect(room, sockets, "alice")
    busy = connect(room, sockets, "busy", auto=False)
    assert room.say(alice, ["x"] * 20, may_pause=False) == (20, None)
    assert busy.outbox.backlog() == 22  # OK, JOIN and 20 MSG: past the mark, not dropped
    busy.outbox.is_stalled = True
    assert room.say(alice, ["y"] * 5) == (5, None)


def test_outboxes_are_the_members_ones_what_a_pausing_reader_watches(sockets: Sockets) -> None:
    room = Room(max_clients=5, max_backlog=100)
    alice, bob = connect(room, sockets, "alice"), connect(room, sockets, "bob")
    connect(room, sockets)  # handshaking: receives no broadcast, so never makes the room wait
    assert sorted(room.outboxes(), key=id) == sorted([alice.outbox, bob.outbox], key=id)
    room.leave(bob, LeaveReason.QUIT)
    assert room.outboxes() == [alice.outbox]


def test_replies_count_towards_the_backlog(sockets: Sockets) -> None:
    room = Room(max_clients=5, max_backlog=4)
    alice = connect(room, sockets, "alice")
    flooder = connect(room, sockets, "flooder", auto=False)
    for _ in range(2):
        room.who(flooder)
    assert flooder.is_member  # OK, JOIN and 2 USERS: 4 lines, at the limit
    room.who(flooder)
    assert not flooder.is_member
    assert lines(alice)[-1] == "LEAVE 3 flooder slow"
    silent = connect(room, sockets, auto=False)  # handshaking: closed, not announced
    for _ in range(5):
        room.reply(silent, b"ERR invalid-name no\n")
    assert silent.outbox.is_aborted
    assert lines(alice)[-1] == "LEAVE 3 flooder slow"


# -- the extension points ----------------------------------------------------------------


def test_locks_lists_the_rooms_one_lock() -> None:
    room = Room(max_clients=5, max_backlog=100)
    assert room.locks() == [room.lock]
    own = InstrumentedLock("registry")
    assert Room(max_clients=5, max_backlog=100, lock=own).locks() == [own]


def test_claim_is_a_check_and_set_by_identity_and_idempotent(sockets: Sockets) -> None:
    room = Room(max_clients=5, max_backlog=100)
    a = Connection(FakeOutbox(sockets.pair()[0], "a"))
    b = Connection(FakeOutbox(sockets.pair()[0], "b"))
    with room.lock:
        assert room._claim_locked(a, "x") is True
        assert room._claim_locked(a, "x") is True  # the same connection again: still its own
        assert room._claim_locked(b, "x") is False
    assert room.members == {"x": a}


def test_unregister_removes_only_the_connections_own_entry(sockets: Sockets) -> None:
    room = Room(max_clients=5, max_backlog=100)
    alice = connect(room, sockets, "alice")
    impostor = Connection(FakeOutbox(sockets.pair()[0], "i"))
    impostor.name = "ALICE"
    with room.lock:
        room._unregister_locked(impostor)  # the name's entry is alice's: left alone
        assert room.members == {"alice": alice}
        room._unregister_locked(alice)
        room._unregister_locked(alice)  # idempotent
    assert room.members == {}


class ReversedRoom(Room):
    """A room that overrides one step: broadcasts reach the members in reverse join order."""

    def _recipients_locked(self) -> list[Connection]:
        return list(reversed(self.members.values()))


def test_a_room_that_overrides_a_step_keeps_the_chunked_say(sockets: Sockets) -> None:
    room = ReversedRoom(max_clients=5, max_backlog=1000)
    alice, bob = connect(room, sockets, "alice"), connect(room, sockets, "bob")
    calls: list[int] = []
    put_many = bob.outbox.put_many

    def counted(batch: list[bytes], send_until: float = 0.0, joined: bytes = b"") -> int:
        calls.append(len(batch))
        assert joined in (b"", b"".join(batch))  # joined once for all recipients, or not at all
        return put_many(batch, send_until, joined)

    bob.outbox.put_many = counted  # type: ignore[method-assign]
    texts = [f"m{i}" for i in range(70)]
    assert room.say(alice, texts) == (70, None)
    assert calls == [32, 32, 6]  # chunks of SAY_CHUNK, one call per member per chunk
    assert lines(bob)[-70:] == [f"MSG {i + 3} alice m{i}" for i in range(70)]


def test_shutdown_ends_every_outbox_with_its_last_line_method(sockets: Sockets) -> None:
    room = Room(max_clients=5, max_backlog=100)
    seen: list[tuple[bytes, float]] = []

    class Recording(FakeOutbox):
        def finish_with(self, line: bytes, send_until: float = 0.0) -> None:
            seen.append((line, send_until))
            super().finish_with(line, send_until)

    conn = Connection(Recording(sockets.pair()[0], "r"))
    assert room.admit(conn)
    room.shutdown(lock_timeout=1.0)
    assert [line for line, _ in seen] == [b"BYE server shutting down\n"]
    assert seen[0][1] > 0  # with the lock: within the fast path's budget
    assert conn.outbox.is_finishing
