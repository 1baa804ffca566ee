"""Latency figures: the mergeable histogram and the percentiles of a list."""

from __future__ import annotations

import pickle

import pytest

from harness.common.latency import LatencyHistogram, Percentiles, percentile, percentiles


def test_histogram_percentiles_within_its_precision() -> None:
    h = LatencyHistogram()
    for i in range(1, 1001):
        h.add(i / 10)  # 0.1 .. 100 ms
    assert h.count == 1000
    assert h.percentile(0.5) == pytest.approx(50.0, rel=1e-3)
    assert h.percentile(0.99) == pytest.approx(99.0, rel=1e-3)
    assert h.max_ms == pytest.approx(100.0, rel=1e-3)


def test_empty_histogram_has_no_figures() -> None:
    h = LatencyHistogram()
    assert h.percentile(0.5) is None
    assert h.figures() == Percentiles(0, None, None, None, None)


def test_merge_equals_one_histogram_of_everything() -> None:
    a, b, both = LatencyHistogram(), LatencyHistogram(), LatencyHistogram()
    for v in (1.0, 2.0, 3.0):
        a.add(v)
        both.add(v)
    for v in (40.0, 50.0):
        b.add(v)
        both.add(v)
    a.merge(b)
    assert a.figures() == both.figures()


def test_crosses_processes_by_pickle() -> None:
    h = LatencyHistogram()
    for v in (0.5, 5.0, 500.0):
        h.add(v)
    copy = pickle.loads(pickle.dumps(h))
    assert copy.figures() == h.figures()
    assert pickle.loads(pickle.dumps(LatencyHistogram())).count == 0


def test_values_outside_the_range_are_clamped_not_lost() -> None:
    h = LatencyHistogram()
    h.add(-1.0)  # a clock step backwards
    h.add(10_000_000.0)  # longer than the hour the histogram covers
    assert h.count == 2


def test_percentile_of_a_list() -> None:
    values = [float(v) for v in range(1, 101)]
    assert percentile(values, 0.5) == pytest.approx(50.5)
    assert percentile(values, 0.0) == 1.0
    assert percentile(values, 1.0) == 100.0
    assert percentile([7.0], 0.99) == 7.0
    assert percentile([], 0.5) is None


def test_percentiles_of_a_list() -> None:
    p = percentiles([float(v) for v in range(1, 101)])
    assert p.count == 100
    assert p.p50 == pytest.approx(50.5)
    assert p.p99 == pytest.approx(99.01)
    assert p.max == 100.0
    assert percentiles([]) == Percentiles(0, None, None, None, None)
    assert percentiles([3.0]) == Percentiles(1, 3.0, 3.0, 3.0, 3.0)


def test_values_are_recorded_exactly_as_record_value_records_them() -> None:
    import random

    from hdrh.histogram import HdrHistogram

    rng = random.Random(7)
    values = [rng.lognormvariate(0.5, 2.0) for _ in range(20_000)] + [-1.0, 0.0, 0.0004, 1e12, 3_600_000.0]
    h = LatencyHistogram()
    reference = HdrHistogram(1, 3_600_000_000, 3)
    for ms in values:
        h.add(ms)
        reference.record_value(min(3_600_000_000, max(1, int(ms * 1000))))
    assert h.count == reference.get_total_count() == len(values)
    assert list(h._h.counts) == list(reference.counts)
    assert (h._h.min_value, h._h.max_value) == (reference.min_value, reference.max_value)


def test_values_added_after_a_read_are_recorded_too() -> None:
    h = LatencyHistogram()
    h.add(1.0)
    assert h.count == 1
    h.add(2.0)
    other = LatencyHistogram()
    other.add(3.0)
    h.merge(other)
    assert h.count == 3 and pickle.loads(pickle.dumps(h)).count == 3


def test_a_histogram_nobody_reads_holds_a_bounded_number_of_values() -> None:
    h = LatencyHistogram()
    for i in range(20_000):
        h.add(i / 100)
    assert len(h._pending) < 8192
    assert h.count == 20_000
