"""Shared tools of the black-box server tests (tests/chat/test_server*.py).

Everything waits on a line, an exit or a condition with a deadline; nothing sleeps.
"""

from __future__ import annotations

import re
import socket
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

import pytest

from tests.helpers import LineClient, ServerProcess

DELIVERIES = ("direct", "queued", "batched")
#: The batched design with its idle fast path off, so that the writer thread carries every line.
WRITER_ONLY = "tests.fixtures.writer_only_server"
#: (delivery, server module) of the ordering tests: each design, and batched's writer alone.
ORDERING_SERVERS = [(d, "chat.server") for d in DELIVERIES] + [("batched", WRITER_ONLY)]
ORDERING_IDS = [*DELIVERIES, "batched-writer-only"]
#: Designs with a writer thread per member: the slow-consumer rule applies to them only.
WRITER_DELIVERIES = ("queued", "batched")

BYE_SHUTDOWN = "BYE server shutting down"

MSG_RE = re.compile(r"^MSG (\d+) (\S+) (.*)$")
BROADCAST_RE = re.compile(r"^(JOIN|MSG|LEAVE) (\d+) ")


class ServerFactory:
    """Starts servers for one test; on teardown stops each by PID and checks its stderr."""

    def __init__(self) -> None:
        self.servers: list[ServerProcess] = []

    def __call__(self, *args: str, module: str = "chat.server") -> ServerProcess:
        server = ServerProcess(*args, module=module)
        self.servers.append(server)
        return server.start()

    def close(self) -> None:
        errors = [server.stop() for server in self.servers if server.proc is not None]
        for err in errors:
            assert "Traceback" not in err, err


@pytest.fixture(name="start_server")
def start_server_fixture() -> Iterator[ServerFactory]:
    """Import this into a test module to get the ``start_server`` fixture."""
    factory = ServerFactory()
    yield factory
    factory.close()


def member(server: ServerProcess, name: str, **kwargs: object) -> LineClient:
    """A connection that has done the handshake (its OK and JOIN lines consumed)."""
    client = LineClient(server.host, server.port, **kwargs)  # type: ignore[arg-type]
    client.join(name)
    return client


def seq_of(line: str) -> int:
    m = BROADCAST_RE.match(line)
    assert m is not None, f"not a numbered broadcast: {line!r}"
    return int(m.group(2))


def wait_for(condition: Callable[[], bool], timeout: float = 10.0, what: str = "condition") -> None:
    """Poll a condition that has no event to wait on (a /proc count), with a deadline."""
    deadline = time.monotonic() + timeout
    pause = threading.Event()
    while not condition():
        if time.monotonic() > deadline:
            raise TimeoutError(f"{what} not reached within {timeout} s")
        pause.wait(0.05)  # a polling interval, not synchronisation: the loop re-checks the condition


@dataclass
class Reader:
    """Reads one socket in a thread until ``stop_when(lines)`` is true, EOF, or the deadline."""

    sock: socket.socket
    stop_when: Callable[[list[str]], bool]
    timeout: float = 30.0
    lines: list[str] = field(default_factory=list)
    error: BaseException | None = None
    eof: bool = False

    def __post_init__(self) -> None:
        self.thread = threading.Thread(target=self._run, daemon=True)

    def start(self) -> Reader:
        self.thread.start()
        return self

    def _run(self) -> None:
        deadline = time.monotonic() + self.timeout
        buf = b""
        try:
            while not self.stop_when(self.lines):
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise TimeoutError(f"reader gave up after {len(self.lines)} lines: {self.lines[-3:]}")
                self.sock.settimeout(remaining)
                chunk = self.sock.recv(262144)
                if not chunk:
                    self.eof = True
                    return
                buf += chunk
                *complete, buf = buf.split(b"\n")
                self.lines.extend(line.decode() for line in complete)
        except BaseException as exc:  # handed to the test thread by result()
            self.error = exc

    def result(self) -> list[str]:
        self.thread.join(self.timeout + 5)
        assert not self.thread.is_alive(), "reader thread did not end"
        if self.error is not None:
            raise self.error
        return self.lines
