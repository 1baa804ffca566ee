"""The race window, and the two tools the catalogue's bugs are made with: a lock let go, and no lock.

Teaching code (see :mod:`chat.bugs`). The GIL hides many races: a thread is
rarely switched out in the middle of a few bytecodes, so a check-then-act bug
may show once an hour. Each bug therefore pauses for its race window at its
racy point. **That sleep is part of the injected bug, not synchronisation**: it
marks where the window is, and widening it makes the bug show in seconds
instead of hours (docs/bugs.md, "The race window").
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
from types import TracebackType

from chat.lockstat import InstrumentedLock, SupportsLock


def pause(seconds: float) -> None:
    """The race window: part of the injected bug, deliberately NOT synchronisation."""
    if seconds > 0:
        time.sleep(seconds)


@contextmanager
def released(lock: SupportsLock) -> Iterator[None]:
    """Let go of ``lock``, which the caller holds, for the body; then take it back.

    What a bug does to split one critical section in two. An instrumented lock
    is taken back under the site that held it, so that the metrics show one
    section with a hole in it rather than a new one.
    """
    retake: SupportsLock = lock
    if isinstance(lock, InstrumentedLock):
        holder = lock.statistics().holder
        if holder is not None:
            retake = lock.section(holder)
    lock.release()
    try:
        yield
    finally:
        retake.acquire()


class NoLock:
    """Looks like a lock, excludes nothing."""

    def acquire(self, blocking: bool = True, timeout: float = -1) -> bool:
        return True

    def release(self) -> None:
        pass

    def locked(self) -> bool:
        return False

    def __enter__(self) -> bool:
        return True

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        pass
