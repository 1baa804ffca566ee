"""The checker case: its synthetic history is clean, and a run record it cannot read is a note."""

from __future__ import annotations

from pathlib import Path

from harness.bench.checker_speed import checker_speed, synthetic_histories
from harness.checker import CheckConfig, check_all


def test_synthetic_history_is_clean_for_the_checker() -> None:
    histories, end = synthetic_histories(5000, members=10, senders=3)
    assert 5000 <= sum(len(h.events) for h in histories) <= 5000 + 11
    report = check_all(histories, CheckConfig(run_end=end))
    assert report.total() == 0, report.summary_line()


def test_a_small_history_is_timed_and_said_to_be_small() -> None:
    info = checker_speed(3000, reduced=True)
    assert info["available"] and info["violations"] == 0 and info["history"] == "synthetic"
    assert info["events"] >= 3000 and info["events_per_s"] > 0
    assert info["note"].endswith("fewer than the goal's 1,000,000 (quick mode)")


def test_a_missing_run_record_is_not_available(tmp_path: Path) -> None:
    info = checker_speed(1000, reduced=False, run_dir=str(tmp_path / "nothing"))
    assert info["available"] is False
    assert info["note"].startswith("not available: cannot load ")
