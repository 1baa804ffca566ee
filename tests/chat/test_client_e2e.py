"""The terminal client, driven as a user would: a subprocess with piped stdin, and a real TTY through tmux.

Its pure parts (rendering, parsing) are tested in ``test_client.py``.

Servers are real (``ServerProcess`` on a free port) except where a test needs a server that misbehaves: a tiny
scripted server (:class:`FakeServer`) then plays it. Every wait is on output or an exit, with a deadline.
"""

from __future__ import annotations

import os
import re
import shlex
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from tests.helpers import REPO, TIMEOUT, LineClient, ServerProcess

pytestmark = pytest.mark.e2e

# -- tools -----------------------------------------------------------------------------------------


def client_env() -> dict[str, str]:
    """The environment of a client under test: no forced colours, so stdout holds only what was rendered."""
    env = {k: v for k, v in os.environ.items() if k not in ("FORCE_COLOR", "TTY_COMPATIBLE", "COLUMNS")}
    env.update(PYTHONUNBUFFERED="1", NO_COLOR="1")
    return env


class ClientProcess:
    """``python -m chat.client`` with piped stdin; a thread collects its stdout as it comes."""

    def __init__(self, *args: str) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "chat.client", *args],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            cwd=REPO,
            env=client_env(),
        )
        self._out = bytearray()
        self._eof = False
        self._cond = threading.Condition()  # guards _out and _eof
        self._reader = threading.Thread(target=self._read, name="client-stdout")
        self._reader.start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        fd = self.proc.stdout.fileno()
        while True:
            chunk = os.read(fd, 65536)
            with self._cond:
                if not chunk:
                    self._eof = True
                    self._cond.notify_all()
                    return
                self._out += chunk
                self._cond.notify_all()

    @property
    def output(self) -> str:
        with self._cond:
            return self._out.decode("utf-8", errors="replace")

    def wait_for(self, text: str, timeout: float = TIMEOUT) -> str:
        """Block until ``text`` is on stdout; returns stdout so far."""
        with self._cond:
            found = self._cond.wait_for(lambda: text.encode() in self._out or self._eof, timeout)
            out = self._out.decode("utf-8", errors="replace")
        assert found and text in out, f"{text!r} not in output: {out!r}"
        return out

    def send(self, *lines: str) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.write("".join(line + "\n" for line in lines).encode())
        self.proc.stdin.flush()

    def close_stdin(self) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.close()

    def finish(self, timeout: float = TIMEOUT) -> tuple[int, bytes, str]:
        """Wait for the exit; returns (exit code, stdout bytes, stderr)."""
        try:
            code = self.proc.wait(timeout)
        finally:
            self.kill()
        self._reader.join(timeout)
        assert self.proc.stderr is not None
        err = self.proc.stderr.read().decode("utf-8", errors="replace")
        for stream in (self.proc.stdin, self.proc.stdout, self.proc.stderr):
            if stream is not None and not stream.closed:
                try:
                    stream.close()
                except BrokenPipeError:
                    pass  # the client exited with unread input: expected
        with self._cond:
            return code, bytes(self._out), err

    def kill(self) -> None:
        """Stop the client if it still runs (a failed test), and join the reader thread."""
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(TIMEOUT)
        if self._reader is not threading.current_thread():
            self._reader.join(TIMEOUT)


def run_client(*args: str, stdin: str) -> tuple[int, str, str]:
    """Run a client to its end with all of ``stdin`` piped in (then end of input)."""
    proc = ClientProcess(*args)
    try:
        proc.send(*stdin.splitlines())
        proc.close_stdin()
        code, out, err = proc.finish()
    finally:
        proc.kill()
    return code, out.decode("utf-8", errors="replace"), err


def assert_one_line_error(err: str, *fragments: str) -> None:
    assert "Traceback" not in err, err
    lines = err.splitlines()
    assert len(lines) == 1, f"expected one line on stderr, got {err!r}"
    assert lines[0].startswith("chat.client: "), err
    for fragment in fragments:
        assert fragment in lines[0], err


def read_until_suffix(conn: LineClient, suffix: str) -> list[str]:
    """Lines up to and including the first that ends with ``suffix``."""
    lines = []
    while True:
        line = conn.read_line()
        lines.append(line)
        if line.endswith(suffix):
            return lines
        if line == "":
            raise EOFError(f"closed before a line ending with {suffix!r}; got {lines[-5:]}")


