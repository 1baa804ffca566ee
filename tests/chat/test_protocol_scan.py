"""chat/protocol.py's bulk scanner of received bytes: it finds what the parser finds, and nothing else."""

from __future__ import annotations

import re

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from chat.protocol import (
    Bye,
    Err,
    ErrorCode,
    Hello,
    Join,
    Leave,
    Msg,
    Ok,
    ServerEvent,
    Users,
    broadcast_scanner,
    format_event,
    parse_server_line,
    server_line,
)

#: A text grammar of two fields, like the harness's payload (``b=<bot> n=<counter>``).
TEXT = rb"b=(\S+) n=(\d+)"


def scan(block: bytes) -> list[tuple[bytes, ...]]:
    return broadcast_scanner(TEXT).findall(block)


def test_each_kind_of_broadcast_gives_its_fields() -> None:
    block = b"".join(
        [
            b"JOIN 1 alice\n",
            b"MSG 2 alice b=a n=7 and then padding\n",
            b"MSG bob b=b n=8\n",  # unnumbered: no seq
            b"LEAVE 3 alice quit\n",
        ]
    )
    assert scan(block) == [
        (b"", b"", b"", b"1"),
        (b"2", b"a", b"7", b""),
        (b"", b"b", b"8", b""),
        (b"", b"", b"", b"3"),
    ]


@pytest.mark.parametrize(
    "line",
    [
        b"MSG 4 alice hello there",  # a person's text, not the grammar
        b"MSG 4 alice",  # no text at all
        b"JOIN alice",  # unnumbered JOIN and LEAVE do not move a seq
        b"LEAVE alice quit",
        b"USERS alice bob",
        b"ERR name-taken b=a n=1",
        b"OK b=a",
        b"HELLO MSG 1 x b=a n=1",  # the grammar inside another line
        b" MSG 1 alice b=a n=1",  # not at the start of the line
    ],
)
def test_other_lines_are_skipped(line: bytes) -> None:
    assert scan(line + b"\n") == []


def test_a_block_is_scanned_line_by_line() -> None:
    block = b"MSG 1 a b=a n=0\nUSERS a\nMSG 2 a b=a n=1\nJOIN 3 b\n"
    assert [fields[0] or fields[-1] for fields in scan(block)] == [b"1", b"2", b"3"]


def test_the_text_pattern_sets_the_groups() -> None:
    scanner = broadcast_scanner(rb"t=(\d+\.\d+)")
    assert scanner.groups == 3
    assert scanner.findall(b"MSG 9 x t=1.5 pad\n") == [(b"9", b"1.5", b"")]


# -- agreement with the parser --------------------------------------------------------------

# Names start with a letter: an unnumbered MSG from a user called "5" reads as numbered, to the parser
# and to the scanner alike, but they split it differently (the ambiguity parse_server_line documents).
_NAMES = st.from_regex(r"[A-Za-z][A-Za-z0-9_-]{0,7}", fullmatch=True)
_SEQS = st.one_of(st.none(), st.integers(0, 10**9))
_PAYLOADS = st.builds(
    lambda bot, n, pad: f"b={bot} n={n}{pad}", _NAMES, st.integers(0, 10**6), st.sampled_from(["", " xx"])
)
_TEXT = st.one_of(_PAYLOADS, st.text(st.characters(min_codepoint=32, max_codepoint=126), max_size=20))
_EVENTS = st.one_of(
    st.builds(Msg, _SEQS, _NAMES, _TEXT),
    st.builds(Join, _SEQS, _NAMES),
    st.builds(Leave, _SEQS, _NAMES, st.sampled_from(["quit", "disconnected", "slow"])),
    st.builds(Users, st.lists(_NAMES, max_size=3).map(tuple)),
    st.builds(Ok, _NAMES),
    st.builds(Hello, st.just("welcome")),
    st.builds(Err, st.sampled_from(list(ErrorCode)), st.just("no")),
    st.builds(Bye, st.just("bye")),
)


def _expected(event: ServerEvent) -> tuple[bytes, ...] | None:
    """What the scanner must report for ``event``: the line read by the parser, its text by ``TEXT``."""
    parsed = parse_server_line(server_line(event))
    if isinstance(parsed, (Join, Leave)):
        return None if parsed.seq is None else (b"", b"", b"", str(parsed.seq).encode())
    if isinstance(parsed, Msg):
        text = re.match(TEXT, parsed.text.encode())
        if text is None:
            return None
        seq = b"" if parsed.seq is None else str(parsed.seq).encode()
        return (seq, *text.groups(), b"")
    return None


@settings(max_examples=300, deadline=None)
@given(st.lists(_EVENTS, max_size=12))
def test_the_scanner_agrees_with_the_parser(events: list[ServerEvent]) -> None:
    block = b"".join(server_line(e).encode() + b"\n" for e in events)
    expected = [fields for fields in map(_expected, events) if fields is not None]
    assert scan(block) == expected


def test_a_formatted_broadcast_is_found() -> None:
    block = format_event(Msg(12, "p0", "b=p0 n=0000000003 t=1.0")) + format_event(Join(13, "m1"))
    assert scan(block) == [(b"12", b"p0", b"0000000003", b""), (b"", b"", b"", b"13")]
