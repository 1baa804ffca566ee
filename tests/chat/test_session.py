"""The session (chat/session.py) in-process: its backpressure loop, and its outbox step."""

from __future__ import annotations

import socket
import threading
import time
from types import SimpleNamespace

import pytest

from chat import session
from chat.config import ServerConfig
from chat.delivery import BatchedOutbox, Delivery, DirectOutbox, Outbox, QueuedOutbox
from chat.protocol import LeaveReason
from chat.room import Connection, Room
from chat.session import Session
from tests.chat.kit import Sockets, read_lines

# -- the outbox step ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("design", "kind"),
    [(Delivery.DIRECT, DirectOutbox), (Delivery.QUEUED, QueuedOutbox), (Delivery.BATCHED, BatchedOutbox)],
)
def test_the_outbox_is_the_delivery_designs_and_the_connections(
    sockets: Sockets, design: Delivery, kind: type[Outbox]
) -> None:
    room = Room(max_clients=5, max_backlog=100)
    ours, _peer = sockets.pair()
    s = Session(room, ours, "peer", ServerConfig(delivery=design))
    assert type(s.outbox) is kind
    assert s.conn.outbox is s.outbox
    assert s.outbox.sock is ours and s.outbox.label == "peer"


class CountingOutbox(QueuedOutbox):
    made = 0

    def __init__(self, sock: socket.socket, name: str = "") -> None:
        super().__init__(sock, name)
        CountingOutbox.made += 1


class OwnOutboxSession(Session):
    """A session that overrides the outbox step, as a plugin does."""

    def _make_outbox(self) -> Outbox:
        assert not hasattr(self, "conn"), "the step runs before the connection exists"
        return CountingOutbox(self.sock, f"own-{self.peer}")


def test_overriding_the_outbox_step_makes_one_outbox_and_the_connection_uses_it(sockets: Sockets) -> None:
    room = Room(max_clients=5, max_backlog=100)
    ours, peer = sockets.pair()
    CountingOutbox.made = 0
    s = OwnOutboxSession(room, ours, "p", ServerConfig(delivery=Delivery.BATCHED))
    assert CountingOutbox.made == 1
    assert isinstance(s.outbox, CountingOutbox) and s.conn.outbox is s.outbox
    assert s.outbox.label == "own-p"
    # The session speaks through it: the room's lines reach the socket through this outbox.
    s.outbox.start()
    try:
        assert room.admit(s.conn)
        assert room.join(s.conn, "alice") is None
        assert read_lines(peer, 2) == [b"OK alice", b"JOIN 1 alice"]
        assert room.leave(s.conn, LeaveReason.QUIT)
        assert s.outbox.join(5)
    finally:
        s.outbox.abort()
        s.outbox.join(5)


# -- backpressure ------------------------------------------------------------------------


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
    monkeypatch.setattr(session, "MAX_BACKPRESSURE_WAIT", 0.02)
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
        session.Session._flush(SimpleNamespace(room=room, conn=sender), list(texts))  # type: ignore[arg-type]
        assert recipient.is_member, "a member that reads was dropped as slow"
        got = read_lines(peer, 3 + len(texts))  # OK r, JOIN r, JOIN s, then the messages
        assert [g.split(b" ", 3)[3] for g in got[3:]] == [t.encode() for t in texts]
    finally:
        stop.set()
        pacer.join(5)
        for conn in (recipient, sender):
            conn.outbox.abort()
            conn.outbox.join(5)
