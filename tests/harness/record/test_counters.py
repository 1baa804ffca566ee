"""The live counters: one record whose fields every consumer derives from."""

from __future__ import annotations

import dataclasses
import pickle

from harness.record.counters import COUNTERS, LiveCounters, LiveCounts


def test_every_field_is_a_described_counter() -> None:
    assert [c.name for c in COUNTERS] == [f.name for f in dataclasses.fields(LiveCounts)]
    assert all(c.doc for c in COUNTERS)
    assert {c.check: c.name for c in COUNTERS if c.check} == {
        "liveness": "timeouts",
        "seq": "seq_anomalies",
        "fifo": "fifo_anomalies",
    }


def test_counts_add_up_and_copy() -> None:
    a = LiveCounts(connected=2, delivered=10)
    b = LiveCounts(connected=1, delivered=5, seq_anomalies=1)
    total = LiveCounts.total([a, b])
    assert (total.connected, total.delivered, total.seq_anomalies) == (3, 15, 1)
    c = a.copy()
    c.sent += 1
    assert a.sent == 0 and c == LiveCounts(connected=2, delivered=10, sent=1)


def test_take_hands_over_the_latency_samples_and_starts_afresh() -> None:
    counters = LiveCounters()
    counters.counts.delivered = 3
    counters.latency.add(2.0)
    counts, latency = counters.take()
    assert counts.delivered == 3 and latency.count == 1
    assert counters.latency.count == 0
    counters.counts.delivered += 1
    assert counts.delivered == 3  # a copy


def test_counts_cross_processes() -> None:
    counts = LiveCounts(joins=4)
    assert pickle.loads(pickle.dumps(counts)) == counts
