"""Bots in a hive against real sockets: what they record, how every connection ends, bounded waits.

The recording itself (framing, answers, handshake, counters) is tested without
sockets in tests/harness/record/test_connection.py; the plans in test_scenarios.py.
"""

from __future__ import annotations

import socket
import threading
import time
from collections import Counter
from collections.abc import Iterator, Sequence
from typing import Any

import pytest

from harness.record.history import ClientHistory, Closed, Connected, Received, Role, Sent
from harness.record.payload import decode_payload
from harness.swarm.bot import HiveConfig
from harness.swarm.hives import Arrived, Hive, HiveReport, Stop
from harness.swarm.scenarios import BEHAVIOURS, BotSpec, plan
from tests.harness.swarm.parent import Parent
from tests.helpers import ServerProcess

pytestmark = pytest.mark.e2e


def run_hive(specs: Sequence[BotSpec], port: int, *, duration: float = 1.0, **kw: Any) -> list[ClientHistory]:
    parent = Parent()
    kw.setdefault("handshake_bound", 20.0)  # generous: a stalled CI machine is not a hung server
    kw.setdefault("delivery_bound", 20.0)
    config = HiveConfig("127.0.0.1", port, duration=duration, **kw)
    hive = Hive(0, specs, config, BEHAVIOURS, parent, parent.commands)
    histories = hive.run()
    assert any(isinstance(r, HiveReport) for r in parent.reports)
    return histories


def assert_well_formed(histories: Sequence[ClientHistory]) -> None:
    for h in histories:
        assert h.events, h.client
        assert isinstance(h.events[-1], Closed), (h.client, h.events[-3:])
        assert sum(isinstance(e, Closed) for e in h.events) == 1
        times = [e.t for e in h.events]
        assert times == sorted(times), h.client


def test_chat_bots_record_everything_and_quit(server: ServerProcess) -> None:
    p = plan("chat", 3, rate=20, duration=1.0, seed=1)
    histories = run_hive(p.specs, server.port)
    assert_well_formed(histories)
    assert len(histories) == 3
    for h in histories:
        assert isinstance(h.events[0], Connected)
        assert h.events[-1].how == "quit"  # type: ignore[union-attr]
        sent = [e for e in h.events if isinstance(e, Sent) and e.due is not None]
        assert len(sent) == 20
        payloads = [decode_payload(e.line) for e in sent]
        assert [pl.n for pl in payloads if pl] == list(range(20))
        assert all(e.t >= e.due for e in sent)  # type: ignore[operator]
        got = [e.line for e in h.events if isinstance(e, Received) and e.line.startswith("MSG ")]
        assert len(got) == 60  # everyone's messages, its own included
        assert any(e.line == "BYE goodbye" for e in h.events if isinstance(e, Received))


def test_every_scenario_role_ends_every_connection(server: ServerProcess) -> None:
    p = plan("mixed", 8, rate=10, duration=1.0, seed=2)
    histories = run_hive(p.specs, server.port)
    assert_well_formed(histories)
    roles = Counter(h.role for h in histories)
    assert set(roles) == {"chat", "churn", "racer", "slow", "burst"}
    assert roles["churn"] >= 2  # churners reconnect


@pytest.fixture
def silent_listener() -> Iterator[int]:
    """A TCP port that accepts connections and never says anything."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(16)
    accepted: list[socket.socket] = []
    stop = threading.Event()

    def accept() -> None:
        listener.settimeout(0.1)
        while not stop.is_set():
            try:
                conn, _ = listener.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            accepted.append(conn)

    thread = threading.Thread(target=accept)
    thread.start()
    yield listener.getsockname()[1]
    stop.set()
    thread.join(5)
    for conn in accepted:
        conn.close()
    listener.close()


def test_unanswered_handshake_ends_as_timeout_within_the_bound(silent_listener: int) -> None:
    specs = [BotSpec("b0", Role.CHAT, rate=10, count=5)]
    t0 = time.monotonic()
    histories = run_hive(specs, silent_listener, handshake_bound=0.5)
    assert time.monotonic() - t0 < 10
    assert_well_formed(histories)
    last = histories[0].events[-1]
    assert isinstance(last, Closed) and last.how == "timeout"


def test_refused_connection_records_an_error() -> None:
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    sock.close()  # nobody listens there now
    histories = run_hive([BotSpec("b0", Role.CHAT)], port)
    assert_well_formed(histories)
    last = histories[0].events[-1]
    assert isinstance(last, Closed) and last.how == "error"


def test_full_server_answers_err_full() -> None:
    srv = ServerProcess("--max-clients", "1").start()
    try:
        histories = run_hive([BotSpec("b0", Role.CHAT), BotSpec("b1", Role.CHAT)], srv.port, duration=0.5)
    finally:
        assert "Traceback" not in srv.stop()
    assert_well_formed(histories)
    lines = [e.line for h in histories for e in h.events if isinstance(e, Received)]
    assert any(line.startswith("ERR full") for line in lines)
    assert sorted(h.events[-1].how for h in histories) == ["eof", "quit"]  # type: ignore[union-attr]


def test_stop_command_ends_a_long_run_quickly(server: ServerProcess) -> None:
    p = plan("chat", 2, rate=5, duration=60, seed=1)
    parent = Parent()
    hive = Hive(
        0, p.specs, HiveConfig("127.0.0.1", server.port, duration=60), BEHAVIOURS, parent, parent.commands
    )
    result: list[list[ClientHistory]] = []
    thread = threading.Thread(target=lambda: result.append(hive.run()))
    t0 = time.monotonic()
    thread.start()
    parent.wait_for(Arrived)
    parent.commands.put(Stop())
    thread.join(15)
    assert not thread.is_alive()
    assert time.monotonic() - t0 < 15
    assert_well_formed(result[0])
    assert {h.events[-1].how for h in result[0]} == {"stopped"}  # type: ignore[union-attr]
