"""Unit tests of chat/room.py (with fake outboxes) and chat/delivery.py (over socket pairs).

The room is tested single-threaded: its guarantees come from each method being one
critical section, so what matters is what one call does to every outbox. The
outboxes are tested with their real writer threads and a reading peer.
"""

from __future__ import annotations

import random
import socket
import threading
import time
from collections.abc import Iterator

import pytest

from chat import delivery
from chat.delivery import BatchedOutbox, DirectOutbox, Outbox, QueuedOutbox
from chat.protocol import ErrorCode, LeaveReason
from chat.room import Connection, Room
from tests.server_kit import wait_for


class FakeOutbox(Outbox):
    """Records every line; its "writer" drains only when told to (or always, if ``auto``)."""

    def __init__(self, sock: socket.socket, name: str, auto: bool = True) -> None:
        super().__init__(sock, name)
        self.lines: list[bytes] = []
        self.drained = 0
        self.auto = auto

    def put(self, line: bytes) -> int:
        if self.is_finishing:
            return 0
        self.lines.append(line)
        if self.auto:
            self.drain()
        return self.backlog()

    def backlog(self) -> int:
        return len(self.lines) - self.drained

    def drain(self) -> None:
        self.drained = len(self.lines)
        self.bytes_sent += 1

    def text(self) -> list[str]:
        return [line.decode().rstrip("\n") for line in self.lines]


class Sockets:
    """Socket pairs for the outboxes of one test, all closed at its end."""

    def __init__(self) -> None:
        self.pairs: list[tuple[socket.socket, socket.socket]] = []

    def pair(self) -> tuple[socket.socket, socket.socket]:
        a, b = socket.socketpair()
        self.pairs.append((a, b))
        return a, b

    def close(self) -> None:
        for a, b in self.pairs:
            a.close()
            b.close()


@pytest.fixture
def sockets() -> Iterator[Sockets]:
    s = Sockets()
    yield s
    s.close()


def connect(room: Room, sockets: Sockets, name: str | None = None, *, auto: bool = True) -> Connection:
    outbox = FakeOutbox(sockets.pair()[0], name or "anon", auto=auto)
    conn = Connection(outbox, peer=name or "anon")
    assert room.admit(conn)
    if name is not None:
        assert room.join(conn, name) is None
    return conn


def lines(conn: Connection) -> list[str]:
    assert isinstance(conn.outbox, FakeOutbox)
    return conn.outbox.text()


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


# -- outboxes with real sockets and writer threads --------------------------------------


NL = b"\n"


def read_lines(sock: socket.socket, count: int, timeout: float = 20.0) -> list[bytes]:
    deadline = time.monotonic() + timeout
    buf = b""
    while buf.count(b"\n") < count:
        remaining = deadline - time.monotonic()
        assert remaining > 0, f"only {buf.count(NL)} of {count} lines arrived"
        sock.settimeout(remaining)
        chunk = sock.recv(65536)
        assert chunk, "peer closed early"
        buf += chunk
    return buf.split(b"\n")[:count]


class QueueOnlyBatchedOutbox(BatchedOutbox):
    """``batched`` without its idle fast path: every line goes through the wake-up."""

    send_when_idle = False


@pytest.mark.parametrize("design", [BatchedOutbox, QueueOnlyBatchedOutbox, QueuedOutbox])
def test_no_wake_up_is_lost_when_the_writer_goes_idle_between_bursts(
    sockets: Sockets, monkeypatch: pytest.MonkeyPatch, design: type[Outbox]
) -> None:
    """The empty-to-non-empty wake of the batched design, challenged; and its fast path's order.

    With the idle timeout made huge, a lost wake-up leaves lines in the queue and
    the reader times out. Bursts alternate between a writer that has gone idle
    (the consumer caught up first) and one that is still draining. (With the
    fast path on, most bursts go straight to the socket; the fast path's order
    is challenged deterministically by the HeldWriter test below.)
    """
    monkeypatch.setattr(delivery, "IDLE_WAIT", 60.0)
    ours, peer = sockets.pair()
    outbox = design(ours, "w")
    outbox.start()
    room_lock = threading.Lock()  # producers hold the room lock, as in the room
    put_many = getattr(outbox, "put_many", None)  # a batch per call, where the design has it
    rng = random.Random(7)
    sent = 0
    received: list[bytes] = []
    try:
        for burst in range(2000):
            with room_lock:
                batch = [b"%d\n" % (sent + k) for k in range(rng.randint(1, 4))]
                sent += len(batch)
                if put_many is not None and burst % 2:
                    put_many(batch)
                else:
                    for line in batch:
                        outbox.put(line)
            if burst % 3 == 0:  # let the writer drain everything and go back to sleep
                received += read_lines(peer, sent - len(received))
        received += read_lines(peer, sent - len(received))
    finally:
        outbox.abort()
        assert outbox.join(5)
    assert received == [b"%d" % i for i in range(sent)]


