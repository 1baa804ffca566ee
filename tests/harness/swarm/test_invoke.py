"""harness.swarm.invoke without a swarm: the command line, reading an outcome, the detection search."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from harness.checker import Verdict
from harness.record.history import ClientHistory, Received
from harness.swarm.invoke import (
    SAFE,
    Detection,
    SwarmOutcome,
    SwarmSpec,
    Witness,
    first_detection,
    prefix,
    record_check_config,
    swarm_command,
)

# -- the command line ---------------------------------------------------------------------------------


def test_command_names_every_option_given_and_no_other() -> None:
    spec = SwarmSpec(clients=30, duration=8, scenario="mixed", seed=7, bug="no-lock", extra=("--rate", "5"))
    cmd = swarm_command(spec)
    assert cmd[:3] == [sys.executable, "-m", "harness.swarm"]
    assert cmd[3:] == [
        "--json",
        "--no-dashboard",
        "--no-record",
        "--scenario",
        "mixed",
        "--clients",
        "30",
        "--duration",
        "8.0",
        "--seed",
        "7",
        "--server-arg=--unsafe no-lock",
        "--rate",
        "5",
    ]
    bare = swarm_command(SwarmSpec(clients=5, duration=1.5))
    assert bare[3:] == ["--json", "--no-dashboard", "--no-record", "--clients", "5", "--duration", "1.5"]


def test_a_record_folder_is_named_absolutely(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.chdir(tmp_path)
    cmd = swarm_command(SwarmSpec(clients=2, duration=1, record_dir=Path("runs/one")))
    at = cmd.index("--record")
    assert cmd[at + 1] == str(tmp_path / "runs" / "one")
    assert "--no-record" not in cmd


def test_server_label() -> None:
    assert SwarmSpec(1, 1).server == SAFE
    assert SwarmSpec(1, 1, bug="lost-leave").server == "lost-leave"


# -- reading an outcome ------------------------------------------------------------------------------


def _outcome(document: dict[str, object] | None, exit_code: int | None = 1, **kw: object) -> SwarmOutcome:
    spec = SwarmSpec(clients=10, duration=2, scenario="mixed", bug="no-lock")
    return SwarmOutcome(spec, exit_code, document, kw.pop("stderr_tail", ""), 3.456, **kw)  # type: ignore[arg-type]


FAILED: dict[str, object] = {
    "verdict": "FAIL",
    "summary": "FAIL: 3 violations (seq 2, loss 1)",
    "checks": {"seq": 2, "loss": 1, "fifo": 0},
    "violations": [{"check": "seq", "message": "b1 got seq 5 after 3"}, {"check": "loss", "message": "x"}],
}


def test_a_failed_run_reads_as_caught() -> None:
    out = _outcome(FAILED)
    assert out.verdict is Verdict.FAIL and out.verdict_text == "FAIL"
    assert out.is_caught and not out.is_clean
    assert out.line == "FAIL: 3 violations (seq 2, loss 1)"
    assert out.checks == {"seq": 2, "loss": 1}  # only the checks that fired
    assert out.first_witness == Witness("seq", "b1 got seq 5 after 3")
    assert out.as_dict() == {
        "server": "no-lock",
        "scenario": "mixed",
        "verdict": "FAIL",
        "exit_code": 1,
        "summary": "FAIL: 3 violations (seq 2, loss 1)",
        "checks": {"seq": 2, "loss": 1},
        "first_check": "seq",
        "first_witness": "b1 got seq 5 after 3",
        "detected_after_s": None,
        "seconds": 3.46,
    }


def test_a_detection_names_the_first_witness_of_the_shortest_failing_prefix() -> None:
    out = _outcome(FAILED, detection=Detection(0.75, Witness("loss", "b2 never got n=4")))
    assert out.first_witness == Witness("loss", "b2 never got n=4")
    assert out.as_dict()["detected_after_s"] == 0.75
    assert out.as_dict()["first_check"] == "loss"


def test_a_run_without_a_document_is_an_error_with_its_last_stderr_line() -> None:
    out = _outcome(None, exit_code=2, stderr_tail="usage: ...\npython -m harness.swarm: error: bad scenario")
    assert out.verdict is None and out.verdict_text == "ERROR"
    assert not out.is_caught and not out.is_clean
    assert out.line == "python -m harness.swarm: error: bad scenario"
    assert out.checks == {} and out.first_witness is None
    assert _outcome(None, exit_code=1).line == "no output"


def test_a_run_killed_at_its_bound_says_so() -> None:
    out = _outcome(None, exit_code=None)
    assert out.line == "the swarm did not end in time"
    assert out.as_dict()["exit_code"] is None and out.as_dict()["verdict"] == "ERROR"


def test_a_document_with_an_unknown_verdict_has_none() -> None:
    assert _outcome({"verdict": "MAYBE", "summary": "?"}).verdict is None


# -- the checker's settings of a record --------------------------------------------------------------


def test_record_settings_come_from_meta_then_summary() -> None:
    summary = {"run_end": 123.5, "contested_names": ["Alice", "bob"], "settings": {"delivery_bound": 9}}
    meta = {"settings": {"handshake_bound": 2, "delivery_bound": 3}}
    config = record_check_config(summary, meta)
    assert (config.handshake_bound, config.delivery_bound, config.run_end) == (2.0, 3.0, 123.5)
    assert config.contested_names == frozenset({"alice", "bob"})
    bare = record_check_config({"settings": {"delivery_bound": 9}}, {})
    assert (bare.handshake_bound, bare.delivery_bound, bare.run_end) == (5.0, 9.0, None)


# -- time to first detection ---------------------------------------------------------------------------


def history(times: list[float]) -> ClientHistory:
    return ClientHistory("c1", "b1", "chat", [Received(t, f"line {t}") for t in times])


def test_prefix_cuts_by_time() -> None:
    hs = [history([1.0, 2.0, 3.0]), ClientHistory("c2", "b2", "chat", [Received(5.0, "x")])]
    cut = prefix(hs, 2.0)
    assert len(cut) == 1
    assert [e.t for e in cut[0].events] == [1.0, 2.0]


def test_first_detection_finds_the_edge() -> None:
    hs = [history([10.0 + i / 10 for i in range(100)])]  # events from 10.0 to 19.9

    def judge(hs: list[ClientHistory], cut: float) -> Witness | None:
        # "fails" once the line at t=13.0 is in the prefix
        seen = any(e.t >= 13.0 for h in hs for e in h.events)
        return Witness("seq", "a witness") if seen else None

    found = first_detection(hs, judge, resolution=0.01)
    assert found is not None
    after, (check, witness) = found
    assert after == pytest.approx(3.0, abs=0.02)
    assert (check, witness) == ("seq", "a witness")


def test_first_detection_none_when_the_run_passes() -> None:
    assert first_detection([history([1.0, 2.0])], lambda hs, cut: None) is None
    assert first_detection([], lambda hs, cut: Witness("x", "y")) is None
