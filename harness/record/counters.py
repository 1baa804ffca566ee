"""Live counters: what the recording connections of a process count while a run goes on.

Pure data; no sockets, no threads. The counters are cheap and approximate on
purpose (the checker judges every line after the run); they feed the live view.

:class:`LiveCounts` is the one place that says which counters exist: each field
is a counter, and its metadata says what it counts and, for the few that count
a fault as it happens, which check of the checker it foreshadows. A worker's
report, the parent's totals, the live snapshot and the dashboard's rows are all
built from these fields (:data:`COUNTERS`), so a new counter is one new field
here, counted where it happens (:mod:`harness.record.connection`).
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields
from typing import Any, NamedTuple

from harness.common.latency import LatencyHistogram


def _counter(doc: str, *, check: str | None = None) -> Any:
    return field(default=0, metadata={"doc": doc, "check": check})


@dataclass(slots=True)
class LiveCounts:
    """Running counts of one process (or, added up, of a run); every field is a counter."""

    connected: int = _counter("open TCP connections right now")
    members: int = _counter("connections whose name was accepted, right now")
    joins: int = _counter("names accepted (a bot that rejoins counts again)")
    refused: int = _counter("connections refused with ERR full")
    timeouts: int = _counter("bounded waits that ran out", check="liveness")
    sent: int = _counter("chat messages written")
    whos: int = _counter("/who asked")
    delivered: int = _counter("MSG lines read")
    lines: int = _counter("lines read")
    reads: int = _counter("reads that brought a line (lines/reads: how much the server batches)")
    seq_anomalies: int = _counter("seq steps other than +1 seen by members", check="seq")
    fifo_anomalies: int = _counter("a sender's counter seen going back", check="fifo")
    closed_by_server: int = _counter("connections the server closed without being asked to")

    def add(self, other: LiveCounts) -> None:
        """Add ``other``'s counts to these."""
        for c in COUNTERS:
            setattr(self, c.name, getattr(self, c.name) + getattr(other, c.name))

    def copy(self) -> LiveCounts:
        return LiveCounts(*(getattr(self, c.name) for c in COUNTERS))

    @staticmethod
    def total(items: Any) -> LiveCounts:
        """The sum of an iterable of counts."""
        out = LiveCounts()
        for item in items:
            out.add(item)
        return out


class CounterInfo(NamedTuple):
    """What a field of :class:`LiveCounts` counts."""

    name: str
    doc: str
    #: The checker's check whose faults this counter sees as they happen (``seq``, ...), or None.
    check: str | None


COUNTERS: tuple[CounterInfo, ...] = tuple(
    CounterInfo(f.name, f.metadata["doc"], f.metadata["check"]) for f in fields(LiveCounts)
)


@dataclass
class LiveCounters:
    """What the connections of one process add to: counts, and latency samples since the last report.

    Touched by one thread only (a hive's event loop, a locust process's
    greenlets): no lock. :meth:`take` hands a report its figures.
    """

    counts: LiveCounts = field(default_factory=LiveCounts)
    #: Latency of the sampled deliveries (due time to receipt, ms) since the last :meth:`take`.
    latency: LatencyHistogram = field(default_factory=LatencyHistogram)

    def take(self) -> tuple[LiveCounts, LatencyHistogram]:
        """A copy of the counts, and the latency samples so far (the next ones start afresh)."""
        latency, self.latency = self.latency, LatencyHistogram()
        return self.counts.copy(), latency
