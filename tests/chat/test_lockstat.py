"""InstrumentedLock: threading.Lock's behaviour, plus counts and times per site.

Interleavings are forced with events (a seam in the contended path), never with sleeps.
"""

from __future__ import annotations

import dataclasses
import threading

import pytest

from chat.lockstat import HistogramSnapshot, InstrumentedLock, LockStatistics, SupportsLock

TIMEOUT = 10.0


class ProbedLock(InstrumentedLock):
    """Sets ``waiting`` when an acquisition has failed its try and is about to block."""

    def __init__(self, name: str = "t") -> None:
        super().__init__(name)
        self.waiting = threading.Event()

    def _acquire_contended(self, site_name: str, timeout: float) -> bool:
        self.waiting.set()
        return super()._acquire_contended(site_name, timeout)


def run(target: object) -> threading.Thread:
    t = threading.Thread(target=target, daemon=True)  # type: ignore[arg-type]
    t.start()
    return t


def test_is_a_lock() -> None:
    lock: SupportsLock = InstrumentedLock()
    assert not lock.locked()
    assert lock.acquire()
    assert lock.locked()
    assert not lock.acquire(blocking=False)
    lock.release()
    assert not lock.locked()
    with lock:
        assert lock.locked()
    assert not lock.locked()


def test_release_unheld_raises_like_threading_lock() -> None:
    with pytest.raises(RuntimeError):
        InstrumentedLock().release()


def test_sites_are_named_after_the_function_that_takes_the_lock() -> None:
    lock = InstrumentedLock("registry")

    def say() -> None:
        with lock:
            pass

    def join() -> None:
        lock.acquire()
        lock.release()

    for _ in range(3):
        say()
    join()
    st = lock.statistics()
    assert st.name == "registry"
    assert st.acquisitions == 4
    assert st.contended == 0
    assert [s.site for s in st.sites] == ["join", "say"]
    say_site = st.site("say")
    assert say_site is not None
    assert say_site.acquisitions == 3
    assert say_site.hold.count == 3
    assert say_site.wait.count == 0  # uncontended: never timed
    assert st.hold.count == 4
    assert st.site("leave") is None


def test_explicit_section_label() -> None:
    lock = InstrumentedLock()
    with lock.section("flush"):
        assert lock.locked()
    sec = lock.section("flush")
    assert sec.acquire(timeout=1.0)
    sec.release()
    site = lock.statistics().site("flush")
    assert site is not None and site.acquisitions == 2


def test_contended_acquisition_is_counted_timed_and_blamed() -> None:
    lock = ProbedLock("registry")
    holding = threading.Event()
    let_go = threading.Event()

    def leave() -> None:  # the holder's site
        with lock:
            holding.set()
            assert let_go.wait(TIMEOUT)

    def say() -> None:  # the waiter's site
        with lock:
            pass

    holder = run(leave)
    assert holding.wait(TIMEOUT)
    waiter = run(say)
    assert lock.waiting.wait(TIMEOUT)  # its try failed; it is about to block
    during = lock.statistics()
    assert during.holder == "leave"
    assert during.holder_thread == holder.name
    assert during.held_for > 0
    let_go.set()
    holder.join(TIMEOUT)
    waiter.join(TIMEOUT)

    st = lock.statistics()
    assert st.acquisitions == 2
    assert st.contended == 1
    assert st.holder is None and st.held_for == 0.0
    say_site = st.site("say")
    leave_site = st.site("leave")
    assert say_site is not None and leave_site is not None
    assert say_site.contended == 1
    assert say_site.wait.count == 1 and say_site.wait.total > 0
    assert dict(say_site.blocked_by) == {"leave": 1}
    assert leave_site.contended == 0 and dict(leave_site.blocked_by) == {}
    assert st.wait.count == 1


def test_failed_tries_and_timeouts_count_as_failures() -> None:
    lock = InstrumentedLock()
    holding = threading.Event()
    let_go = threading.Event()

    def hold() -> None:
        with lock:
            holding.set()
            assert let_go.wait(TIMEOUT)

    holder = run(hold)
    assert holding.wait(TIMEOUT)

    def peek() -> bool:
        return lock.acquire(blocking=False)

    def wait_briefly() -> bool:
        return lock.acquire(timeout=0.01)  # a bounded wait that must fail: the lock is held

    assert not peek()
    assert not wait_briefly()
    let_go.set()
    holder.join(TIMEOUT)
    st = lock.statistics()
    assert st.failures == 2
    peek_site, wait_site = st.site("peek"), st.site("wait_briefly")
    assert peek_site is not None and peek_site.failures == 1 and peek_site.acquisitions == 0
    assert wait_site is not None and wait_site.failures == 1 and wait_site.contended == 0
    assert st.acquisitions == 1


def test_mutual_exclusion_and_counts_under_many_threads() -> None:
    lock = InstrumentedLock()
    threads, rounds = 8, 2000
    start = threading.Barrier(threads)
    box = {"n": 0}

    def work() -> None:
        start.wait(TIMEOUT)
        for _ in range(rounds):
            with lock:
                n = box["n"]
                box["n"] = n + 1

    ts = [run(work) for _ in range(threads)]
    for t in ts:
        t.join(TIMEOUT)
    st = lock.statistics()
    assert box["n"] == threads * rounds
    assert st.acquisitions == threads * rounds
    assert st.hold.count == threads * rounds
    assert st.wait.count == st.contended
    site = st.site("work")
    assert site is not None and sum(site.blocked_by.values()) == site.contended


def test_statistics_are_frozen() -> None:
    st = InstrumentedLock().statistics()
    assert isinstance(st, LockStatistics)
    with pytest.raises(dataclasses.FrozenInstanceError):
        st.acquisitions = 3  # type: ignore[misc]


def test_histogram_snapshot() -> None:
    h = HistogramSnapshot((0.1, 1.0), (2, 1, 1), 3.5)
    assert h.count == 4
    assert h.cumulative() == [(0.1, 2), (1.0, 3), (float("inf"), 4)]
    assert h.quantile(0.5) == 0.1
    assert h.quantile(0.75) == 1.0
    assert h.quantile(0.99) == float("inf")
    assert HistogramSnapshot((0.1,), (0, 0), 0.0).quantile(0.5) == 0.0
    total = h + HistogramSnapshot((0.1, 1.0), (1, 0, 0), 0.05)
    assert total.counts == (3, 1, 1) and total.total == pytest.approx(3.55)
    with pytest.raises(ValueError):
        _ = h + HistogramSnapshot((0.2, 1.0), (0, 0, 0), 0.0)


def test_observations_land_in_the_right_bucket() -> None:
    lock = InstrumentedLock(buckets=(1e9,))  # every hold fits the first bucket

    def hold() -> None:
        with lock:
            pass

    hold()
    site = lock.statistics().site("hold")
    assert site is not None
    assert site.hold.counts == (1, 0)
