"""The recording connection, pure: bytes in, events and answers out, handshake, counters."""

from __future__ import annotations

import pytest

from chat.protocol import Bye, Err, Hello, Join, Msg, Ok, RemoteProtocolError, Users, overlong_line
from harness.record.connection import JoinOutcome, JoinStage, RecordingConnection
from harness.record.counters import LiveCounters
from harness.record.history import ClientHistory, Closed, Connected, HowClosed, Received, Sent
from tests.chat.test_protocol_fast import FRAMING_CASES


def conn(*, replies: bool = False, sample_every: int = 4, max_line: int = 1 << 20) -> RecordingConnection:
    c = RecordingConnection(
        ClientHistory("c1", "b1"),
        LiveCounters(),
        replies=replies,
        sample_every=sample_every,
        max_line=max_line,
    )
    c.connected(1.0, 0.5)
    return c


def joined(*, seqs: bool = True, replies: bool = False, sample_every: int = 4) -> RecordingConnection:
    c = conn(replies=replies, sample_every=sample_every)
    c.receive(1.1, b"HELLO hi\n")
    c.sent(1.2, "a")
    c.receive(1.3, b"OK a\nJOIN 5 a\n" if seqs else b"OK a\nJOIN a\n")
    assert c.join_outcome is JoinOutcome.OK
    return c


def received(c: RecordingConnection) -> list[str]:
    return [e.line for e in c.take_history().events if isinstance(e, Received)]


# -- recording ------------------------------------------------------------------------------------


@pytest.mark.parametrize("chunks, lines", FRAMING_CASES)
def test_framing_keeps_every_line_across_reads(chunks: list[bytes], lines: list[str]) -> None:
    c = conn()
    for chunk in chunks:
        c.receive(2.0, chunk)
    assert c.counters.counts.lines == len(lines)
    assert received(c) == lines


def test_received_lines_of_one_read_share_its_time_and_events_keep_their_order() -> None:
    c = conn()
    c.receive(2.0, b"HELLO hi\n")
    c.sent(2.5, "b1")
    c.receive(3.0, b"OK b1\nJOIN 1 b1\n")
    c.sent_chats(3.5, ["b=b1 n=0 t=3.400000"], [3.4], extra=["/who"])
    c.close(4.0, HowClosed.DROP, "on purpose")
    assert c.take_history().events == [
        Connected(1.0, 0.5),
        Received(2.0, "HELLO hi"),
        Sent(2.5, "b1"),
        Received(3.0, "OK b1"),
        Received(3.0, "JOIN 1 b1"),
        Sent(3.5, "b=b1 n=0 t=3.400000", 3.4),
        Sent(3.5, "/who"),
        Closed(4.0, HowClosed.DROP, "on purpose"),
    ]
    assert (c.counters.counts.sent, c.counters.counts.whos, c.counters.counts.reads) == (1, 1, 2)


def test_a_runaway_line_is_recorded_as_a_marker_and_the_stream_goes_on() -> None:
    c = conn(max_line=16)
    assert c.receive(2.0, b"HELLO " + b"x" * 40) == ()
    c.receive(2.1, b"y" * 1000)  # the rest of it: dropped as it arrives
    answers = c.receive(2.2, b"zz\nHELLO again\n")
    assert answers == [Hello("again")]
    assert received(c) == [overlong_line(16), "HELLO again"]


def test_nothing_is_recorded_without_record_but_the_handshake_is_tracked() -> None:
    c = RecordingConnection(ClientHistory("c1", "b1"), record=False)
    c.connected(1.0, 1.0)
    c.receive(1.1, b"HELLO hi\n")
    c.sent(1.2, "a")
    c.receive(1.3, b"OK a\nJOIN 1 a\n")
    c.lost(2.0)
    assert c.join_outcome is JoinOutcome.OK and c.take_history().events == []


def test_closed_is_recorded_once_and_last() -> None:
    c = conn()
    assert c.close(2.0, HowClosed.TIMEOUT, "no answer") is True
    c.lost(2.1, "reset")  # the transport's own report of the close that followed
    assert c.close(2.2, HowClosed.STOPPED) is False
    events = c.take_history().events
    assert events[-1] == Closed(2.0, HowClosed.TIMEOUT, "no answer")
    assert sum(isinstance(e, Closed) for e in events) == 1
    assert (c.is_open, c.counters.counts.connected, c.counters.counts.closed_by_server) == (False, 0, 0)


@pytest.mark.parametrize(
    "quit_sent, error, how, by_server",
    [
        (False, None, HowClosed.EOF, 1),
        (False, "reset by peer", HowClosed.ERROR, 1),
        (True, None, HowClosed.QUIT, 0),
    ],
)
def test_how_a_close_by_the_server_is_recorded(
    quit_sent: bool, error: str | None, how: HowClosed, by_server: int
) -> None:
    c = joined()
    if quit_sent:
        c.sent(3.0, "/quit")
    c.lost(4.0, error)
    last = c.take_history().events[-1]
    assert isinstance(last, Closed) and (last.how, last.detail) == (how, error or "")
    assert c.counters.counts.closed_by_server == by_server
    assert (c.counters.counts.connected, c.counters.counts.members) == (0, 0)


