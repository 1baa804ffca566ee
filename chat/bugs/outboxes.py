"""The catalogue's outboxes: ways of writing to a socket that break on purpose.

Teaching code (see :mod:`chat.bugs`). Each is given to a connection by a
session of :mod:`chat.bugs.sessions`, through the session's outbox step.
"""

from __future__ import annotations

import logging
import socket
import threading
from collections import deque
from collections.abc import Callable

from chat.bugs.race import pause
from chat.delivery import BatchedOutbox, DirectOutbox, Outbox

log = logging.getLogger(__name__)


class TornOutbox(DirectOutbox):
    """``torn-writes``: each line written from the caller's thread, in two sends."""

    def __init__(self, sock: socket.socket, name: str, window: float) -> None:
        super().__init__(sock, name)
        self.window = window

    def put(self, line: bytes) -> int:
        if self.is_finishing or self.is_broken:
            return 0
        # BUG: a line goes out as two sends (say, a header then a body), from
        # whichever thread delivers it. Another thread's send to the same socket
        # can land between the two.
        cut = line.find(b" ", line.find(b" ") + 1) + 1 or len(line) // 2
        try:
            self._send_part(line[:cut])
            pause(self.window)
            self._send_part(line[cut:])
        except OSError as exc:
            self.is_broken = True
            log.debug("torn send to %s failed: %s", self.label, exc)
        return 0

    def _send_part(self, data: bytes) -> None:
        # Non-blocking, so that a member that stops reading loses lines instead
        # of stalling the room: this bug is about tearing, not about blocking.
        self.sock.send(data, socket.MSG_DONTWAIT)
        self.sends += 1
        self.bytes_sent += len(data)


class ReportingOutbox(BatchedOutbox):
    """``double-leave``: a writer that reports a failed send itself, a second path that announces a drop."""

    def __init__(self, sock: socket.socket, name: str, on_broken: Callable[[], None]) -> None:
        super().__init__(sock, name)
        self._on_broken = on_broken

    def _run(self) -> None:
        super()._run()
        if self.is_broken and not self.is_finishing:
            self._on_broken()  # BUG: "the peer is gone: announce it right away" (its reader will too)


class LostWakeupOutbox(Outbox):
    """``lost-wakeup``: a writer that says it is going to sleep *after* it looked at the queue."""

    has_writer = True

    def __init__(self, sock: socket.socket, name: str, window: float) -> None:
        super().__init__(sock, name)
        self.window = window
        self._lines: deque[bytes] = deque()
        self._wake = threading.Event()
        self.is_sleeping = False  # "the writer is waiting: wake it" (read and written without a lock)

    def put(self, line: bytes) -> int:
        if self.is_finishing:
            return 0
        self._lines.append(line)
        n = len(self._lines)
        if n == 1 and self.is_sleeping:  # only a sleeping writer needs waking ...
            self._wake.set()
        return n

    def backlog(self) -> int:
        return len(self._lines)

    def finish(self) -> None:
        super().finish()
        self._wake.set()

    def abort(self) -> None:
        super().abort()
        self._wake.set()

    def _write_loop(self) -> None:
        lines = self._lines
        while True:
            while lines and not self.is_aborted:
                self._send(b"".join([lines.popleft() for _ in range(len(lines))]))
            if self.is_aborted or self.is_finishing:
                if not lines or self.is_aborted:
                    return
                continue
            # BUG: "is there work?" was answered above, "I am asleep" is said
            # here. A put in between finds the queue empty and the writer not
            # asleep, so it wakes nobody; the writer then sleeps on a queue
            # that has a line in it, and later puts (not empty to non-empty)
            # never wake it either.
            pause(self.window)
            self.is_sleeping = True
            self._wake.wait()  # no timeout: it trusts that a put will wake it
            self._wake.clear()
            self.is_sleeping = False
