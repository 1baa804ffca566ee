"""``python -m harness.demo`` as a user runs it: usage errors, and one real bug caught."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.helpers import run_module

pytestmark = pytest.mark.e2e


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