# -- the handshake --------------------------------------------------------------------------------


def test_the_handshake_from_hello_to_the_own_join() -> None:
    c = conn()
    assert (c.stage, c.greeted, c.join_outcome) == (JoinStage.WAITING, False, None)
    assert c.receive(1.1, b"HELLO welcome\n") == [Hello("welcome")]
    assert c.greeted
    c.sent(1.2, "Alice")
    assert (c.stage, c.offered, c.join_outcome) == (JoinStage.OFFERED, "Alice", None)
    assert c.receive(1.3, b"OK Alice\n") == [Ok("Alice")]
    assert (c.stage, c.name, c.is_member, c.has_joined) == (JoinStage.ACCEPTED, "Alice", True, False)
    assert (c.counters.counts.members, c.counters.counts.joins) == (1, 1)
    # Others' JOINs are no answer; the own JOIN (in any case) ends the handshake and tells the numbering.
    assert c.receive(1.4, b"JOIN 6 bob\nJOIN 7 ALICE\n") == [Join(7, "ALICE")]
    assert (c.stage, c.join_outcome, c.seqs, c.last_seq, c.has_joined) == (
        JoinStage.JOINED,
        JoinOutcome.OK,
        True,
        7,
        True,
    )
    c.sent(1.5, "hello")  # chat once joined: not a name
    assert c.stage is JoinStage.JOINED


def test_an_unnumbered_server_is_detected_from_the_own_join() -> None:
    c = joined(seqs=False)
    c.receive(2.0, b"MSG x b=x n=0 t=1.0\nMSG x b=x n=1 t=1.0\nLEAVE x quit\n")
    assert c.seqs is False
    assert c.counters.counts.seq_anomalies == 0
    assert c.counters.counts.delivered == 2


@pytest.mark.parametrize(
    "answer, outcome, stage",
    [
        (b"ERR name-taken taken\n", JoinOutcome.TAKEN, JoinStage.WAITING),
        (b"ERR invalid-name bad\n", JoinOutcome.INVALID, JoinStage.WAITING),
        (b"ERR full full\n", JoinOutcome.FULL, JoinStage.ENDED),
        (b"ERR line-too-long long\n", JoinOutcome.REFUSED, JoinStage.WAITING),
        (b"BYE go away\n", JoinOutcome.BYE, JoinStage.ENDED),
    ],
)
def test_a_refused_name(answer: bytes, outcome: JoinOutcome, stage: JoinStage) -> None:
    c = conn()
    c.receive(1.1, b"HELLO hi\n")
    c.sent(1.2, "race0")
    (event,) = c.receive(1.3, answer)
    assert isinstance(event, (Err, Bye))
    assert (c.join_outcome, c.refusal, c.stage, c.is_member) == (outcome, event, stage, False)


def test_another_name_after_a_taken_one_on_the_same_connection() -> None:
    c = conn()
    c.receive(1.1, b"HELLO hi\n")
    c.sent(1.2, "race0")
    c.receive(1.3, b"ERR name-taken taken\n")
    c.sent(1.4, "b1")
    assert (c.stage, c.offered, c.join_outcome, c.refusal) == (JoinStage.OFFERED, "b1", None, None)
    c.receive(1.5, b"OK b1\nJOIN 3 b1\n")
    assert c.join_outcome is JoinOutcome.OK and c.name == "b1"


@pytest.mark.parametrize(
    "greeting, outcome, refused",
    [(b"ERR full server full\n", JoinOutcome.FULL, 1), (b"ERR timeout slow\n", JoinOutcome.REFUSED, 0)],
)
def test_a_refusal_instead_of_the_greeting(greeting: bytes, outcome: JoinOutcome, refused: int) -> None:
    c = conn()
    c.receive(1.1, greeting)
    assert (c.greeted, c.join_outcome, c.stage) == (False, outcome, JoinStage.ENDED)
    assert c.counters.counts.refused == refused
    c.sent(1.2, "a")  # too late: no offer is pending after a final refusal
    assert c.stage is JoinStage.ENDED


def test_a_close_during_the_handshake_ends_it_as_eof() -> None:
    c = conn()
    c.receive(1.1, b"HELLO hi\n")
    c.sent(1.2, "a")
    c.lost(1.3)
    assert (c.join_outcome, c.stage, c.is_open) == (JoinOutcome.EOF, JoinStage.ENDED, False)


