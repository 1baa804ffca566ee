"""``python -m harness.bench.instrumentation``: its figures are well formed (never a speed assertion)."""

from __future__ import annotations

import json

import pytest

from harness.bench.instrumentation import main, measure


def test_each_case_is_timed_with_both_locks() -> None:
    costs = measure(members=(3,), calls=20, rounds=1)
    assert [c.case for c in costs] == ["empty section", "say to 3 members"]
    for c in costs:
        assert c.plain_ns > 0 and c.instrumented_ns > 0
        assert c.extra_ns == pytest.approx(c.instrumented_ns - c.plain_ns)


def test_json_output_and_a_usage_error(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    import harness.bench.instrumentation as instrumentation

    monkeypatch.setattr(
        instrumentation, "measure", lambda rounds: measure(members=(2,), calls=5, rounds=rounds)
    )
    assert main(["--rounds", "1", "--json"]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert {"case", "plain_ns", "instrumented_ns", "extra_ns", "ratio"} <= set(doc[0])
    assert main(["--rounds", "0"]) == 2
    assert (
        capsys.readouterr().err.strip()
        == "python -m harness.bench.instrumentation: --rounds must be at least 1"
    )
