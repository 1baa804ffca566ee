"""The one launcher of servers under test: a subprocess on a free port, stopped by its PID.

Every part of the harness that starts a server (the swarm's own server, the
benchmarks, the notebooks' kit, the demo, the grader, the tests) starts it here,
so that readiness, logs and stopping work the same way everywhere:

* **Ready.** Our server prints exactly one line on stdout, ``listening on
  HOST:PORT``, once it accepts connections (docs/protocol.md). A server that
  prints no such line (a student's, a peer such as ngircd) is ready when its
  port accepts a TCP connection: :class:`Readiness` says which rule applies.
* **Logs.** stderr goes to a file, never to a pipe that nobody reads (a chatty
  server would fill it and stall). Our server prints ``metrics on URL`` on
  stderr *before* its ready line, so the URL is in the log by the time the
  server is ready.
* **Stop.** SIGTERM to the PID we started, a bounded wait, then SIGKILL. Never
  by name. A safety net stops a forgotten server when the interpreter exits.
"""

from __future__ import annotations

import atexit
import enum
import logging
import os
import select
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from types import TracebackType
from typing import IO

from harness.common.address import Endpoint, parse_endpoint

log = logging.getLogger(__name__)

#: What our server prints on stdout when it is ready (the rest of the line is HOST:PORT).
READY_PREFIX = "listening on "
#: What it prints on stderr, before the ready line, when it serves metrics.
METRICS_PREFIX = "metrics on "
#: Seconds a server gets to become ready: a cold interpreter on a loaded 2-core machine
#: takes a few seconds to import everything.
START_TIMEOUT = 20.0
#: Seconds between SIGTERM and SIGKILL: our server exits within 2 s of SIGTERM.
STOP_TIMEOUT = 5.0
#: How often a port-readiness check tries to connect.
PORT_POLL = 0.05

#: The checkout this harness runs from: a server started here imports the same chat/ package.
REPO = str(Path(__file__).resolve().parents[2])


class ServerStartError(RuntimeError):
    """The server exited, or stayed silent, instead of becoming ready. The message says why."""


class Readiness(enum.Enum):
    """How to tell that a server is ready."""

    #: It prints ``listening on HOST:PORT`` on stdout (our server; the port may be 0 on its command line).
    READY_LINE = "ready-line"
    #: Its port accepts a TCP connection (any other server; the port must be known in advance).
    PORT = "port"


def free_port(host: str = "127.0.0.1") -> int:
    """A port that was free a moment ago, for servers that cannot be told ``--port 0``.

    There is a window between this call and the server's bind in which another
    process may take the port; the start then fails with a clear error.
    """
    with socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET) as s:
        s.bind((host, 0))
        return int(s.getsockname()[1])


def chat_server_command(*args: str, host: str = "127.0.0.1", port: int = 0) -> list[str]:
    """``python -m chat.server --host HOST --port PORT ARGS...`` with this interpreter."""
    return [sys.executable, "-m", "chat.server", "--host", host, "--port", str(port), *args]


