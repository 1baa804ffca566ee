"""The fast paths of chat.protocol: LineSplitter, split_msg, broadcast_seq, plain_chat_texts.

Each is checked against the reference it must agree with: LineSplitter against
LineBuffer (same framing, same limit), split_msg and broadcast_seq against
parse_server_line, plain_chat_texts (the server reader's) against decode_line and
classify_client_line line by line.
"""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from chat.protocol import (
    LINE_TOO_LONG,
    Chat,
    LineBuffer,
    LineSplitter,
    LineTooLong,
    Msg,
    RemoteProtocolError,
    broadcast_seq,
    classify_client_line,
    decode_line,
    overlong_line,
    parse_server_line,
    plain_chat_texts,
    split_msg,
)

# -- LineSplitter ---------------------------------------------------------------------------------


#: Received bytes in chunks, and the lines they frame: shared with the recording connection's tests.
FRAMING_CASES: list[tuple[list[bytes], list[str]]] = [
    ([b"HELLO hi\n"], ["HELLO hi"]),
    ([b"HEL", b"LO hi\nOK a", b"\n"], ["HELLO hi", "OK a"]),
    ([b"a\r\nb\r\n"], ["a", "b"]),
    ([b"\n\n"], ["", ""]),
    ([b"MSG 1 a \xff\xfe\n"], ["MSG 1 a \ufffd\ufffd"]),
    ([b"no newline yet"], []),
    ([b"caf\xc3", b"\xa9\n"], ["café"]),
    ([b"a\r", b"\n"], ["a"]),
    ([b"x\ry\n"], ["x\ry"]),
]


@pytest.mark.parametrize("chunks, lines", FRAMING_CASES)
def test_framing_keeps_every_line_across_reads(chunks: list[bytes], lines: list[str]) -> None:
    splitter = LineSplitter(max_line=100)
    got: list[str] = []
    for chunk in chunks:
        got += splitter.feed(chunk)
    assert got == lines


def test_a_line_over_the_limit_is_a_marker_and_the_next_line_is_intact() -> None:
    splitter = LineSplitter(max_line=8)
    assert splitter.feed(b"short\n" + b"x" * 20 + b"\nnext\n") == ["short", overlong_line(8), "next"]


def test_a_runaway_line_is_cut_as_soon_as_it_is_too_long_and_dropped_to_its_end() -> None:
    splitter = LineSplitter(max_line=10)
    assert splitter.feed(b"abc") == []
    assert splitter.feed(b"d" * 8) == []  # 11 bytes: may still be 10 and a "\r"
    assert splitter.feed(b"e") == [overlong_line(10)]  # 12: too long, whatever comes
    assert splitter.pending == 0
    assert splitter.feed(b"more of it" * 100) == []  # dropped as it arrives: no memory held
    assert splitter.pending == 0
    assert splitter.feed(b"end of it\nOK a\n") == ["OK a"]


def test_the_limit_leaves_room_for_a_carriage_return() -> None:
    splitter = LineSplitter(max_line=4)
    assert splitter.feed(b"abcd\r") == []
    assert splitter.feed(b"\n") == ["abcd"]
    assert splitter.feed(b"abcde") == []
    assert splitter.feed(b"f") == [overlong_line(4)]


def test_a_huge_line_in_small_pieces_costs_one_search_per_piece() -> None:
    splitter = LineSplitter(max_line=1 << 20)
    for _ in range(1000):
        assert splitter.feed(b"y" * 1000) == []
    assert splitter.pending == 1_000_000
    assert splitter.feed(b"\n") == ["y" * 1_000_000]


def test_max_line_must_be_positive() -> None:
    with pytest.raises(ValueError, match=r"^max_line must be at least 1$"):
        LineSplitter(0)


def _reference(chunks: list[bytes], max_line: int) -> list[str]:
    buf = LineBuffer(max_line=max_line)
    out: list[str] = []
    for chunk in chunks:
        for raw in buf.feed(chunk):
            out.append(overlong_line(max_line) if raw is LINE_TOO_LONG else raw.decode("utf-8", "replace"))  # type: ignore[union-attr]
    return out


@given(
    lines=st.lists(st.binary(max_size=30).map(lambda b: b.replace(b"\n", b"")), max_size=12),
    cuts=st.lists(st.integers(min_value=0, max_value=400), max_size=8),
    max_line=st.integers(min_value=1, max_value=25),
    crlf=st.booleans(),
)
def test_splitter_frames_exactly_like_line_buffer(
    lines: list[bytes], cuts: list[int], max_line: int, crlf: bool
) -> None:
    stream = b"".join(line + (b"\r\n" if crlf else b"\n") for line in lines) + b"tail"
    points = sorted({min(c, len(stream)) for c in cuts})
    chunks = [stream[a:b] for a, b in zip([0, *points], [*points, len(stream)], strict=True)]
    splitter = LineSplitter(max_line)
    got: list[str] = []
    for chunk in chunks:
        got += splitter.feed(chunk)
    assert got == _reference(chunks, max_line)


