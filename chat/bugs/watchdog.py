"""The lock watchdog: a stack dump of every thread once the room's lock has been stuck for seconds.

Teaching code (see :mod:`chat.bugs`): a bug that hangs the room
(``lock-order-deadlock``, ``send-under-lock``) is reported in the server's log
with the stacks that show where, by the time the harness reports the hang.
``kill -USR1 <pid>`` gives the same dump on demand, for any server.
"""

from __future__ import annotations

import faulthandler
import logging
import sys
import threading

from chat.lockstat import InstrumentedLock, SupportsLock

log = logging.getLogger(__name__)

#: The room's lock not obtained for this long means the room is stuck (a
#: deadlock, or a send blocked under the lock): the watchdog dumps the stacks.
#: Below the swarm's liveness bound, so that the dump is in the server's log by
#: the time the harness reports the hang.
WATCHDOG_LIMIT = 2.0


class LockWatchdog:
    """Dumps every thread's stack once ``lock`` cannot be had for ``limit`` seconds.

    It takes the lock briefly every ``limit`` seconds (a negligible load; an
    instrumented lock counts it as site ``watchdog``) and re-arms after the lock
    is free again, so a stall is reported once. Whoever calls :meth:`start`
    calls :meth:`stop`, which joins its thread.
    """

    def __init__(self, lock: SupportsLock, limit: float = WATCHDOG_LIMIT) -> None:
        self.lock = lock
        self.limit = limit
        self.stalls = 0
        self.stalled = threading.Event()  # set at the first report
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="lock-watchdog", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self, timeout: float = 1.0) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout)

    def _run(self) -> None:
        lock: SupportsLock = self.lock
        if isinstance(lock, InstrumentedLock):
            lock = lock.section("watchdog")
        armed = True
        while not self._stop.is_set():
            if lock.acquire(timeout=self.limit):
                lock.release()
                armed = True
                self._stop.wait(self.limit)
            elif armed and not self._stop.is_set():
                armed = False
                self.stalls += 1
                self._report()

    def _report(self) -> None:
        holder = ""
        if isinstance(self.lock, InstrumentedLock):
            st = self.lock.statistics()
            holder = f" (held by section {st.holder!r}, thread {st.holder_thread!r}, for {st.held_for:.1f} s)"
        log.error(
            "watchdog: the room's lock was not free for %.1f s%s: a deadlock or a blocked send? "
            "Every thread's stack follows.",
            self.limit,
            holder,
        )
        faulthandler.dump_traceback(file=sys.stderr, all_threads=True)
        self.stalled.set()