def test_a_timed_out_handshake_counts_unless_the_name_was_accepted() -> None:
    c = conn()
    c.receive(1.1, b"HELLO hi\n")
    c.sent(1.2, "a")
    assert c.handshake_timed_out() is JoinOutcome.TIMEOUT
    assert c.counters.counts.timeouts == 1
    accepted = conn()
    accepted.receive(1.1, b"HELLO hi\n")
    accepted.sent(1.2, "a")
    accepted.receive(1.3, b"OK a\n")
    # Accepted, but no own JOIN: joined as far as the bot goes; the checker reports the missing JOIN.
    assert accepted.handshake_timed_out() is JoinOutcome.OK
    assert (accepted.counters.counts.timeouts, accepted.has_joined) == (0, True)


def test_a_leave_request_is_no_name_and_makes_the_close_a_quit() -> None:
    c = conn()
    c.receive(1.1, b"HELLO hi\n")
    c.sent(1.2, "/quit")
    assert (c.stage, c.quit_sent) == (JoinStage.WAITING, True)


# -- routing --------------------------------------------------------------------------------------


def test_answers_for_a_bot_are_the_handshake_lines_only() -> None:
    c = joined()
    answers = c.receive(
        2.0, b"MSG 6 x b=x n=0 t=1.0\nUSERS a x\nLEAVE 7 x quit\nnonsense\nMSG 8 a b=b1 n=0 t=1.0\n"
    )
    assert answers == ()
    assert c.receive(2.1, b"BYE server shutting down\n") == [Bye("server shutting down")]


def test_replies_route_users_own_echoes_and_lines_no_event_fits() -> None:
    c = joined(replies=True)
    other = b"MSG 6 x b=x n=0 t=1.0\n"
    own = b"MSG 7 a b=b1 n=0 t=1.5\n"
    same_name_other_bot = b"MSG 8 a b=zz n=0 t=1.5\n"
    answers = c.receive(2.0, other + own + same_name_other_bot + b"USERS a x\nnonsense\nJOIN 9 y\n")
    assert answers[:2] == [Msg(7, "a", "b=b1 n=0 t=1.5"), Users(("a", "x"))]
    assert isinstance(answers[2], RemoteProtocolError) and len(answers) == 3


# -- live counters --------------------------------------------------------------------------------


def test_counters_see_seq_gaps_and_fifo_step_backs() -> None:
    c = joined(sample_every=1)  # every line feeds the live figures
    c.receive(2.0, b"MSG 6 x b=x n=1 t=1.0\nMSG 8 x b=x n=0 t=1.0\nMSG 9 a b=b1 n=3 t=1.0\nJOIN 11 y\n")
    counts = c.counters.counts
    assert counts.seq_anomalies == 2  # 6 -> 8, 9 -> 11
    assert counts.fifo_anomalies == 1  # n=1 then n=0 from x
    assert counts.delivered == 3
    assert c.last_echo_n == 3  # its own message (bot b1, name a)
    assert c.counters.latency.count == 3


def test_a_seq_that_is_not_a_number_is_an_anomaly() -> None:
    c = joined()
    c.receive(2.0, b"MSG x6 x b=x n=1 t=1.0\nLEAVE y x quit\n")
    assert c.counters.counts.seq_anomalies == 2 and c.last_seq == 5


def test_live_figures_sample_other_senders_but_never_miss_an_own_echo() -> None:
    c = joined()
    lines = [f"MSG {i + 6} x b=x n={i} t=1.0" for i in range(40)] + ["MSG 46 a b=b1 n=7 t=1.0"]
    c.receive(2.0, ("\n".join(lines) + "\n").encode())
    assert c.counters.counts.delivered == 41
    assert c.counters.latency.count == 40 // 4 + 1
    assert c.last_echo_n == 7
    assert c.counters.counts.seq_anomalies == 0


def test_sample_every_zero_samples_nobody_else() -> None:
    c = joined(sample_every=0)
    c.receive(2.0, b"MSG 6 x b=x n=0 t=1.0\nMSG 7 x b=x n=1 t=1.0\nMSG 8 a b=b1 n=0 t=1.0\n")
    assert c.counters.latency.count == 2  # the first line of another client, then only its own
    assert c.last_echo_n == 0


def test_the_counts_of_open_connections_and_members() -> None:
    counters = LiveCounters()
    a = RecordingConnection(ClientHistory("a", "a"), counters)
    b = RecordingConnection(ClientHistory("b", "b"), counters)
    for c, name in ((a, "a"), (b, "b")):
        c.connected(1.0, 1.0)
        c.receive(1.1, b"HELLO hi\n")
        c.sent(1.2, name)
        c.receive(1.3, f"OK {name}\nJOIN 1 {name}\n".encode())
    assert (counters.counts.connected, counters.counts.members, counters.counts.joins) == (2, 2, 2)
    a.close(2.0, HowClosed.DROP)
    b.lost(2.0)
    assert (counters.counts.connected, counters.counts.members, counters.counts.joins) == (0, 0, 2)
