"""The metrics: the collector over a room in-process, and ``--metrics-port`` end to end."""

from __future__ import annotations

import re
import socket
import urllib.request
from collections.abc import Iterator

import pytest
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.parser import text_string_to_metric_families
from prometheus_client.samples import Sample

from chat.delivery import BatchedOutbox
from chat.lockstat import InstrumentedLock
from chat.metrics import RoomCollector
from chat.room import Connection, Room
from tests.helpers import ServerProcess, run_module

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


def read_metrics_url(srv: ServerProcess) -> str:
    """The server prints ``metrics on URL`` on stderr before its ready line: its log's first line."""
    line = srv.log().splitlines()[0]
    m = METRICS_LINE.match(line)
    assert m, line
    assert srv.metrics_url == m.group(1)
    return m.group(1)


def scrape(url: str) -> str:
    with urllib.request.urlopen(url, timeout=TIMEOUT) as resp:
        assert resp.status == 200
        body: bytes = resp.read()
        return body.decode()


def test_metrics_endpoint_after_traffic() -> None:
    srv = ServerProcess("--max-clients", "10", "--metrics-port", "0").start()
    try:
        url = read_metrics_url(srv)
        assert url.startswith("http://127.0.0.1:")
        with srv.connect() as a, srv.connect() as b:
            a.join("alice")
            b.join("bob")
            a.read_until("JOIN ")  # bob's JOIN
            for i in range(20):
                a.send(f"hello {i}")
            b.read_until("MSG ")
            for _ in range(19):
                b.expect("MSG ")
            b.send("/who")
            b.expect("USERS alice bob")
            found = samples(scrape(url))
        assert value(found, "chat_members") == 2
        assert value(found, "chat_joins_total") == 2
        assert value(found, "chat_broadcasts_total") >= 22
        assert value(found, "chat_deliveries_total") >= 41
        assert value(found, "chat_lock_acquisitions_total", section="registry") > 0
        assert value(found, "chat_lock_site_acquisitions_total", section="registry", site="say") >= 1
        assert value(found, "chat_lock_site_acquisitions_total", section="registry", site="who") == 1
        assert value(found, "chat_lock_hold_seconds_count", section="registry") > 0
        assert "chat_lock_wait_seconds_bucket" in found
        assert value(found, "chat_threads") >= 3
        assert "process_cpu_seconds_total" in found
    finally:
        err = srv.stop()
    assert "Traceback" not in err, err


def test_metrics_port_in_use_is_a_clear_error() -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen(1)
        port = taken.getsockname()[1]
        res = run_module(
            "chat.server", ["--host", "127.0.0.1", "--port", "0", "--metrics-port", str(port)], timeout=30
        )
    assert res.returncode == 2
    lines = res.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("chat.server: cannot serve metrics on"), res.stderr
    assert "Traceback" not in res.stderr
