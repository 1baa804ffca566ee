"""The demo's table and exit codes, over swarm outcomes made by hand (pure)."""

from __future__ import annotations

import io
import json
from typing import Any

import pytest
from rich.console import Console

from harness.demo import cli as demo
from harness.demo.cli import DemoRow, demo_table
from harness.swarm.invoke import Detection, SwarmOutcome, SwarmSpec, Witness


def outcome(
    server: str,
    verdict: str,
    *,
    checks: dict[str, int] | None = None,
    first_check: str = "",
    first_witness: str = "",
    detected_after: float | None = None,
) -> SwarmOutcome:
    """A finished swarm run against ``server`` (a bug's name or ``safe``)."""
    violations = [{"check": first_check, "message": first_witness}] if first_witness else []
    doc = {"verdict": verdict, "summary": f"{verdict}: ...", "checks": checks or {}, "violations": violations}
    detection = (
        Detection(detected_after, Witness(first_check, first_witness)) if detected_after is not None else None
    )
    spec = SwarmSpec(30, 8, scenario="mixed", bug=None if server == "safe" else server)
    return SwarmOutcome(spec, 0, doc, "", 9.0, detection)


def render(table: object) -> str:
    buf = io.StringIO()
    Console(file=buf, width=160, color_system=None).print(table)
    return buf.getvalue()


def test_table_shows_bug_checks_witness_time_and_safe_result() -> None:
    bad = outcome(
        "lost-leave",
        "FAIL",
        checks={"membership": 12},
        first_check="membership",
        first_witness="b3 never got LEAVE of b7",
        detected_after=1.25,
    )
    safe = outcome("safe", "PASS")
    text = render(demo_table([DemoRow(bad, safe)]))
    for part in (
        "lost-leave",
        "yes",
        "membership 12",
        "b3 never got LEAVE of b7",
        "1.25 s",
        "PASS 0 violations",
    ):
        assert part in text
    missed = render(demo_table([DemoRow(outcome("no-lock", "PASS"), outcome("safe", "FAIL"))]))
    assert "no (PASS)" in missed and "FAIL" in missed


def test_a_run_without_a_verdict_shows_why() -> None:
    spec = SwarmSpec(30, 8, scenario="mixed", bug="no-lock")
    broken = SwarmOutcome(spec, None, None, "", 98.0)
    text = render(demo_table([DemoRow(broken, None)]))
    assert "no (ERROR)" in text and "the swarm did not end in time" in text


def _fake_runs(missed: set[str], safe_verdict: str = "PASS") -> Any:
    def fake_run_swarm(spec: SwarmSpec, **kw: object) -> SwarmOutcome:
        if spec.bug is None:
            return outcome("safe", safe_verdict)
        if spec.bug in missed:
            return outcome(spec.bug, "PASS")
        return outcome(spec.bug, "FAIL", checks={"seq": 1})

    return fake_run_swarm


def test_exit_code_1_when_a_bug_is_missed(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setattr(demo, "run_swarm", _fake_runs(missed={"lost-leave"}))
    assert demo.main(["no-lock", "--seed", "1"]) == 0
    assert demo.main(["no-lock", "lost-leave", "--seed", "1"]) == 1
    out = capsys.readouterr().out
    assert "1/2 bugs caught" in out


def test_exit_code_1_when_the_safe_server_fails(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(demo, "run_swarm", _fake_runs(missed=set(), safe_verdict="FAIL"))
    assert demo.main(["no-lock", "--seed", "1"]) == 1


def test_json_document_names_each_run(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setattr(demo, "run_swarm", _fake_runs(missed=set()))
    assert demo.main(["no-lock", "--seed", "5", "--json", "--clients", "12"]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert doc["ok"] is True and doc["seed"] == 5 and doc["clients"] == 12
    (row,) = doc["rows"]
    assert row["unsafe"]["server"] == "no-lock" and row["unsafe"]["verdict"] == "FAIL"
    assert row["safe"]["server"] == "safe" and row["safe"]["verdict"] == "PASS"
