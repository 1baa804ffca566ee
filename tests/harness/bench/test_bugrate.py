"""The bug-rate measurement's tallies and its usage errors."""

from __future__ import annotations

import pytest

from harness.bench.bugrate import Job, Tally, main
from harness.swarm.invoke import SAFE, Detection, SwarmOutcome, SwarmSpec, Witness


def outcome(
    verdict: str | None, checks: dict[str, int] | None = None, after: float | None = None
) -> SwarmOutcome:
    doc = None if verdict is None else {"verdict": verdict, "summary": verdict, "checks": checks or {}}
    detection = Detection(after, Witness("seq", "x")) if after is not None else None
    return SwarmOutcome(SwarmSpec(30, 8), 1, doc, "", 9.0, detection)


def test_a_bug_tally_counts_catches_checks_and_misses() -> None:
    tally = Tally("no-lock", "mixed")
    tally.add(outcome("FAIL", {"seq": 5, "loss": 2}, after=0.4), seed=1)
    tally.add(outcome("FAIL", {"seq": 1}, after=0.2), seed=2)
    tally.add(outcome("PASS"), seed=3)
    tally.add(outcome(None), seed=4)
    assert (tally.runs, tally.caught, tally.clean, tally.errors) == (4, 2, 1, 1)
    assert tally.checks == {"seq": 2, "loss": 1}  # runs in which each check fired
    assert tally.violations == 8
    assert tally.missed_seeds == [3, 4]
    assert tally.median_detection == pytest.approx(0.3)


def test_the_safe_tally_misses_only_on_failures() -> None:
    tally = Tally(SAFE, "churn")
    tally.add(outcome("PASS"), seed=1)
    tally.add(outcome("UNKNOWN"), seed=2)
    tally.add(outcome("FAIL", {"membership": 1}), seed=3)
    assert tally.is_safe and (tally.clean, tally.unknown, tally.caught) == (1, 1, 1)
    assert tally.missed_seeds == [3]
    assert tally.median_detection is None


def test_a_job_names_its_server() -> None:
    assert Job(None, "chat").server == SAFE and Job("lost-leave", "mixed").server == "lost-leave"


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["no-such-bug"], "python -m harness.bugrate: unknown bug 'no-such-bug'; valid: all, "),
        (["--scenarios", "chat,nope"], "python -m harness.bugrate: unknown scenario 'nope'; valid: chat, "),
    ],
)
def test_usage_errors_exit_2_with_one_line(
    args: list[str], message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(args) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith(message)
