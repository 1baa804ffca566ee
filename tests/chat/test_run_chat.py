"""run_chat.sh, driven through tmux as a person would: panes, send-keys, capture-pane.

Each test runs the script against a private tmux server (``TMUX_TMPDIR`` gives it its own socket) and with a
session name of its own (``CHAT_SESSION``), so tests in parallel never meet, nor meet a user's tmux. Each test
kills the tmux server it started.
"""

from __future__ import annotations

import os
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import pytest

from tests.helpers import REPO, TIMEOUT
from tests.server_kit import wait_for

pytestmark = [
    pytest.mark.e2e,
    pytest.mark.skipif(shutil.which("tmux") is None, reason="tmux is not installed"),
]

SCRIPT = os.path.join(REPO, "run_chat.sh")
BASH = shutil.which("bash") or "/bin/bash"
#: Starting a server and three clients on a loaded 2-core machine: seconds, not tens of them.
START_TIMEOUT = 30.0
POLL = 0.05


def free_port() -> int:
    """A port nobody listens on right now (the tiny race until the server binds it is accepted)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@dataclass
class Tmux:
    """The private tmux server of one test; ``env`` is what the script runs with."""

    tmpdir: str
    session: str
    env: dict[str, str]

    def __call__(self, *args: str, check: bool = True) -> str:
        done = subprocess.run(
            ["tmux", *args], capture_output=True, text=True, timeout=TIMEOUT, env=self.env, check=check
        )
        return done.stdout

    def run_script(self, *args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [BASH, SCRIPT, *args],
            stdin=subprocess.DEVNULL,  # no terminal: the script must leave the session detached
            capture_output=True,
            text=True,
            timeout=START_TIMEOUT + TIMEOUT,
            cwd=self.tmpdir,  # anywhere but the repository
            env=env or self.env,
        )

    def has_session(self) -> bool:
        command = ["tmux", "has-session", "-t", f"={self.session}"]
        done = subprocess.run(command, capture_output=True, timeout=TIMEOUT, env=self.env)
        return done.returncode == 0

    def panes(self) -> list[tuple[str, str]]:
        """(pane id, title) of every pane of the session, in order."""
        out = self("list-panes", "-s", "-t", f"={self.session}", "-F", "#{pane_id} #{pane_title}")
        return [tuple(line.split(" ", 1)) for line in out.splitlines()]  # type: ignore[misc]

    def screen(self, pane: str) -> str:
        return self("capture-pane", "-p", "-J", "-t", pane)  # -J: wrapped lines joined back

    def wait_screen(self, pane: str, check: Callable[[str], bool], timeout: float = START_TIMEOUT) -> str:
        """Poll the pane until ``check(text)``: tmux offers no event for "the screen changed"."""
        deadline = time.monotonic() + timeout
        while True:
            text = self.screen(pane)
            if check(text):
                return text
            if time.monotonic() > deadline:
                raise AssertionError(f"pane {pane} never matched; it shows:\n{text}")
            time.sleep(POLL)  # the pace of polling, not a synchronisation: only the check above decides

    def type(self, pane: str, line: str) -> None:
        self("send-keys", "-t", pane, "-l", line)
        self("send-keys", "-t", pane, "Enter")


@pytest.fixture
def tmux() -> Iterator[Tmux]:
    tmpdir = tempfile.mkdtemp(prefix="chat-tmux-")  # short: a unix socket path has ~100 bytes
    env = {k: v for k, v in os.environ.items() if k not in ("TMUX", "TMUX_PANE")}
    session = f"chat-test-{uuid.uuid4().hex[:8]}"
    env.update(TMUX_TMPDIR=tmpdir, CHAT_SESSION=session, PYTHON=sys.executable)
    server = Tmux(tmpdir, session, env)
    try:
        yield server
    finally:
        server("kill-server", check=False)
        shutil.rmtree(tmpdir, ignore_errors=True)


def test_server_and_three_clients_chat(tmux: Tmux) -> None:
    port = free_port()
    done = tmux.run_script(str(port))
    assert done.returncode == 0, done.stderr
    assert f"tmux attach -t {tmux.session}" in done.stdout
    panes = tmux.panes()
    assert [title for _, title in panes] == ["server", "client 1", "client 2", "client 3"]
    (server, _), (one, _), (two, _), (three, _) = panes
    assert f"listening on localhost:{port}" in tmux.wait_screen(server, lambda s: "listening on" in s)
    for pane in (one, two, three):
        tmux.wait_screen(pane, lambda s: s.rstrip().endswith("username:"))
    tmux.type(one, "alice")
    tmux.wait_screen(one, lambda s: "--> alice joined" in s)  # else bob may join first: alice sees no JOIN
    tmux.type(two, "bob")
    tmux.wait_screen(one, lambda s: "--> bob joined" in s)
    tmux.type(one, "hello from alice")
    tmux.wait_screen(two, lambda s: "alice: hello from alice" in s)
    tmux.type(three, "alice")  # taken: the client says why and asks again
    tmux.wait_screen(three, lambda s: "error (name-taken)" in s and s.rstrip().endswith("username:"))
    tmux.type(three, "carol")
    tmux.type(three, "/who")
    tmux.wait_screen(three, lambda s: "online (3): alice, bob, carol" in s)
    tmux.type(two, "exit")
    tmux.wait_screen(one, lambda s: "<-- bob left (quit)" in s)


def test_ctrl_c_in_the_server_pane_ends_the_session(tmux: Tmux) -> None:
    assert tmux.run_script(str(free_port())).returncode == 0
    (server, _), (one, _), *_ = tmux.panes()
    tmux.wait_screen(server, lambda s: "listening on" in s)
    tmux.wait_screen(one, lambda s: "username:" in s)
    tmux("send-keys", "-t", server, "C-c")
    deadline = time.monotonic() + START_TIMEOUT
    while tmux.has_session() and time.monotonic() < deadline:
        time.sleep(POLL)  # polling for the session's end, bounded by the deadline
    assert not tmux.has_session()


def test_existing_session_is_left_alone(tmux: Tmux) -> None:
    tmux("new-session", "-d", "-s", tmux.session)
    done = tmux.run_script(str(free_port()))
    assert done.returncode != 0
    assert "already exists" in done.stderr and tmux.session in done.stderr
    assert len(done.stderr.splitlines()) == 1
    assert len(tmux.panes()) == 1  # untouched


def test_server_that_cannot_start_is_reported(tmux: Tmux) -> None:
    with socket.create_server(("127.0.0.1", 0)) as taken:  # the server cannot listen on a taken port
        port = taken.getsockname()[1]
        done = tmux.run_script(str(port))
    assert done.returncode != 0
    assert "the server did not start" in done.stderr and "in use" in done.stderr, done.stderr
    assert not tmux.has_session()
    assert "Traceback" not in done.stderr


@pytest.mark.parametrize("args", [["http"], ["70000"], ["-5"], ["1", "2"]])
def test_bad_arguments_are_one_line(tmux: Tmux, args: list[str]) -> None:
    done = tmux.run_script(*args)
    assert done.returncode == 2
    assert len(done.stderr.splitlines()) == 1 and "usage" in done.stderr


def test_without_tmux_or_terminal_it_prints_the_manual_commands(tmux: Tmux) -> None:
    empty = os.path.join(tmux.tmpdir, "bin")
    os.mkdir(empty)  # a PATH with neither tmux nor any terminal emulator
    env = {k: v for k, v in tmux.env.items() if k not in ("DISPLAY", "WAYLAND_DISPLAY")}
    env.update(PATH=empty, PYTHON="python3")
    done = tmux.run_script("9998", env=env)
    assert done.returncode == 1
    assert "neither tmux nor a terminal emulator" in done.stderr
    assert "python3 -m chat.server --port 9998" in done.stderr
    assert "python3 -m chat.client localhost 9998" in done.stderr


def _shim(tmux: Tmux, body: str) -> dict[str, str]:
    """An environment whose PYTHON is a bash script: ``body``, then the real interpreter."""
    path = os.path.join(tmux.tmpdir, "python-shim")
    with open(path, "w") as shim:
        shim.write(f'#!{BASH}\n{body}\nexec "{sys.executable}" "$@"\n')
    os.chmod(path, 0o755)
    return {**tmux.env, "PYTHON": path}


def test_clients_that_cannot_import_rich_are_reported(tmux: Tmux) -> None:
    """The venv is not active in the clients' terminals: `rich` cannot be imported, every client dies."""
    fake = os.path.join(tmux.tmpdir, "norich", "rich")
    os.makedirs(fake)
    with open(os.path.join(fake, "__init__.py"), "w") as module:
        module.write("raise ModuleNotFoundError(\"No module named 'rich'\", name='rich')\n")
    env = {**tmux.env, "PYTHONPATH": os.path.dirname(fake)}  # the server does not need rich; clients do
    done = tmux.run_script(str(free_port()), env=env)
    assert done.returncode == 1, done.stdout
    assert "chat started" not in done.stdout
    # Every client dies; the script names each one it found dead in the round that first saw one.
    assert re.search(r"^run_chat\.sh: client [123] exited \(status 1\)", done.stderr, re.M), done.stderr
    assert "ModuleNotFoundError: No module named 'rich'" in done.stderr
    assert done.stderr.count("virtual environment") == 1, done.stderr
    assert not tmux.has_session()  # the session it started is gone


