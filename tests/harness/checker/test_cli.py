"""``python -m harness.checker`` as a user runs it: a subprocess per test."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from harness.record.history import ClientHistory, histories_to_dicts
from tests.harness.checker.histories import base, client, index_of

pytestmark = pytest.mark.e2e

REPO = Path(__file__).resolve().parents[3]


def _write_run(tmp_path: Path, histories: list[ClientHistory]) -> Path:
    run = tmp_path / "run"
    run.mkdir()
    with (run / "events.jsonl").open("w") as f:
        for d in histories_to_dicts(histories):
            f.write(json.dumps(d) + "\n")
    return run


def _cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "harness.checker", *args],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=REPO,
    )


def test_cli_rechecks_a_recorded_run(tmp_path: Path) -> None:
    run = _write_run(tmp_path, base())
    done = _cli(str(run))
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines()[0] == "PASS: 0 violations in 9 deliveries"


def test_cli_fails_a_broken_run_with_a_witness(tmp_path: Path) -> None:
    histories = base()
    bob = client(histories, "bob")
    del bob.events[index_of(bob, "MSG 4 ")]
    run = _write_run(tmp_path, histories)
    done = _cli(str(run / "events.jsonl"))
    assert done.returncode == 1
    lines = done.stdout.splitlines()
    assert lines[0] == "FAIL: 2 violations (seq 1, loss 1)"
    assert any("[loss]" in ln and '"sender": "alice"' in ln for ln in lines)
    doc = json.loads(_cli(str(run), "--json").stdout)
    assert doc["verdict"] == "FAIL" and doc["counts"]["loss"] == 1


def test_cli_usage_errors_are_one_line(tmp_path: Path) -> None:
    done = _cli(str(tmp_path / "nowhere"))
    assert done.returncode == 2
    assert done.stderr.count("\n") == 1 and "not found" in done.stderr
    bad = tmp_path / "bad"
    bad.mkdir()
    (bad / "events.jsonl").write_text("not json\n")
    done = _cli(str(bad))
    assert done.returncode == 2
    assert done.stderr.startswith("error: cannot read") and "Traceback" not in done.stderr
    done = _cli()
    assert done.returncode == 2 and "Traceback" not in done.stderr


def test_cli_bench_runs_a_small_benchmark() -> None:
    done = _cli("--bench", "2000", "--json")
    assert done.returncode == 0, done.stderr
    figures = json.loads(done.stdout)
    assert figures["deliveries"] >= 2000
