"""Robustness: no client's fault stalls the room, leaks a thread or a socket,
or logs a traceback (the ``start_server`` fixture checks stderr after every test)."""

from __future__ import annotations

import threading
from collections import defaultdict

import pytest

from tests.helpers import LineClient
from tests.server_kit import (  # noqa: F401  (a fixture)
    DELIVERIES,
    MSG_RE,
    ORDERING_IDS,
    ORDERING_SERVERS,
    WRITER_DELIVERIES,
    Reader,
    ServerFactory,
    member,
    seq_of,
    start_server_fixture,
    wait_for,
)

pytestmark = pytest.mark.e2e


def msg_text(line: str) -> str:
    m = MSG_RE.match(line)
    assert m is not None, line
    return m.group(3)


def read_through(client: LineClient, prefix: str) -> list[str]:
    """Lines up to and including the MSG whose text starts with ``prefix``."""
    lines = []
    while True:
        line = client.read_line()
        assert line, f"connection closed; last lines {lines[-3:]}"
        lines.append(line)
        if line.startswith("MSG ") and msg_text(line).startswith(prefix):
            return lines


@pytest.fixture(params=DELIVERIES)
def delivery(request: pytest.FixtureRequest) -> str:
    return str(request.param)


def test_a_1_mib_line_is_refused_once_and_the_connection_stays(
    start_server: ServerFactory, delivery: str
) -> None:
    server = start_server("--delivery", delivery)
    with member(server, "alice") as a, member(server, "bob") as b:
        a.expect("JOIN 2 bob")
        big = b"m" * (1 << 20) + b"\nafter\n"
        sender = threading.Thread(target=a.sock.sendall, args=(big,), daemon=True)
        sender.start()
        assert a.read_line().startswith("ERR line-too-long ")
        assert a.read_line() == "MSG 3 alice after"  # one ERR, then the next line as usual
        assert b.read_line() == "MSG 3 alice after"
        sender.join(10)


def test_a_1_mib_name_line_without_newline_then_a_name(start_server: ServerFactory, delivery: str) -> None:
    server = start_server("--delivery", delivery)
    with server.connect() as c:
        c.expect("HELLO ")
        sender = threading.Thread(target=c.sock.sendall, args=(b"n" * (1 << 20),), daemon=True)
        sender.start()
        assert c.read_line().startswith("ERR line-too-long ")  # reported before the newline comes
        sender.join(10)
        c.send(b"\ncarol\n")
        assert c.read_line() == "OK carol"


def test_nul_bytes_never_reach_anyone(start_server: ServerFactory, delivery: str) -> None:
    server = start_server("--delivery", delivery)
    with member(server, "alice") as a, member(server, "bob") as b:
        a.expect("JOIN 2 bob")
        a.send(b"\x00" * 100 + b"\n" + b"a\x00b\n" + b"\x00\n")
        for _ in range(3):
            assert a.read_line().startswith("ERR bad-encoding ")
        a.send("clean")
        assert b.read_line() == "MSG 3 alice clean"


def test_invalid_utf8_stream_does_not_hurt(start_server: ServerFactory, delivery: str) -> None:
    server = start_server("--delivery", delivery)
    with member(server, "alice") as a, member(server, "bob") as b:
        a.expect("JOIN 2 bob")
        garbage = bytes(range(0x80, 0x100)) * 4
        a.send(garbage + b"\n" + b"\xc0\xaf\n" + b"\xf8\x88\x80\x80\x80\n")
        for _ in range(3):
            assert a.read_line().startswith("ERR bad-encoding ")
        a.send("\u00e9t\u00e9")
        assert b.read_line() == "MSG 3 alice \u00e9t\u00e9"


