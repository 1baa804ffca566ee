"""Black-box tests of the wire protocol over real sockets: ``python -m chat.server --port 0``.

Each rule of the contract (docs/protocol.md) is checked byte for byte
against every ``--delivery`` design. "Nothing else arrived" is checked without
waiting for silence: since everything a connection receives leaves in the order
it was produced, a marker (a ``/who`` or a chat line) sent afterwards must be
the very next line.
"""

from __future__ import annotations

import re
import socket
import struct
import subprocess
import sys
import time

import pytest

from chat.session import HELLO_TEXT
from tests.helpers import REPO, LineClient
from tests.server_kit import DELIVERIES, ServerFactory, member, start_server_fixture  # noqa: F401  (a fixture)

pytestmark = pytest.mark.e2e


@pytest.fixture(params=DELIVERIES)
def delivery(request: pytest.FixtureRequest) -> str:
    return str(request.param)


def assert_closed(client: LineClient) -> None:
    """The server closed this connection: EOF (a reset counts too), no further line."""
    try:
        line = client.read_line()
    except ConnectionResetError:
        return
    assert line == "", f"expected the connection closed, got {line!r}"


# -- handshake, chat, /who, /quit: one session, byte for byte ---------------------------


def test_whole_session_byte_for_byte(start_server: ServerFactory, delivery: str) -> None:
    server = start_server("--delivery", delivery)
    with server.connect() as a, server.connect() as b:
        assert a.read_line() == f"HELLO {HELLO_TEXT}"
        a.send("alice")
        assert a.read_line() == "OK alice"
        assert a.read_line() == "JOIN 1 alice"
        assert b.read_line() == f"HELLO {HELLO_TEXT}"
        b.send(b"Bob\n")
        assert b.read_line() == "OK Bob"
        assert b.read_line() == "JOIN 2 Bob"
        assert a.read_line() == "JOIN 2 Bob"
        a.send("hello  world ")
        assert a.read_line() == "MSG 3 alice hello  world "
        assert b.read_line() == "MSG 3 alice hello  world "
        b.send("/who")
        assert b.read_line() == "USERS alice Bob"
        a.send("/quit")
        assert a.read_line().startswith("BYE ")
        assert_closed(a)
        assert b.read_line() == "LEAVE 4 alice quit"
        b.send("/who")
        assert b.read_line() == "USERS Bob"


def test_message_text_is_broadcast_as_sent(start_server: ServerFactory, delivery: str) -> None:
    server = start_server("--delivery", delivery)
    with member(server, "alice") as a, member(server, "bob") as b:
        a.expect("JOIN 2 bob")
        texts = [
            "  leading and trailing  ",
            "tab\tinside",
            "caf\u00e9 \u2603 \U0001f600",
            "EXIT",
            "Exit",
            " exit",
        ]
        texts += ["exit now", " /who", "42", "MSG 99 mallory forged"]
        a.send("".join(t + "\n" for t in texts).encode())
        for seq, text in enumerate(texts, start=3):
            assert a.read_line() == f"MSG {seq} alice {text}"
            assert b.read_line() == f"MSG {seq} alice {text}"


def test_blank_lines_are_ignored(start_server: ServerFactory, delivery: str) -> None:
    server = start_server("--delivery", delivery)
    with member(server, "alice") as a, member(server, "bob") as b:
        a.expect("JOIN 2 bob")
        a.send(b"\n   \n\t\n\r\n \t \r\n/who\n")
        assert a.read_line() == "USERS alice bob"  # nothing before the answer
        a.send("marker")
        assert b.read_line() == "MSG 3 alice marker"  # and nothing reached bob either
        assert a.read_line() == "MSG 3 alice marker"


def test_who_is_sorted_case_insensitively_and_ordered_after_own_msg(
    start_server: ServerFactory, delivery: str
) -> None:
    server = start_server("--delivery", delivery, "--max-clients", "10")
    names = ["bob", "Zed", "alice", "_x", "Carol", "9lives", "-dash"]
    clients = [member(server, name) for name in names]
    try:
        bob = clients[0]
        bob.read_until(f"JOIN {len(names)} ")
        bob.send(b"hi\n/who\n/who ignored arguments\n")
        assert bob.read_line() == f"MSG {len(names) + 1} bob hi"
        expected = "USERS -dash 9lives _x alice bob Carol Zed"
        assert bob.read_line() == expected
        assert bob.read_line() == expected
    finally:
        for c in clients:
            c.close()


