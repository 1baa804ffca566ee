"""The liveness check on hand-made histories: handshakes, give-ups, echoes."""

from __future__ import annotations

from harness.checker import CheckConfig, check_all
from harness.record.history import ClientHistory, Closed, Connected, Received, Sent
from tests.harness.checker.histories import P, base, client, fired, index_of, only


def test_a_late_hello() -> None:
    h = ClientHistory("c", "c", events=[Connected(0.0, 0.0), Received(6.0, "HELLO hi"), Closed(7.0, "drop")])
    report = check_all([h])
    assert fired(report) == {"liveness": 1}
    assert only(report, "liveness")[0]["greeted_at"] == 6.0


def test_a_hanging_handshake_and_a_timeout() -> None:
    hung = ClientHistory("c", "c", events=[Connected(0.0, 0.0), Closed(5.5, "timeout", "no HELLO")])
    report = check_all([hung])
    assert fired(report) == {"liveness": 1}
    unanswered = ClientHistory(
        "d",
        "d",
        events=[Connected(0.0, 0.0), Received(0.1, "HELLO hi"), Sent(0.2, "dan"), Closed(9.0, "timeout")],
    )
    report = check_all([unanswered])
    assert fired(report) == {"liveness": 1}
    assert only(report, "liveness")[0]["offered"] == "dan"


def test_a_handshake_within_bounds_passes() -> None:
    h = ClientHistory("c", "c", events=[Connected(0.0, 0.0), Received(4.0, "HELLO hi"), Closed(4.1, "drop")])
    assert check_all([h]).passed()


def test_a_hanging_delivery() -> None:
    histories = base()
    bob = client(histories, "bob")
    del bob.events[index_of(bob, "MSG 8 ")]
    # bob stays a member 10 s after sending, and never gets his message back.
    bob.events[-3:] = [Sent(30.0, "/quit"), Received(30.01, "BYE goodbye"), Closed(30.02, "quit")]
    report = check_all(histories)
    assert report.counts["liveness"] == 1
    (w,) = only(report, "liveness")
    assert w["client"] == "bob" and w["message"] == {"bot": "bob", "n": 1}
    assert "never got" in next(v.message for v in report.violations if v.check == "liveness")


def test_a_late_delivery() -> None:
    histories = base()
    alice = client(histories, "alice")
    i = index_of(alice, "MSG 6 ")
    alice.events[i] = Received(7.9, alice.events[i].line)  # type: ignore[union-attr]
    report = check_all(histories, CheckConfig(delivery_bound=2.0))
    assert report.counts["liveness"] == 1
    assert only(report, "liveness")[0]["echo_at"] == 7.9


def test_a_sender_that_left_is_not_owed_its_echo() -> None:
    histories = base()
    alice = client(histories, "alice")
    # A message written right before /quit, never processed: not a hang.
    alice.events.insert(index_of(alice, "BYE"), Sent(8.0, P("alice", 3, 8.0), 8.0))
    report = check_all(histories)
    assert report.passed(), report.violations


def _slow_reader_run(late: int) -> list[ClientHistory]:
    """alice chats 2,000 lines; sam (a slow reader) gets the last ``late`` of them 3 s after they were due."""
    from harness.record.history import Role
    from tests.harness.checker.histories import handshake, line

    n = 2000
    texts = [P("alice", k, 2.0 + k * 0.001) for k in range(n)]
    alice_events = [*handshake(0.0, "alice"), Received(0.04, line("JOIN", 1, "alice"))]
    alice_events.append(Received(1.04, line("JOIN", 2, "sam")))
    sam_events = [*handshake(1.0, "sam"), Received(1.05, line("JOIN", 2, "sam"))]
    for k, text in enumerate(texts):
        due = 2.0 + k * 0.001
        alice_events += [Sent(due, text, due), Received(due + 0.001, line("MSG", 3 + k, "alice", text))]
        delay = 3.0 if k >= n - late else 0.002
        sam_events.append(Received(due + delay, line("MSG", 3 + k, "alice", text)))
    alice = ClientHistory("alice", "alice", events=[*alice_events, Closed(10.0, "drop")])
    sam = ClientHistory("sam", "sam", role=Role.SLOW, events=[*sam_events, Closed(10.0, "drop")])
    return [alice, sam]


def _unbounded(report: object) -> list[str]:
    return [v.message for v in report.violations if "never dropped as slow" in v.message]  # type: ignore[attr-defined]


def test_a_slow_reader_never_dropped_past_the_servers_bound() -> None:
    run = _slow_reader_run(late=1800)
    report = check_all(run, CheckConfig(max_backlog=100))
    (message,) = _unbounded(report)
    assert message.startswith("sam stopped reading and was never dropped as slow: ")
    assert "more than the server's --max-backlog 100" in message
    assert report.counts["liveness"] >= 1


def test_a_slow_reader_within_its_kernel_buffers_and_bound_passes() -> None:
    # What a dropped reader gets when it reads again: its kernel buffers' worth (under 64 KiB).
    assert _unbounded(check_all(_slow_reader_run(late=300), CheckConfig(max_backlog=100))) == []
    # A bound above what was held, or no bound known (a --target the swarm was not told about).
    assert _unbounded(check_all(_slow_reader_run(late=1800), CheckConfig(max_backlog=5000))) == []
    assert _unbounded(check_all(_slow_reader_run(late=1800), CheckConfig())) == []
