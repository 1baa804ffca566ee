"""Shutdown: SIGTERM and SIGINT give every open connection ``BYE server shutting down``, and the
server exits 0 within 2 s with no traceback, for every ``--delivery``, stalled members included."""

from __future__ import annotations

import signal
import threading
import time

import pytest

from tests.helpers import LineClient, ServerProcess
from tests.server_kit import BYE_SHUTDOWN, DELIVERIES, Reader, member, wait_for

pytestmark = pytest.mark.e2e

#: The contract's bound, from the signal to the process's exit.
SHUTDOWN_LIMIT = 2.0


def stop_and_time(server: ServerProcess, sig: int) -> tuple[int, float, str]:
    """Send ``sig``; return (exit code, seconds until exit, stderr)."""
    assert server.proc is not None
    started = time.monotonic()
    server.proc.send_signal(sig)
    try:
        server.proc.wait(timeout=SHUTDOWN_LIMIT + 8)
    finally:
        elapsed = time.monotonic() - started
        err = server.stop()  # collects stderr; kills the process if it is still running
    assert server.proc.returncode is not None
    return server.proc.returncode, elapsed, err


def assert_clean_exit(code: int, elapsed: float, err: str) -> None:
    assert "Traceback" not in err, err
    assert code == 0, err
    assert elapsed < SHUTDOWN_LIMIT, f"exit took {elapsed:.2f} s; stderr: {err}"
    assert "still running" not in err, err  # every thread the server started was joined


def assert_bye_then_closed(client: LineClient) -> None:
    lines = client.read_until("BYE ")
    assert lines[-1] == BYE_SHUTDOWN, lines
    try:
        assert client.read_line() == ""
    except ConnectionResetError:
        pass


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
@pytest.mark.parametrize("delivery", DELIVERIES)
def test_signal_sends_bye_to_every_connection_and_exits_0(delivery: str, sig: int) -> None:
    server = ServerProcess("--delivery", delivery, "--max-clients", "10").start()
    try:
        alice = member(server, "alice")
        bob = member(server, "bob")
        handshaking = server.connect()
        handshaking.expect("HELLO ")
        handshaking.send("not a name!")
        handshaking.expect("ERR invalid-name ")
        fresh = server.connect()  # HELLO not read yet
        fresh.expect("HELLO ")
        alice.send("last words")
        bob.read_until("MSG ")
        code, elapsed, err = stop_and_time(server, sig)
        for client in (alice, bob, handshaking, fresh):
            assert_bye_then_closed(client)
            client.close()
        assert_clean_exit(code, elapsed, err)
    finally:
        server.kill()


@pytest.mark.parametrize("delivery", DELIVERIES)
def test_shutdown_with_a_member_that_stopped_reading(delivery: str) -> None:
    """A member whose socket is full must not hold the shutdown: never block on it.

    In ``direct`` the chatter's reader thread is then blocked in a send to the
    stalled member while it holds the room's lock, and a newcomer's accept waits
    for that lock: the worst case of the original design.
    """
    server = ServerProcess("--delivery", delivery, "--max-clients", "10", "--sndbuf", "4096").start()
    try:
        chatter = member(server, "chatter")
        lazy = LineClient(server.host, server.port, rcvbuf=4096)
        lazy.join("lazy")
        chatter.expect("JOIN 2 lazy")
        count = 300
        text = "x" * 1000
        echoes = Reader(chatter.sock, lambda lines: len(lines) >= count, timeout=1.5).start()
        # Far more than the lazy member's socket buffers hold: ~300 KB.
        flood = threading.Thread(
            target=lambda: chatter.sock.sendall("".join(f"{k} {text}\n" for k in range(count)).encode()),
            daemon=True,
        )
        flood.start()
        if delivery == "direct":
            # The room stalls: the chatter stops getting its own echoes.
            echoes.thread.join(timeout=echoes.timeout + 2)
            assert isinstance(echoes.error, TimeoutError), echoes.lines[-1:]
            assert len(echoes.lines) < count
            # A newcomer during the stall: the accepting thread must not hang on the room's
            # lock. It gets no HELLO (that needs the lock), so wait for the accept itself.
            fds = server.open_fds()
            late = [server.connect()]
            wait_for(lambda: server.open_fds() > fds, what="the newcomer accepted")
        else:
            # The room keeps flowing; the lazy member is dropped as slow.
            lines = echoes.result()
            assert not [line for line in lines if line.startswith("LEAVE") and "chatter" in line]
            late = [server.connect()]
            late[0].expect("HELLO ")
        code, elapsed, err = stop_and_time(server, signal.SIGTERM)
        assert_clean_exit(code, elapsed, err)
        for client in late:
            assert_bye_then_closed(client)
            client.close()
        chatter.close()
        lazy.close()
    finally:
        server.kill()


def test_shutdown_of_an_idle_server_with_no_connection() -> None:
    server = ServerProcess().start()
    try:
        code, elapsed, err = stop_and_time(server, signal.SIGTERM)
        assert_clean_exit(code, elapsed, err)
        assert err == ""
    finally:
        server.kill()
