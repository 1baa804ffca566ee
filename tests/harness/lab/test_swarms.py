"""harness.lab.swarms: a short real swarm recorded and loaded into frames, and a swarm with no verdict."""

from __future__ import annotations

from pathlib import Path

import pytest

pytest.importorskip("pandas")

from harness import lab  # noqa: E402

pytestmark = pytest.mark.e2e


def test_a_short_swarm_is_recorded_and_loads_into_frames(tmp_path: Path) -> None:
    run = lab.run_swarm(tmp_path / "run", clients=4, duration=1.0, seed=3, delivery="queued")
    assert run.verdict == "PASS", run.line
    assert run.exit_code == 0 and run.line.startswith("PASS")
    assert (run.record / "events.jsonl").is_file()
    frames = lab.load_frames(run.record)
    assert len(frames.deliveries) == run.summary["deliveries"]
    assert frames.meta["settings"]["delivery"] == "queued"
    assert lab.judge(frames).passed()
    assert int(lab.checks_frame(run.summary)["violations"].sum()) == 0
    series = lab.metrics_series(frames.meta, ["chat_deliveries_total"])
    assert list(series.columns) == ["s", "t", "chat_deliveries_total"]


def test_a_swarm_that_gives_no_verdict_is_one_clear_error(tmp_path: Path) -> None:
    with pytest.raises(RuntimeError, match=r"^the swarm gave no verdict \(exit 2\): "):
        lab.run_swarm(tmp_path / "run", scenario="no-such-scenario")