def test_fast_path_sends_without_the_writer_and_queues_what_the_socket_refuses(sockets: Sockets) -> None:
    ours, peer = sockets.pair()
    ours.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 4096)
    outbox = BatchedOutbox(ours, "q")  # no writer started: only the fast path can send
    assert outbox.put(b"first\n") == 0  # sent at once, nothing queued
    assert read_lines(peer, 1) == [b"first"]
    lines = [b"%05d" % i + b"x" * 994 + b"\n" for i in range(300)]  # 300 KB: far more than the buffer
    left = outbox.put_many(lines)
    assert 0 < left < len(lines)  # the socket took some lines, the rest wait, counted in lines
    assert outbox.backlog() == left
    outbox.start()  # the writer sends the rest, after the part the fast path sent
    try:
        got = read_lines(peer, len(lines))
        assert got == [line[:-1] for line in lines]
        assert outbox.put(b"after\n") in (0, 1)
        assert read_lines(peer, 1) == [b"after"]
    finally:
        outbox.abort()
        outbox.join(5)


def test_finish_sends_everything_queued_then_stops(sockets: Sockets) -> None:
    ours, peer = sockets.pair()
    outbox = BatchedOutbox(ours, "f")
    outbox.start()
    for i in range(100):
        outbox.put(b"%d\n" % i)
    outbox.finish()
    assert outbox.put(b"late\n") == 0
    assert outbox.join(5)
    assert read_lines(peer, 100) == [b"%d" % i for i in range(100)]
    peer.setblocking(False)
    with pytest.raises(BlockingIOError):
        peer.recv(10)  # nothing after the finish


def test_abort_stops_a_writer_blocked_on_a_peer_that_does_not_read(sockets: Sockets) -> None:
    ours, _peer = sockets.pair()
    ours.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 4096)
    outbox = BatchedOutbox(ours, "a")
    outbox.start()
    for _ in range(200):
        outbox.put(b"z" * 4000 + b"\n")
    outbox.abort()
    assert outbox.join(5)


def test_wait_below_returns_once_a_reading_peer_drains(sockets: Sockets) -> None:
    ours, peer = sockets.pair()
    outbox = BatchedOutbox(ours, "r")
    outbox.start()
    reader = threading.Thread(target=read_lines, args=(peer, 500), daemon=True)
    try:
        for i in range(500):
            outbox.put(b"%d\n" % i)
        reader.start()
        outbox.wait_below(0, time.monotonic() + 10)
        assert outbox.backlog() == 0
        assert not outbox.is_stalled
    finally:
        reader.join(10)
        outbox.abort()
        outbox.join(5)


def test_wait_below_marks_a_peer_that_stopped_reading_stalled_and_progress_clears_it(
    sockets: Sockets,
) -> None:
    ours, peer = sockets.pair()
    ours.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 4096)
    outbox = BatchedOutbox(ours, "s")
    outbox.start()
    try:
        for _ in range(100):  # 200 KB: the writer takes them as one batch and blocks in send
            outbox.put(b"s" * 2000 + b"\n")
        wait_for(lambda: outbox.backlog() == 0, what="the writer took the first batch")
        for _ in range(50):  # these wait in the queue
            outbox.put(b"t" * 2000 + b"\n")
        outbox.wait_below(10, time.monotonic() + 30)
        assert outbox.is_stalled
        assert outbox.backlog() > 10
        outbox.wait_below(10, time.monotonic() + 30)  # nobody waits for a stalled outbox
        read_lines(peer, 150)  # the peer reads again: the writer makes progress
        wait_for(lambda: not outbox.is_stalled, what="the stall flag cleared by progress")
    finally:
        outbox.abort()
        outbox.join(5)


