"""The one owner of the garbage collector's settings for the harness's hot loops.

The histories of a run are large graphs of small, acyclic objects (a million
received lines in a big swarm). CPython's cyclic collector runs each time enough
new objects have been allocated, and each of its full passes walks every object
still alive: building or judging a million lines would make it walk the growing
heap again and again, for nothing. Two tools, and nothing else in the harness
touches :mod:`gc`:

* :func:`collector_paused`: while a block builds many objects that hold no
  cycles (loading a run record, parsing histories), the collector is off;
* :func:`heap_frozen`: objects that will live until the end of a run (its
  recorded histories) are moved out of the collector's sight, so that the
  garbage made afterwards is collected without rescanning them;
* :func:`collect_now`: for a process that runs one run after another (a soak's
  rounds), a full collection once a run is over and dropped.

Both restore what they found, and both nest.
"""

from __future__ import annotations

import gc
from collections.abc import Iterator
from contextlib import contextmanager


@contextmanager
def collector_paused() -> Iterator[None]:
    """The cyclic collector off for the block (reference counting still frees what it can)."""
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()


@contextmanager
def heap_frozen() -> Iterator[None]:
    """Everything alive at entry is ignored by the collector until the block ends."""
    gc.freeze()
    try:
        yield
    finally:
        gc.unfreeze()


def freeze_survivors() -> None:
    """Move everything alive now into the frozen generation (undone by the enclosing :func:`heap_frozen`).

    For a loop that keeps adding long-lived objects (a hive's received lines):
    call it now and then, not on every object.
    """
    gc.freeze()


def collect_now() -> int:
    """A full collection now; returns how many unreachable objects it found.

    Why: when :func:`heap_frozen` ends, everything it froze lands in the oldest
    generation, which the collector walks only after it has grown by a quarter.
    A run's bots and connections hold reference cycles (asyncio transports and
    protocols, tasks, exceptions with their frames) that keep its histories
    alive, so a process that runs rounds back to back would keep every round's
    gigabyte until then. Between rounds, nothing runs that a pass would stall.
    """
    return gc.collect()