class Peer:
    """The server's end of one connection, for a scripted server: lines out, lines in, with a timeout."""

    def __init__(self, sock: socket.socket) -> None:
        sock.settimeout(TIMEOUT)
        self.sock = sock
        self._file = sock.makefile("rb")

    def send(self, line: str) -> None:
        self.sock.sendall((line + "\n").encode())

    def read_line(self) -> str:
        return self._file.readline().decode().rstrip("\n")

    def close(self) -> None:
        self._file.close()
        self.sock.close()


class FakeServer:
    """A scripted server for misbehaviour the real one never shows: one connection, then ``script(peer)``."""

    def __init__(self, script: Callable[[Peer], None]) -> None:
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.listener.settimeout(TIMEOUT)
        self.port = self.listener.getsockname()[1]
        self.script = script
        self.error: BaseException | None = None
        self.thread = threading.Thread(target=self._serve, name="fake-server")
        self.thread.start()

    def _serve(self) -> None:
        try:
            sock, _ = self.listener.accept()
            peer = Peer(sock)
            try:
                self.script(peer)
            finally:
                peer.close()
        except BaseException as exc:  # reported by close(), in the test's thread
            self.error = exc

    def close(self) -> None:
        self.thread.join(TIMEOUT)
        self.listener.close()
        assert not self.thread.is_alive()
        if self.error is not None:
            raise self.error


@contextmanager
def fake_server(script: Callable[[Peer], None]) -> Iterator[FakeServer]:
    server = FakeServer(script)
    try:
        yield server
    finally:
        server.close()


def handshake(conn: Peer, name: str = "alice") -> None:
    conn.send("HELLO welcome")
    assert conn.read_line() == name
    conn.send(f"OK {name}")
    conn.send(f"JOIN 1 {name}")


# -- piped stdin against a real server -------------------------------------------------------------


def test_happy_path(server: ServerProcess) -> None:
    code, out, err = run_client("127.0.0.1", str(server.port), stdin="alice\nhello there\n")
    assert code == 0, err
    assert err == ""
    for expected in ("server: welcome", "you are alice", "--> alice joined", "alice: hello there", "goodbye"):
        assert expected in out
    assert out.index("alice joined") < out.index("alice: hello there") < out.index("goodbye")


def test_many_piped_lines_are_all_sent_in_order(server: ServerProcess) -> None:
    lines = [f"line {i:03d}" for i in range(60)]
    code, out, err = run_client("127.0.0.1", str(server.port), stdin="\n".join(["alice", *lines]) + "\n")
    assert code == 0, err
    positions = [out.index(f"alice: {line}\n") for line in lines]
    assert positions == sorted(positions)


def test_other_members_and_who(server: ServerProcess) -> None:
    with server.connect() as bob:
        bob.join("bob")
        proc = ClientProcess("127.0.0.1", str(server.port))
        try:
            proc.send("alice")
            proc.wait_for("--> alice joined")
            bob.read_until("JOIN ")
            bob.send("hi alice")
            proc.wait_for("bob: hi alice")
            proc.send("/who", "/nope")
            proc.wait_for("online (2): alice, bob")
            proc.wait_for("error (unknown-command)")
            proc.close_stdin()
            code, _, err = proc.finish()
        finally:
            proc.kill()
        assert code == 0, err
        assert read_until_suffix(bob, " alice quit")


def test_rich_markup_in_a_message_is_printed_literally(server: ServerProcess) -> None:
    message = "[bold red]x[/] [link=http://example.invalid]y[/link] :smile: \\[z]"
    code, out, err = run_client("127.0.0.1", str(server.port), stdin=f"alice\n{message}\n")
    assert code == 0, err
    assert f"alice: {message}\n" in out


@pytest.mark.parametrize("how", ["taken", "invalid"])
def test_refused_name_is_explained_and_asked_again(server: ServerProcess, how: str) -> None:
    with server.connect() as bob:
        bob.join("bob")
        if how == "taken":
            args, stdin, reason = ["--name", "BOB"], "carol\nhi\n", "error (name-taken)"
        else:
            args, stdin, reason = [], "bad name\n" + "x" * 21 + "\ncarol\nhi\n", "error (invalid-name)"
        code, out, err = run_client("127.0.0.1", str(server.port), *args, stdin=stdin)
    assert code == 0, err
    assert reason in out
    assert out.index(reason) < out.index("you are carol") < out.index("carol: hi")


@pytest.mark.parametrize("command", ["exit", "/quit"])
def test_leave_command_exits_0_without_end_of_input(server: ServerProcess, command: str) -> None:
    with server.connect() as bob:
        bob.join("bob")
        proc = ClientProcess("127.0.0.1", str(server.port), "--name", "alice")
        try:
            proc.wait_for("alice joined")
            proc.send("bye all", command)  # stdin stays open: the command alone ends the client
            code, out, err = proc.finish()
        finally:
            proc.kill()
        assert code == 0, err
        assert b"alice: bye all" in out and b"server: goodbye" in out
        assert read_until_suffix(bob, " alice quit")


