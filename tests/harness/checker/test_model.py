"""The report and the verdict: judge, verdict_line, capped witnesses, JSON."""

from __future__ import annotations

import json

from harness.checker import (
    CheckResult,
    LatencySummary,
    Report,
    SeqStyle,
    Verdict,
    Violation,
    check_all,
    judge,
    verdict_line,
)
from harness.checker.model import WITNESS_ITEMS, short
from harness.record.history import ClientHistory, Closed, Connected, Received
from tests.harness.checker.histories import base, client, index_of


def test_judge() -> None:
    report = check_all(base())
    assert judge(report, 2) == ("PASS", 0)
    assert judge(report, 3) == ("UNKNOWN", 3)
    assert verdict_line(report, 3) == "UNKNOWN: 0 violations in 9 deliveries, but only 2 of 3 bots joined"
    empty = check_all([])
    assert judge(empty, 0) == ("UNKNOWN", 3)
    assert verdict_line(empty, 0).startswith("UNKNOWN: 0 violations, but no message was delivered")
    hung = check_all([ClientHistory("c", "c", events=[Connected(0.0, 0.0), Closed(9.0, "timeout")])])
    # A liveness failure fails the run even though nobody joined.
    assert judge(hung, 50) == ("FAIL", 1)
    assert verdict_line(hung, 50) == "FAIL: 1 violation (liveness 1)"


def test_witnesses_are_capped_counts_are_not() -> None:
    histories = base()
    alice = client(histories, "alice")
    for k in range(300):
        alice.events.insert(index_of(alice, "JOIN 2"), Received(0.05, f"MSG 1 ghost{k} boo"))
    report = check_all(histories)
    assert report.counts["membership"] >= 300
    assert len([v for v in report.violations if v.check == "membership"]) < report.counts["membership"]


def test_the_report_is_json_ready() -> None:
    doc = check_all(base()).to_dict()
    assert json.loads(json.dumps(doc))["passed"] is True


# -- the named outcomes -------------------------------------------------------------------


def test_a_verdict_reads_as_its_word() -> None:
    for verdict, code in ((Verdict.PASS, 0), (Verdict.FAIL, 1), (Verdict.UNKNOWN, 3)):
        assert verdict == verdict.value
        assert str(verdict) == f"{verdict}" == f"{verdict:>1}" == verdict.value
        assert json.dumps({"verdict": verdict}) == f'{{"verdict": "{verdict.value}"}}'
        assert verdict.exit_code == code
    judged = judge(check_all(base()), 2)
    assert judged.verdict is Verdict.PASS and judged.exit_code == 0
    verdict, code = judged
    assert (verdict, code) == ("PASS", 0)


def test_the_report_names_its_seq_style() -> None:
    report = check_all(base())
    assert report.seq_style is SeqStyle.NUMBERED
    assert f"seqs {report.seq_style}" == "seqs numbered"
    assert json.loads(json.dumps(report.to_dict()))["seq_style"] == "numbered"
    assert [s.has_seqs for s in SeqStyle] == [True, False, True, False]


def test_summary_line_lists_the_checks_by_count_then_by_order() -> None:
    report = Report(
        [],
        {"seq": 1, "agreement": 0, "loss": 2, "fifo": 1, "membership": 2},
        10,
        5,
        2,
        2,
        LatencySummary(),
        SeqStyle.NUMBERED,
    )
    assert report.summary_line() == "FAIL: 6 violations (loss 2, membership 2, seq 1, fifo 1)"
    one = Report([], {"names": 1234}, 0, 0, 0, 0, LatencySummary(), SeqStyle.NONE)
    assert one.summary_line() == "FAIL: 1,234 violations (names 1,234)"


def test_a_check_result_counts_past_its_witness_limit() -> None:
    res = CheckResult("loss", limit=2)
    for i in range(5):
        res.add(f"lost {i}", {"i": i})
    assert res.count == 5 and res.is_full
    assert [v.message for v in res.violations] == ["lost 0", "lost 1"]
    assert res.violations[0] == Violation("loss", "lost 0", {"i": 0})


def test_short_lists_a_few_items() -> None:
    assert short(range(3)) == [0, 1, 2]
    assert short(range(WITNESS_ITEMS)) == list(range(WITNESS_ITEMS))
    assert short(range(100)) == [*range(WITNESS_ITEMS), "..."]
