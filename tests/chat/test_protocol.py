"""Pure tests of chat/protocol.py: no sockets, no threads, table driven."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from chat import protocol
from chat.protocol import (
    LINE_TOO_LONG,
    Blank,
    Bye,
    Chat,
    Err,
    ErrorCode,
    Hello,
    Join,
    Leave,
    LineBuffer,
    LineTooLong,
    LocalProtocolError,
    Msg,
    Ok,
    Quit,
    RemoteProtocolError,
    ServerEvent,
    UnknownCommand,
    Users,
    Who,
)

# -- server lines: format and parse -------------------------------------------------

ROUND_TRIPS: list[tuple[ServerEvent, bytes]] = [
    (Hello("welcome; send your username"), b"HELLO welcome; send your username\n"),
    (Err(ErrorCode.FULL, "the server is full"), b"ERR full the server is full\n"),
    (Err(ErrorCode.INVALID_NAME, "bad name"), b"ERR invalid-name bad name\n"),
    (Err(ErrorCode.NAME_TAKEN, "taken"), b"ERR name-taken taken\n"),
    (Err(ErrorCode.LINE_TOO_LONG, "too long"), b"ERR line-too-long too long\n"),
    (Err(ErrorCode.BAD_ENCODING, "bad"), b"ERR bad-encoding bad\n"),
    (Err(ErrorCode.UNKNOWN_COMMAND, "what?"), b"ERR unknown-command what?\n"),
    (Err(ErrorCode.TIMEOUT, "too slow"), b"ERR timeout too slow\n"),
    (Ok("alice"), b"OK alice\n"),
    (Join(1, "alice"), b"JOIN 1 alice\n"),
    (Msg(2, "alice", "hello world"), b"MSG 2 alice hello world\n"),
    (Msg(3, "bob", "  spaced  out "), b"MSG 3 bob   spaced  out \n"),
    (Msg(4, "bob", "caf\u00e9 \u2603\tTab"), "MSG 4 bob caf\u00e9 \u2603\tTab\n".encode()),
    (Msg(5, "bob", "42"), b"MSG 5 bob 42\n"),
    (Leave(6, "alice", "quit"), b"LEAVE 6 alice quit\n"),
    (Leave(7, "bob", "disconnected"), b"LEAVE 7 bob disconnected\n"),
    (Leave(8, "carol", "slow"), b"LEAVE 8 carol slow\n"),
    (Users(("alice", "Bob", "carol")), b"USERS alice Bob carol\n"),
    (Users(("alice",)), b"USERS alice\n"),
    (Bye("goodbye"), b"BYE goodbye\n"),
    (Bye("server shutting down"), b"BYE server shutting down\n"),
]


@pytest.mark.parametrize(("event", "wire"), ROUND_TRIPS, ids=lambda v: repr(v)[:40])
def test_format_then_parse_round_trips(event: ServerEvent, wire: bytes) -> None:
    assert protocol.format_event(event) == wire
    assert protocol.parse_server_line(wire.decode()[:-1]) == event
    assert protocol.parse_server_line(wire.decode()[:-1], seqs=True) == event


def test_format_msg_matches_format_event() -> None:
    assert protocol.format_msg(9, "al", "x y") == protocol.format_event(Msg(9, "al", "x y"))
    seqs = iter(range(5, 100))
    assert protocol.format_msgs("al", ["a", "b c"], seqs) == [b"MSG 5 al a\n", b"MSG 6 al b c\n"]
    assert next(seqs) == 7  # one seq per text, none taken beyond the last


def test_format_err_matches_format_event() -> None:
    assert protocol.format_err(ErrorCode.TIMEOUT, "t") == b"ERR timeout t\n"


@pytest.mark.parametrize(
    "event",
    [Msg(1, "a", "x\ny"), Msg(1, "a", "x\r"), Hello("a\nb"), Bye("\r"), Err(ErrorCode.FULL, "a\nb")],
    ids=repr,
)
def test_format_refuses_line_breaks_as_our_bug(event: ServerEvent) -> None:
    with pytest.raises(LocalProtocolError, match=r"must not contain a line break"):
        protocol.format_event(event)


UNNUMBERED: list[tuple[str, ServerEvent]] = [
    ("JOIN alice", Join(None, "alice")),
    ("MSG alice hi there", Msg(None, "alice", "hi there")),
    ("MSG alice", Msg(None, "alice", "")),
    ("LEAVE alice quit", Leave(None, "alice", "quit")),
    ("LEAVE alice", Leave(None, "alice", "")),
]


@pytest.mark.parametrize(("line", "event"), UNNUMBERED)
def test_parse_unnumbered_broadcasts(line: str, event: ServerEvent) -> None:
    assert protocol.parse_server_line(line) == event
    assert protocol.parse_server_line(line, seqs=False) == event


@pytest.mark.parametrize(
    ("line", "seqs", "event"),
    [
        # A guess per line: "12 apples" could be a seq and a name with no text.
        ("MSG 12 apples", None, Msg(None, "12", "apples")),
        ("MSG 12 apples", True, Msg(12, "apples", "")),
        ("MSG 12 bob hi", False, Msg(None, "12", "bob hi")),
        ("MSG 12 bob hi", None, Msg(12, "bob", "hi")),
        ("JOIN 3 bob", False, None),
        ("MSG \u0661 bob hi", None, Msg(None, "\u0661", "bob hi")),  # Arabic-Indic digit is no seq
    ],
)
def test_parse_seq_styles(line: str, seqs: bool | None, event: ServerEvent | None) -> None:
    if event is None:
        with pytest.raises(RemoteProtocolError):
            protocol.parse_server_line(line, seqs=seqs)
    else:
        assert protocol.parse_server_line(line, seqs=seqs) == event


@pytest.mark.parametrize(
    "line",
    ["", "hello", "msg 1 a b", "MSG", "MSG ", "JOIN", "JOIN a b c", "OK", "ERR nope text", "ERR", "LEAVE"],
)
def test_parse_refuses_bad_server_lines(line: str) -> None:
    with pytest.raises(RemoteProtocolError, match=r"^not a server line") as info:
        protocol.parse_server_line(line)
    assert info.value.code is ErrorCode.UNKNOWN_COMMAND


def test_parse_users_empty_and_many() -> None:
    assert protocol.parse_server_line("USERS") == Users(())
    assert protocol.parse_server_line("USERS a b") == Users(("a", "b"))


def test_sort_names_case_insensitive_ties_by_bytes() -> None:
    assert protocol.sort_names(["bob", "Alice", "alice", "Carol", "_x", "-y", "9"]) == (
        "-y",
        "9",
        "_x",  # "_" sorts before the lower-case letters
        "Alice",
        "alice",
        "bob",
        "Carol",
    )


# -- client lines ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("raw", "text"),
    [
        (b"hello", "hello"),
        (b"", ""),
        (b"tab\there", "tab\there"),
        ("caf\u00e9 \u2603 \U0001f600".encode(), "caf\u00e9 \u2603 \U0001f600"),
    ],
)
def test_decode_line_accepts(raw: bytes, text: str) -> None:
    assert protocol.decode_line(raw) == text


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        (b"\xff\xfe", r"^line is not valid UTF-8$"),
        (b"caf\xc3", r"^line is not valid UTF-8$"),  # truncated sequence
        (b"\xed\xa0\x80", r"^line is not valid UTF-8$"),  # a UTF-16 surrogate
        (b"a\x00b", r"^control characters are not allowed$"),
        (b"\x7f", r"^control characters are not allowed$"),
        (b"\x1b[31mred", r"^control characters are not allowed$"),
        (b"bell\x07", r"^control characters are not allowed$"),
        (b"cr\rinside", r"^control characters are not allowed$"),
        (b"\x1f", r"^control characters are not allowed$"),
        ("nel\u0085".encode(), r"^control characters are not allowed$"),
        ("\u0080".encode(), r"^control characters are not allowed$"),
        ("\u009f".encode(), r"^control characters are not allowed$"),
        ("ls\u2028".encode(), r"^control characters are not allowed$"),
        ("ps\u2029".encode(), r"^control characters are not allowed$"),
    ],
)
def test_decode_line_refuses(raw: bytes, message: str) -> None:
    with pytest.raises(RemoteProtocolError, match=message) as info:
        protocol.decode_line(raw)
    assert info.value.code is ErrorCode.BAD_ENCODING


@pytest.mark.parametrize(
    ("text", "kind"),
    [
        ("hello", Chat("hello")),
        ("  padded  ", Chat("  padded  ")),
        ("/who", Who()),
        ("/who is here", Who()),
        ("/quit", Quit()),
        ("/quit now please", Quit()),
        ("exit", Quit()),
        ("EXIT", Chat("EXIT")),
        ("Exit", Chat("Exit")),
        ("exit now", Chat("exit now")),
        (" exit", Chat(" exit")),
        (" /who", Chat(" /who")),
        ("/", UnknownCommand("/")),
        ("/ who", UnknownCommand("/")),
        ("/nick bob", UnknownCommand("/nick")),
        ("/WHO", UnknownCommand("/WHO")),
        ("/quitnow", UnknownCommand("/quitnow")),
        ("//", UnknownCommand("//")),
        ("", Blank()),
        ("   ", Blank()),
        ("\t \t", Blank()),
    ],
)
def test_classify_client_line(text: str, kind: protocol.ClientLine) -> None:
    assert protocol.classify_client_line(text) == kind


@pytest.mark.parametrize(
    ("text", "leaves"),
    [("exit", True), ("/quit", True), ("/quit x", True), ("EXIT", False), ("/who", False), ("alice", False)],
)
def test_is_leave_request(text: str, leaves: bool) -> None:
    assert protocol.is_leave_request(text) is leaves


@pytest.mark.parametrize(
    "name",
    ["a", "alice", "Alice_99", "x-y", "_", "-", "9", "a" * 20, "ABCdef_-0123456789zz"],
)
def test_check_name_accepts(name: str) -> None:
    protocol.check_name(name)


@pytest.mark.parametrize(
    "name",
    [
        "",
        " ",
        "   ",
        "\t",
        "a" * 21,
        "alice bob",
        " alice",
        "alice ",
        "al.ice",
        "al!ce",
        "a/b",
        "al@ice",
        "caf\u00e9",
        "\u00e9",
        "\u0430lice",  # Cyrillic a: a confusable
        "\uff41",  # fullwidth a
        "\u0661",  # Arabic-Indic digit one
    ],
    ids=repr,
)
def test_check_name_refuses(name: str) -> None:
    with pytest.raises(RemoteProtocolError, match=r"^a name is 1 to 20 letters") as info:
        protocol.check_name(name)
    assert info.value.code is ErrorCode.INVALID_NAME


def test_name_key_is_case_insensitive() -> None:
    assert protocol.name_key("Alice") == protocol.name_key("aLICE") == "alice"


def test_encode_client_line() -> None:
    assert protocol.encode_client_line("hi \u2603") == "hi \u2603\n".encode()
    with pytest.raises(LocalProtocolError, match=r"must not contain a line break"):
        protocol.encode_client_line("a\nb")


# -- LineBuffer ----------------------------------------------------------------------


def feed_all(buf: LineBuffer, chunks: list[bytes]) -> list[bytes | LineTooLong]:
    out: list[bytes | LineTooLong] = []
    for chunk in chunks:
        out.extend(buf.feed(chunk))
    return out


@pytest.mark.parametrize(
    ("chunks", "lines"),
    [
        ([b"a\nb\n"], [b"a", b"b"]),
        ([b"he", b"llo\nwor", b"ld\n"], [b"hello", b"world"]),
        ([b"a\r\nb\r", b"\n"], [b"a", b"b"]),
        ([b"\n\n"], [b"", b""]),
        ([b"\r\n"], [b""]),
        ([b"a\rb\n"], [b"a\rb"]),  # a lone \r stays (decode_line refuses it)
        ([b"a\r\r\n"], [b"a\r"]),  # only one \r belongs to the terminator
        ([b"no newline yet"], []),
    ],
)
def test_line_buffer_splits(chunks: list[bytes], lines: list[bytes]) -> None:
    assert feed_all(LineBuffer(100), chunks) == lines


def test_line_buffer_pending_counts_the_partial_line() -> None:
    buf = LineBuffer(100)
    buf.feed(b"a\nbcd")
    assert buf.pending == 3


@pytest.mark.parametrize(
    ("line", "ok"),
    [
        (b"x" * 10 + b"\n", True),
        (b"x" * 10 + b"\r\n", True),  # the terminator is not counted
        (b"x" * 11 + b"\n", False),
        (b"x" * 11 + b"\r\n", False),
        (b"x" * 9 + b"\r\r\n", True),  # 9 bytes and a \r: 10
    ],
)
def test_line_buffer_limit_exactly_at_and_over(line: bytes, ok: bool) -> None:
    for chunks in ([line], [bytes([b]) for b in line]):  # whole, then byte by byte
        out = feed_all(LineBuffer(10), [*chunks, b"next\n"])
        assert out == ([line.rstrip(b"\n").removesuffix(b"\r")] if ok else [LINE_TOO_LONG]) + [b"next"]


def test_line_buffer_one_mib_line_in_chunks_yields_one_marker_and_bounded_memory() -> None:
    buf = LineBuffer(4096)
    out: list[bytes | LineTooLong] = []
    chunk = b"y" * 8192
    for _ in range(128):  # 1 MiB, no newline
        out.extend(buf.feed(chunk))
        assert buf.pending <= 4096 + 1 + len(chunk)
    assert out == [LINE_TOO_LONG]
    assert buf.pending == 0  # the tail of an over-long line is dropped as it arrives
    out = buf.feed(b"zzz\nafter\n")
    assert out == [b"after"]  # the rest up to the newline is discarded silently


def test_line_buffer_lines_after_a_too_long_line_survive() -> None:
    buf = LineBuffer(5)
    assert buf.feed(b"ok\n" + b"x" * 50 + b"\nfine\r\nalso\n") == [b"ok", LINE_TOO_LONG, b"fine", b"also"]


def test_line_buffer_unterminated_tail_at_limit_plus_cr_is_not_yet_too_long() -> None:
    buf = LineBuffer(5)
    assert buf.feed(b"12345\r") == []  # could still end in \n: a valid line
    assert buf.feed(b"\n") == [b"12345"]
    assert buf.feed(b"123456") == []  # limit + 1: not reported before a longer tail or the newline
    assert buf.feed(b"7") == [LINE_TOO_LONG]
    assert buf.feed(b"\n") == []


def test_line_buffer_byte_by_byte() -> None:
    data = b"alpha\r\nbeta\n" + b"q" * 20 + b"\ngamma\n"
    buf = LineBuffer(8)
    assert feed_all(buf, [bytes([b]) for b in data]) == [b"alpha", b"beta", LINE_TOO_LONG, b"gamma"]


def test_line_buffer_refuses_a_zero_limit() -> None:
    with pytest.raises(ValueError, match=r"^max_line must be at least 1$"):
        LineBuffer(0)


def test_line_too_long_marker_repr() -> None:
    assert repr(LINE_TOO_LONG) == "LineTooLong()"


# -- property: framing does not depend on how the stream is cut ---------------------

_STREAM = st.lists(
    st.one_of(
        st.binary(max_size=12).map(lambda b: b.replace(b"\n", b"")),
        st.sampled_from([b"\n", b"\r\n", b"\r", b"x" * 20]),
    ),
    max_size=30,
).map(b"".join)


@settings(max_examples=300, deadline=None)
@given(
    data=_STREAM,
    cuts=st.lists(st.integers(min_value=0, max_value=400), max_size=12),
    limit=st.integers(1, 16),
)
def test_any_split_yields_the_same_lines(data: bytes, cuts: list[int], limit: int) -> None:
    whole = LineBuffer(limit).feed(data)
    points = sorted({min(c, len(data)) for c in cuts})
    chunks = [data[a:b] for a, b in zip([0, *points], [*points, len(data)], strict=True)]
    assert feed_all(LineBuffer(limit), chunks) == whole
    # And a reference model: split on \n, drop one trailing \r, mark what is over the limit.
    *complete, _tail = data.split(b"\n")
    expected: list[bytes | LineTooLong] = []
    for line in complete:
        line = line.removesuffix(b"\r")
        expected.append(line if len(line) <= limit else LINE_TOO_LONG)
    if len(_tail) > limit + 1:
        expected.append(LINE_TOO_LONG)
    assert whole == expected
