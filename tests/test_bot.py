"""Bots and scenarios: the latency histogram, the framing, the plans, and hives against real sockets."""

from __future__ import annotations

import queue
import socket
import threading
import time
from collections import Counter
from collections.abc import Iterator, Sequence
from typing import Any

import pytest

from harness.record.history import ClientHistory, Closed, Connected, Received, Sent
from harness.record.payload import decode_payload
from harness.swarm import bot
from harness.swarm.bot import (
    BotConnection,
    Hive,
    HiveConfig,
    LatencyHistogram,
    LiveCounters,
    split_round_robin,
)
from harness.swarm.scenarios import BEHAVIOURS, SCENARIOS, BotSpec, Plan, default_burst_size, plan
from tests.helpers import ServerProcess

# -- latency histogram ---------------------------------------------------------------------


def test_histogram_percentiles_are_within_one_bucket() -> None:
    h = LatencyHistogram()
    for i in range(1, 1001):
        h.add(float(i))  # 1..1000 ms
    assert h.count == 1000
    assert h.max_ms == 1000.0
    for q, exact in ((0.5, 500.0), (0.95, 950.0), (0.99, 990.0)):
        got = h.percentile(q)
        assert got is not None
        assert exact <= got <= exact * LatencyHistogram.RATIO, (q, got)
    assert h.percentile(1.0) == 1000.0


def test_histogram_empty_tiny_negative_and_huge() -> None:
    h = LatencyHistogram()
    assert h.percentile(0.5) is None
    h.add(-3.0)  # clocks of one machine: only a rounding artefact, counted as the smallest
    h.add(0.0)
    h.add(1e12)
    assert h.count == 3
    assert h.percentile(0.01) is not None
    assert h.percentile(1.0) == 1e12


def test_histogram_merge_equals_adding_all() -> None:
    a, b, both = LatencyHistogram(), LatencyHistogram(), LatencyHistogram()
    for i in range(500):
        a.add(i * 0.1)
        both.add(i * 0.1)
        b.add(i * 3.0)
        both.add(i * 3.0)
    merged = a.copy()
    merged.merge(b)
    assert merged.counts == both.counts
    assert merged.count == both.count
    assert merged.max_ms == both.max_ms


def test_histogram_pickles() -> None:
    import pickle

    h = LatencyHistogram()
    h.add(5.0)
    h2 = pickle.loads(pickle.dumps(h))
    assert h2.counts == h.counts and h2.count == 1 and h2.max_ms == 5.0


# -- framing -----------------------------------------------------------------------------


class _FakeHive:
    def __init__(self) -> None:
        self.counters = LiveCounters()


def _conn() -> BotConnection:
    return BotConnection(_FakeHive(), ClientHistory("c1", "b1"))  # type: ignore[arg-type]


@pytest.mark.parametrize(
    "chunks, lines",
    [
        ([b"HELLO hi\n"], ["HELLO hi"]),
        ([b"HEL", b"LO hi\nOK a", b"\n"], ["HELLO hi", "OK a"]),
        ([b"a\r\nb\r\n"], ["a", "b"]),
        ([b"\n\n"], ["", ""]),
        ([b"MSG 1 a \xff\xfe\n"], ["MSG 1 a \ufffd\ufffd"]),
        ([b"no newline yet"], []),
        ([b"caf\xc3", b"\xa9\n"], ["café"]),
    ],
)
def test_framing_keeps_every_line_across_reads(chunks: list[bytes], lines: list[str]) -> None:
    conn = _conn()
    for chunk in chunks:
        conn.data_received(chunk)
    history = conn.materialize()
    assert [e.line for e in history.events if isinstance(e, Received)] == lines
    assert conn.counters.lines == len(lines)


def test_received_lines_of_one_read_share_its_time() -> None:
    conn = _conn()
    conn.data_received(b"JOIN 1 a\nJOIN 2 b\n")
    events = conn.materialize().events
    assert len(events) == 2 and events[0].t == events[1].t