def test_direct_outbox_sends_at_once_and_survives_a_gone_peer(sockets: Sockets) -> None:
    ours, peer = sockets.pair()
    outbox = DirectOutbox(ours, "d")
    assert outbox.put(b"hi\n") == 0
    assert read_lines(peer, 1) == [b"hi"]
    peer.close()
    for _ in range(3):  # EPIPE or ECONNRESET: noted, never raised
        outbox.put(b"x" * 100000 + b"\n")
    assert outbox.is_broken


def test_direct_send_nowait_never_blocks_on_a_full_socket(sockets: Sockets) -> None:
    ours, _peer = sockets.pair()
    ours.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 4096)
    outbox = DirectOutbox(ours, "n")
    ours.setblocking(False)
    try:
        while True:
            ours.send(b"f" * 4096)
    except BlockingIOError:
        pass  # full
    ours.setblocking(True)
    outbox.send_nowait(b"BYE server shutting down\n")  # returns: the line is lost, not waited for


def tcp_pair() -> tuple[socket.socket, socket.socket]:
    """A connected TCP pair on 127.0.0.1, as the server has; the client's receive buffer is small
    (as a slow swarm bot's), so that a client that reads nothing soon fills the server's socket."""
    with socket.create_server(("127.0.0.1", 0)) as listener:
        client = socket.socket()
        client.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        client.settimeout(10)
        client.connect(listener.getsockname())
        server, _ = listener.accept()
    return server, client


def test_peer_is_behind_tells_a_full_socket_from_one_with_room() -> None:
    ours, peer = tcp_pair()
    try:
        ours.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 4096)
        assert not delivery.peer_is_behind(ours)  # nothing queued: the peer keeps up
        ours.setblocking(False)
        # The peer reads nothing: fill the socket until it refuses, then ask at once. (A
        # non-reading peer's kernel may still make room a while later, so refill and ask
        # again, boundedly, as a writer blocked in send would keep it full.)
        for _ in range(50):
            with pytest.raises(BlockingIOError):
                for _ in range(10_000):
                    ours.send(b"x" * 4096)
            if delivery.peer_is_behind(ours):
                break
        else:
            raise AssertionError("a full socket never read as behind")
    finally:
        ours.close()
        peer.close()
    assert delivery.peer_is_behind(ours)  # closed: the cautious answer


def test_at_the_deadline_only_a_recipient_whose_peer_is_behind_is_marked_stalled() -> None:
    # The server is behind: lines wait in the outbox (no writer runs), the socket has room.
    ours, peer = tcp_pair()
    server_behind = BatchedOutbox(ours, "starved")
    server_behind.send_when_idle = False
    for i in range(50):
        server_behind.put(b"%d\n" % i)
    server_behind.wait_below(10, time.monotonic() + 0.2)  # shorter than the no-progress rule
    assert not server_behind.is_stalled
    ours.close()
    peer.close()

    # The peer is behind: it reads nothing, the writer is blocked in a send to it, lines wait.
    ours, peer = tcp_pair()
    ours.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 4096)
    peer_behind = BatchedOutbox(ours, "lagging")
    peer_behind.start()
    try:
        peer_behind.put_many([b"y" * 2000 + b"\n"] * 100)  # 200 KB: the writer takes them and blocks
        wait_for(lambda: peer_behind.backlog() == 0, what="the writer took the first batch")
        for _ in range(50):  # these wait in the queue
            peer_behind.put(b"z\n")
        wait_for(lambda: delivery.peer_is_behind(ours), what="the socket full")
        peer_behind.wait_below(10, time.monotonic() + 0.2)
        assert peer_behind.is_stalled
    finally:
        peer_behind.abort()
        peer_behind.join(5)
        ours.close()
        peer.close()


class HeldWriter(BatchedOutbox):
    """A writer that, once it has popped its lines, waits for the test before it sends them."""

    def __init__(self, sock: socket.socket, name: str = "") -> None:
        super().__init__(sock, name)
        self.popped = threading.Event()
        self.go = threading.Event()

    def _send(self, data: bytes) -> None:
        self.popped.set()
        assert self.go.wait(10)
        super()._send(data)


