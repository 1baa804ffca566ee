"""Resources that run out, end to end: slots held by silent connections, file descriptors, threads.

Each test drives a real server process on 127.0.0.1 and checks what a user
would see: a real client still gets in, the members keep chatting, the
server stays up, and its log stays short.
"""

from __future__ import annotations

import os
import shutil
import socket
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import psutil
import pytest

from chat.room import SILENT_EVICT_AFTER
from tests.helpers import TIMEOUT, LineClient, ServerProcess
from tests.server_kit import ServerFactory, member, start_server_fixture  # noqa: F401

pytestmark = pytest.mark.e2e


def try_to_join(server: ServerProcess, name: str, within: float) -> tuple[LineClient, float]:
    """Connect and join as ``name``, again after each ``ERR full``, for at most ``within`` seconds."""
    start = time.monotonic()
    pause = threading.Event()
    while True:
        client = LineClient(server.host, server.port)
        first = client.read_line()
        if first.startswith("HELLO "):
            client.send(name)
            client.expect("OK ")
            return client, time.monotonic() - start
        client.close()
        assert first.startswith("ERR full"), first
        if time.monotonic() - start > within:
            raise AssertionError(f"{name} could not join within {within} s")
        pause.wait(0.1)  # a retry interval, as a user's client would wait before trying again


def silent(server: ServerProcess) -> LineClient:
    """A connection that reads its HELLO and never sends a byte."""
    client = LineClient(server.host, server.port)
    client.expect("HELLO ")
    return client


# -- slots ---------------------------------------------------------------------------------------


def test_five_silent_connections_do_not_keep_a_real_user_out(start_server: ServerFactory) -> None:
    server = start_server()  # the defaults: 5 slots, a 30 s handshake timeout
    hogs = [silent(server) for _ in range(5)]
    try:
        client, waited = try_to_join(server, "alice", within=10)
        with client:
            assert waited <= 10
            # The longest-silent connection gave its slot up, and was told why.
            assert hogs[0].expect("ERR timeout ").endswith("your slot went to a newcomer")
            assert hogs[0].read_line() == ""
            for hog in hogs[1:]:
                with pytest.raises(TimeoutError):
                    hog.read_line(timeout=0.05)  # the others keep theirs
    finally:
        for hog in hogs:
            hog.close()


def test_hogs_that_reconnect_at_once_still_let_a_real_user_in(start_server: ServerFactory) -> None:
    """Five hogs that reconnect as soon as they are closed: a user who retries still gets in."""
    server = start_server("--max-clients", "5")
    stop = threading.Event()
    errors: list[BaseException] = []

    def hog() -> None:
        try:
            while not stop.is_set():
                with socket.create_connection((server.host, server.port), timeout=TIMEOUT) as s:
                    s.settimeout(0.2)
                    while not stop.is_set():  # hold the slot silently until the server closes it
                        try:
                            if not s.recv(4096):
                                break
                        except TimeoutError:
                            continue
                        except ConnectionResetError:
                            break
        except OSError as exc:  # pragma: no cover - reported below
            errors.append(exc)

    hogs = [threading.Thread(target=hog) for _ in range(5)]
    for t in hogs:
        t.start()
    try:
        client, waited = try_to_join(server, "alice", within=10)
        client.close()
        assert waited <= 10
    finally:
        stop.set()
        for t in hogs:
            t.join(timeout=TIMEOUT)
    assert not errors, errors


def test_young_silent_connections_still_take_their_slots(start_server: ServerFactory) -> None:
    """Within the eviction grace a handshaking connection counts like any other: ERR full."""
    server = start_server("--max-clients", "2")
    with silent(server), silent(server), LineClient(server.host, server.port) as third:
        assert third.read_line().startswith("ERR full")
        assert third.read_line() == ""


def test_a_connection_that_sent_part_of_its_name_keeps_its_slot(start_server: ServerFactory) -> None:
    server = start_server("--max-clients", "1")
    with LineClient(server.host, server.port) as typing:
        typing.expect("HELLO ")
        typing.send(b"ali")  # no newline yet: a slow typist, not a silent hog
        wait_past = threading.Event()
        wait_past.wait(SILENT_EVICT_AFTER + 0.3)  # the grace must have passed for this check to mean anything
        with LineClient(server.host, server.port) as newcomer:
            assert newcomer.read_line().startswith("ERR full")
        typing.send("ce")
        typing.expect("OK alice")