def test_online_counters_see_seq_gaps_and_fifo_step_backs(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(bot, "SAMPLE_EVERY", 1)  # every line feeds the live figures
    conn = _conn()
    conn.name = "a"
    conn._awaiting_join = "a"
    conn.data_received(b"OK a\nJOIN 5 a\n")
    assert conn.seqs is True
    conn.data_received(b"MSG 6 x b=x n=1 t=1.0\nMSG 8 x b=x n=0 t=1.0\nMSG 9 a b=b1 n=3 t=1.0\n")
    assert conn.counters.seq_anomalies == 1  # 6 -> 8
    assert conn.counters.fifo_anomalies == 1  # n=1 then n=0 from x
    assert conn.counters.delivered == 3
    assert conn.last_echo_n == 3  # its own message (bot b1, name a)


def test_unnumbered_server_is_detected_from_the_own_join() -> None:
    conn = _conn()
    conn._awaiting_join = "a"
    conn.data_received(b"OK a\nJOIN a\nMSG x b=x n=0 t=1.0\nMSG x b=x n=1 t=1.0\n")
    assert conn.seqs is False
    assert conn.counters.seq_anomalies == 0
    assert conn.counters.delivered == 2


# -- plans -------------------------------------------------------------------------------


@pytest.mark.parametrize("scenario", SCENARIOS)
@pytest.mark.parametrize("clients", [1, 2, 5, 10, 30, 101])
def test_plan_has_one_spec_per_bot_with_unique_ids(scenario: str, clients: int) -> None:
    p = plan(scenario, clients, rate=10, duration=2, seed=7)
    assert len(p.specs) == clients
    assert len({s.bot for s in p.specs}) == clients
    assert all(s.role in BEHAVIOURS for s in p.specs)
    if any(s.role == "racer" for s in p.specs):
        assert p.contested_names
        assert all(name == name.lower() for name in p.contested_names)


def test_plan_is_a_pure_function_of_its_arguments() -> None:
    assert plan("mixed", 30, rate=20, duration=8, seed=3) == plan("mixed", 30, rate=20, duration=8, seed=3)
    assert plan("mixed", 30, rate=20, duration=8, seed=3) != plan("mixed", 30, rate=20, duration=8, seed=4)


def test_mixed_has_every_role_and_chat_sends_who() -> None:
    p = plan("mixed", 30, rate=20, duration=8, seed=1)
    roles = p.role_counts()
    assert set(roles) == {"chat", "churn", "racer", "slow", "burst"}
    assert any(s.who_every for s in p.specs if s.role == "chat")
    chat = [s for s in p.specs if s.role == "chat"]
    assert all(s.count == 160 for s in chat)


def test_roles_are_spread_over_processes() -> None:
    p = plan("mixed", 30, rate=20, duration=8, seed=1)
    for group in split_round_robin(p.specs, 2):
        assert {s.role for s in group} == {"chat", "churn", "racer", "slow", "burst"}


def test_burst_size_is_bounded() -> None:
    assert default_burst_size(10) == 500
    assert 5 <= default_burst_size(500) <= 500
    assert default_burst_size(50) * 50 * 50 <= 600_000


# -- hives against sockets ------------------------------------------------------------------


class AutoRelease:
    """A parent stand-in: releases each phase as soon as the hive arrives at it."""

    def __init__(self, *, release: bool = True) -> None:
        self.commands: queue.Queue[Any] = queue.Queue()
        self.reports: list[Any] = []
        self.release = release
        self.started = threading.Event()

    def put(self, item: Any) -> None:
        self.reports.append(item)
        if item[0] == "arrive":
            if self.release:
                self.commands.put(("release", item[2], time.time()))
            if item[2] == "joined":
                self.started.set()


def run_hive(specs: Sequence[BotSpec], port: int, *, duration: float = 1.0, **kw: Any) -> list[ClientHistory]:
    parent = AutoRelease()
    kw.setdefault("handshake_bound", 20.0)  # generous: a stalled CI machine is not a hung server
    kw.setdefault("delivery_bound", 20.0)
    config = HiveConfig("127.0.0.1", port, duration=duration, **kw)
    hive = Hive(0, specs, config, BEHAVIOURS, parent, parent.commands)
    histories = hive.run()
    assert any(r[0] == "report" for r in parent.reports)
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
    specs = [BotSpec("b0", "chat", rate=10, count=5)]
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
    histories = run_hive([BotSpec("b0", "chat")], port)
    assert_well_formed(histories)
    last = histories[0].events[-1]
    assert isinstance(last, Closed) and last.how == "error"


def test_full_server_answers_err_full() -> None:
    srv = ServerProcess("--max-clients", "1").start()
    try:
        histories = run_hive([BotSpec("b0", "chat"), BotSpec("b1", "chat")], srv.port, duration=0.5)
    finally:
        assert "Traceback" not in srv.stop()
    assert_well_formed(histories)
    lines = [e.line for h in histories for e in h.events if isinstance(e, Received)]
    assert any(line.startswith("ERR full") for line in lines)
    assert sorted(h.events[-1].how for h in histories) == ["eof", "quit"]  # type: ignore[union-attr]


def test_stop_command_ends_a_long_run_quickly(server: ServerProcess) -> None:
    p = plan("chat", 2, rate=5, duration=60, seed=1)
    parent = AutoRelease()
    hive = Hive(
        0, p.specs, HiveConfig("127.0.0.1", server.port, duration=60), BEHAVIOURS, parent, parent.commands
    )
    result: list[list[ClientHistory]] = []
    thread = threading.Thread(target=lambda: result.append(hive.run()))
    t0 = time.monotonic()
    thread.start()
    assert parent.started.wait(10)
    parent.commands.put(("stop",))
    thread.join(15)
    assert not thread.is_alive()
    assert time.monotonic() - t0 < 15
    assert_well_formed(result[0])
    assert {h.events[-1].how for h in result[0]} == {"stopped"}  # type: ignore[union-attr]


def test_plan_object_is_hashable_and_describable() -> None:
    from harness.swarm.scenarios import describe

    p: Plan = plan("churn", 4, rate=1, duration=1, seed=0)
    assert describe(p) == "4 bots: 2 chat, 2 churn"
    assert p.steady == 2


def test_live_figures_sample_other_senders_but_never_miss_an_own_echo() -> None:
    conn = _conn()
    conn.name = "a"
    conn.seqs = True
    lines = [f"MSG {i + 1} x b=x n={i} t=1.0" for i in range(40)] + ["MSG 41 a b=b1 n=7 t=1.0"]
    conn.data_received(("\n".join(lines) + "\n").encode())
    assert conn.counters.delivered == 41
    assert conn.counters.latency.count == 40 // bot.SAMPLE_EVERY + 1
    assert conn.last_echo_n == 7
    assert conn.counters.seq_anomalies == 0


def test_steady_bots_join_at_the_ramp_rate_and_the_others_at_the_start() -> None:
    p = plan("mixed", 30, rate=10, duration=2, seed=1, ramp=10.0)
    steady = [s for s in p.specs if s.role in ("chat", "slow", "burst")]
    assert [s.join_at for s in steady] == [i / 10.0 for i in range(len(steady))]
    assert all(s.join_at == 0.0 for s in p.specs if s.role in ("churn", "racer"))
    assert all(s.join_at == 0.0 for s in plan("chat", 30, rate=10, duration=2, seed=1, ramp=0).specs)
