"""Correct runs pass every check: numbered from 1 or 1000, per recipient, unnumbered, with a slow member."""

from __future__ import annotations

import pytest

from harness.checker import CHECK_NAMES, CHECKS, LatencySummary, check_all, latency_summary
from harness.record.history import ClientHistory, Closed, Event, Received
from tests.harness.checker.histories import (
    base,
    client,
    handshake,
    index_of,
    is_broadcast,
    renumber,
    renumbered,
)

# -- correct runs -----------------------------------------------------------------


@pytest.mark.parametrize("numbered", [True, False])
def test_the_base_run_passes(numbered: bool) -> None:
    report = check_all(base(numbered))
    assert report.passed(), report.violations
    assert set(report.counts) == set(CHECK_NAMES)
    assert report.deliveries == 9
    assert report.messages_sent == 5
    assert report.joined == report.clients == report.bots_joined == 2
    assert report.seq_style == ("numbered" if numbered else "unnumbered")
    assert report.latency.count == 9
    assert report.latency.p50_ms == pytest.approx(10.0)
    assert report.latency.max_ms == pytest.approx(20.0)
    assert report.summary_line() == "PASS: 0 violations in 9 deliveries"


def test_a_server_numbering_from_1000_passes() -> None:
    report = check_all(base(offset=999))
    assert report.passed(), report.violations
    assert report.seq_global


def test_a_server_numbering_per_recipient_passes() -> None:
    histories = base()
    bob = client(histories, "bob")
    # bob's own counter: 1 at its JOIN, one more per line it gets.
    events: list[Event] = []
    k = 0
    for e in bob.events:
        if isinstance(e, Received) and is_broadcast(e.line):
            k += 1
            e = Received(e.t, renumbered(e.line, k))
        events.append(e)
    bob.events = events
    report = check_all(histories)
    assert report.passed(), report.violations
    assert report.seq_style == "numbered"
    assert not report.seq_global


@pytest.mark.parametrize("numbered", [True, False])
def test_a_slow_member_dropped_is_owed_nothing_after_its_drop(numbered: bool) -> None:
    histories = base(numbered=False)
    slow = ClientHistory(
        "slow",
        "slow",
        role="slow",
        events=[*handshake(0.5, "slow"), Received(0.6, "JOIN slow"), Closed(30.0, "eof")],
    )
    alice, bob = histories
    alice.events.insert(index_of(alice, "JOIN bob"), Received(0.6, "JOIN slow"))
    for h in histories:  # dropped as slow right before alice's first message
        i = index_of(h, "MSG alice")
        h.events.insert(i, Received(h.events[i].t - 0.001, "LEAVE slow slow"))
    histories.append(slow)
    report = check_all(renumber(histories) if numbered else histories)
    assert report.passed(), report.violations


def test_every_check_runs_in_the_reported_order() -> None:
    assert tuple(CHECKS) == CHECK_NAMES
    assert list(check_all(base()).counts) == list(CHECK_NAMES)


def test_latency_summary_in_ms() -> None:
    assert latency_summary([]) == LatencySummary()
    summary = latency_summary([0.001, 0.002, 0.003, 0.004, 0.005])
    assert summary.count == 5
    assert (summary.p50_ms, summary.max_ms) == pytest.approx((3.0, 5.0))
    assert summary.p50_ms <= summary.p95_ms <= summary.p99_ms <= summary.max_ms