@pytest.mark.parametrize("stdin", ["", "exit\n", "/quit\n"], ids=["eof", "exit", "quit"])
def test_leaving_at_the_name_prompt_exits_0(server: ServerProcess, stdin: str) -> None:
    code, out, err = run_client("127.0.0.1", str(server.port), stdin=stdin)
    assert code == 0, err
    assert err == ""
    assert "server: goodbye" in out


@pytest.fixture
def sigint_not_ignored() -> Iterator[None]:
    """Children inherit an ignored SIGINT, and a runner that started pytest as a background job of a script
    (``cmd &`` without job control) ignores it: the client would then never see Ctrl+C. Give this process a
    handler for the test's length, so that the client starts with SIGINT at its default, as in a terminal."""
    if signal.getsignal(signal.SIGINT) is not signal.SIG_IGN:
        yield
        return
    signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, signal.SIG_IGN)


@pytest.mark.usefixtures("sigint_not_ignored")
@pytest.mark.parametrize("when", ["name prompt", "chatting"])
def test_ctrl_c_leaves_cleanly(server: ServerProcess, when: str) -> None:
    with server.connect() as bob:
        bob.join("bob")
        proc = ClientProcess("127.0.0.1", str(server.port))
        try:
            proc.wait_for("server: welcome")
            if when == "chatting":
                proc.send("alice")
                proc.wait_for("alice joined")
            proc.proc.send_signal(signal.SIGINT)
            code, out, err = proc.finish()
        finally:
            proc.kill()
        assert code == 0, err
        assert "Traceback" not in err
        assert b"server: goodbye" in out
        if when == "chatting":
            assert read_until_suffix(bob, " alice quit")


def test_an_interrupt_just_after_a_lock_is_taken_never_hangs_the_client(server: ServerProcess) -> None:
    """Ctrl+C, SIGTERM and SIGHUP raise KeyboardInterrupt at any bytecode of the client's main thread.

    Raised just after a ``threading.Event`` had taken its lock, it left that lock taken, and the client hung
    for good at the event's next ``set`` or ``clear`` (seen once: a client whose tmux pane was killed, stuck
    in ``Event.clear``). Kills that mutant: with ``reading`` an Event again, a run interrupted at one of those
    moments hangs. Each moment at which the main thread still takes such a lock, or gives or takes a wake-up
    token, is tried in turn (tests/fixtures/interrupted_client.py), until a run has no such moment left.
    """
    driver = [sys.executable, "-m", "tests.fixtures.interrupted_client", "127.0.0.1", str(server.port)]
    # How many moments a run has depends on timing (a reply already there needs no wait): go on until three
    # runs in a row had no k-th moment.
    k, interrupted, misses = 0, 0, 0
    while misses < 3:
        k += 1
        assert k <= 40, "a short session should take far fewer locks"
        try:
            done = subprocess.run(
                [*driver, str(k)],
                input=b"alice\nhello\n",
                capture_output=True,
                timeout=2 * TIMEOUT,
                cwd=REPO,
                env=client_env(),
            )
        except subprocess.TimeoutExpired:
            pytest.fail(f"the client hung after an interrupt at moment {k}")
        err = done.stderr.decode(errors="replace")
        assert "Traceback" not in err, err
        found = re.search(r"^interrupted-client: (\d+) of (\d+) exit (\d+)$", err, re.M)
        assert found is not None and done.returncode == 0, err
        assert found[3] == "0", err  # an interrupt is the user leaving
        if int(found[2]) < k:
            misses += 1  # no k-th moment in this run
        else:
            interrupted, misses = interrupted + 1, 0
    assert interrupted >= 2, "too few moments interrupted: the driver tests nothing"


def test_sigterm_leaves_cleanly(server: ServerProcess) -> None:
    proc = ClientProcess("127.0.0.1", str(server.port), "--name", "alice")
    try:
        proc.wait_for("alice joined")
        proc.proc.terminate()
        code, out, err = proc.finish()
    finally:
        proc.kill()
    assert code == 0, err
    assert b"server: goodbye" in out


def test_server_shutdown_exits_0() -> None:
    server = ServerProcess().start()
    try:
        proc = ClientProcess("127.0.0.1", str(server.port), "--name", "alice")
        try:
            proc.wait_for("alice joined")
            err_server = server.stop()
            code, out, err = proc.finish()  # stdin still open: the BYE alone ends the client
        finally:
            proc.kill()
    finally:
        server.kill()
    assert "Traceback" not in err_server
    assert code == 0, err
    assert err == ""
    assert b"server: server shutting down" in out