def test_40_connections_racing_for_one_name_get_exactly_one_ok(
    start_server: ServerFactory, delivery: str
) -> None:
    server = start_server("--delivery", delivery, "--max-clients", "50")
    racers = [server.connect() for _ in range(40)]
    try:
        for c in racers:
            c.expect("HELLO ")
        go = threading.Barrier(len(racers))
        # Every case spelling of one name: unique case-insensitively, so only one may win.
        spellings = ["racer", "RACER", "Racer", "rAcEr"]

        def race(i: int, c: LineClient) -> None:
            go.wait(timeout=10)
            c.send(spellings[i % len(spellings)])

        threads = [threading.Thread(target=race, args=(i, c)) for i, c in enumerate(racers)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(10)
        firsts = [c.read_line() for c in racers]
        winners = [line for line in firsts if line.startswith("OK ")]
        assert len(winners) == 1, winners
        assert all(line.startswith("ERR name-taken ") for line in firsts if not line.startswith("OK ")), (
            firsts
        )
        winner = racers[firsts.index(winners[0])]
        assert winner.read_line() == f"JOIN 1 {winners[0][3:]}"
    finally:
        for c in racers:
            c.close()


def test_a_connection_that_drops_mid_line(start_server: ServerFactory, delivery: str) -> None:
    server = start_server("--delivery", delivery)
    with member(server, "alice") as a, member(server, "carol") as c:
        b = member(server, "bob")
        a.read_until("JOIN 3 bob")
        c.read_until("JOIN 3 bob")
        b.send(b"half a line, never finis")
        b.close()
        assert a.read_line() == "LEAVE 4 bob disconnected"  # and no MSG of the half line
        assert c.read_line() == "LEAVE 4 bob disconnected"
        c.send("still flowing")
        assert a.read_line() == "MSG 5 carol still flowing"


@pytest.mark.parametrize("delivery", WRITER_DELIVERIES)
def test_a_member_that_never_reads_is_dropped_as_slow_and_the_room_flows(
    start_server: ServerFactory, delivery: str
) -> None:
    server = start_server("--delivery", delivery, "--max-backlog", "50", "--sndbuf", "4096")
    alice = member(server, "alice")
    bob = member(server, "bob")
    lazy = LineClient(server.host, server.port, rcvbuf=4096)
    lazy.join("lazy")
    alice.read_until("JOIN 3 lazy")
    bob.read_until("JOIN 3 lazy")
    text = "y" * 1000
    seen: dict[str, list[str]] = {"alice": [], "bob": []}
    leave = None
    try:
        for batch in range(100):  # bounded: the drop comes after a few hundred KB at most
            alice.send("".join(f"{batch}.{k} {text}\n" for k in range(10)).encode())
            for name, client in (("alice", alice), ("bob", bob)):
                seen[name].extend(read_through(client, f"{batch}.9 "))
            leaves = [line for line in seen["alice"] if line.startswith("LEAVE ")]
            if leaves:
                leave = leaves[0]
                break
        assert leave is not None, "the lazy member was never dropped"
        assert leave == f"LEAVE {seq_of(leave)} lazy slow"
        # Both readers saw the same consecutive stream, every message, in order.
        assert seen["alice"] == seen["bob"]
        seqs = [seq_of(line) for line in seen["alice"]]
        assert seqs == list(range(4, 4 + len(seqs)))
        texts = [msg_text(line).split(" ")[0] for line in seen["alice"] if line.startswith("MSG ")]
        assert texts == [f"{b}.{k}" for b in range(len(texts) // 10) for k in range(10)]
        alice.send("/who")
        assert alice.read_line() == "USERS alice bob"
    finally:
        for c in (alice, bob, lazy):
            c.close()


@pytest.mark.parametrize("delivery", WRITER_DELIVERIES)
def test_a_member_that_floods_commands_without_reading_is_dropped_as_slow(
    start_server: ServerFactory, delivery: str
) -> None:
    """Replies count towards the backlog: /who answers pile up in the flooder's outbox."""
    server = start_server("--delivery", delivery, "--max-backlog", "50", "--sndbuf", "4096")
    with member(server, "alice") as a:
        flooder = LineClient(server.host, server.port, rcvbuf=4096)
        flooder.join("flooder")
        a.expect("JOIN 2 flooder")

        def flood() -> None:
            try:
                flooder.sock.sendall(b"/who\n" * 20000)
            except OSError:
                pass  # dropped mid-flood: that is the point

        sender = threading.Thread(target=flood, daemon=True)
        sender.start()
        assert a.read_line() == "LEAVE 3 flooder slow"
        sender.join(10)
        flooder.close()


@pytest.mark.parametrize(("delivery", "module"), ORDERING_SERVERS, ids=ORDERING_IDS)
def test_30_clients_sending_100_messages_at_once_all_stay_and_see_everything(
    start_server: ServerFactory, delivery: str, module: str
) -> None:
    """The slow-consumer contract, with the default --max-backlog: nobody is dropped as slow. And the
    ordering contract, each member's lines checked one by one, also through batched's writer alone."""
    clients_n, messages_n = 30, 100
    server = start_server("--delivery", delivery, "--max-clients", "40", module=module)
    clients = [member(server, f"c{i}") for i in range(clients_n)]
    try:
        readers = []
        for i, c in enumerate(clients):
            expected = (clients_n - 1 - i) + clients_n * messages_n  # later JOINs, then every message
            readers.append(Reader(c.sock, lambda lines, n=expected: len(lines) >= n, timeout=60).start())
        go = threading.Barrier(clients_n)

        def burst(i: int, c: LineClient) -> None:
            payload = "".join(f"c{i} n={k}\n" for k in range(messages_n)).encode()
            go.wait(timeout=10)
            c.sock.sendall(payload)

        senders = [threading.Thread(target=burst, args=(i, c)) for i, c in enumerate(clients)]
        for t in senders:
            t.start()
        for t in senders:
            t.join(30)
        streams = [r.result() for r in readers]
        first_msg_seq = clients_n + 1
        reference = streams[0][clients_n - 1 :]  # c0's view after the last JOIN
        for i, lines in enumerate(streams):
            assert not [line for line in lines if not line.startswith(("JOIN", "MSG"))], lines[-3:]
            seqs = [seq_of(line) for line in lines]
            # c{i} joined with seq i + 1: it sees every later seq, once, in order.
            assert seqs == list(range(i + 2, i + 2 + len(seqs))), f"c{i}: gap, repeat or reorder"
            msgs = lines[clients_n - 1 - i :]
            assert msgs == reference, f"c{i} saw another order"
        assert seq_of(reference[0]) == first_msg_seq
        per_sender: dict[str, list[int]] = defaultdict(list)
        for line in reference:
            m = MSG_RE.match(line)
            assert m is not None
            sender, number = m.group(3).split(" n=")
            assert sender == m.group(2)
            per_sender[sender].append(int(number))
        assert sorted(per_sender) == sorted(f"c{i}" for i in range(clients_n))
        for sender, numbers in per_sender.items():
            assert numbers == list(range(messages_n)), f"{sender}'s order not kept"
    finally:
        for c in clients:
            c.close()


def test_60_join_leave_cycles_leak_no_thread_nor_socket(start_server: ServerFactory, delivery: str) -> None:
    server = start_server("--delivery", delivery, "--max-clients", "10")
    with member(server, "observer") as observer:
        observer.send("/who")
        observer.expect("USERS observer")
        threads, fds = server.thread_count(), server.open_fds()
        for i in range(60):
            c = member(server, f"u{i}")
            observer.expect(f"JOIN {3 * i + 2} u{i}")
            c.send(f"hello {i}")
            observer.expect(f"MSG {3 * i + 3} u{i} hello {i}")
            kind = i % 4
            if kind == 0:
                c.send("/quit")
                assert c.read_until("BYE ")[0] == f"MSG {3 * i + 3} u{i} hello {i}"
            elif kind == 1:
                c.send("exit")
            elif kind == 2:
                c.send(b"partial")  # then an abrupt close
            c.close()
            reason = "quit" if kind in (0, 1) else "disconnected"
            observer.expect(f"LEAVE {3 * i + 4} u{i} {reason}")
            if i % 10 == 0:  # connections that never join, too
                with server.connect() as h:
                    h.expect("HELLO ")
        wait_for(
            lambda: server.thread_count() == threads and server.open_fds() == fds,
            timeout=15,
            what=f"threads back to {threads} and fds back to {fds}",
        )
        observer.send("/who")
        observer.expect("USERS observer")
