"""An instrumented lock: ``threading.Lock`` that counts, times and names its critical sections.

Not a different synchronisation primitive: it wraps one ``threading.Lock`` and
changes nothing about who gets it when. It only measures, in the style of the
Linux kernel's lockstat and ``perf lock``:

* every acquisition is counted, per **site** (the critical section that took
  the lock);
* an acquisition first **tries** the lock without blocking. Only when that
  fails is it *contended*: it is counted as such, and the time from asking to
  getting (the **wait**) is measured. An uncontended acquisition therefore costs
  one extra non-blocking try that succeeds, and no wait timing at all;
* the time from getting to releasing (the **hold**) goes to a histogram;
* a waiter notes which site held the lock when it started waiting
  (``blocked_by``): the figure that says *who* makes the others wait.

Sites
-----
A site is named after the function that takes the lock, read from the
caller's frame once per acquisition (``with self.lock:`` inside
:meth:`chat.room.Room.say` is site ``say``). :mod:`chat.room` names its
critical sections after its methods, so the sites are exactly the sections its
docstring lists: ``admit``, ``heard``, ``reply``, ``join``, ``say``, ``who``,
``outboxes``, ``leave``, ``release``, ``shutdown``. Code whose function names
are not the section's name can label it explicitly: ``with lock.section("flush"):``.

Every figure is guarded by the instrumented lock itself: counters are updated
only while it is held (a hold is recorded just before the release), so the
bookkeeping needs no lock of its own. :meth:`InstrumentedLock.statistics` reads
them *without* the lock, so that a metrics scrape can never wait for (or be
stuck behind) the room; a snapshot may therefore be off by the one acquisition
in progress, which a monitoring figure can afford.
"""

from __future__ import annotations

import dataclasses
import sys
import threading
import time
from bisect import bisect_left
from collections.abc import Mapping
from dataclasses import dataclass
from types import CodeType, TracebackType
from typing import Protocol

# Bound once: the fast path runs on every critical section of the room.
_getframe = sys._getframe
_get_ident = threading.get_ident
_now = time.perf_counter
_bisect = bisect_left

#: Bucket upper bounds in seconds for wait and hold times, from 1 µs (an
#: uncontended hold of a small section) to 10 s (a lock held across a blocked
#: send, or a deadlock in the making). Roughly three per decade, as Prometheus
#: client libraries do by default.
DEFAULT_BUCKETS: tuple[float, ...] = (
    1e-6,
    2.5e-6,
    5e-6,
    1e-5,
    2.5e-5,
    5e-5,
    1e-4,
    2.5e-4,
    5e-4,
    1e-3,
    2.5e-3,
    5e-3,
    1e-2,
    2.5e-2,
    5e-2,
    0.1,
    0.25,
    0.5,
    1.0,
    2.5,
    5.0,
    10.0,
)

#: The holder reported when a waiter found the lock free again by the time it
#: looked (the holder released between the try and the look).
UNKNOWN_HOLDER = "?"


class SupportsLock(Protocol):
    """What :class:`chat.room.Room` needs of its lock: ``threading.Lock``'s interface."""

    def acquire(self, blocking: bool = ..., timeout: float = ...) -> bool: ...

    def release(self) -> None: ...

    def locked(self) -> bool: ...

    def __enter__(self) -> bool: ...

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None: ...


# -- snapshots ------------------------------------------------------------------


@dataclass(frozen=True)
class HistogramSnapshot:
    """A histogram at one moment, in the shape Prometheus exposes."""

    bounds: tuple[float, ...]
    """Upper bounds of the buckets, in seconds, ascending; ``+Inf`` is implied after the last."""
    counts: tuple[int, ...]
    """Observations per bucket (not cumulative); one more entry than ``bounds``: the ``+Inf`` bucket."""
    total: float
    """Sum of every observation, in seconds."""

    @property
    def count(self) -> int:
        """Number of observations."""
        return sum(self.counts)

    def cumulative(self) -> list[tuple[float, int]]:
        """``(le, count of observations <= le)`` pairs, ending with ``(inf, count)``."""
        out: list[tuple[float, int]] = []
        running = 0
        for bound, n in zip((*self.bounds, float("inf")), self.counts, strict=True):
            running += n
            out.append((bound, running))
        return out

    def quantile(self, q: float) -> float:
        """An estimate of the ``q`` quantile: the upper bound of the bucket it falls in.

        ``0.0`` with no observations; ``inf`` when it falls past the last bound.
        """
        n = self.count
        if n == 0:
            return 0.0
        rank = q * n
        for bound, running in self.cumulative():
            if running >= rank:
                return bound
        return float("inf")  # pragma: no cover - the last cumulative count is n

    def __add__(self, other: HistogramSnapshot) -> HistogramSnapshot:
        if self.bounds != other.bounds:
            raise ValueError("cannot add histograms with different buckets")
        return HistogramSnapshot(
            self.bounds,
            tuple(a + b for a, b in zip(self.counts, other.counts, strict=True)),
            self.total + other.total,
        )


