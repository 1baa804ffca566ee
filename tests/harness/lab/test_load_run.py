"""harness.lab.load against real servers: one tiny sweep, and one short slow-consumer run against the
swarm's own server."""

from __future__ import annotations

from pathlib import Path

import pytest

pytest.importorskip("pandas")

from harness import lab  # noqa: E402
from harness.lab import load as lab_load  # noqa: E402

pytestmark = pytest.mark.e2e


def test_a_tiny_sweep_brackets_each_swarm_with_scrapes(tmp_path: Path) -> None:
    points = lab_load.run_sweep(tmp_path, designs=("batched",), clients=(2, 3), duration=0.5, rate=5)
    assert [(p.design, p.clients) for p in points] == [("batched", 2), ("batched", 3)]
    assert all(p.run.verdict == "PASS" for p in points), [p.run.line for p in points]
    assert all((tmp_path / f"batched-{n}" / "summary.json").is_file() for n in (2, 3))
    table = lab_load.sweep_frame(points)
    assert table["offered_per_s"].tolist() == [20.0, 45.0]
    # CPU time comes in 10 ms ticks: a run this small may use none that the kernel counted.
    assert (table["server_cpu_s"] >= 0).all() and (table["acquisitions"] > 0).all()
    sites = lab_load.sites_frame(points)
    say = sites[(sites["clients"] == 3) & (sites["site"] == "say")].iloc[0]
    # Each swarm's figures are its own: the second run's count is not the running total.
    holds = lab_load.histograms_frame(points[1:], "hold", site="say")
    assert holds["count"].sum() == say["acquisitions"] > 0
    assert say["hold_s"] == pytest.approx(points[1].hold_seconds("say"))
    by_say = lab_load.sweep_frame(points, site="say").iloc[1]
    assert by_say["acquisitions"] == say["acquisitions"]
    assert by_say["lock_busy"] == pytest.approx(say["hold_s"] / points[1].chat_seconds)
    assert {"admit", "join", "leave", "release"} <= set(sites["site"])


def test_a_member_that_stops_reading_is_dropped_by_the_safe_server(tmp_path: Path) -> None:
    run = lab_load.run_slow_consumer(tmp_path / "safe", duration=3.0, max_backlog=50, delivery_bound=5.0)
    assert run.verdict == "PASS", run.line
    assert run.summary["roles"] == {"chat": 5, "slow": 1}
    frames = lab.load_frames(run.record)
    slow = frames.members.loc[frames.members["role"] == "slow", "bot"].tolist()
    drops = lab_load.slow_drops(frames)
    assert drops["name"].tolist() == slow
    assert set(lab_load.others_deliveries(frames)["role"]) == {"chat"}
    meta_args = " ".join(frames.meta["settings"]["server_args"])
    assert "--max-backlog 50" in meta_args
