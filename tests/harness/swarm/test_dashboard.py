"""The dashboard's renderables, rendered into a recording Console; no I/O, no server."""

from __future__ import annotations

import io
from typing import Any

import pytest
from rich.console import Console, RenderableType

from harness.common.metrics_scrape import LockView, MetricsView, view_to_dict
from harness.record.counters import COUNTERS, LiveCounts
from harness.swarm.dashboard import (
    CHECK_ORDER,
    CheckRow,
    Dashboard,
    LatencyFigures,
    LiveSnapshot,
    count_text,
    fmt_ms,
    live_check_rows,
    live_view,
    progress_line,
    sparkline,
    stats_table,
    summary_view,
    verdict_text,
    witness_lines,
)


def render(renderable: RenderableType | Any) -> str:
    console = Console(file=io.StringIO(), width=100, color_system=None)
    console.print(renderable)
    out = console.file.getvalue()  # type: ignore[attr-defined]
    assert isinstance(out, str)
    return out


METRICS = MetricsView(
    url="http://127.0.0.1:1/metrics",
    t=0.0,
    locks=(
        LockView("registry", "", 12000, 1500.0, 0.25, 0.004, 1.5, 0.01, 0.3, run_rate=1500.0),
        LockView("registry", "say", 9000, 1000.0, 0.02, None, None, 0.02, 0.5),
    ),
    gauges={"chat_members": 50, "chat_threads": 103, "chat_backlog_lines": 7, "chat_slow_drops_total": 2},
    deliveries_rate=48000.0,
)


def snapshot(**overrides: Any) -> LiveSnapshot:
    base: dict[str, Any] = dict(
        scenario="mixed",
        target="127.0.0.1:4242",
        phase="chatting",
        elapsed=4.2,
        duration=8.0,
        bots=30,
        counts=LiveCounts(connected=28, members=27, joins=120, refused=0, sent=3456, delivered=98765),
        sent_rates=(400.0, 420.0, 410.0),
        delivered_rates=(12000.0, 12500.0, 12100.0),
        latency_recent=LatencyFigures(2000, 0.8, 2.5, 4.1, 9.0),
        latency_run=LatencyFigures(98765, 0.9, 3.0, 5.5, 31.0),
        checks=tuple(CheckRow(n, {"seq": 0, "fifo": 3, "liveness": 0}.get(n), "note") for n in CHECK_ORDER),
        metrics=None,
        roles="30 bots: 14 chat, 5 churn, 5 racer, 3 slow, 3 burst",
    )
    counts = {k: overrides.pop(k) for k in list(overrides) if hasattr(base["counts"], k)}
    base.update(overrides)
    for name, value in counts.items():
        setattr(base["counts"], name, value)
    return LiveSnapshot(**base)


# -- live ------------------------------------------------------------------------------------------


def test_live_view_shows_bots_traffic_latency_and_every_check() -> None:
    out = render(live_view(snapshot()))
    assert "swarm mixed" in out and "target 127.0.0.1:4242" in out and "chatting" in out
    assert "4.2 s / 8 s" in out
    assert "28/30" in out and "connected" in out
    assert "3,456" in out and "98,765" in out
    assert "410/s" in out and "12,100/s" in out
    assert "last 2 s" in out and "whole run" in out
    assert "4.10 ms" in out and "31.0 ms" in out
    for name in CHECK_ORDER:
        assert name in out
    assert "…" in out  # checks judged only at the end
    assert "14 chat, 5 churn" in out
    assert "Lock" not in out  # no metrics: no lock table


def test_live_view_with_metrics_shows_lock_rows() -> None:
    out = render(live_view(snapshot(metrics=METRICS)))
    assert "registry" in out and "say" in out
    assert "25.0 %" in out  # contended share
    assert "1.50 ms" in out  # wait p99
    assert "members 50" in out and "threads 103" in out and "dropped slow 2" in out
    assert "deliveries 48,000/s" in out


def test_check_counts_are_green_at_zero_and_red_otherwise() -> None:
    assert count_text(0).style == "bold green"
    assert count_text(2).style == "bold red"
    assert (count_text(None).plain, count_text(None).style) == ("…", "dim")
    assert count_text(12345).plain == "12,345"


def test_dashboard_pulls_a_fresh_snapshot_each_render() -> None:
    calls: list[int] = []

    def source() -> LiveSnapshot:
        calls.append(1)
        return snapshot(sent=len(calls) * 1000)

    dash = Dashboard(source)
    assert "1,000" in render(dash)
    assert "2,000" in render(dash)


def test_stats_table_alone() -> None:
    out = render(stats_table(snapshot(connected=30, refused=4)))
    assert "30/30" in out and "4 refused full" in out


def test_progress_line_is_one_plain_line() -> None:
    line = progress_line(snapshot(metrics=METRICS))
    assert "\n" not in line
    assert line.startswith("[  4.2s/8s chatting]")
    assert "bots 28/30" in line and "sent 3,456 (410/s)" in line and "delivered 98,765" in line
    assert "p99 4.10 ms" in line
    assert "seq 0, fifo 3, liveness 0" in line
    assert "lock contended 25.0 %" in line


@pytest.mark.parametrize(
    "values, expected",
    [([], ""), ([0, 0], "▁▁"), ([1, 2, 4, 8], "▂▃▅█"), ([5], "█")],
)
def test_sparkline(values: list[float], expected: str) -> None:
    assert sparkline(values) == expected


