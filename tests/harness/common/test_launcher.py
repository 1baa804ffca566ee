"""The one launcher: ready line or port, logs in a file, stopped by PID, clear errors."""

from __future__ import annotations

import signal
import socket
import sys

import pytest

from harness.common.address import Endpoint
from harness.common.launcher import (
    Readiness,
    ServerProcess,
    ServerStartError,
    chat_server_command,
    free_port,
    start_chat_server,
)

pytestmark = pytest.mark.e2e

#: A server that prints no ready line: ready when its port accepts (a student's, a peer).
PLAIN_SERVER = """
import socket, sys
s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(("127.0.0.1", int(sys.argv[1]))); s.listen()
print("some chatter on stdout", flush=True)
while True:
    c, _ = s.accept(); c.sendall(b"hi\\n"); c.close()
"""


def test_chat_server_ready_line_endpoint_metrics_and_stop() -> None:
    with start_chat_server("--max-clients", "3", metrics=True) as srv:
        assert srv.is_running
        assert srv.host == "127.0.0.1" and srv.port > 0
        assert srv.address == f"127.0.0.1:{srv.port}"
        assert srv.metrics_url is not None and srv.metrics_url.startswith("http://127.0.0.1:")
        with socket.create_connection(srv.endpoint, timeout=5) as s:
            assert s.recv(100).startswith(b"HELLO ")
    assert srv.returncode == 0
    assert not srv.is_running
    assert "Traceback" not in srv.log()
    assert srv.stop() == 0  # idempotent


def test_a_server_that_exits_says_why() -> None:
    with pytest.raises(ServerStartError, match=r"did not start \(exit code 2\), .*--max-clients"):
        start_chat_server("--max-clients", "0")


def test_a_silent_server_times_out_and_is_stopped() -> None:
    srv = ServerProcess([sys.executable, "-c", "import time; time.sleep(60)"])
    with pytest.raises(ServerStartError, match=r"no 'listening on' line within 0.5 s"):
        srv.start(timeout=0.5)
    assert srv.returncode is not None  # stopped by its PID, not left behind


def test_port_readiness_for_a_server_without_a_ready_line() -> None:
    port = free_port()
    cmd = [sys.executable, "-c", PLAIN_SERVER, str(port)]
    with ServerProcess(cmd, readiness=Readiness.PORT, endpoint=Endpoint("127.0.0.1", port)).start() as srv:
        assert srv.port == port
        with socket.create_connection(srv.endpoint, timeout=5) as s:
            assert s.recv(10) == b"hi\n"
    assert "some chatter on stdout" in srv.log()  # stdout goes to the log: no pipe to fill
    assert srv.returncode == -signal.SIGTERM


def test_port_readiness_sees_an_early_exit() -> None:
    port = free_port()
    srv = ServerProcess(
        [sys.executable, "-c", "import sys; print('bad config', file=sys.stderr); sys.exit(3)"],
        readiness=Readiness.PORT,
        endpoint=Endpoint("127.0.0.1", port),
    )
    with pytest.raises(ServerStartError, match=r"\(exit code 3\), it exited before it was ready: bad config"):
        srv.start(timeout=10)


def test_port_readiness_needs_an_endpoint() -> None:
    with pytest.raises(ValueError, match="needs its endpoint"):
        ServerProcess(["true"], readiness=Readiness.PORT)


def test_sigkill_when_sigterm_is_ignored() -> None:
    code = (
        "import signal, time; signal.signal(signal.SIGTERM, signal.SIG_IGN); "
        "print('listening on 127.0.0.1:1', flush=True); time.sleep(60)"
    )
    srv = ServerProcess([sys.executable, "-c", code]).start()
    assert srv.stop(timeout=0.5) == -signal.SIGKILL


def test_command_line() -> None:
    assert chat_server_command("--max-clients", "9")[1:] == [
        "-m",
        "chat.server",
        "--host",
        "127.0.0.1",
        "--port",
        "0",
        "--max-clients",
        "9",
    ]
