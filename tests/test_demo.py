"""The demo: its pure parts (detection search, table), its exit codes, and one real run."""

from __future__ import annotations

import io
from pathlib import Path

import pytest
from rich.console import Console

from harness.demo import cli as demo
from harness.demo.cli import RunOutcome, demo_table, first_detection, prefix
from harness.record.history import ClientHistory, Received
from tests.helpers import run_module


def history(times: list[float]) -> ClientHistory:
    return ClientHistory("c1", "b1", "chat", [Received(t, f"line {t}") for t in times])


def test_prefix_cuts_by_time() -> None:
    hs = [history([1.0, 2.0, 3.0]), ClientHistory("c2", "b2", "chat", [Received(5.0, "x")])]
    cut = prefix(hs, 2.0)
    assert len(cut) == 1
    assert [e.t for e in cut[0].events] == [1.0, 2.0]


def test_first_detection_finds_the_edge() -> None:
    hs = [history([10.0 + i / 10 for i in range(100)])]  # events from 10.0 to 19.9

    def judge(hs: list[ClientHistory], cut: float) -> tuple[str, str] | None:
        # "fails" once the line at t=13.0 is in the prefix
        seen = any(e.t >= 13.0 for h in hs for e in h.events)
        return ("seq", "a witness") if seen else None

    found = first_detection(hs, judge, resolution=0.01)
    assert found is not None
    after, check, witness = found
    assert after == pytest.approx(3.0, abs=0.02)
    assert (check, witness) == ("seq", "a witness")


def test_first_detection_none_when_the_run_passes() -> None:
    assert first_detection([history([1.0, 2.0])], lambda hs, cut: None) is None
    assert first_detection([], lambda hs, cut: ("x", "y")) is None


def outcome(server: str, verdict: str, **kw: object) -> RunOutcome:
    return RunOutcome(
        server=server, scenario="mixed", exit_code=0, verdict=verdict, line=f"{verdict}: ...", **kw
    )  # type: ignore[arg-type]


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
    text = render(demo_table([(bad, safe)]))
    for part in (
        "lost-leave",
        "yes",
        "membership 12",
        "b3 never got LEAVE of b7",
        "1.25 s",
        "PASS 0 violations",
    ):
        assert part in text
    missed = render(demo_table([(outcome("no-lock", "PASS"), outcome("safe", "FAIL"))]))
    assert "no (PASS)" in missed and "FAIL" in missed


def test_exit_code_1_when_a_bug_is_missed(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    def fake_run_swarm(*, bug: str | None, scenario: str, **kw: object) -> RunOutcome:
        if bug == "lost-leave":
            return outcome("lost-leave", "PASS")  # missed
        return outcome(bug or "safe", "FAIL" if bug else "PASS", checks={"seq": 1} if bug else {})

    monkeypatch.setattr(demo, "run_swarm", fake_run_swarm)
    assert demo.main(["no-lock", "--seed", "1"]) == 0
    assert demo.main(["no-lock", "lost-leave", "--seed", "1"]) == 1
    out = capsys.readouterr().out
    assert "1/2 bugs caught" in out


def test_exit_code_1_when_the_safe_server_fails(monkeypatch: pytest.MonkeyPatch) -> None:
    def fake_run_swarm(*, bug: str | None, scenario: str, **kw: object) -> RunOutcome:
        return outcome(bug or "safe", "FAIL")

    monkeypatch.setattr(demo, "run_swarm", fake_run_swarm)
    assert demo.main(["no-lock", "--seed", "1"]) == 1


def test_unknown_bug_is_a_usage_error() -> None:
    res = run_module("harness.demo", ["no-such-bug"], timeout=30)
    assert res.returncode == 2
    lines = res.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(
        "python -m harness.demo: unknown bug 'no-such-bug'; valid: all,"
    )


def test_bad_option_is_a_usage_error() -> None:
    res = run_module("harness.demo", ["--clients", "0"], timeout=30)
    assert res.returncode == 2
    assert "Traceback" not in res.stderr


@pytest.mark.slow
def test_demo_catches_a_bug_and_the_safe_server_is_clean(tmp_path: Path) -> None:
    res = run_module(
        "harness.demo",
        ["lost-leave", "--clients", "10", "--duration", "1", "--seed", "7", "--keep", str(tmp_path)],
        timeout=120,
    )
    assert res.returncode == 0, res.stdout + res.stderr[-2000:]
    assert "lost-leave" in res.stdout
    assert "1/1 bugs caught" in res.stdout
    assert "PASS 0 violations" in res.stdout
    assert (tmp_path / "lost-leave" / "summary.json").exists()
    assert (tmp_path / "safe-mixed" / "summary.json").exists()
