"""Sanity of the broken-server fixture itself, with a raw socket (the swarm's end-to-end
runs against it live with the swarm's tests).

In ``none`` mode it must speak the protocol correctly; each bug must show on the
wire the way its name says.
"""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from tests.helpers import REPO, ServerProcess

FIXTURE = Path(REPO) / "tests" / "fixtures" / "broken_server.py"

pytestmark = pytest.mark.e2e


class BrokenServer(ServerProcess):
    """``python tests/fixtures/broken_server.py --port 0 ...``, started and stopped by PID."""

    def __init__(self, *args: str) -> None:
        super().__init__(command=[sys.executable, str(FIXTURE), "--host", "127.0.0.1", "--port", "0", *args])


@contextmanager
def broken(*args: str) -> Iterator[BrokenServer]:
    server = BrokenServer(*args)
    server.start()
    try:
        yield server
    finally:
        err = server.stop()
        assert server.returncode == 0, err
        assert "Traceback" not in err, err


def test_none_speaks_the_protocol() -> None:
    with broken("--bug", "none") as srv, srv.connect() as a, srv.connect() as b:
        assert a.join("alice") == ["OK alice", "JOIN 1 alice"]
        b.expect("HELLO ")
        b.send("ALICE")
        assert b.expect("ERR name-taken")
        b.send("bad name")
        assert b.expect("ERR invalid-name")
        b.send("bob")
        assert b.read_until("JOIN ") == ["OK bob", "JOIN 2 bob"]
        assert a.expect("JOIN 2 bob")
        a.send("hello there")
        assert a.expect("MSG 3 alice hello there")
        assert b.expect("MSG 3 alice hello there")
        a.send("   ")
        a.send("/who")
        assert a.expect("USERS ") == "USERS alice bob"
        a.send("/nope")
        assert a.expect("ERR unknown-command")
        a.send("/quit")
        assert a.expect("BYE ")
        assert a.is_closed_by_peer()
        assert b.expect("LEAVE 4 alice quit")
        b.close()


def test_shutdown_says_bye() -> None:
    srv = BrokenServer().start()
    with srv.connect() as a:
        a.join("alice")
        err = srv.stop()
        assert a.read_until("BYE ")[-1] == "BYE server shutting down"
    assert srv.returncode == 0, err


def test_a_dropped_member_is_announced() -> None:
    with broken() as srv, srv.connect() as a:
        a.join("alice")
        b = srv.connect()
        b.join("bob")
        a.expect("JOIN 2 bob")
        b.close()
        assert a.expect("LEAVE 3 bob disconnected")


@pytest.mark.parametrize(
    ("bug", "lines"),
    [
        ("no-seq", ["JOIN bob", "MSG bob hi", "LEAVE bob quit"]),
        ("per-recipient-seq", ["JOIN 2 bob", "MSG 3 bob hi", "LEAVE 4 bob quit"]),
        ("forget-leave", ["JOIN 2 bob", "MSG 3 bob hi", "JOIN 4 carol"]),
    ],
)
def test_numbering_and_leave_bugs_on_the_wire(bug: str, lines: list[str]) -> None:
    with broken("--bug", bug) as srv, srv.connect() as a, srv.connect() as b, srv.connect() as c:
        a.join("alice")
        b.join("bob")
        b.send("hi")
        b.send("/quit")
        b.expect("MSG")
        b.expect("BYE")
        joined = c.join("carol")
        c.send("hey")
        got = [a.read_line() for _ in range(3)]
        assert got == lines
        if bug == "per-recipient-seq":  # carol numbers from 1 at her own JOIN
            assert joined == ["OK carol", "JOIN 1 carol"]
            assert c.expect("MSG ") == "MSG 2 carol hey"


def _chat(srv: BrokenServer, n: int) -> tuple[list[str], list[str]]:
    """alice sends ``n`` messages; what alice and bob read (MSG lines)."""
    with srv.connect() as a, srv.connect() as b:
        a.join("alice")
        b.join("bob")
        a.expect("JOIN 2 bob")
        for i in range(n):
            a.send(f"m{i}")
        a.send("/quit")
        got_a = [ln for ln in a.read_until("BYE") if ln.startswith("MSG")]
        got_b = [ln for ln in b.read_until("LEAVE") if ln.startswith("MSG")]
    return got_a, got_b


@pytest.mark.parametrize("bug", ["none", "lose", "duplicate", "reorder", "misnumber"])
def test_delivery_bugs_on_the_wire(bug: str) -> None:
    with broken("--bug", bug, "--every", "3") as srv:
        got_a, got_b = _chat(srv, 6)
    expected = [f"MSG {3 + i} alice m{i}" for i in range(6)]
    assert got_a == expected or bug == "misnumber"  # the sender always gets its own
    if bug == "none":
        assert got_b == expected
    elif bug == "lose":
        assert got_b == [ln for k, ln in enumerate(expected) if (k + 1) % 3]
    elif bug == "duplicate":
        assert len(got_b) == 8 and got_b[2] == got_b[3]
    elif bug == "reorder":
        assert got_b[:4] == [expected[0], expected[1], expected[3], expected[2]]
    else:  # misnumber: every 3rd broadcast skips a seq, every 6th repeats one
        assert [ln.split(" ")[1] for ln in got_b] == ["4", "5", "6", "6", "7", "8"]


def test_dup_name_accepts_another_case() -> None:
    with broken("--bug", "dup-name") as srv, srv.connect() as a, srv.connect() as b:
        a.join("alice")
        assert b.join("ALICE") == ["OK ALICE", "JOIN 2 ALICE"]


def test_a_usage_error_is_one_line() -> None:
    done = subprocess.run(
        [sys.executable, str(FIXTURE), "--bug", "nope", "--port", "0"],
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert done.returncode == 2
    assert done.stderr.count("\n") == 1 and "unknown bug" in done.stderr


def test_fixture_is_independent_of_chat() -> None:
    source = FIXTURE.read_text()
    assert "import chat" not in source and "from chat" not in source