@dataclass(frozen=True)
class SiteStatistics:
    """What one critical section (site) did with the lock."""

    site: str
    """The section's name: the function that took the lock, or the label given to :meth:`section`."""
    acquisitions: int
    """Times this site got the lock (contended or not)."""
    contended: int
    """Of those, how many found the lock held and had to wait."""
    failures: int
    """Non-blocking tries and timed acquisitions that did not get the lock."""
    wait: HistogramSnapshot
    """Time from asking to getting, for contended acquisitions only."""
    hold: HistogramSnapshot
    """Time from getting to releasing, for every acquisition."""
    blocked_by: Mapping[str, int]
    """For contended acquisitions: which site held the lock when this one started waiting."""


@dataclass(frozen=True)
class LockStatistics:
    """A snapshot of an :class:`InstrumentedLock` (trio-style ``statistics()``)."""

    name: str
    """The lock's name, e.g. ``registry`` for the room's lock."""
    acquisitions: int
    """Times the lock was taken, all sites together."""
    contended: int
    """Acquisitions that found the lock held and waited."""
    failures: int
    """Non-blocking tries and timed acquisitions that did not get the lock."""
    wait: HistogramSnapshot
    """Wait time of contended acquisitions, all sites together."""
    hold: HistogramSnapshot
    """Hold time of every acquisition, all sites together."""
    sites: tuple[SiteStatistics, ...]
    """Per critical section, sorted by name."""
    holder: str | None
    """The site holding the lock at the moment of the snapshot, or ``None`` when it was free."""
    holder_thread: str | None
    """The name of the thread holding it, or ``None``."""
    held_for: float
    """How long the current holder has held it, in seconds (0 when free): a deadlock shows here."""

    def site(self, name: str) -> SiteStatistics | None:
        """The figures of one site, or ``None`` when it never took the lock."""
        for s in self.sites:
            if s.site == name:
                return s
        return None


# -- the lock -------------------------------------------------------------------


class _Histogram:
    """Fixed buckets, updated with the instrumented lock held."""

    __slots__ = ("bounds", "counts", "total")

    def __init__(self, bounds: tuple[float, ...]) -> None:
        self.bounds = bounds
        self.counts = [0] * (len(bounds) + 1)
        self.total = 0.0

    def observe(self, value: float) -> None:
        self.counts[bisect_left(self.bounds, value)] += 1
        self.total += value

    def snapshot(self) -> HistogramSnapshot:
        counts = tuple(self.counts)  # one C-level copy: consistent within itself
        return HistogramSnapshot(self.bounds, counts, self.total)


class _Site:
    """One critical section's counters. Updated only with the instrumented lock held."""

    __slots__ = ("name", "acquisitions", "contended", "wait", "hold", "blocked_by")

    def __init__(self, name: str, bounds: tuple[float, ...]) -> None:
        self.name = name
        self.acquisitions = 0
        self.contended = 0
        self.wait = _Histogram(bounds)
        self.hold = _Histogram(bounds)
        self.blocked_by: dict[str, int] = {}

    def snapshot(self) -> SiteStatistics:
        return SiteStatistics(
            site=self.name,
            acquisitions=self.acquisitions,
            contended=self.contended,
            failures=0,  # kept apart: see InstrumentedLock._count_failure
            wait=self.wait.snapshot(),
            hold=self.hold.snapshot(),
            blocked_by=dict(self.blocked_by),
        )


