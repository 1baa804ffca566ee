"""Parsing histories into a ParsedRun."""

from __future__ import annotations

import pytest

from harness.checker import CheckConfig, ParsedLine, SeqStyle, parse_run
from harness.checker.parse import LineKind, LineParser, MessageTable
from harness.record.history import ClientHistory, Connected, Received, Sent
from tests.harness.checker.histories import P, base, client, index_of


def test_parse_run_exposes_members_and_messages() -> None:
    run = parse_run(base())
    assert [m.client for m in run.members] == ["alice", "bob"]
    assert len(run.table) == 5
    assert run.seq_global


# -- lines -----------------------------------------------------------------------------


def _parser(seqs: bool | None = True) -> LineParser:
    return LineParser(seqs, MessageTable())


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("JOIN 3 Alice", ParsedLine(LineKind.JOIN, "JOIN 3 Alice", True, 3, "Alice", "alice")),
        (
            "LEAVE 4 Alice slow",
            ParsedLine(LineKind.LEAVE, "LEAVE 4 Alice slow", True, 4, "Alice", "alice", detail="slow"),
        ),
        (
            "MSG 5 bob hi there",
            ParsedLine(LineKind.MSG, "MSG 5 bob hi there", True, 5, "bob", "bob", detail="hi there"),
        ),
        ("USERS alice bob", ParsedLine(LineKind.USERS, "USERS alice bob", names=("alice", "bob"))),
        ("OK Alice", ParsedLine(LineKind.OK, "OK Alice", name="Alice", key="alice")),
        ("HELLO welcome", ParsedLine(LineKind.HELLO, "HELLO welcome")),
        ("ERR name-taken taken", ParsedLine(LineKind.ERR, "ERR name-taken taken", detail="name-taken")),
        ("BYE goodbye", ParsedLine(LineKind.BYE, "BYE goodbye", detail="goodbye")),
        ("HOWDY", ParsedLine(LineKind.BAD, "HOWDY")),
        ("ERR no-such-code x", ParsedLine(LineKind.BAD, "ERR no-such-code x")),
    ],
)
def test_each_line_kind_is_parsed_into_named_fields(text: str, expected: ParsedLine) -> None:
    assert _parser().parse(text) == expected


def test_a_bot_message_is_interned_once_and_its_line_parsed_once() -> None:
    parser = _parser()
    text = "MSG 5 bob " + P("bob", 3, 12.5)
    p = parser.parse(text)
    assert parser.parse(text) is p
    assert (p.mid, p.due) == (0, 12.5)
    assert parser.table.describe(p.mid) == {"bot": "bob", "n": 3}
    q = parser.parse("MSG 6 carol " + P("bob", 3, 12.5))  # the same payload under another line
    assert q.mid == p.mid
    assert len(parser.table) == 1
    assert [line.line for line, _ in parser.msg_lines] == [p.line, q.line]


def test_the_style_is_read_from_join_and_leave_lines() -> None:
    assert parse_run(base()).seq_style is SeqStyle.NUMBERED
    assert parse_run(base(numbered=False)).seq_style is SeqStyle.UNNUMBERED
    assert parse_run([]).seq_style is SeqStyle.NONE
    mixed = base()
    mixed[1].events.insert(index_of(mixed[1], "MSG 3"), Received(1.5, "JOIN carol"))
    assert parse_run(mixed).seq_style is SeqStyle.MIXED


# -- clients -----------------------------------------------------------------------------


def test_a_member_stream_and_what_it_sent() -> None:
    run = parse_run(base())
    alice, bob = run.clients
    assert [p.line for p in bob.stream][:2] == ["JOIN 2 bob", "MSG 3 alice " + P("alice", 0, 2.0)]
    assert len(bob.stream) == len(bob.times) == 7
    assert [run.table.n[s.mid] for s in alice.sent] == [0, 1, 2]
    assert alice.sent[0].t == 2.0
    assert alice.clean_quit and alice.quit_at == 8.0
    assert (alice.join_seq, alice.last_seq, alice.contig_seq) == (1, 6, 6)
    assert bob.joins_seen == {"bob"}


def test_the_handshake_is_recorded_attempt_by_attempt() -> None:
    h = ClientHistory(
        "c",
        "c",
        events=[
            Connected(0.0, 0.0),
            Received(0.1, "HELLO hi"),
            Sent(0.2, "alice"),
            Received(0.3, "ERR name-taken taken"),
            Sent(0.4, "Alice2"),
            Received(0.5, "OK Alice2"),
            Received(0.6, "JOIN 1 Alice2"),
            Received(0.7, "OK again"),
        ],
    )
    (c,) = parse_run([h], CheckConfig(run_end=9.0)).clients
    assert [(a.name, a.reply, a.reply_t) for a in c.attempts] == [
        ("alice", "name-taken", 0.3),
        ("Alice2", "ok", 0.5),
    ]
    assert (c.name, c.key, c.ok_at, c.greeted_at, c.end_at) == ("Alice2", "alice2", 0.5, 0.1, 9.0)
    assert c.bad == ["OK again"]


def test_what_a_server_must_refuse_is_not_owed() -> None:
    histories = base()
    alice = client(histories, "alice")
    long = P("alice", 7, 6.0) + " " + "x" * 5000
    control = P("alice", 8, 6.5) + " \x1b[31m"
    i = index_of(alice, "BYE")
    alice.events[i - 1 : i - 1] = [Sent(6.0, long, 6.0), Sent(6.5, control, 6.5)]
    run = parse_run(histories)
    assert len(run.clients[0].sent) == 3
    assert len(run.table) == 5


def test_slow_readers_owe_no_latency() -> None:
    histories = base()
    histories[1].role = "slow"
    run = parse_run(histories)
    assert len(run.latencies) == run.clients[0].deliveries == 4
