"""harness.lab.judging: the checker over tabulated histories (pure)."""

from __future__ import annotations

import pytest

pytest.importorskip("pandas")

from harness import lab  # noqa: E402
from tests.harness.lab.histories import T0, two_members_and_a_refusal  # noqa: E402


def test_judging_tabulated_histories() -> None:
    frames = lab.frames_from_histories(
        two_members_and_a_refusal(), {"run_end": T0 + 3.0}, {"settings": {"delivery_bound": 5}}
    )
    config = lab.check_config(frames.summary, frames.meta)
    assert config.delivery_bound == 5.0 and config.run_end == T0 + 3.0
    report = lab.judge(frames)
    checks = lab.checks_frame(report)
    assert set(checks.index) >= {"seq", "fifo", "loss"}
    assert list(lab.violations_frame(report).columns) == ["check", "message", "witness"]


def test_a_summary_document_tabulates_like_a_report() -> None:
    summary = {
        "checks": {"seq": 2, "loss": 0},
        "violations": [{"check": "seq", "message": "b1 got seq 5 after 3", "witness": {"position": 4}}],
    }
    assert lab.checks_frame(summary)["violations"].to_dict() == {"seq": 2, "loss": 0}
    (row,) = lab.violations_frame(summary).to_dict("records")
    assert row == {"check": "seq", "message": "b1 got seq 5 after 3", "witness": {"position": 4}}