def test_server_full_exits_1_with_one_line() -> None:
    server = ServerProcess("--max-clients", "1").start()
    try:
        with server.connect() as bob:
            bob.join("bob")
            code, out, err = run_client("127.0.0.1", str(server.port), stdin="alice\n")
    finally:
        assert "Traceback" not in server.stop()
    assert code == 1
    assert_one_line_error(err, "full", f"127.0.0.1:{server.port}")
    assert err.count("full") == 1, err  # said once, not "is full (the server is full, ...)"


def test_unreachable_server_exits_1_with_one_line() -> None:
    with socket.socket() as holder:  # bound but not listening: connections are refused, and no one else
        holder.bind(("127.0.0.1", 0))  # can take the port meanwhile
        port = holder.getsockname()[1]
        code, out, err = run_client("127.0.0.1", str(port), stdin="alice\n")
    assert code == 1
    assert out == ""
    assert_one_line_error(err, "cannot connect", f"127.0.0.1:{port}")


@pytest.mark.parametrize(
    "args", [["localhost", "http"], ["localhost", "0"], ["localhost", "70000"], ["a", "1", "2"]]
)
def test_usage_error_is_one_line(args: list[str]) -> None:
    code, _, err = run_client(*args, stdin="")
    assert code == 2
    assert "Traceback" not in err
    assert len(err.splitlines()) == 1 and "error" in err


# -- misbehaving servers ---------------------------------------------------------------------------


def test_connection_dropped_without_bye_exits_1() -> None:
    joined = threading.Event()

    def script(conn: Peer) -> None:
        handshake(conn)
        joined.wait(TIMEOUT)  # close only once the client has shown its join

    with fake_server(script) as fake:
        proc = ClientProcess("127.0.0.1", str(fake.port))
        try:
            proc.send("alice")  # stdin stays open: only the drop can end the client
            proc.wait_for("alice joined")
            joined.set()
            code, _, err = proc.finish()
        finally:
            joined.set()
            proc.kill()
    assert code == 1
    assert_one_line_error(err, "lost", f"127.0.0.1:{fake.port}")


def test_connection_dropped_during_the_handshake_exits_1() -> None:
    def script(conn: Peer) -> None:
        conn.send("HELLO welcome")
        conn.read_line()

    with fake_server(script) as fake:
        code, out, err = run_client("127.0.0.1", str(fake.port), stdin="alice\n")
    assert code == 1
    assert_one_line_error(err, "lost")


def test_handshake_timeout_exits_1_with_the_reason() -> None:
    def script(conn: Peer) -> None:
        conn.send("HELLO welcome")
        conn.send("ERR timeout no username received in time")

    with fake_server(script) as fake:
        proc = ClientProcess("127.0.0.1", str(fake.port))
        try:
            code, out, err = proc.finish()  # never sends a name: stdin stays open and empty
        finally:
            proc.kill()
    assert code == 1
    assert b"error (timeout)" in out
    assert_one_line_error(err, "lost", "no username received in time")


def test_control_characters_from_the_server_never_reach_the_screen() -> None:
    nasty = "\x1b[2J\x1b]0;pwned\x07\x9b31m\u202eevil\x00\x08"

    def script(conn: Peer) -> None:
        handshake(conn)
        conn.sock.sendall(f"MSG 2 bob {nasty}\nUSERS alice \x1b[5mbob\nLEAVE 3 b\x1bb quit\n".encode())
        conn.sock.sendall(b"MSG 4 bob \xff\xfe broken utf-8\nWHAT\x07 is this\n")
        conn.send("BYE goodbye \x1b[0m")

    with fake_server(script) as fake:
        proc = ClientProcess("127.0.0.1", str(fake.port))
        try:
            proc.send("alice")
            code, out, err = proc.finish()
        finally:
            proc.kill()
    assert code == 0, err
    text = out.decode("utf-8")
    for char in "\x1b\x07\x9b\u202e\x00\x08":
        assert char not in text, f"{char!r} reached stdout: {text!r}"
    assert all(c >= " " or c in "\n\t" for c in text)
    assert "bob: \\x1b[2J\\x1b]0;pwned\\x07\\x9b31m\\u202eevil\\x00\\x08" in text
    assert "online (2): alice, \\x1b[5mbob" in text
    assert "bob: \ufffd\ufffd broken utf-8" in text
    assert "unreadable line from the server: WHAT\\x07 is this" in text
    assert "server: goodbye \\x1b[0m" in text


