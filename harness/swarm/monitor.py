"""The live picture of a run: the hives' reports added up, handed out as snapshots. No I/O.

Written by the run's main thread (:meth:`Monitor.add`, :meth:`Monitor.tick`,
stage changes), read by the dashboard's refresh thread (:meth:`Monitor.snapshot`);
everything is guarded by ``Monitor._lock``. The counts come from
:class:`harness.record.counters.LiveCounts`, whose fields are the counters: the
totals and the snapshot add up whatever fields it has.
"""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Callable
from enum import Enum

from harness.common.latency import LatencyHistogram
from harness.common.metrics_scrape import MetricsView
from harness.record.counters import LiveCounts
from harness.swarm.dashboard import LiveSnapshot, live_check_rows
from harness.swarm.hives import HiveReport
from harness.swarm.scenarios import Plan, describe

#: Seconds of rates kept for the sparklines.
SPARK_SECONDS = 60
#: The window of the "last 2 s" latency figures.
RECENT_WINDOW = 2.0


class Stage(str, Enum):
    """Where a run is, as the dashboard shows it."""

    CONNECTING = "connecting"
    CHATTING = "chatting"
    DRAINING = "draining"
    QUITTING = "quitting"
    STOPPING = "stopping"
    CHECKING = "checking"

    def __str__(self) -> str:
        return self.value


class Monitor:
    """Adds up the hives' reports; hands out snapshots. Guarded by ``_lock``."""

    def __init__(self, scenario: str, duration: float, plan_: Plan, target: str) -> None:
        self.scenario = scenario
        self.duration = duration
        self.plan = plan_
        self.target = target
        self._lock = threading.Lock()
        self._latest: dict[int, HiveReport] = {}
        self._run_latency = LatencyHistogram()
        self._recent: deque[tuple[float, LatencyHistogram]] = deque()
        self._sent_rates: deque[float] = deque(maxlen=SPARK_SECONDS)
        self._delivered_rates: deque[float] = deque(maxlen=SPARK_SECONDS)
        self._last_tick: tuple[float, LiveCounts] | None = None
        self._stage = Stage.CONNECTING
        self.start: float | None = None
        #: The server's metrics as last scraped (set when the server has any).
        self.metrics: Callable[[], MetricsView | None] = lambda: None

    @property
    def stage(self) -> Stage:
        with self._lock:
            return self._stage

    def add(self, report: HiveReport) -> None:
        with self._lock:
            self._latest[report.wid] = report
            if report.latency.count:
                self._run_latency.merge(report.latency)
                self._recent.append((report.t, report.latency))

    def set_stage(self, stage: Stage, start: float | None = None) -> None:
        with self._lock:
            self._stage = stage
            if start is not None:
                self.start = start

    def totals(self) -> LiveCounts:
        with self._lock:
            return self._totals_locked()

    def _totals_locked(self) -> LiveCounts:
        """Called with the lock held."""
        return LiveCounts.total(r.counts for r in self._latest.values())

    def hive_cpu(self) -> float:
        """CPU seconds of the hives' processes, as their last reports said."""
        with self._lock:
            return sum(r.cpu for r in self._latest.values())

    def tick(self, now: float) -> None:
        """Sample the rates (called about once a second by the main thread)."""
        with self._lock:
            totals = self._totals_locked()
            if self._last_tick is not None:
                t0, before = self._last_tick
                dt = now - t0
                if dt > 0:
                    self._sent_rates.append((totals.sent - before.sent) / dt)
                    self._delivered_rates.append((totals.delivered - before.delivered) / dt)
            self._last_tick = (now, totals)
            while self._recent and self._recent[0][0] < now - RECENT_WINDOW:
                self._recent.popleft()

    def snapshot(self) -> LiveSnapshot:
        metrics = self.metrics()
        with self._lock:
            totals = self._totals_locked()
            recent = LatencyHistogram()
            for _, h in self._recent:
                recent.merge(h)
            elapsed = time.time() - self.start if self.start is not None else 0.0
            return LiveSnapshot(
                scenario=self.scenario,
                target=self.target,
                phase=self._stage.value,
                elapsed=max(0.0, elapsed),
                duration=self.duration,
                bots=len(self.plan.specs),
                counts=totals,
                sent_rates=tuple(self._sent_rates),
                delivered_rates=tuple(self._delivered_rates),
                latency_recent=recent.figures(),
                latency_run=self._run_latency.figures(),
                checks=live_check_rows(totals),
                metrics=metrics,
                roles=describe(self.plan),
            )