@pytest.mark.parametrize("command", ["/quit", "/quit right now", "exit"])
def test_quit_gives_bye_to_the_leaver_and_leave_quit_to_others(
    start_server: ServerFactory, delivery: str, command: str
) -> None:
    server = start_server("--delivery", delivery)
    with member(server, "alice") as a, member(server, "bob") as b:
        a.expect("JOIN 2 bob")
        b.send(command)
        assert b.read_line().startswith("BYE ")
        assert_closed(b)
        assert a.read_line() == "LEAVE 3 bob quit"
        a.send("/who")
        assert a.read_line() == "USERS alice"


@pytest.mark.parametrize("command", ["/nick bob", "/", "/ who", "/WHO", "/quitnow", "//", "/who?"])
def test_unknown_commands_get_err_and_the_connection_stays(
    start_server: ServerFactory, delivery: str, command: str
) -> None:
    server = start_server("--delivery", delivery)
    with member(server, "alice") as a, member(server, "bob") as b:
        a.expect("JOIN 2 bob")
        a.send(command)
        line = a.read_line()
        assert re.fullmatch(r"ERR unknown-command \S.*", line), line
        a.send("still here")
        assert a.read_line() == "MSG 3 alice still here"
        assert b.read_line() == "MSG 3 alice still here"  # bob saw nothing of the command


@pytest.mark.parametrize("how", ["close", "reset"])
def test_a_dropped_connection_gives_leave_disconnected(
    start_server: ServerFactory, delivery: str, how: str
) -> None:
    server = start_server("--delivery", delivery)
    with member(server, "alice") as a:
        b = member(server, "bob")
        a.expect("JOIN 2 bob")
        if how == "reset":  # an abortive close: RST instead of FIN
            b.sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        b.close()
        assert a.read_line() == "LEAVE 3 bob disconnected"
        a.send("/who")
        assert a.read_line() == "USERS alice"


# -- handshake refusals --------------------------------------------------------------------

BAD_NAMES = [
    "",
    " ",
    "\t",
    "a" * 21,
    "al ice",
    " alice",
    "alice ",
    "al.ice",
    "al!ce",
    "a/b",
    "caf\u00e9",
    "\u0430",
]


def test_invalid_names_are_refused_and_retry_works_on_the_same_connection(
    start_server: ServerFactory, delivery: str
) -> None:
    server = start_server("--delivery", delivery)
    with server.connect() as c:
        c.expect("HELLO ")
        for name in BAD_NAMES:
            c.send(name)
            line = c.read_line()
            assert re.fullmatch(r"ERR invalid-name \S.*", line), (name, line)
        c.send("a" * 20)
        assert c.read_line() == f"OK {'a' * 20}"
        assert c.read_line() == "JOIN 1 " + "a" * 20


def test_taken_names_are_refused_case_insensitively_then_retry(
    start_server: ServerFactory, delivery: str
) -> None:
    server = start_server("--delivery", delivery)
    with member(server, "Alice") as a, server.connect() as c:
        c.expect("HELLO ")
        for name in ("Alice", "alice", "ALICE", "aLiCe"):
            c.send(name)
            line = c.read_line()
            assert re.fullmatch(r"ERR name-taken \S.*", line), (name, line)
        c.send("alice2")
        assert c.read_line() == "OK alice2"
        assert c.read_line() == "JOIN 2 alice2"
        assert a.read_line() == "JOIN 2 alice2"  # the refusals reached nobody else


@pytest.mark.parametrize("command", ["exit", "/quit", "/quit now"])
def test_leaving_during_the_handshake_gets_bye(
    start_server: ServerFactory, delivery: str, command: str
) -> None:
    server = start_server("--delivery", delivery)
    with member(server, "alice") as a, server.connect() as c:
        c.expect("HELLO ")
        c.send("not valid!")
        c.expect("ERR invalid-name ")
        c.send(command)
        assert c.read_line().startswith("BYE ")
        assert_closed(c)
        a.send("/who")
        assert a.read_line() == "USERS alice"  # no JOIN nor LEAVE for a non-member


def test_exit_in_upper_case_is_a_name_attempt_during_the_handshake(start_server: ServerFactory) -> None:
    server = start_server()
    with server.connect() as c:
        c.expect("HELLO ")
        c.send("EXIT")
        assert c.read_line() == "OK EXIT"