def test_the_fast_path_never_overtakes_lines_the_writer_holds(sockets: Sockets) -> None:
    """Deterministic: the writer has popped A and not yet sent it; B, put now, must follow A."""
    ours, peer = sockets.pair()
    outbox = HeldWriter(ours, "h")
    outbox.start()
    room_lock = threading.Lock()
    try:
        with room_lock:
            outbox.send_when_idle = False
            outbox.put(b"A\n")  # queued: the writer takes it
            outbox.send_when_idle = True
        assert outbox.popped.wait(10)
        assert outbox.backlog() == 0  # A is in the writer's hands; the deque is empty
        with room_lock:
            assert outbox.put(b"B\n") == 1  # so B must queue, not go to the socket
            assert outbox.put_many([b"C\n", b"D\n"]) == 3
        outbox.go.set()
        assert read_lines(peer, 4) == [b"A", b"B", b"C", b"D"]
    finally:
        outbox.go.set()
        outbox.abort()
        outbox.join(5)


def test_a_broadcast_sends_directly_only_within_its_budget(sockets: Sockets) -> None:
    ours, peer = sockets.pair()
    outbox = BatchedOutbox(ours, "b")  # no writer: what is not sent stays queued
    assert outbox.put_many([b"late\n"], send_until=time.perf_counter() - 1) == 1  # budget spent: queued
    assert outbox.backlog() == 1
    other, _ = sockets.pair()
    fresh = BatchedOutbox(other, "f")
    assert fresh.put_many([b"now\n"], send_until=time.perf_counter() + 10) == 0  # sent at once


class PacedOutbox(QueuedOutbox):
    """A writer short of CPU: each line waits for a permit that the test hands out slowly."""

    def __init__(self, sock: socket.socket, name: str = "") -> None:
        super().__init__(sock, name)
        self.permits = threading.Semaphore(0)

    def _send(self, data: bytes) -> None:
        assert self.permits.acquire(timeout=10), "the test stopped handing out permits"
        super()._send(data)


def test_a_sender_keeps_waiting_for_a_member_the_server_is_behind_on(
    sockets: Sockets, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Past the backpressure deadline, a recipient whose socket has room is waited for, not flooded.

    The recipient's writer is paced (the server is behind); its client reads everything. The
    deadline is made far shorter than the time the writer needs, so a sender that decided to
    stop pausing at the deadline would overflow the member and drop it as slow.
    """
    from types import SimpleNamespace

    from chat import server

    monkeypatch.setattr(server, "MAX_BACKPRESSURE_WAIT", 0.02)
    room = Room(max_clients=5, max_backlog=40)  # high-water mark 10, low 5
    ours, peer = sockets.pair()
    paced = PacedOutbox(ours, "r")
    recipient = Connection(paced, "r")
    sender_sock, _sender_peer = sockets.pair()
    sender = Connection(QueuedOutbox(sender_sock, "s"), "s")
    for conn, name in ((recipient, "r"), (sender, "s")):
        conn.outbox.start()
        assert room.admit(conn)
        assert room.join(conn, name) is None
    stop = threading.Event()

    def pace() -> None:  # the starved writer: one line every 5 ms (simulated slowness, not a wait)
        for _ in range(2000):
            if stop.is_set():
                return
            paced.permits.release()
            time.sleep(0.005)

    pacer = threading.Thread(target=pace, daemon=True)
    pacer.start()
    texts = [f"m{i}" for i in range(60)]
    try:
        server.Session._flush(SimpleNamespace(room=room, conn=sender), list(texts))  # type: ignore[arg-type]
        assert recipient.is_member, "a member that reads was dropped as slow"
        got = read_lines(peer, 3 + len(texts))  # OK r, JOIN r, JOIN s, then the messages
        assert [g.split(b" ", 3)[3] for g in got[3:]] == [t.encode() for t in texts]
    finally:
        stop.set()
        pacer.join(5)
        for conn in (recipient, sender):
            conn.outbox.abort()
            conn.outbox.join(5)
