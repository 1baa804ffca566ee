"""The run's conductor without hives or sockets: releases, bounds, a stop, dead workers, the chat window."""

from __future__ import annotations

import time
from collections.abc import Iterable
from typing import Any

import pytest

from harness.common.latency import LatencyHistogram
from harness.record.counters import LiveCounts
from harness.swarm import run
from harness.swarm.bot import Phase
from harness.swarm.hives import Arrived, Command, Done, HiveMessage, HiveReport, Release, Stop
from harness.swarm.monitor import Monitor, Stage
from harness.swarm.run import Conductor, StopFlag, SwarmSettings
from harness.swarm.scenarios import plan


class FakeHives:
    """Stands in for a HiveSet: queued reports in, commands out."""

    in_process = False

    def __init__(self, n: int) -> None:
        self.n = n
        self.queued: list[HiveMessage] = []
        self.sent: list[Command] = []
        self.dead: list[int] = []

    def __len__(self) -> int:
        return self.n

    def next_report(self, timeout: float) -> HiveMessage | None:
        return self.queued.pop(0) if self.queued else None

    def pending_reports(self) -> list[HiveMessage]:
        out, self.queued = self.queued, []
        return out

    def send(self, cmd: Command) -> None:
        self.sent.append(cmd)

    def worker_pids(self) -> dict[int, int]:
        return {}

    def dead_without_done(self, done: Iterable[int]) -> list[int]:
        return [wid for wid in self.dead if wid not in set(done)]

    def join(self, timeout: float = 5.0) -> None:
        pass


def conductor(n: int = 2, **kw: Any) -> tuple[Conductor, FakeHives, Monitor, StopFlag]:
    settings = SwarmSettings(clients=4, duration=0.5)
    monitor = Monitor("chat", 0.5, plan("chat", 4, rate=1, duration=0.5, seed=0), "127.0.0.1:1")
    hives, stop = FakeHives(n), StopFlag()
    kw.setdefault("connect_allowance", 60.0)
    kw.setdefault("hard_limit", 120.0)
    c = Conductor(hives, monitor, settings, server_pid=None, stop=stop, progress=None, **kw)  # type: ignore[arg-type]
    return c, hives, monitor, stop


def releases(hives: FakeHives) -> list[Phase]:
    return [cmd.phase for cmd in hives.sent if isinstance(cmd, Release)]


def test_a_phase_is_released_once_every_hive_has_arrived() -> None:
    c, hives, monitor, _ = conductor()
    hives.queued = [Arrived(0, Phase.JOINED)]
    c.step()
    assert releases(hives) == []
    hives.queued = [Arrived(1, Phase.JOINED)]
    c.step()
    assert releases(hives) == [Phase.JOINED]
    release = hives.sent[0]
    assert isinstance(release, Release) and release.t > time.time()  # a start a moment ahead
    assert monitor.stage is Stage.CHATTING and Phase.JOINED in c.cpu_marks
    hives.queued = [Arrived(0, Phase.DRAINED), Arrived(1, Phase.DRAINED)]
    c.step()
    c.step()
    assert releases(hives) == [Phase.JOINED, Phase.DRAINED] and monitor.stage is Stage.QUITTING


def test_the_quit_is_never_released_before_the_start() -> None:
    c, hives, _, _ = conductor()
    hives.queued = [Arrived(0, Phase.DRAINED), Arrived(1, Phase.DRAINED)]
    c.step()
    c.step()
    assert releases(hives) == []


def test_the_start_is_released_anyway_past_its_bound() -> None:
    c, hives, _, _ = conductor(connect_allowance=0.0)
    c.step()
    assert releases(hives) == [Phase.JOINED]


def test_a_stop_tells_every_hive_and_releases_nothing_more() -> None:
    c, hives, monitor, stop = conductor()
    stop.set()
    hives.queued = [Arrived(0, Phase.JOINED), Arrived(1, Phase.JOINED)]
    c.step()
    c.step()
    assert hives.sent == [Stop()] and monitor.stage is Stage.STOPPING
    assert c.stopped_at is not None and releases(hives) == []


def test_the_hard_limit_stops_the_run() -> None:
    c, hives, _, stop = conductor(hard_limit=-20.0)
    c.step()
    assert stop.is_set()
    c.step()
    assert Stop() in hives.sent


def test_a_worker_dead_for_a_while_without_a_word_is_done(monkeypatch: pytest.MonkeyPatch) -> None:
    c, hives, _, _ = conductor()
    hives.dead = [1]
    c.step()
    assert 1 not in c.done  # its Done may still be on its way
    monkeypatch.setattr(run, "DEAD_GRACE", -1.0)  # the grace is over
    c.step()
    assert c.done[1] == Done(1, error="the worker process died")
    assert not c.is_over
    hives.queued = [Done(0, part_path="p0")]
    c.step()
    assert c.is_over


def test_reports_feed_the_monitor_and_the_last_ones_are_read_at_the_end() -> None:
    c, hives, monitor, _ = conductor(n=1)
    counts = LiveCounts(sent=3)
    hives.queued = [HiveReport(0, 1.0, 4, counts, LatencyHistogram(), 0.5), Done(0, histories=[])]
    c.finish()
    assert monitor.totals().sent == 3 and c.is_over


def test_the_chat_window() -> None:
    c, _, _, _ = conductor()
    assert c.chat_window(10.0) == (10.0, 0.0, False)  # never started
    c.released[Phase.JOINED] = 100.0
    assert c.chat_window(103.0) == (103.0, pytest.approx(0.5), False)  # capped at --duration
    c.released[Phase.DRAINED] = 100.2
    assert c.chat_window(103.0) == (100.2, pytest.approx(0.2), False)
    c.stopped_at = 100.1
    assert c.chat_window(103.0) == (100.1, pytest.approx(0.1), True)
