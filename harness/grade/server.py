"""The server under test: a student's file the grader starts (and stops) itself, or a running target.

A file is started as ``python FILE --host 127.0.0.1 --port PORT --max-clients
N`` on a free port and is ready when the port accepts a connection (no banner
is required of a student's server). Every process the grader starts is owned by
a :class:`~harness.common.launcher.ServerProcess` and stopped by its PID,
whatever happens: :class:`StartedServer` is a context manager, and the command
line stops it on Ctrl+C too.
"""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from pathlib import Path
from types import TracebackType

from harness.common.address import Endpoint
from harness.common.launcher import Readiness, ServerProcess, ServerStartError, free_port

#: Slots the grader asks for: the swarm levels run 30 bots beside the grader's own probes.
MAX_CLIENTS = 100
#: Seconds a student's server may take to accept its first connection.
START_TIMEOUT = 15.0
#: Seconds from SIGTERM to exit that the shutdown level allows.
SHUTDOWN_BOUND = 2.0


class CannotStart(RuntimeError):
    """The server could not be started or reached: the grader's exit code 3."""


class Target:
    """Where the levels connect, and what they may do to the server."""

    def __init__(self, endpoint: Endpoint, *, started: StartedServer | None) -> None:
        self.endpoint = endpoint
        self.started = started

    @property
    def host(self) -> str:
        return self.endpoint.host

    @property
    def port(self) -> int:
        return self.endpoint.port


class StartedServer:
    """A student's server file, started by the grader; stopped by PID on exit from the block."""

    def __init__(self, path: Path, max_clients: int = MAX_CLIENTS) -> None:
        self.path = path
        self.max_clients = max_clients
        self.process: ServerProcess | None = None

    def start(self) -> StartedServer:
        port = free_port()
        command = [sys.executable, str(self.path), "--host", "127.0.0.1", "--port", str(port)]
        command += ["--max-clients", str(self.max_clients)]
        self.process = ServerProcess(
            command, readiness=Readiness.PORT, endpoint=Endpoint("127.0.0.1", port), cwd=str(self.path.parent)
        )
        try:
            self.process.start(START_TIMEOUT)
        except ServerStartError as exc:
            raise CannotStart(str(exc)) from None
        return self

    @property
    def endpoint(self) -> Endpoint:
        assert self.process is not None
        return self.process.endpoint

    def terminate(self) -> tuple[int | None, float]:
        """SIGTERM, then wait up to :data:`SHUTDOWN_BOUND`; (exit code or None if still running, seconds)."""
        assert self.process is not None and self.process.proc is not None
        proc = self.process.proc
        start = time.monotonic()
        proc.send_signal(signal.SIGTERM)
        try:
            code: int | None = proc.wait(SHUTDOWN_BOUND)
        except subprocess.TimeoutExpired:  # still running after the bound
            code = None
        return code, time.monotonic() - start

    def stop(self) -> None:
        if self.process is not None:
            self.process.stop()

    def __enter__(self) -> StartedServer:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()