def test_sparkline_keeps_the_last_values() -> None:
    assert len(sparkline(list(range(100)), width=10)) == 10


@pytest.mark.parametrize(
    "ms, text", [(None, "-"), (0.123, "0.12 ms"), (12.34, "12.3 ms"), (123.4, "123 ms"), (2500.0, "2.50 s")]
)
def test_fmt_ms(ms: float | None, text: str) -> None:
    assert fmt_ms(ms) == text


# -- final -----------------------------------------------------------------------------------------


def summary_doc(**overrides: Any) -> dict[str, Any]:
    doc: dict[str, Any] = {
        "verdict": "PASS",
        "exit_code": 0,
        "summary": "PASS: 0 violations in 123,456 deliveries",
        "interrupted": False,
        "scenario": "chat",
        "roles_line": "50 bots: 50 chat",
        "target": "127.0.0.1:4242",
        "own_server": True,
        "asked_clients": 50,
        "joined": 50,
        "clients": 50,
        "seq_style": "numbered",
        "messages_sent": 2469,
        "deliveries": 123456,
        "duration_s": 10.0,
        "rates": {"sent_per_s": 246.9, "delivered_per_s": 12345.6},
        "latency_ms": {"count": 123456, "p50_ms": 0.7, "p95_ms": 2.0, "p99_ms": 3.3, "max_ms": 12.0},
        "checks": {name: 0 for name in CHECK_ORDER},
        "violations": [],
        "cpu": {
            "harness_s": 1.25,
            "server_s": 2.5,
            "window_s": 11.0,
            "load": {"harness_s": 0.75, "server_s": 2.0, "window_s": 10.0},
        },
        "metrics": view_to_dict(METRICS),
    }
    doc.update(overrides)
    return doc


def test_summary_view_of_a_pass() -> None:
    out = render(summary_view(summary_doc()))
    assert "50 joined" in out and "of 50 asked" in out
    assert "123,456" in out and "12,346/s" in out
    assert "3.30 ms" in out  # p99
    for name in CHECK_ORDER:
        assert name in out
    assert "registry" in out  # the lock table from the recorded metrics
    registry_row = next(line for line in out.splitlines() if line.startswith("registry"))
    assert "1,500" in registry_row  # its "per s": the run's average, kept in the summary
    assert "harness, server 2.50 s" in out
    assert "CPU while chatting" in out and "0.75 s" in out
    assert render(verdict_text(summary_doc())).strip() == "PASS: 0 violations in 123,456 deliveries"


def test_summary_of_a_fail_lists_witnesses() -> None:
    doc = summary_doc(
        verdict="FAIL",
        exit_code=1,
        summary="FAIL: 3 violations (loss 2, fifo 1)",
        checks={**{n: 0 for n in CHECK_ORDER}, "loss": 2, "fifo": 1},
        violations=[
            {"check": "loss", "message": "b3 never got b1#7", "witness": {"member": "b3", "msg": "b1#7"}},
            {"check": "loss", "message": "b4 never got b1#7", "witness": {"member": "b4"}},
            {"check": "fifo", "message": "b2 saw b1#5 before b1#4", "witness": {"client": "b2"}},
        ],
        metrics=None,
    )
    out = render(summary_view(doc))
    assert "loss" in out and "fifo" in out
    assert "Lock" not in out
    lines = witness_lines(doc)
    assert lines[0] == "  [loss] b3 never got b1#7  (member=b3, msg=b1#7)"
    assert len(lines) == 3
    assert render(verdict_text(doc)).strip() == "FAIL: 3 violations (loss 2, fifo 1)"


def test_witness_lines_say_how_many_more() -> None:
    doc = summary_doc(
        checks={"loss": 500},
        violations=[{"check": "loss", "message": f"m{i}", "witness": {}} for i in range(200)],
    )
    lines = witness_lines(doc, limit=5)
    assert len(lines) == 6
    assert lines[-1] == "  ... 495 more (the first 200, with witnesses, are in the --json document)"
    recorded = witness_lines({**doc, "record": "runs/x"}, limit=5)
    assert recorded[-1].endswith("are in summary.json of the run record)")


def test_summary_of_an_interrupted_run_says_so() -> None:
    out = render(summary_view(summary_doc(interrupted=True, verdict="UNKNOWN", summary="UNKNOWN: x")))
    assert "interrupted" in out


def test_every_counter_shows_somewhere_on_the_live_view() -> None:
    counts = LiveCounts(**{c.name: 501 + i for i, c in enumerate(COUNTERS)})
    out = render(live_view(snapshot(counts=counts, checks=live_check_rows(counts))))
    for i, c in enumerate(COUNTERS):
        assert str(501 + i) in out, c.name  # a row of its own, a check's row, or the "Counters" row
    assert "closed by server 513" in out


def test_live_check_rows_come_from_the_counters_that_foreshadow_a_check() -> None:
    rows = live_check_rows(LiveCounts(seq_anomalies=2, fifo_anomalies=1, timeouts=4))
    assert [r.name for r in rows] == list(CHECK_ORDER)
    assert {r.name: r.count for r in rows if r.count is not None} == {"seq": 2, "fifo": 1, "liveness": 4}
    assert {r.note for r in rows if r.count is None} == {"judged at the end"}
    assert next(r for r in rows if r.name == "seq").note == "seq steps other than +1 seen by members"
