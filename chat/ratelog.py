"""A log line that a client can trigger, at most once per interval, with a count of the rest.

The server logs nothing for a client's bad line, but a few conditions are
worth a line and can still be triggered from outside over and over: running
out of file descriptors (every connection attempt meets it), a client that
reconnects in a loop and never reads its replies, a flood of silent
connections. Each such line goes through one :class:`RateLimitedLog`: the
first occurrence is logged at once, the next ones within the interval are
only counted, and the first one after it says how many were left out
("... (312 more in the last 10 s)"). So no client can make the server log
more than one line per interval per condition.
"""

from __future__ import annotations

import logging
import threading
import time

#: Seconds between two lines of one condition.
DEFAULT_INTERVAL = 10.0


class RateLimitedLog:
    """One condition's log line, at most once per ``interval`` seconds. Safe from any thread."""

    def __init__(self, logger: logging.Logger, level: int, interval: float = DEFAULT_INTERVAL) -> None:
        self._logger = logger
        self._level = level
        self.interval = interval
        # Critical section: the count and the time of the last line, read and
        # updated together by whichever thread meets the condition.
        self._lock = threading.Lock()
        self._last = -float("inf")
        self._suppressed = 0

    def log(self, msg: str, *args: object) -> bool:
        """Log ``msg % args`` unless a line went out less than ``interval`` ago; True if it did."""
        if not self._logger.isEnabledFor(self._level):
            return False
        now = time.monotonic()
        with self._lock:
            if now - self._last < self.interval:
                self._suppressed += 1
                return False
            suppressed, self._suppressed = self._suppressed, 0
            self._last = now
        if suppressed:
            msg += f" ({suppressed} more in the last {self.interval:g} s)"
        self._logger.log(self._level, msg, *args)
        return True