def test_one_dead_client_is_named_with_its_last_lines(tmux: Tmux) -> None:
    # A private tmux server numbers panes %0 (server) to %3: the shim breaks client 2 alone.
    env = _shim(tmux, 'if [[ $TMUX_PANE == "%2" ]]; then echo "no terminal for client two" >&2; exit 3; fi')
    done = tmux.run_script(str(free_port()), env=env)
    assert done.returncode == 1, done.stdout
    assert "client 2 exited (status 3)" in done.stderr, done.stderr
    assert "no terminal for client two" in done.stderr
    assert "client 1" not in done.stderr and "client 3" not in done.stderr
    assert not tmux.has_session()


def test_a_server_that_dies_after_its_ready_line_is_reported(tmux: Tmux) -> None:
    # The server pane (%0) prints a ready line and exits: the clients cannot connect, the server is dead.
    env = _shim(tmux, 'if [[ $TMUX_PANE == "%0" ]]; then echo "listening on localhost:$4"; exit 7; fi')
    done = tmux.run_script(str(free_port()), env=env)
    assert done.returncode == 1, done.stdout
    # its own status (not that of the pane's reader), and its last lines, though it ended at once
    assert "run_chat.sh: server exited (status 7); its last lines:" in done.stderr, done.stderr
    assert "listening on localhost:" in done.stderr
    assert not tmux.has_session()