class InstrumentedLock:
    """A ``threading.Lock`` that measures its critical sections; see the module docstring.

    Same interface as ``threading.Lock``: ``acquire(blocking=True, timeout=-1)``,
    ``release()``, ``locked()``, and ``with lock:``. Not reentrant.
    """

    def __init__(self, name: str = "registry", *, buckets: tuple[float, ...] = DEFAULT_BUCKETS) -> None:
        self.name = name
        self._lock = threading.Lock()
        self._buckets = tuple(buckets)
        # All below: guarded by self._lock (the lock being measured).
        self._by_code: dict[CodeType, _Site] = {}
        self._by_name: dict[str, _Site] = {}
        self._holder: _Site | None = None
        self._held_since = 0.0
        self._owner = 0  # thread ident of the holder
        # Failed acquisitions per site name: guarded by _failures_lock (they do not hold self._lock).
        self._failures: dict[str, int] = {}
        self._failures_lock = threading.Lock()

    # -- threading.Lock's interface ---------------------------------------------
    def acquire(self, blocking: bool = True, timeout: float = -1) -> bool:
        return self._acquire(_getframe(1).f_code.co_name, blocking, timeout)

    def __enter__(self) -> bool:
        # Inlined fast path: this runs on every critical section of the room.
        if self._lock.acquire(False):
            code = _getframe(1).f_code
            site = self._by_code.get(code)
            if site is None:
                site = self._code_site(code)
            site.acquisitions += 1
            self._holder = site
            self._owner = _get_ident()
            self._held_since = _now()
            return True
        return self._acquire_contended(_getframe(1).f_code.co_name, -1)

    def release(self) -> None:
        site = self._holder
        if site is not None:
            held = _now() - self._held_since
            hist = site.hold  # _Histogram.observe, inlined: this runs on every release
            hist.counts[_bisect(hist.bounds, held)] += 1
            hist.total += held
            self._holder = None
        self._lock.release()  # raises RuntimeError when not held, as threading.Lock does

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.release()

    def locked(self) -> bool:
        return self._lock.locked()

    # -- explicit labels --------------------------------------------------------
    def section(self, name: str) -> Section:
        """A context manager (and lock) that takes this lock as site ``name``."""
        return Section(self, name)

    # -- figures ------------------------------------------------------------------
    def statistics(self) -> LockStatistics:
        """A snapshot, read without taking the lock (see the module docstring)."""
        with self._failures_lock:
            failures = dict(self._failures)
        by_name = {s.name: s.snapshot() for s in list(self._by_name.values())}
        for site_name, n in failures.items():
            site = by_name.get(site_name) or _Site(site_name, self._buckets).snapshot()
            by_name[site_name] = dataclasses.replace(site, failures=n)
        sites = tuple(by_name[k] for k in sorted(by_name))
        empty = HistogramSnapshot(self._buckets, (0,) * (len(self._buckets) + 1), 0.0)
        wait, hold = empty, empty
        for s in sites:
            wait += s.wait
            hold += s.hold
        holder = self._holder
        since = self._held_since
        owner = self._owner
        return LockStatistics(
            name=self.name,
            acquisitions=sum(s.acquisitions for s in sites),
            contended=sum(s.contended for s in sites),
            failures=sum(s.failures for s in sites),
            wait=wait,
            hold=hold,
            sites=sites,
            holder=holder.name if holder is not None else None,
            holder_thread=_thread_name(owner) if holder is not None else None,
            held_for=max(0.0, time.perf_counter() - since) if holder is not None else 0.0,
        )

    def __repr__(self) -> str:
        holder = self._holder
        state = f"held by {holder.name}" if holder is not None else "free"
        return f"<InstrumentedLock {self.name} {state}>"

    # -- internals ----------------------------------------------------------------
    def _acquire(self, site_name: str, blocking: bool, timeout: float) -> bool:
        if self._lock.acquire(False):
            self._got(self._named_site(site_name))
            return True
        if not blocking or timeout == 0:
            self._count_failure(site_name)
            return False
        return self._acquire_contended(site_name, timeout)

    def _acquire_contended(self, site_name: str, timeout: float) -> bool:
        """The slow path: the try failed, so wait, timed, and note who was holding."""
        holder = self._holder  # unlocked read of a reference: who we are about to wait for
        blocker = holder.name if holder is not None else UNKNOWN_HOLDER
        start = time.perf_counter()
        if not self._lock.acquire(True, timeout):
            self._count_failure(site_name)
            return False
        waited = time.perf_counter() - start
        site = self._named_site(site_name)
        site.contended += 1
        site.wait.observe(waited)
        site.blocked_by[blocker] = site.blocked_by.get(blocker, 0) + 1
        self._got(site)
        return True

    def _got(self, site: _Site) -> None:
        """Called with the lock held, right after getting it."""
        site.acquisitions += 1
        self._holder = site
        self._owner = threading.get_ident()
        self._held_since = time.perf_counter()

    def _count_failure(self, site_name: str) -> None:
        # A failed acquisition does not hold the lock (and its thread may be
        # the holder, trying again), so failures have a lock of their own.
        with self._failures_lock:
            self._failures[site_name] = self._failures.get(site_name, 0) + 1

    def _code_site(self, code: CodeType) -> _Site:
        """Called with the lock held: the site of a code object seen for the first time."""
        site = self._named_site(code.co_name)
        self._by_code[code] = site
        return site

    def _named_site(self, name: str) -> _Site:
        """Called with the lock held."""
        site = self._by_name.get(name)
        if site is None:
            site = self._by_name[name] = _Site(name, self._buckets)
        return site


class Section:
    """``lock.section(name)``: the same lock, taken under an explicit site label."""

    __slots__ = ("lock", "name")

    def __init__(self, lock: InstrumentedLock, name: str) -> None:
        self.lock = lock
        self.name = name

    def acquire(self, blocking: bool = True, timeout: float = -1) -> bool:
        return self.lock._acquire(self.name, blocking, timeout)

    def release(self) -> None:
        self.lock.release()

    def locked(self) -> bool:
        return self.lock.locked()

    def __enter__(self) -> bool:
        return self.lock._acquire(self.name, True, -1)

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.lock.release()


def _thread_name(ident: int) -> str:
    for thread in threading.enumerate():
        if thread.ident == ident:
            return thread.name
    return f"thread-{ident}"
