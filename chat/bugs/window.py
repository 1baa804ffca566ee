"""The race window: where each injected bug pauses, and how a bug lets go of the lock.

Under CPython's GIL a thread is rarely switched out in the middle of a few
bytecodes, so a check-then-act bug may show once an hour. Each bug therefore
pauses for ``race_window`` seconds at its racy point (``--race-window``, with a
default per bug). **That sleep is part of the injected bug, not
synchronisation**: it marks where the window is, and widening it makes the bug
show in seconds instead of hours. With ``--race-window 0`` the bugs are still
there, only rarer. docs/bugs.md says more.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager

from chat.lockstat import SupportsLock


def pause(seconds: float) -> None:
    """The race window: part of the injected bug, deliberately NOT synchronisation."""
    if seconds > 0:
        time.sleep(seconds)


@contextmanager
def released(lock: SupportsLock) -> Iterator[None]:
    """Let go of a held lock for the block, then take it back: one critical section becomes two.

    The shape of every check-then-act bug: what was decided before the block
    may no longer hold after it.
    """
    lock.release()
    try:
        yield
    finally:
        lock.acquire()