def test_handshake_timeout(start_server: ServerFactory, delivery: str) -> None:
    server = start_server("--delivery", delivery, "--handshake-timeout", "0.8")
    with server.connect() as silent, server.connect() as trying, server.connect() as partial:
        alice = member(server, "alice")
        for c in (silent, trying, partial):
            c.expect("HELLO ")
        # The deadline counts from the connect, not from the last attempt or byte.
        trying.send("bad name")
        trying.expect("ERR invalid-name ")
        partial.send(b"bo")
        for c in (silent, trying, partial):
            line = c.read_line()
            assert re.fullmatch(r"ERR timeout \S.*", line), line
            assert_closed(c)
        # A member is never timed out: its deadline passed too, and it still chats.
        alice.send("/who")
        assert alice.read_line() == "USERS alice"
        alice.close()


# -- slots ----------------------------------------------------------------------------------


def test_full_server_refuses_with_err_full_counting_handshaking_connections(
    start_server: ServerFactory, delivery: str
) -> None:
    server = start_server("--delivery", delivery, "--max-clients", "2")
    joined = member(server, "alice")
    handshaking = server.connect()
    handshaking.expect("HELLO ")
    with server.connect() as refused:
        line = refused.read_line()
        assert re.fullmatch(r"ERR full \S.*", line), line
        assert_closed(refused)
    # Closing the handshaking connection frees its slot; the server notices
    # asynchronously, so retry (bounded) until a connection gets HELLO.
    handshaking.close()
    deadline = time.monotonic() + 10
    while True:
        with server.connect() as c:
            first = c.read_line()
            if first.startswith("HELLO "):
                c.send("bob")
                assert c.read_line() == "OK bob"
                break
            assert first.startswith("ERR full "), first
        assert time.monotonic() < deadline, "the slot was never freed"
    joined.close()


def test_default_max_clients_is_five(start_server: ServerFactory) -> None:
    server = start_server()  # helpers' ServerProcess adds no --max-clients
    clients = [server.connect() for _ in range(5)]
    try:
        for c in clients:
            c.expect("HELLO ")
        with server.connect() as sixth:
            sixth.expect("ERR full ")
    finally:
        for c in clients:
            c.close()


# -- limits and encodings ---------------------------------------------------------------


def test_max_line_at_limit_passes_over_limit_is_refused_and_the_connection_stays(
    start_server: ServerFactory, delivery: str
) -> None:
    server = start_server("--delivery", delivery, "--max-line", "16")
    with server.connect() as a, member(server, "bob") as b:
        a.expect("HELLO ")
        a.send("n" * 17)  # the name line is limited too
        assert re.fullmatch(r"ERR line-too-long \S.*", a.read_line())
        a.send("n" * 16)  # exactly at the limit: a valid name
        assert a.read_line() == "OK " + "n" * 16
        a.expect("JOIN 2 ")
        b.expect("JOIN 2 ")
        cases: list[tuple[bytes, str | None]] = [
            (b"x" * 16 + b"\n", "x" * 16),
            (b"y" * 16 + b"\r\n", "y" * 16),  # the terminator is not counted
            (b"z" * 17 + b"\n", None),
            ("\u00e9".encode() * 8 + b"\n", "\u00e9" * 8),  # bytes are counted, not characters
            ("\u00e9".encode() * 8 + b"!\n", None),
            (b"w" * 5000 + b"\n", None),
        ]
        seq = 2
        for raw, text in cases:
            a.send(raw)
            if text is None:
                assert re.fullmatch(r"ERR line-too-long \S.*", a.read_line())
            else:
                seq += 1
                assert a.read_line() == f"MSG {seq} {'n' * 16} {text}"
                assert b.read_line() == f"MSG {seq} {'n' * 16} {text}"
        a.send("after")
        assert b.read_line() == f"MSG {seq + 1} {'n' * 16} after"


def test_crlf_is_accepted_everywhere(start_server: ServerFactory, delivery: str) -> None:
    server = start_server("--delivery", delivery)
    with server.connect() as a:
        a.expect("HELLO ")
        a.send(b"al ice\r\nalice\r\n")
        a.expect("ERR invalid-name ")
        assert a.read_line() == "OK alice"
        assert a.read_line() == "JOIN 1 alice"
        a.send(b"hi there\r\n/who\r\n\r\n/quit\r\n")
        assert a.read_line() == "MSG 2 alice hi there"
        assert a.read_line() == "USERS alice"
        assert a.read_line().startswith("BYE ")
        assert_closed(a)