def test_a_client_whose_terminal_is_killed_is_reported_with_the_signal(tmux: Tmux) -> None:
    # Client 2's shim kills the bash of its own pane (its parent): tmux gives a signal, not an exit status.
    env = _shim(tmux, 'if [[ $TMUX_PANE == "%2" ]]; then kill -KILL $PPID; exit 0; fi')
    done = tmux.run_script(str(free_port()), env=env)
    assert done.returncode == 1, done.stdout
    assert "run_chat.sh: client 2 was killed (signal 9)" in done.stderr, done.stderr
    assert not tmux.has_session()


def test_a_killed_launcher_leaves_no_terminal_waiting(tmux: Tmux) -> None:
    """A pane whose program ended waits while run_chat.sh checks; a SIGKILLed run_chat.sh must not make it
    wait for ever (it has no EXIT trap then: its files stay behind)."""
    go = os.path.join(tmux.tmpdir, "go")
    os.mkfifo(go)
    # Client 1 ends (status 3) only once the test says so, after the launcher is dead.
    env = _shim(tmux, f'if [[ $TMUX_PANE == "%1" ]]; then read -r _ <"{go}"; exit 3; fi')
    env["TMPDIR"] = tmux.tmpdir  # the launcher's leftovers go with the test's directory
    launcher = subprocess.Popen(
        [BASH, SCRIPT, str(free_port())],
        stdin=subprocess.DEVNULL,
        cwd=tmux.tmpdir,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:

        def checking_or_gone() -> bool:  # four panes: the launcher is in its check
            listing = tmux("list-panes", "-s", "-t", f"={tmux.session}", "-F", "#{pane_id}", check=False)
            return launcher.poll() is not None or len(listing.split()) == 4

        wait_for(checking_or_gone, START_TIMEOUT, "the four panes")
        assert launcher.poll() is None, "run_chat.sh ended before its check"  # it is in its check
        launcher.kill()
        launcher.wait(TIMEOUT)
        with open(go, "w") as release:
            release.write("go\n")

        # The pane's bash sees the launcher gone and ends: the pane is dead (remain-on-exit is still on).
        def client_1_dead() -> bool:
            return tmux("display-message", "-p", "-t", "%1", "#{pane_dead}").strip() == "1"

        wait_for(client_1_dead, TIMEOUT, "the end of client 1's terminal, whose launcher is gone")
        assert "[exited with status 3]" in tmux.screen("%1")
    finally:
        if launcher.poll() is None:
            launcher.kill()
            launcher.wait(TIMEOUT)


def test_panes_close_normally_once_checked(tmux: Tmux) -> None:
    """remain-on-exit is only for the check: afterwards a client that leaves closes its pane."""
    assert tmux.run_script(str(free_port())).returncode == 0
    (_, _), (one, _), *_ = tmux.panes()
    tmux.wait_screen(one, lambda s: "username:" in s)
    tmux.type(one, "exit")
    deadline = time.monotonic() + START_TIMEOUT
    while len(tmux.panes()) == 4 and time.monotonic() < deadline:
        time.sleep(POLL)  # polling for the pane to close, bounded by the deadline
    assert len(tmux.panes()) == 3