# -- file descriptors -------------------------------------------------------------------------------


def cpu_seconds(pid: int) -> float:
    times = psutil.Process(pid).cpu_times()
    return times.user + times.system


@pytest.mark.skipif(shutil.which("prlimit") is None, reason="needs prlimit (util-linux)")
def test_out_of_descriptors_the_server_sheds_newcomers_keeps_members_and_recovers() -> None:
    limited = ["prlimit", "--nofile=64:64", sys.executable, "-m", "chat.server"]
    server = ServerProcess(command=[*limited, "--host", "127.0.0.1", "--port", "0", "--max-clients", "500"])
    server.start()
    pid = server.pid  # prlimit sets the limit and execs the server: one process
    hogs: list[socket.socket] = []
    try:
        with member(server, "alice") as alice, member(server, "bob") as bob:
            alice.expect("JOIN ")  # bob's
            for _ in range(100):
                hogs.append(socket.create_connection((server.host, server.port), timeout=TIMEOUT))
            answers = [h.recv(64)[:8] for h in hogs]  # every attempt gets an answer: HELLO or ERR full
            assert set(answers) == {b"HELLO we", b"ERR full"}, set(answers)
            # At the limit: the members chat, and the server does not spin.
            before, started = cpu_seconds(pid), time.monotonic()
            for i in range(20):
                alice.send(f"still here {i}")
                bob.expect("MSG ")
            pause = threading.Event()
            pause.wait(1.5)  # a measuring window for the CPU figure, not synchronisation
            busy = (cpu_seconds(pid) - before) / (time.monotonic() - started)
            assert busy < 0.10, f"{busy:.0%} of a core at the descriptor limit"
            for h in hogs:
                h.close()
            hogs.clear()
            freed = time.monotonic()
            client, _ = try_to_join(server, "carol", within=5)
            client.close()
            assert time.monotonic() - freed < 1.0 + 0.5  # re-watched within 0.25 s; the rest is closing
    finally:
        for h in hogs:
            h.close()
        err = server.stop()
    assert "Traceback" not in err
    warnings = [line for line in err.splitlines() if "accept failed" in line]
    assert 1 <= len(warnings) <= 2, err[-3000:]  # once per 10 s, however many attempts


# -- threads ----------------------------------------------------------------------------------------

PIDS_V1 = Path("/sys/fs/cgroup/pids")


@pytest.fixture(name="task_limit")
def task_limit_fixture() -> Iterator[Path]:
    """A pids cgroup of our own (cgroup v1), removed after the test; skip where none can be made."""
    if os.geteuid() != 0 or not (PIDS_V1 / "cgroup.procs").exists():
        pytest.skip("needs root and the cgroup v1 pids controller at /sys/fs/cgroup/pids")
    group = PIDS_V1 / f"chat-test-{os.getpid()}-{threading.get_ident()}"
    try:
        group.mkdir()
    except OSError as exc:
        pytest.skip(f"cannot create a pids cgroup: {exc}")
    try:
        yield group
    finally:
        group.rmdir()  # empty by now: the server process has exited


def test_a_thread_that_cannot_start_refuses_one_connection_and_the_server_goes_on(task_limit: Path) -> None:
    server = ServerProcess("--max-clients", "30").start()
    (task_limit / "pids.max").write_text("40")
    (task_limit / "cgroup.procs").write_text(str(server.pid))
    joined: list[LineClient] = []
    refused = 0
    try:
        for i in range(30):
            client = LineClient(server.host, server.port)
            first = client.read_line()
            if first.startswith("ERR full"):
                refused += 1
                client.close()
                continue
            assert first.startswith("HELLO "), first
            client.send(f"m{i:02d}")
            client.expect("OK ")
            joined.append(client)
        assert refused > 0 and len(joined) >= 10, (refused, len(joined))  # 2 threads per member, 40 tasks
        # The members are unharmed: one says something, the last to join hears it.
        joined[0].send("still chatting")
        joined[-1].read_until("MSG ")
        assert server.is_running
    finally:
        for client in joined:
            client.close()
        err = server.stop()
        (task_limit / "pids.max").write_text("max")
    assert server.proc is not None and server.proc.returncode == 0, err
    assert "Traceback" not in err, err
    assert "cannot start a thread" in err