class ServerProcess:
    """One server process under test, owned from start to stop.

    ``with ServerProcess(cmd).start() as srv:`` stops it at the end of the block,
    whatever happens. ``endpoint`` is where it listens; ``log()`` is what it
    wrote on stderr (and, with :attr:`Readiness.PORT`, on stdout).
    """

    def __init__(
        self,
        command: Sequence[str],
        *,
        readiness: Readiness = Readiness.READY_LINE,
        endpoint: Endpoint | None = None,
        log_path: str | os.PathLike[str] | None = None,
        cwd: str | None = REPO,
        env: Mapping[str, str] | None = None,
        new_session: bool = False,
    ) -> None:
        if readiness is Readiness.PORT and endpoint is None:
            raise ValueError("a server that is ready when its port accepts needs its endpoint")
        self.command = list(command)
        self.readiness = readiness
        self.endpoint: Endpoint = endpoint or Endpoint("127.0.0.1", 0)
        self.cwd = cwd
        self.new_session = new_session
        self.env = dict(os.environ if env is None else env)
        self.env["PYTHONUNBUFFERED"] = "1"
        if cwd == REPO:
            # The server imports this checkout's chat/, whatever the caller's sys.path.
            paths = [REPO, *(p for p in self.env.get("PYTHONPATH", "").split(os.pathsep) if p)]
            self.env["PYTHONPATH"] = os.pathsep.join(dict.fromkeys(paths))
        self._tmpdir: tempfile.TemporaryDirectory[str] | None = None
        if log_path is None:
            self._tmpdir = tempfile.TemporaryDirectory(prefix="chat-server-")
            log_path = Path(self._tmpdir.name) / "server.log"
        self.log_path = Path(log_path)
        self.proc: subprocess.Popen[bytes] | None = None
        self.returncode: int | None = None
        self.metrics_url: str | None = None
        self._final_log: str | None = None
        self._stdout_thread: threading.Thread | None = None

    # -- properties -------------------------------------------------------------
    @property
    def pid(self) -> int:
        assert self.proc is not None, "not started"
        return self.proc.pid

    @property
    def host(self) -> str:
        return self.endpoint.host

    @property
    def port(self) -> int:
        return self.endpoint.port

    @property
    def address(self) -> str:
        """``HOST:PORT``, as ``--target`` takes it."""
        return str(self.endpoint)

    @property
    def is_running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    # -- lifecycle --------------------------------------------------------------
    def start(self, timeout: float = START_TIMEOUT) -> ServerProcess:
        """Start the process and wait, at most ``timeout`` seconds, until it is ready.

        Raises :class:`ServerStartError` (the process stopped) when it exits or
        stays silent instead, with the last line it logged.
        """
        if self.proc is not None:
            raise RuntimeError("already started")
        with open(self.log_path, "wb") as log_file:
            self.proc = subprocess.Popen(
                self.command,
                stdin=subprocess.DEVNULL,
                stdout=subprocess.PIPE if self.readiness is Readiness.READY_LINE else log_file,
                stderr=log_file,
                cwd=self.cwd,
                env=self.env,
                start_new_session=self.new_session,
            )
        atexit.register(self.stop)
        try:
            if self.readiness is Readiness.READY_LINE:
                self._await_ready_line(timeout)
            else:
                self._await_port(timeout)
        except ServerStartError:
            self.stop()
            raise
        self.metrics_url = self._metrics_url()
        return self

    def _await_ready_line(self, timeout: float) -> None:
        proc = self.proc
        assert proc is not None and proc.stdout is not None
        deadline = time.monotonic() + timeout
        line = b""
        while True:
            remaining = deadline - time.monotonic()
            ready, _, _ = select.select([proc.stdout], [], [], max(0.0, remaining))
            if not ready:
                raise ServerStartError(self._why(f"no '{READY_PREFIX.strip()}' line within {timeout:g} s"))
            line = proc.stdout.readline()
            if not line:
                # stdout closes a moment before the process is reaped: wait (bounded) for its exit code.
                try:
                    proc.wait(STOP_TIMEOUT)
                except subprocess.TimeoutExpired:
                    pass  # it closed stdout but lives on: _why() says so without an exit code
                raise ServerStartError(self._why("it exited before it was ready"))
            text = line.decode(errors="replace").strip()
            if text.startswith(READY_PREFIX):
                try:
                    self.endpoint = parse_endpoint(text[len(READY_PREFIX) :])
                except ValueError as exc:
                    raise ServerStartError(f"unreadable ready line {text!r}: {exc}") from None
                break
        # Nothing more is expected on stdout, but a pipe nobody reads could fill and
        # stall the server: a thread drains it until the process closes it.
        self._stdout_thread = threading.Thread(
            target=_drain, args=(proc.stdout,), name=f"server-{proc.pid}-stdout", daemon=True
        )
        self._stdout_thread.start()

    def _await_port(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while True:
            if self.proc is not None and self.proc.poll() is not None:
                raise ServerStartError(self._why("it exited before it was ready"))
            try:
                with socket.create_connection(self.endpoint, timeout=PORT_POLL * 10):
                    return
            except OSError:
                if time.monotonic() >= deadline:
                    raise ServerStartError(
                        self._why(f"nothing accepted a connection on {self.address} within {timeout:g} s")
                    ) from None
            # Wait on the process itself between tries: an exit ends the wait at once.
            try:
                assert self.proc is not None
                self.proc.wait(PORT_POLL)
            except subprocess.TimeoutExpired:
                pass  # still running: try the port again

    def _why(self, what: str) -> str:
        code = self.proc.poll() if self.proc is not None else None
        last = [ln for ln in self.log().strip().splitlines() if ln.strip()]
        exit_text = f" (exit code {code})" if code is not None else ""
        detail = f": {last[-1]}" if last else ""
        return f"{' '.join(self.command[:4])}... did not start{exit_text}, {what}{detail}"

    def _metrics_url(self) -> str | None:
        for line in self.log().splitlines():
            if line.startswith(METRICS_PREFIX):
                return line[len(METRICS_PREFIX) :].strip()
        return None

    def stop(self, sig: int = signal.SIGTERM, timeout: float = STOP_TIMEOUT) -> int:
        """Signal the process (SIGTERM by default), wait; SIGKILL after ``timeout``. Returns the exit code.

        Idempotent; the log stays readable afterwards.
        """
        if self.returncode is not None:
            return self.returncode
        proc = self.proc
        if proc is None:
            return 0
        if proc.poll() is None:
            try:
                proc.send_signal(sig)
            except ProcessLookupError:
                pass  # it exited between the poll and the signal
        try:
            self.returncode = proc.wait(timeout)
        except subprocess.TimeoutExpired:
            log.warning(
                "%s (pid %d) did not stop within %g s; killing it", self.command[0], proc.pid, timeout
            )
            proc.kill()
            self.returncode = proc.wait(timeout)
        if self._stdout_thread is not None:
            self._stdout_thread.join(timeout)
        if proc.stdout is not None:
            proc.stdout.close()
        self._final_log = self.log()
        if self._tmpdir is not None:
            self._tmpdir.cleanup()  # the log is kept in memory: no folder is left behind
        atexit.unregister(self.stop)
        return self.returncode

    def kill(self) -> None:
        """SIGKILL now (a test that wants a crash, not a shutdown)."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()

    def log(self) -> str:
        """What the server wrote to its log so far (all of it, once stopped)."""
        if self._final_log is not None:
            return self._final_log
        try:
            return self.log_path.read_text(encoding="utf-8", errors="replace")
        except OSError:
            return ""

    def __enter__(self) -> ServerProcess:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()


def _drain(stream: IO[bytes]) -> None:
    while stream.read(65536):
        pass  # discarded: our server writes nothing after its ready line


def start_chat_server(
    *args: str,
    metrics: bool = False,
    timeout: float = START_TIMEOUT,
    log_path: str | os.PathLike[str] | None = None,
    new_session: bool = False,
) -> ServerProcess:
    """``python -m chat.server`` on 127.0.0.1 and a free port, with ``args``; ready when it returns.

    With ``metrics`` it also serves Prometheus metrics on a free port
    (``.metrics_url``). ``new_session`` keeps a Ctrl+C meant for the caller
    from reaching the server (the caller stops it when it is done).
    """
    extra = list(args)
    if metrics and "--metrics-port" not in extra:
        extra += ["--metrics-port", "0"]
    server = ServerProcess(chat_server_command(*extra), log_path=log_path, new_session=new_session)
    return server.start(timeout)
