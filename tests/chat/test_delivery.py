"""The outboxes (chat/delivery.py) with their real writer threads, over socket pairs and a reading peer."""

from __future__ import annotations

import random
import socket
import threading
import time

import pytest

from chat import delivery
from chat.delivery import BatchedOutbox, DirectOutbox, Outbox, QueuedOutbox
from tests.chat.kit import Sockets, read_lines
from tests.server_kit import wait_for

# -- outboxes with real sockets and writer threads --------------------------------------


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


BYE = b"BYE server shutting down\n"


def fill(sock: socket.socket) -> int:
    """Fill ``sock``'s buffers until it refuses more (bytes without a newline); returns how many it took."""
    sock.setblocking(False)
    sent = 0
    try:
        for size in (4096, 1):  # until not even one more byte fits
            try:
                while True:
                    sent += sock.send(b"f" * size)
            except BlockingIOError:
                pass  # full for this size
    finally:
        sock.setblocking(True)
    return sent


def read_exactly(sock: socket.socket, size: int, timeout: float = 20.0) -> bytes:
    deadline = time.monotonic() + timeout
    data = b""
    while len(data) < size:
        sock.settimeout(max(0.001, deadline - time.monotonic()))
        chunk = sock.recv(size - len(data))
        assert chunk, "peer closed early"
        data += chunk
    return data


def finish_with_in_time(outbox: Outbox, line: bytes) -> None:
    """Call ``finish_with`` on a thread of its own: it must return at once, whatever the socket."""
    returned = threading.Event()

    def call() -> None:
        outbox.finish_with(line, time.perf_counter() + 10)
        returned.set()

    caller = threading.Thread(target=call, daemon=True)
    caller.start()
    assert returned.wait(5), "finish_with blocked"
    caller.join(5)


@pytest.mark.parametrize("design", [DirectOutbox, QueuedOutbox, BatchedOutbox, QueueOnlyBatchedOutbox])
def test_finish_with_never_blocks_on_a_full_socket_and_ends_the_outbox(
    sockets: Sockets, design: type[Outbox]
) -> None:
    ours, peer = sockets.pair()
    ours.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 4096)
    outbox = design(ours, "n")
    outbox.start()
    try:
        filled = fill(ours)
        finish_with_in_time(outbox, BYE)
        assert outbox.is_finishing
        assert outbox.put(b"late\n") == 0  # nothing after the last line
        assert read_exactly(peer, filled) == b"f" * filled
        if outbox.has_writer:  # queued: the writer sends it once the peer reads
            assert read_lines(peer, 1) == [BYE.rstrip(b"\n")]
        assert outbox.join(5)
        peer.setblocking(False)
        with pytest.raises(BlockingIOError):
            peer.recv(10)  # direct: the line the full socket refused is lost, not waited for
    finally:
        outbox.abort()
        outbox.join(5)


@pytest.mark.parametrize("design", [DirectOutbox, QueuedOutbox, BatchedOutbox, QueueOnlyBatchedOutbox])
def test_finish_with_sends_the_last_line_after_every_earlier_one(
    sockets: Sockets, design: type[Outbox]
) -> None:
    ours, peer = sockets.pair()
    outbox = design(ours, "l")
    outbox.start()
    try:
        for i in range(50):
            outbox.put(b"%d\n" % i)
        finish_with_in_time(outbox, BYE)
        assert read_lines(peer, 51) == [b"%d" % i for i in range(50)] + [BYE.rstrip(b"\n")]
        assert outbox.join(5)
    finally:
        outbox.abort()
        outbox.join(5)


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


# -- one wait judges every recipient (wait_for_congested) --------------------------------


def blocked_writer(label: str, queued: int) -> tuple[BatchedOutbox, socket.socket, socket.socket]:
    """An outbox whose peer reads nothing: its writer is blocked in a send, ``queued`` lines wait."""
    ours, peer = tcp_pair()
    ours.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 4096)
    outbox = BatchedOutbox(ours, label)
    outbox.start()
    outbox.put_many([b"y" * 2000 + b"\n"] * 100)  # 200 KB: the writer takes them and blocks
    wait_for(lambda: outbox.backlog() == 0, what=f"{label}'s writer took the first batch")
    for _ in range(queued):
        outbox.put(b"z\n")
    wait_for(lambda: delivery.peer_is_behind(ours), what=f"{label}'s socket full")
    return outbox, ours, peer


def close_all(*items: tuple[BatchedOutbox, socket.socket, socket.socket]) -> None:
    for outbox, ours, peer in items:
        outbox.abort()
        outbox.join(5)
        ours.close()
        peer.close()


def test_one_wait_marks_every_recipient_that_moved_nothing_and_whose_peer_is_behind() -> None:
    """Members that stop reading together are found on one wait, not one wait each.

    The waited-for outbox and a second non-reader (nothing queued: its writer is
    blocked with everything it took, the backlog does not matter) are both marked
    stalled; an idle recipient whose socket has room is not.
    """
    waited = blocked_writer("waited", 50)
    other = blocked_writer("other", 0)
    idle_ours, idle_peer = tcp_pair()
    idle = BatchedOutbox(idle_ours, "idle")
    idle.start()
    try:
        watched = [waited[0], other[0], idle]
        delivery.wait_for_congested(waited[0], watched, 10, time.monotonic() + 30)
        assert waited[0].is_stalled
        assert other[0].is_stalled, "a non-reader was left for a wait of its own"
        assert not idle.is_stalled, "a recipient whose socket has room was marked stalled"
    finally:
        close_all(waited, other, (idle, idle_ours, idle_peer))


def test_a_recipient_that_makes_progress_during_the_wait_is_not_marked() -> None:
    """Its socket is full now, but its writer moved bytes during the wait: its client reads."""
    waited = blocked_writer("waited", 50)
    moving = blocked_writer("moving", 0)
    outbox = waited[0]

    def progress_while_waited_for() -> None:
        wait_for(lambda: outbox._waiters > 0, what="the reader waiting")
        moving[0].bytes_sent += 1  # what its writer's next completed slice does

    helper = threading.Thread(target=progress_while_waited_for)
    helper.start()
    try:
        delivery.wait_for_congested(outbox, [outbox, moving[0]], 10, time.monotonic() + 30)
        helper.join(10)
        assert outbox.is_stalled
        assert not moving[0].is_stalled
    finally:
        helper.join(10)
        close_all(waited, moving)


def test_a_wait_too_short_to_be_evidence_marks_nobody_else() -> None:
    """The waited-for recipient is already below the mark: no pause, so no verdict on the others."""
    behind = blocked_writer("behind", 0)
    ours, peer = tcp_pair()
    drained = BatchedOutbox(ours, "drained")
    try:
        delivery.wait_for_congested(drained, [drained, behind[0]], 10, time.monotonic() + 30)
        assert not behind[0].is_stalled
        assert not drained.is_stalled
    finally:
        close_all(behind)
        ours.close()
        peer.close()
