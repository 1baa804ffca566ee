"""The metrics' collector over a room, in-process.

``--metrics-port`` end to end is tested in ``test_metrics_e2e.py``.
"""

from __future__ import annotations

import re
import socket
from collections.abc import Iterator

import pytest
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.parser import text_string_to_metric_families

from chat.delivery import BatchedOutbox
from chat.lockstat import InstrumentedLock, SupportsLock
from chat.metrics import RoomCollector
from chat.room import Connection, Room
from tests.chat.kit import samples, value

TIMEOUT = 10.0
METRICS_LINE = re.compile(r"^metrics on (http://\S+/metrics)$")

LOCK_FAMILIES = {
    "chat_lock_acquisitions",
    "chat_lock_contended",
    "chat_lock_wait_seconds",
    "chat_lock_hold_seconds",
    "chat_lock_held_seconds",
    "chat_lock_site_acquisitions",
    "chat_lock_site_contended",
    "chat_lock_site_wait_seconds",
    "chat_lock_site_hold_seconds",
    "chat_lock_blocked_by",
}
ROOM_FAMILIES = {
    "chat_members",
    "chat_connections",
    "chat_threads",
    "chat_backlog_lines",
    "chat_backlog_max_lines",
    "chat_broadcasts",
    "chat_deliveries",
    "chat_joins",
    "chat_leaves",
    "chat_slow_drops",
    "chat_refused_full",
}


@pytest.fixture
def pairs() -> Iterator[list[socket.socket]]:
    socks: list[socket.socket] = []
    yield socks
    for s in socks:
        s.close()


def connection(pairs: list[socket.socket], name: str) -> Connection:
    a, b = socket.socketpair()
    pairs.extend((a, b))
    outbox = BatchedOutbox(a, name)
    outbox.send_when_idle = False  # and no writer started: lines stay queued, the backlog shows
    return Connection(outbox, name)


def test_collector_reads_room_and_lock(pairs: list[socket.socket]) -> None:
    room = Room(max_clients=10, max_backlog=100, lock=InstrumentedLock("registry"))
    alice, bob = connection(pairs, "alice"), connection(pairs, "bob")
    for conn, name in ((alice, "alice"), (bob, "bob")):
        assert room.admit(conn)
        assert room.join(conn, name) is None
    room.say(alice, ["hi", "there"])
    room.who(bob)

    registry = CollectorRegistry(auto_describe=False)
    registry.register(RoomCollector(room))
    text = generate_latest(registry).decode()
    names = {f.name for f in text_string_to_metric_families(text)}
    assert names >= ROOM_FAMILIES | LOCK_FAMILIES
    found = samples(text)
    assert value(found, "chat_members") == 2
    assert value(found, "chat_connections") == 2
    assert value(found, "chat_joins_total") == 2
    # JOIN alice (1 member), JOIN bob (2), two MSGs (2 each)
    assert value(found, "chat_broadcasts_total") == 4
    assert value(found, "chat_deliveries_total") == 1 + 2 + 2 + 2
    # alice: OK, JOIN alice, JOIN bob, 2 MSG; bob: OK, JOIN bob, 2 MSG, USERS
    assert value(found, "chat_backlog_lines") == 10
    assert value(found, "chat_backlog_max_lines") == 5
    assert value(found, "chat_lock_acquisitions_total", section="registry") == 2 + 2 + 1 + 1
    assert value(found, "chat_lock_site_acquisitions_total", section="registry", site="join") == 2
    assert value(found, "chat_lock_site_acquisitions_total", section="registry", site="say") == 1
    assert value(found, "chat_lock_hold_seconds_count", section="registry") == 6
    assert value(found, "chat_lock_hold_seconds_bucket", section="registry", le="+Inf") == 6
    assert value(found, "chat_lock_contended_total", section="registry") == 0
    assert value(found, "chat_lock_held_seconds", section="registry") == 0


def test_collector_with_a_plain_lock_has_no_lock_families(pairs: list[socket.socket]) -> None:
    room = Room(max_clients=10, max_backlog=100)
    registry = CollectorRegistry(auto_describe=False)
    registry.register(RoomCollector(room, unsafe="no-lock"))
    found = samples(generate_latest(registry).decode())
    assert "chat_members" in found
    assert not any(name.startswith("chat_lock_") for name in found)
    assert value(found, "chat_unsafe_info", bug="no-lock") == 1


class TwoLockRoom(Room):
    """A room that takes a second lock, and says so through its documented interface."""

    def __init__(self) -> None:
        super().__init__(max_clients=10, max_backlog=100, lock=InstrumentedLock("registry"))
        self.other = InstrumentedLock("stats")

    def locks(self) -> list[SupportsLock]:
        return [*super().locks(), self.other]


def test_collector_reports_every_lock_the_room_says_it_takes() -> None:
    room = TwoLockRoom()
    with room.other.section("count"):
        pass
    registry = CollectorRegistry(auto_describe=False)
    registry.register(RoomCollector(room))
    found = samples(generate_latest(registry).decode())
    sections = [s.labels["section"] for s in found["chat_lock_acquisitions_total"]]
    assert sections == ["registry", "stats"]
    assert value(found, "chat_lock_site_acquisitions_total", section="stats", site="count") == 1
    assert "chat_unsafe_info" not in found
