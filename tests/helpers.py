"""Test tools: a chat server on a free port (through harness.common.launcher), and a line-level client.

Every wait here is on a line or a condition with a timeout, never a sleep.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager

from harness.common import launcher
from harness.common.procstat import sample_process

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TIMEOUT = 10.0


class ServerProcess(launcher.ServerProcess):
    """``python -m chat.server --port 0 ...`` on 127.0.0.1, through the harness's one launcher.

    What tests add to it: a line-level client (:meth:`connect`), :meth:`stop`
    returning what the server logged (tests assert it holds no traceback), and
    the thread and descriptor counts of the process.
    """

    def __init__(self, *args: str, module: str = "chat.server", command: Sequence[str] | None = None) -> None:
        super().__init__(
            command or [sys.executable, "-m", module, "--host", "127.0.0.1", "--port", "0", *args], cwd=REPO
        )

    def start(self, timeout: float = TIMEOUT) -> ServerProcess:
        super().start(timeout)
        return self

    def connect(self, timeout: float = TIMEOUT) -> LineClient:
        return LineClient(self.host, self.port, timeout=timeout)

    def stop(self, sig: int = signal.SIGTERM, timeout: float = TIMEOUT) -> str:  # type: ignore[override]
        """Signal (SIGTERM by default) and wait; returns what the server wrote on stderr."""
        super().stop(sig, timeout)
        return self.log()

    def thread_count(self) -> int:
        """Threads of the server process."""
        sample = sample_process(self.pid)
        assert sample is not None, "the server is gone"
        return sample.threads

    def open_fds(self) -> int:
        sample = sample_process(self.pid)
        assert sample is not None, "the server is gone"
        return sample.fds


@contextmanager
def running_server(*args: str) -> Iterator[ServerProcess]:
    server = ServerProcess(*args).start()
    try:
        yield server
    finally:
        err = server.stop()
        assert "Traceback" not in err, err


class LineClient:
    """A raw protocol client: send lines, read lines, each read with a timeout."""

    def __init__(self, host: str, port: int, *, timeout: float = TIMEOUT, rcvbuf: int | None = None) -> None:
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        if rcvbuf is not None:
            self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
        self.sock.settimeout(timeout)
        self.sock.connect((host, port))
        self.timeout = timeout
        self._buf = b""

    def send(self, data: bytes | str) -> None:
        if isinstance(data, str):
            data = (data + "\n").encode()
        self.sock.sendall(data)

    def read_line(self, timeout: float | None = None) -> str:
        """The next line, terminator removed; '' on EOF. Raises TimeoutError."""
        deadline = time.monotonic() + (timeout if timeout is not None else self.timeout)
        while b"\n" not in self._buf:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise TimeoutError(f"no line within the timeout; buffered {self._buf[:80]!r}")
            self.sock.settimeout(remaining)
            try:
                chunk = self.sock.recv(65536)
            except TimeoutError:
                raise TimeoutError(f"no line within the timeout; buffered {self._buf[:80]!r}") from None
            if not chunk:
                if self._buf:
                    line, self._buf = self._buf, b""
                    return line.decode()
                return ""
            self._buf += chunk
        line, _, self._buf = self._buf.partition(b"\n")
        return line.decode()

    def read_until(self, prefix: str, timeout: float | None = None) -> list[str]:
        """Lines up to and including the first that starts with ``prefix``."""
        lines = []
        while True:
            line = self.read_line(timeout)
            lines.append(line)
            if line.startswith(prefix):
                return lines
            if line == "":
                raise EOFError(f"connection closed before {prefix!r}; got {lines[-5:]}")

    def expect(self, prefix: str, timeout: float | None = None) -> str:
        line = self.read_line(timeout)
        assert line.startswith(prefix), f"expected {prefix!r}, got {line!r}"
        return line

    def join(self, name: str) -> list[str]:
        """Do the handshake; returns [OK line, JOIN line]."""
        self.expect("HELLO ")
        self.send(name)
        ok = self.expect("OK ")
        join = self.expect("JOIN ")
        return [ok, join]

    def is_closed_by_peer(self, timeout: float | None = None) -> bool:
        try:
            return self.read_line(timeout) == ""
        except (ConnectionResetError, TimeoutError):
            return False

    def close(self) -> None:
        self.sock.close()

    def __enter__(self) -> LineClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def run_module(
    module: str, args: Sequence[str], *, input: str | None = None, timeout: float = 60.0
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", module, *args],
        input=input,
        capture_output=True,
        text=True,
        timeout=timeout,
        cwd=REPO,
    )
