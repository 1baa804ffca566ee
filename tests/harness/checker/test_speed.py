"""The checker's speed measurement: figures that add up, and a loud failure if a correct run fails."""

from __future__ import annotations

import dataclasses

import pytest

from harness.checker import bench_events, time_check
from harness.checker.speed import CheckSpeed
from harness.record.history import ClientHistory
from tests.harness.checker.histories import base, client, index_of


def test_time_check_counts_the_events_and_keeps_the_report() -> None:
    histories = base()
    timed = time_check(histories)
    assert timed.events == sum(len(h.events) for h in histories)
    assert timed.report.passed()
    assert timed.seconds >= 0 and timed.cpu_seconds >= 0
    assert timed.events_per_s == (timed.events / timed.seconds if timed.seconds > 0 else 0.0)


def test_bench_events_figures() -> None:
    figures = bench_events(2000, clients=5)
    assert isinstance(figures, CheckSpeed)
    assert figures.deliveries >= 2000
    assert figures.events > figures.deliveries
    assert all(isinstance(v, float) for v in dataclasses.asdict(figures).values())
    assert figures.check_s > 0 and figures.events_per_s > 0


def test_bench_events_fails_loudly_on_a_failed_run(monkeypatch: pytest.MonkeyPatch) -> None:
    def broken(cfg: object) -> list[ClientHistory]:
        histories = base()
        bob = client(histories, "bob")
        del bob.events[index_of(bob, "MSG 4 ")]
        return histories

    monkeypatch.setattr("harness.checker.speed.simulate_run", broken)
    with pytest.raises(AssertionError, match=r"^the simulated correct run failed: FAIL: 2 violations"):
        bench_events(100)