BAD_ENCODINGS = [
    b"\xff\xfe not utf-8",
    b"caf\xc3",  # a truncated sequence
    b"\xed\xa0\x80",  # an encoded surrogate
    b"nul\x00inside",
    b"\x00",
    b"\x1b[2J\x1b[31mred",  # an escape sequence: must never reach a terminal
    b"bell\x07",
    b"del\x7f",
    b"cr\rinside",
    "hi\u0085MSG 99 admin fake".encode(),  # NEL: a forged second line for str.splitlines
    "csi\u009b2J".encode(),  # a C1 control: the one-byte CSI
    "line\u2028sep".encode(),
    "para\u2029sep".encode(),
]


def test_bad_encoding_is_refused_and_the_connection_stays(start_server: ServerFactory, delivery: str) -> None:
    server = start_server("--delivery", delivery)
    with server.connect() as a, member(server, "bob") as b:
        a.expect("HELLO ")
        a.send(b"\xff\n")  # during the handshake too
        assert re.fullmatch(r"ERR bad-encoding \S.*", a.read_line())
        a.send(b"al\x00ice\n")
        assert re.fullmatch(r"ERR bad-encoding \S.*", a.read_line())
        a.send("alice")
        assert a.read_line() == "OK alice"
        a.expect("JOIN 2 alice")
        b.expect("JOIN 2 alice")
        for raw in BAD_ENCODINGS:
            a.send(raw + b"\n")
            line = a.read_line()
            assert re.fullmatch(r"ERR bad-encoding \S.*", line), (raw, line)
        a.send(b"tab\tis fine\n")
        assert a.read_line() == "MSG 3 alice tab\tis fine"
        assert b.read_line() == "MSG 3 alice tab\tis fine"  # nothing refused reached bob


# -- command line -----------------------------------------------------------------------


def read_listening_line(*args: str) -> tuple[subprocess.Popen[str], str]:
    proc = subprocess.Popen(
        [sys.executable, "-m", "chat.server", "--port", "0", *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        cwd=REPO,
    )
    assert proc.stdout is not None
    return proc, proc.stdout.readline()  # the server flushes it; a crash gives EOF


@pytest.mark.parametrize("host", ["127.0.0.1", "localhost"])
def test_ready_line_is_exactly_listening_on_host_port(host: str) -> None:
    proc, line = read_listening_line("--host", host)
    try:
        m = re.fullmatch(rf"listening on {re.escape(host)}:(\d+)\n", line)
        assert m is not None, line
        port = int(m.group(1))
        assert port != 0
        with LineClient("127.0.0.1", port) as c:
            c.expect("HELLO ")
    finally:
        proc.terminate()
        out, err = proc.communicate(timeout=10)
    assert proc.returncode == 0
    assert out == ""  # one line on stdout, nothing else
    assert "Traceback" not in err


@pytest.mark.parametrize(
    "args",
    [
        ["--port", "abc"],
        ["--port", "70000"],
        ["--max-clients", "0"],
        ["--max-clients", "many"],
        ["--delivery", "nope"],
        ["--max-line", "-1"],
        ["--max-backlog", "0"],
        ["--handshake-timeout", "0"],
        ["--handshake-timeout", "soon"],
        ["--log-level", "chatty"],
        ["--bogus"],
    ],
    ids=" ".join,
)
def test_bad_options_exit_2_with_one_line(args: list[str]) -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "chat.server", *args], capture_output=True, text=True, cwd=REPO, timeout=30
    )
    assert proc.returncode == 2
    assert proc.stdout == ""
    lines = proc.stderr.splitlines()
    assert len(lines) == 1, proc.stderr
    assert lines[0].startswith("python -m chat.server: error: "), lines[0]
    assert "Traceback" not in proc.stderr


def test_help_describes_every_option() -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "chat.server", "--help"], capture_output=True, text=True, cwd=REPO, timeout=30
    )
    assert proc.returncode == 0
    for option in ("--host", "--port", "--max-clients", "--delivery", "--max-line", "--max-backlog"):
        assert option in proc.stdout
    for option in ("--handshake-timeout", "--log-level"):
        assert option in proc.stdout


def test_port_already_in_use_is_one_clear_error() -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        proc = subprocess.run(
            [sys.executable, "-m", "chat.server", "--host", "127.0.0.1", "--port", str(port)],
            capture_output=True,
            text=True,
            cwd=REPO,
            timeout=30,
        )
    assert proc.returncode != 0
    assert proc.stdout == ""
    lines = proc.stderr.splitlines()
    assert len(lines) == 1, proc.stderr
    assert f"127.0.0.1:{port}" in lines[0]
    assert "in use" in lines[0].lower()
