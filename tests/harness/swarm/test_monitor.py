"""The live picture: the hives' reports added up, rates, the latency windows, and the live checks."""

from __future__ import annotations

import pickle

import pytest

from harness.common.latency import LatencyHistogram
from harness.record.counters import COUNTERS, LiveCounts
from harness.swarm.hives import HiveReport
from harness.swarm.monitor import Monitor, Stage
from harness.swarm.scenarios import plan

# -- the latency histogram the hives send (harness.common.latency) ---------------------------------


def test_histogram_percentiles_are_within_its_precision() -> None:
    h = LatencyHistogram()
    for i in range(1, 1001):
        h.add(float(i))  # 1..1000 ms
    assert h.count == 1000
    assert h.max_ms == pytest.approx(1000.0, rel=1e-3)
    for q, exact in ((0.5, 500.0), (0.95, 950.0), (0.99, 990.0)):
        got = h.percentile(q)
        assert got is not None
        assert got == pytest.approx(exact, rel=1e-3), (q, got)
    assert h.percentile(1.0) == pytest.approx(1000.0, rel=1e-3)


def test_histogram_empty_tiny_negative_and_huge() -> None:
    h = LatencyHistogram()
    assert h.percentile(0.5) is None
    h.add(-3.0)  # clocks of one machine: only a rounding artefact, counted as the smallest
    h.add(0.0)
    h.add(1e12)  # beyond the hour the histogram covers: counted as an hour
    assert h.count == 3
    assert h.percentile(0.01) is not None
    assert h.percentile(1.0) == pytest.approx(3_600_000.0, rel=1e-3)


def test_histogram_merge_equals_adding_all() -> None:
    a, b, both = LatencyHistogram(), LatencyHistogram(), LatencyHistogram()
    for i in range(500):
        a.add(i * 0.1)
        both.add(i * 0.1)
        b.add(i * 3.0)
        both.add(i * 3.0)
    merged = a.copy()
    merged.merge(b)
    assert merged.figures() == both.figures()
    assert merged.count == both.count
    assert merged.max_ms == both.max_ms


def test_histogram_pickles() -> None:
    h = LatencyHistogram()
    h.add(5.0)
    h2 = pickle.loads(pickle.dumps(h))
    assert h2.figures() == h.figures() and h2.count == 1 and h2.max_ms == pytest.approx(5.0, rel=1e-3)


# -- the monitor ------------------------------------------------------------------------------------


def report(
    wid: int, t: float, latency_ms: tuple[float, ...] = (), cpu: float = 0.0, **counts: int
) -> HiveReport:
    h = LatencyHistogram()
    for ms in latency_ms:
        h.add(ms)
    return HiveReport(wid, t, 5, LiveCounts(**counts), h, cpu)


def monitor() -> Monitor:
    return Monitor("mixed", 8.0, plan("mixed", 10, rate=1, duration=8, seed=1), "127.0.0.1:4242")


def test_totals_add_the_latest_report_of_each_hive() -> None:
    m = monitor()
    m.add(report(0, 1.0, sent=10, delivered=100, cpu=0.5))
    m.add(report(1, 1.0, sent=5, delivered=50, cpu=0.25))
    m.add(report(0, 1.5, sent=12, delivered=130, cpu=0.75))  # cumulative: replaces hive 0's first
    assert m.totals() == LiveCounts(sent=17, delivered=180)
    assert m.hive_cpu() == 1.0


def test_rates_come_from_ticks_and_recent_latency_from_the_last_window() -> None:
    m = monitor()
    m.add(report(0, 100.0, (1.0, 2.0), sent=0, delivered=0))
    m.tick(100.0)
    m.add(report(0, 101.0, (50.0,), sent=10, delivered=400))
    m.tick(101.0)
    m.tick(102.5)  # the first report is now older than the recent window, the second is not
    snap = m.snapshot()
    assert snap.sent_rates[0] == pytest.approx(10.0) and snap.delivered_rates[0] == pytest.approx(400.0)
    assert snap.latency_run.count == 3
    assert snap.latency_recent.count == 1


def test_snapshot_derives_its_figures_from_the_counters() -> None:
    m = monitor()
    m.set_stage(Stage.CHATTING, start=0.0)
    m.add(report(0, 1.0, connected=9, seq_anomalies=2, fifo_anomalies=1, timeouts=3))
    snap = m.snapshot()
    assert (snap.phase, snap.bots, snap.counts.connected) == ("chatting", 10, 9)
    live = {row.name: row.count for row in snap.checks if row.count is not None}
    assert live == {"seq": 2, "fifo": 1, "liveness": 3}
    assert {row.note for row in snap.checks if row.count is not None} == {c.doc for c in COUNTERS if c.check}
    assert m.stage is Stage.CHATTING
