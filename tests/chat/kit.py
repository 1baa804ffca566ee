"""Tools of the chat tests: socket pairs, a line reader, a fake outbox to watch the room, a scrape reader.

The ``sockets`` fixture is in tests/chat/conftest.py.
"""

from __future__ import annotations

import socket
import time

from prometheus_client.parser import text_string_to_metric_families
from prometheus_client.samples import Sample

from chat.delivery import Outbox
from chat.room import Connection, Room

NL = b"\n"


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


def read_lines(sock: socket.socket, count: int, timeout: float = 20.0) -> list[bytes]:
    """The next ``count`` lines from ``sock``, terminators removed; fails after ``timeout``."""
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


def samples(text: str) -> dict[str, list[Sample]]:
    out: dict[str, list[Sample]] = {}
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            out.setdefault(s.name, []).append(s)
    return out


def value(found: dict[str, list[Sample]], name: str, **labels: str) -> float:
    for s in found.get(name, []):
        if all(s.labels.get(k) == v for k, v in labels.items()):
            return s.value
    raise KeyError(f"{name}{labels} not in the scrape")