# -- a real terminal, through tmux -----------------------------------------------------------------


class Tmux:
    """A private tmux server (its own socket), so tests never touch a user's tmux nor each other."""

    def __init__(self) -> None:
        self.socket = f"chat-test-{uuid.uuid4().hex[:12]}"

    def __call__(self, *args: str) -> str:
        done = subprocess.run(
            ["tmux", "-L", self.socket, *args], capture_output=True, text=True, timeout=TIMEOUT, check=True
        )
        return done.stdout

    def screen(self, target: str) -> list[str]:
        return self("capture-pane", "-p", "-t", target).rstrip("\n").split("\n")

    def wait_screen(
        self, target: str, check: Callable[[list[str]], bool], timeout: float = TIMEOUT
    ) -> list[str]:
        """Poll the pane until ``check(lines)``; tmux offers no event for "the screen changed"."""
        deadline = time.monotonic() + timeout
        while True:
            lines = self.screen(target)
            if check(lines):
                return lines
            if time.monotonic() > deadline:
                raise AssertionError("pane never matched; it shows:\n" + "\n".join(lines))
            time.sleep(POLL)  # the pace of polling, not a synchronisation: only the check above decides

    def show(self, target: str, fmt: str) -> str:
        return self("display-message", "-p", "-t", target, fmt).strip()

    def kill_server(self) -> None:
        subprocess.run(["tmux", "-L", self.socket, "kill-server"], capture_output=True, timeout=TIMEOUT)


POLL = 0.05


def last_line(lines: list[str]) -> str:
    shown = [line for line in lines if line.strip()]
    return shown[-1] if shown else ""


@pytest.mark.skipif(shutil.which("tmux") is None, reason="tmux is not installed")
def test_tty_incoming_lines_never_garble_the_line_being_typed(server: ServerProcess, tmp_path: Path) -> None:
    tmux = Tmux()
    status_file = tmp_path / "status"
    try:
        client_args = [sys.executable, "-m", "chat.client", "127.0.0.1", str(server.port), "--name", "alice"]
        # The exit status goes to a file: tmux marks a pane dead when its pty closes, which can be
        # before the process has ended, and records the status only later.
        command = (
            f"cd {shlex.quote(REPO)} && {shlex.join(client_args)}; "
            f"echo $? > {shlex.quote(str(status_file))}.tmp && mv {shlex.quote(str(status_file))}.tmp "
            f"{shlex.quote(str(status_file))}"
        )
        tmux("new-session", "-d", "-s", "tty", "-x", "80", "-y", "24", command)
        tmux("set-option", "-t", "tty", "remain-on-exit", "on")
        pane = "tty:0.0"
        tmux.wait_screen(pane, lambda lines: last_line(lines) == "alice>")
        with server.connect() as bob:
            bob.join("bob")
            tmux.wait_screen(pane, lambda lines: "--> bob joined" in "\n".join(lines))
            # Half a line typed, the cursor moved back into it; then bob talks.
            tmux("send-keys", "-t", pane, "-l", "hello wor")
            tmux("send-keys", "-t", pane, "Left", "Left", "Left")
            tmux.wait_screen(pane, lambda lines: last_line(lines) == "alice> hello wor")
            for i in range(3):
                bob.send(f"interruption {i}")
            lines = tmux.wait_screen(pane, lambda lines: "bob: interruption 2" in "\n".join(lines))
            assert last_line(lines) == "alice> hello wor", lines
            assert tmux.show(pane, "#{cursor_x}") == str(len("alice> hello "))
            # Typing goes on where the cursor was.
            tmux("send-keys", "-t", pane, "-l", "X")
            tmux("send-keys", "-t", pane, "End")
            tmux("send-keys", "-t", pane, "-l", "ld")
            tmux("send-keys", "-t", pane, "Enter")
            lines = tmux.wait_screen(pane, lambda lines: "alice: hello Xworld" in "\n".join(lines))
            read_until_suffix(bob, " alice hello Xworld")
            text = "\n".join(lines)
            assert "alice> hello" not in text  # the echo of the typed line gave way to the MSG
            assert text.index("bob: interruption 2") < text.index("alice: hello Xworld")
            # Ctrl+D on an empty line leaves, with exit code 0.
            tmux("send-keys", "-t", pane, "C-d")
            tmux.wait_screen(pane, lambda lines: status_file.exists())
            assert status_file.read_text().strip() == "0"
            assert read_until_suffix(bob, " alice quit")
    finally:
        tmux.kill_server()
