"""chat/protocol.py's rules for judges of recorded lines: numbering style, refusals, recorded line text."""

from __future__ import annotations

import pytest

from chat.protocol import (
    DEFAULT_MAX_LINE,
    Bye,
    Err,
    ErrorCode,
    Hello,
    Join,
    Leave,
    LineBuffer,
    LocalProtocolError,
    Msg,
    Ok,
    RemoteProtocolError,
    ServerEvent,
    Users,
    broadcast_numbering,
    decode_line,
    parse_server_line,
    refusal_of,
    server_line,
)


@pytest.mark.parametrize(
    ("line", "numbered"),
    [
        ("JOIN 5 alice", True),
        ("JOIN 05 alice", True),
        ("JOIN 5 ", True),
        ("LEAVE 5 alice quit", True),
        ("JOIN alice", False),
        ("JOIN 5", False),  # a user called 5
        ("LEAVE alice quit", False),
        ("LEAVE 5 alice", False),  # user "5" left for the reason "alice": two fields, unnumbered
        ("JOIN ５ alice", False),  # not an ASCII digit: malformed, so unnumbered
        ("JOIN 5 alice extra", False),
        ("LEAVE 5 alice quit extra", False),
        ("MSG 5 alice hi", None),
        ("OK alice", None),
        ("USERS alice bob", None),
        ("JOINED 5 alice", None),
        ("", None),
    ],
)
def test_broadcast_numbering(line: str, numbered: bool | None) -> None:
    assert broadcast_numbering(line) is numbered


@pytest.mark.parametrize(
    ("text", "refusal"),
    [
        ("hello", None),
        ("tab\tis fine", None),
        ("", None),
        ("bell\x07", ErrorCode.BAD_ENCODING),
        ("nul\x00", ErrorCode.BAD_ENCODING),
        ("escape \x1b[31mred", ErrorCode.BAD_ENCODING),
        ("del\x7f", ErrorCode.BAD_ENCODING),
        ("nel\u0085", ErrorCode.BAD_ENCODING),
        ("sep\u2028", ErrorCode.BAD_ENCODING),
        ("nbsp\u00a0and é are text", None),  # the first printable code points past C1
        ("x" * DEFAULT_MAX_LINE, None),
        ("x" * (DEFAULT_MAX_LINE + 1), ErrorCode.LINE_TOO_LONG),
        ("é" * (DEFAULT_MAX_LINE // 2), None),  # 2 bytes each: exactly the limit
        ("é" * (DEFAULT_MAX_LINE // 2 + 1), ErrorCode.LINE_TOO_LONG),
        ("x" * (DEFAULT_MAX_LINE + 1) + "\x07", ErrorCode.LINE_TOO_LONG),  # the length is judged first
    ],
)
def test_refusal_of(text: str, refusal: ErrorCode | None) -> None:
    assert refusal_of(text) is refusal


def test_refusal_of_follows_the_server_rules() -> None:
    """What refusal_of refuses is what LineBuffer and decode_line refuse, and nothing else."""
    for text in ["ok", "a\x01b", "tab\t", "x" * 40, "x" * 41, "ü" * 20, "ü" * 21, "\x7f"]:
        raw = text.encode()
        (framed,) = LineBuffer(max_line=40).feed(raw + b"\n")
        expected: ErrorCode | None = None
        if not isinstance(framed, bytes):
            expected = ErrorCode.LINE_TOO_LONG
        else:
            try:
                decode_line(framed)
            except RemoteProtocolError as exc:
                expected = exc.code
        assert refusal_of(text, max_line=40) is expected, text


ROUND_TRIPS: list[tuple[ServerEvent, str]] = [
    (Join(5, "alice"), "JOIN 5 alice"),
    (Join(None, "alice"), "JOIN alice"),
    (Msg(7, "bob", "hi there"), "MSG 7 bob hi there"),
    (Msg(None, "bob", "hi there"), "MSG bob hi there"),
    (Msg(None, "bob", "12 monkeys"), "MSG bob 12 monkeys"),
    (Leave(9, "carol", "quit"), "LEAVE 9 carol quit"),
    (Leave(None, "carol", "slow"), "LEAVE carol slow"),
    (Ok("alice"), "OK alice"),
    (Users(("alice", "Bob")), "USERS alice Bob"),
    (Users(()), "USERS"),
    (Hello("welcome"), "HELLO welcome"),
    (Bye("goodbye"), "BYE goodbye"),
    (Err(ErrorCode.NAME_TAKEN, "the name is taken"), "ERR name-taken the name is taken"),
]


@pytest.mark.parametrize(("event", "text"), ROUND_TRIPS)
def test_server_line(event: ServerEvent, text: str) -> None:
    assert server_line(event) == text


@pytest.mark.parametrize(("event", "text"), [rt for rt in ROUND_TRIPS if not isinstance(rt[0], Msg)])
def test_server_line_parses_back(event: ServerEvent, text: str) -> None:
    assert parse_server_line(server_line(event)) == event


def test_server_line_parses_back_in_its_style() -> None:
    # A numbered MSG whose text starts with a number needs the style to be known.
    for event in (Msg(7, "bob", "hi"), Msg(None, "bob", "12 monkeys"), Msg(3, "bob", "12 monkeys")):
        assert parse_server_line(server_line(event), seqs=event.seq is not None) == event


@pytest.mark.parametrize("event", [Msg(None, "bob", "two\nlines"), Msg(1, "bob", "a\rb"), Bye("x\ny")])
def test_server_line_refuses_a_line_break(event: ServerEvent) -> None:
    with pytest.raises(LocalProtocolError, match=r"must not contain a line break"):
        server_line(event)