# -- split_msg and broadcast_seq ------------------------------------------------------------------


@pytest.mark.parametrize(
    "line, seqs, fields",
    [
        ("MSG 7 alice hello there", True, (7, "alice", "hello there")),
        ("MSG 7 alice ", True, (7, "alice", "")),
        ("MSG x7 alice hi", True, (None, "alice", "hi")),  # a numbering fault, counted by the caller
        ("MSG ٣ alice hi", True, (None, "alice", "hi")),  # not an ASCII number
        ("MSG 7 alice", True, None),
        ("MSG alice hello there", False, (None, "alice", "hello there")),
        ("MSG alice hello there", None, (None, "alice", "hello there")),
        ("MSG alice", False, None),
        ("JOIN 7 alice", True, None),
        ("MSGX 7 alice hi", True, None),
    ],
)
def test_split_msg(line: str, seqs: bool | None, fields: tuple[int | None, str, str] | None) -> None:
    assert split_msg(line, seqs) == fields


@given(
    seq=st.integers(min_value=0, max_value=10**12),
    name=st.from_regex(r"[A-Za-z0-9_-]{1,20}", fullmatch=True),
    text=st.text(st.characters(blacklist_characters="\n\r"), min_size=1, max_size=40),
    numbered=st.booleans(),
)
def test_split_msg_agrees_with_the_parser(seq: int, name: str, text: str, numbered: bool) -> None:
    line = f"MSG {seq} {name} {text}" if numbered else f"MSG {name} {text}"
    parsed = parse_server_line(line, seqs=numbered)
    assert isinstance(parsed, Msg)
    assert split_msg(line, numbered) == (parsed.seq, parsed.name, parsed.text)


@pytest.mark.parametrize(
    "line, seq",
    [
        ("JOIN 5 alice", 5),
        ("LEAVE 12 alice quit", 12),
        ("MSG 3 a b", 3),
        ("JOIN alice", None),
        ("LEAVE", None),
        ("JOIN -1 alice", None),
    ],
)
def test_broadcast_seq(line: str, seq: int | None) -> None:
    assert broadcast_seq(line) == seq


# -- plain_chat_texts ------------------------------------------------------------------------------


def _one_by_one(lines: list[bytes | LineTooLong]) -> list[str] | None:
    """The reader's line-by-line path: the texts if every line is chat, else None."""
    texts = []
    for raw in lines:
        if isinstance(raw, LineTooLong):
            return None
        try:
            kind = classify_client_line(decode_line(raw))
        except RemoteProtocolError:
            return None
        if not isinstance(kind, Chat):
            return None
        texts.append(kind.text)
    return texts


#: Pieces that sit on either side of what the fast path must tell apart.
_PIECES = st.sampled_from(
    [
        b"hi",
        b" ",
        b"\t",
        b"/",
        b"/who",
        b"/quit",
        b"exit",
        b"exit ",
        b"xexit",
        b"\r",
        b"\x00",
        b"\x1b[31m",
        b"\x7f",
        "\u0085".encode(),
        "\u2028".encode(),
        "\u00a0".encode(),
        "\u3000".encode(),
        b"\xc3",
        b"\xa9",
        b"\xff",
        "café".encode(),
        b"\x1c",
        b"\x0b",
        b"\x0c",
    ]
)
_LINE = st.one_of(
    st.lists(_PIECES, max_size=4).map(b"".join),
    st.binary(max_size=12).map(lambda b: b.replace(b"\n", b"")),
    st.text(max_size=12).map(lambda t: t.replace("\n", "").encode()),
)


@settings(max_examples=2000, deadline=None)
@given(lines=st.lists(st.one_of(_LINE, st.just(LINE_TOO_LONG)), max_size=8))
def test_plain_chat_texts_agrees_with_the_line_by_line_path(lines: list[bytes | LineTooLong]) -> None:
    assert plain_chat_texts(lines) == _one_by_one(lines)


@pytest.mark.parametrize(
    "lines, texts",
    [
        ([b"hello", b"caf\xc3\xa9", b" x "], ["hello", "café", " x "]),
        ([], []),
        ([b"hello", b"/who"], None),
        ([b"exit"], None),
        ([b"exit now"], ["exit now"]),
        ([b"a", b""], None),
        ([b"", b"a"], None),  # an empty first line: what the byte checks once let through
        ([b"a", b" b"], ["a", " b"]),  # blank-led: the byte checks defer to the precise one, which finds chat
        ([b"a", "\u3000".encode()], None),  # blank by str.strip
        ([b"a\rb"], None),
        ([b"\xff"], None),
        ([b"a", LINE_TOO_LONG], None),
    ],
)
def test_plain_chat_texts(lines: list[bytes | LineTooLong], texts: list[str] | None) -> None:
    assert plain_chat_texts(lines) == texts
