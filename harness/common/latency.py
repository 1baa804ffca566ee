"""Latency figures: one mergeable histogram and one way to take percentiles, both from libraries.

* :class:`LatencyHistogram` wraps HdrHistogram (the ``hdrhistogram`` package, the
  Python port of Gil Tene's HdrHistogram that load generators such as wrk2 use):
  constant memory, about 1 µs per value, exact to three significant digits, and
  mergeable, so that bots in several processes send their histograms to the
  parent, which adds them (percentiles of merged samples, which averaging
  percentiles would not give). It crosses processes in HdrHistogram's compressed
  encoding.
* :func:`percentiles` takes the percentiles of values already in memory (a
  checker's or a benchmark's list) with :func:`statistics.quantiles`.
"""

from __future__ import annotations

import statistics
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from hdrh.histogram import HdrHistogram

#: Latencies are recorded in microseconds, from 1 µs to one hour: a message that takes
#: longer than an hour is recorded as an hour (it failed liveness long before).
_UNIT_PER_MS = 1000.0
_LOWEST = 1
_HIGHEST = 3_600_000_000
_DIGITS = 3
#: Values :meth:`LatencyHistogram.add` holds before recording them: a few
#: milliseconds of CPU per batch, a few hundred kilobytes at most.
_PENDING_LIMIT = 8192


@dataclass(frozen=True)
class Percentiles:
    """The usual latency figures in milliseconds (None when there was nothing to measure)."""

    count: int
    p50: float | None
    p95: float | None
    p99: float | None
    max: float | None


class LatencyHistogram:
    """Latencies in milliseconds: cheap to add to, exact to merge, small to send between processes.

    :meth:`add` only appends to a list: a reader that samples tens of thousands
    of deliveries a second pays a list append per sample. The values are
    recorded in the histogram in one pass when it is next read, merged or sent
    (:meth:`_record_pending`), at about a quarter of the cost of
    ``HdrHistogram.record_value`` per value.
    """

    __slots__ = ("_h", "_pending")

    def __init__(self) -> None:
        self._h = HdrHistogram(_LOWEST, _HIGHEST, _DIGITS)
        self._pending: list[float] = []

    def add(self, ms: float) -> None:
        pending = self._pending
        pending.append(ms)
        if len(pending) >= _PENDING_LIMIT:  # a histogram nobody reads keeps its memory bounded
            self._record_pending()

    def _record_pending(self) -> None:
        """Record the values added since the last read: ``record_value``'s arithmetic, inlined.

        The bucket of a value is HdrHistogram's (the C and Java versions' layout,
        which its Python port keeps in ``counts``); tests/harness/common/test_latency.py
        checks that this records exactly what ``record_value`` records.
        """
        pending, self._pending = self._pending, []
        if not pending:
            return
        h = self._h
        counts = h.counts
        mask, unit, half_mag = h.sub_bucket_mask, h.unit_magnitude, h.sub_bucket_half_count_magnitude
        first_bucket_shift, half_count = half_mag + 1, h.sub_bucket_half_count
        low, high = h.min_value, h.max_value
        for ms in pending:
            v = int(ms * _UNIT_PER_MS)
            if v < _LOWEST:
                v = _LOWEST
            elif v > _HIGHEST:
                v = _HIGHEST
            bucket = (v | mask).bit_length() - unit - first_bucket_shift
            counts[((bucket + 1) << half_mag) + (v >> (bucket + unit)) - half_count] += 1
            if v < low:
                low = v
            if v > high:
                high = v
        h.total_count += len(pending)
        h.min_value, h.max_value = low, high

    def merge(self, other: LatencyHistogram) -> None:
        self._record_pending()
        other._record_pending()
        self._h.add(other._h)

    @property
    def count(self) -> int:
        self._record_pending()
        return int(self._h.get_total_count())

    @property
    def max_ms(self) -> float:
        return self._h.get_max_value() / _UNIT_PER_MS if self.count else 0.0

    def percentile(self, q: float) -> float | None:
        """The ``q`` quantile (0..1) in ms; None when empty."""
        if not self.count:
            return None
        return float(self._h.get_value_at_percentile(q * 100.0)) / _UNIT_PER_MS

    def figures(self) -> Percentiles:
        if not self.count:
            return Percentiles(0, None, None, None, None)
        return Percentiles(
            self.count, self.percentile(0.5), self.percentile(0.95), self.percentile(0.99), self.max_ms
        )

    def copy(self) -> LatencyHistogram:
        h = LatencyHistogram()
        h.merge(self)
        return h

    def __getstate__(self) -> bytes:
        self._record_pending()
        return bytes(self._h.encode())

    def __setstate__(self, state: bytes) -> None:
        self._h = HdrHistogram.decode(state) if state else HdrHistogram(_LOWEST, _HIGHEST, _DIGITS)
        self._pending = []


def percentile(values: Sequence[float], q: float) -> float | None:
    """The ``q`` quantile (0..1) of ``values`` (any order); None when empty.

    :func:`statistics.quantiles` with the inclusive method (linear
    interpolation between the closest ranks, numpy's default), to 0.1 %
    of rank; with a single value, that value.
    """
    if not values:
        return None
    if len(values) == 1:
        return float(values[0])
    if q <= 0:
        return float(min(values))
    if q >= 1:
        return float(max(values))
    cuts = statistics.quantiles(values, n=1000, method="inclusive")
    return float(cuts[min(len(cuts) - 1, max(0, round(q * 1000) - 1))])


def percentiles(values: Iterable[float]) -> Percentiles:
    """count, p50, p95, p99 and max of ``values`` (ms in, ms out)."""
    data = list(values)
    if not data:
        return Percentiles(0, None, None, None, None)
    cuts = statistics.quantiles(data, n=100, method="inclusive") if len(data) > 1 else [data[0]] * 99
    return Percentiles(len(data), float(cuts[49]), float(cuts[94]), float(cuts[98]), float(max(data)))
