"""harness.swarm.invoke with real subprocesses: a swarm's verdict, a usage error, a run past its bound."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from harness.checker import Verdict
from harness.swarm import invoke
from harness.swarm.invoke import SwarmSpec, run_swarm

pytestmark = pytest.mark.e2e


def test_a_short_swarm_gives_its_verdict_and_record(tmp_path: Path) -> None:
    spec = SwarmSpec(clients=3, duration=0.5, scenario="chat", seed=3, record_dir=tmp_path / "run")
    out = run_swarm(spec)
    assert out.verdict is Verdict.PASS, out.line + out.stderr_tail
    assert out.exit_code == 0 and out.is_clean and out.line.startswith("PASS")
    assert out.document is not None and out.document["scenario"] == "chat"
    assert (tmp_path / "run" / "summary.json").is_file()
    assert out.seconds > 0


def test_a_caught_bug_is_detected_in_its_record(tmp_path: Path) -> None:
    spec = SwarmSpec(clients=6, duration=1, scenario="mixed", seed=7, bug="lost-leave", record_dir=tmp_path)
    out = run_swarm(spec, detect=True)
    assert out.is_caught, out.line
    assert out.detection is not None and out.detection.after >= 0
    assert out.first_witness == out.detection.witness


def test_a_usage_error_is_a_run_without_a_verdict() -> None:
    out = run_swarm(SwarmSpec(clients=2, duration=1, scenario="no-such-scenario"))
    assert out.verdict is None and out.exit_code == 2
    assert "no-such-scenario" in out.line


def test_a_run_past_its_bound_is_stopped(monkeypatch: pytest.MonkeyPatch) -> None:
    # A stand-in for a swarm that hangs: it waits to read a pipe that nobody writes.
    hang = [
        sys.executable,
        "-c",
        "import os, sys; r, w = os.pipe(); print('started', file=sys.stderr, flush=True); os.read(r, 1)",
    ]
    monkeypatch.setattr(invoke, "swarm_command", lambda spec: hang)
    out = run_swarm(SwarmSpec(clients=1, duration=0), timeout=2.0)
    assert out.exit_code is None and out.verdict is None
    assert out.line == "the swarm did not end in time"
    assert out.seconds < 2.0 + invoke.STOP_GRACE
