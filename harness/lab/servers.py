"""Chat servers a notebook starts: ``python -m chat.server`` on 127.0.0.1 and a free port, stopped by PID.

Started by :mod:`harness.common.launcher` (the harness's one launcher: readiness, the log file, stopping),
with what a lesson adds: the server's thread count, and a start-up error in one line.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from harness.common.launcher import START_TIMEOUT, ServerProcess, ServerStartError, chat_server_command
from harness.common.procstat import sample_process


class LabServer(ServerProcess):
    """A server a notebook started: ``.address``, ``.pid``, ``.metrics_url``, ``.log()``, ``.stop()``
    (:class:`harness.common.launcher.ServerProcess`), and :meth:`threads`."""

    def threads(self) -> int:
        """Threads of the server process right now (one per client and more: the threading model)."""
        return thread_count(self.pid)


def thread_count(pid: int) -> int:
    """Threads of process ``pid``."""
    sample = sample_process(pid)
    if sample is None:
        raise ProcessLookupError(f"no process {pid}")
    return sample.threads


def start_server(*args: str, metrics: bool = False, timeout: float = START_TIMEOUT) -> LabServer:
    """Start ``chat.server`` with extra ``args`` and wait (at most ``timeout``) until it is ready.

    With ``metrics`` the server serves Prometheus metrics on a free port too;
    its URL is in ``.metrics_url``. The server is stopped at interpreter exit
    if nobody stopped it before; prefer ``with chat_server(...) as srv:`` or
    ``srv.stop()``. Raises RuntimeError, with the server's own last log line,
    if it exits or stays silent instead.
    """
    extra = list(args)
    if metrics and "--metrics-port" not in extra:
        extra += ["--metrics-port", "0"]
    server = LabServer(chat_server_command(*extra))
    try:
        server.start(timeout)
    except ServerStartError as exc:
        logged = [line for line in server.log().strip().splitlines() if line.strip()]
        raise RuntimeError(f"chat.server did not start: {logged[-1] if logged else exc}") from None
    return server


@contextmanager
def chat_server(*args: str, metrics: bool = False, timeout: float = START_TIMEOUT) -> Iterator[LabServer]:
    """``with chat_server("--delivery", "direct") as srv:``: a server for the block, stopped by PID after."""
    server = start_server(*args, metrics=metrics, timeout=timeout)
    try:
        yield server
    finally:
        server.stop()
