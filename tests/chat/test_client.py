"""The terminal client's pure parts: escaping, styles, rendering, parsing, echo rows.

The client driven as a user would, over real sockets and a TTY, is in
``test_client_e2e.py``.
"""

from __future__ import annotations

import io

import pytest
from rich.console import Console

from chat import client
from chat.protocol import Bye, Err, ErrorCode, Hello, Join, Leave, Msg, Ok, Users

# -- pure parts ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "shown"),
    [
        ("plain text", "plain text"),
        ("tab\tkept", "tab\tkept"),
        ("\x1b[31mred", "\\x1b[31mred"),
        ("bell\x07", "bell\\x07"),
        ("nul\x00", "nul\\x00"),
        ("cr\rlf\n", "cr\\x0dlf\\x0a"),
        ("del\x7f", "del\\x7f"),
        ("c1 csi\x9b2J", "c1 csi\\x9b2J"),
        ("bidi\u202eevil", "bidi\\u202eevil"),
        ("nel\u0085line", "nel\\x85line"),
        ("ls\u2028ps\u2029", "ls\\u2028ps\\u2029"),
        ("zażółć 日本", "zażółć 日本"),
    ],
)
def test_printable_escapes_control_characters(text: str, shown: str) -> None:
    assert client.printable(text) == shown


def test_user_style_is_stable_and_ignores_case() -> None:
    assert client.user_style("Alice") == client.user_style("alice") == client.user_style("ALICE")
    assert client.user_style("alice") in client.PALETTE
    assert "red" not in client.PALETTE
    assert len({client.user_style(f"user{i}") for i in range(40)}) > 3


def rendered(item: client.InboxItem, me: str | None = None) -> str:
    buffer = io.StringIO()
    console = Console(file=buffer, width=100, color_system=None, markup=False, highlight=False)
    text = client.render(item, "12:00:00", me)
    assert text is not None
    console.print(text, soft_wrap=True)
    return buffer.getvalue().rstrip("\n")


@pytest.mark.parametrize(
    ("item", "shown"),
    [
        (Msg(3, "bob", "hello"), "12:00:00 bob: hello"),
        (Msg(3, "bob", "[bold]x[/] :smile:"), "12:00:00 bob: [bold]x[/] :smile:"),
        (Msg(3, "bob", "\x1b]0;pwned\x07"), "12:00:00 bob: \\x1b]0;pwned\\x07"),
        (Join(1, "alice"), "12:00:00 --> alice joined"),
        (Leave(4, "alice", "slow"), "12:00:00 <-- alice left (slow)"),
        (Users(("alice", "bob")), "12:00:00 online (2): alice, bob"),
        (
            Err(ErrorCode.NAME_TAKEN, "the name bob is taken"),
            "12:00:00 error (name-taken): the name bob is taken",
        ),
        (Hello("welcome"), "12:00:00 server: welcome"),
        (Bye("goodbye"), "12:00:00 server: goodbye"),
        (Ok("alice"), "12:00:00 you are alice: /who lists who is here, exit leaves"),
        (client.Unreadable("WAT\x1b"), "12:00:00 unreadable line from the server: WAT\\x1b"),
    ],
)
def test_render(item: client.InboxItem, shown: str) -> None:
    assert rendered(item) == shown


def test_render_styles_without_markup() -> None:
    text = client.render(Msg(1, "bob", "[red]no[/red]"), "12:00:00", me="alice")
    assert text is not None
    assert text.plain == "12:00:00 bob: [red]no[/red]"
    assert any(client.user_style("bob") in str(span.style) for span in text.spans)
    join = client.render(Join(1, "bob"), "12:00:00")
    assert join is not None and all("dim" in str(span.style) for span in join.spans)
    err = client.render(Err(ErrorCode.UNKNOWN_COMMAND, "x"), "12:00:00")
    assert err is not None and any("red" in str(span.style) for span in err.spans)
    assert client.render(client.Closed(None), "12:00:00") is None


@pytest.mark.parametrize(
    ("raw", "parsed"),
    [
        (b"MSG 7 bob hi there", Msg(7, "bob", "hi there")),
        (b"JOIN 1 alice", Join(1, "alice")),
        (b"ERR full the server is full", Err(ErrorCode.FULL, "the server is full")),
        (b"WHAT is this", client.Unreadable("WHAT is this")),
        (b"MSG 2 bob \xff\xfe", Msg(2, "bob", "\ufffd\ufffd")),
    ],
)
def test_parse_line_never_raises(raw: bytes, parsed: client.InboxItem) -> None:
    assert client.parse_line(raw) == parsed


@pytest.mark.parametrize(
    ("shown", "columns", "rows"),
    [
        ("alice> hi", 80, 1),
        ("a" * 79, 80, 1),
        ("a" * 80, 80, 2),  # readline moves to a fresh row when a line exactly fills one
        ("a" * 81, 80, 2),
        ("a" * 200, 80, 3),
        ("日本" * 20, 80, 2),  # 80 cells
        ("x\x01" + "a" * 77, 80, 2),  # ^A takes two cells
        ("\t" + "a" * 72, 80, 2),
    ],
)
def test_echo_rows(shown: str, columns: int, rows: int) -> None:
    assert client.echo_rows(shown, columns) == rows
