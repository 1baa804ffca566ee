"""harness.lab.load, the experiments of notebooks 03 and 04: the tables from hand-made inputs (pure)."""

from __future__ import annotations

import math
from pathlib import Path

import pytest

pd = pytest.importorskip("pandas")

from harness import lab  # noqa: E402
from harness.common.metrics_scrape import parse_metrics  # noqa: E402
from harness.lab import load as lab_load  # noqa: E402
from harness.record.history import ClientHistory, Closed, Connected, Received, Sent  # noqa: E402
from harness.record.payload import encode_payload  # noqa: E402

T0 = 2_000.0

# -- pure: tables from hand-made histories and metrics ------------------------------------------


def _member(client: str, role: str, *events: object) -> ClientHistory:
    return ClientHistory(client, client, role, list(events))  # type: ignore[arg-type]


def _slow_room() -> lab.RunFrames:
    """Two readers and a slow member: the readers see one message, then the slow member's LEAVE."""
    m = encode_payload("a", 0, T0 + 1.0)
    a = _member(
        "a",
        "chat",
        Connected(T0, T0),
        Received(T0 + 0.1, "OK a"),
        Sent(T0 + 1.0, m, T0 + 1.0),
        Received(T0 + 1.25, f"MSG 4 a {m}"),
        Received(T0 + 2.0, "LEAVE 5 s slow"),
        Received(T0 + 2.1, "LEAVE 6 b quit"),
        Closed(T0 + 3.0, "quit"),
    )
    b = _member(
        "b",
        "chat",
        Connected(T0 + 0.1, T0 + 0.1),
        Received(T0 + 1.5, f"MSG 4 a {m}"),
        Received(T0 + 2.5, "LEAVE 5 s slow"),
        Closed(T0 + 2.6, "quit"),
    )
    s = _member(
        "s", "slow", Connected(T0 + 0.2, T0 + 0.2), Received(T0 + 3.0, f"MSG 4 a {m}"), Closed(T0 + 3, "eof")
    )
    return lab.frames_from_histories([a, b, s])


def test_others_leave_out_the_slow_member_and_say_when_each_message_was_due() -> None:
    frames = _slow_room()
    others = lab_load.others_deliveries(frames)
    assert sorted(others["receiver"]) == ["a", "b"]
    assert others["due_s"].tolist() == [1.0, 1.0]
    assert others["latency_ms"].round(3).tolist() == [250.0, 500.0]
    assert len(lab_load.others_deliveries(frames, role="nobody")) == 3


def test_slow_drops_are_the_first_leave_slow_anyone_saw() -> None:
    drops = lab_load.slow_drops(_slow_room())
    assert drops.to_dict("records") == [{"s": 2.0, "seq": 5, "name": "s", "seen_by": 2}]
    quiet = lab.frames_from_histories([_member("a", "chat", Received(T0, "LEAVE 1 b quit"))])
    assert lab_load.slow_drops(quiet).empty


def test_latency_bins_by_due_time_or_receipt() -> None:
    d = pd.DataFrame({"due_s": [0.0, 0.1, 0.3, 1.2], "s": [0.5, 0.5, 0.5, 1.3], "latency_ms": [1, 3, 2, 100]})
    bins = lab_load.latency_bins(d, bin_s=0.25)
    assert bins["s"].tolist() == [0.0, 0.25, 1.0]  # empty bins left out
    assert bins["count"].tolist() == [2, 1, 1]
    assert bins["p50_ms"].tolist() == [2.0, 2.0, 100.0]
    assert bins["max_ms"].tolist() == [3, 2, 100]
    by_receipt = lab_load.latency_bins(d, bin_s=0.25, by="s")
    assert by_receipt["count"].tolist() == [3, 1]
    assert lab_load.latency_bins(d.iloc[:0]).empty
    with pytest.raises(ValueError, match=r"^bin_s must be positive"):
        lab_load.latency_bins(d, bin_s=0)


def _page(acquisitions: int, say_holds: list[float]) -> str:
    """A /metrics page with the registry lock's figures, in the server's families (docs/metrics.md)."""
    lines = [
        "# TYPE chat_lock_acquisitions_total counter",
        f'chat_lock_acquisitions_total{{section="registry"}} {acquisitions}',
        "# TYPE chat_lock_contended_total counter",
        'chat_lock_contended_total{section="registry"} 1',
        "# TYPE chat_lock_hold_seconds histogram",
    ]
    edges = [0.001, 0.01, math.inf]
    for le in edges:
        n = sum(1 for h in say_holds if h <= le)
        label = "+Inf" if math.isinf(le) else repr(le)
        lines.append(f'chat_lock_hold_seconds_bucket{{section="registry",le="{label}"}} {n}')
    lines += [
        f'chat_lock_hold_seconds_count{{section="registry"}} {len(say_holds)}',
        f'chat_lock_hold_seconds_sum{{section="registry"}} {sum(say_holds)}',
    ]
    return "\n".join(lines) + "\n"


def test_a_load_point_reads_rates_and_lock_time_from_the_two_scrapes() -> None:
    before = parse_metrics(_page(10, [0.0005]), t=0.0)
    after = parse_metrics(_page(30, [0.0005, 0.002, 0.004]), t=3.0)
    summary = {"deliveries": 4000, "duration_s": 1.0, "cpu": {"load": {"window_s": 1.1 + 0.1}}}
    run = lab.SwarmRun(Path("unused"), summary, 0, 3.0)
    point = lab_load.LoadPoint("batched", 20, 10.0, run, before, after, server_cpu_s=0.04)
    assert point.offered_per_s == 4000.0
    assert point.chat_seconds == pytest.approx(1.1)  # the window less the swarm's start-ahead
    assert point.achieved_per_s == pytest.approx(4000 / 1.1)
    assert point.hold_seconds() == pytest.approx(0.006)  # only the holds between the scrapes
    row = lab_load.sweep_frame([point]).iloc[0]
    assert row["acquisitions"] == 20 and row["contended_share"] == 0.0
    assert row["cpu_us_per_delivery"] == pytest.approx(10.0)
    assert row["lock_busy"] == pytest.approx(0.006 / 1.1)
    bars = lab_load.histograms_frame([point], "hold")
    assert bars["count"].tolist() == [0, 2, 0] and bars["share"].sum() == pytest.approx(1.0)
    assert lab_load.histograms_frame([point], "hold", site="say").empty  # no such site on this page
    assert math.isnan(lab_load.sweep_frame([point], site="say").iloc[0]["acquisitions"])
    # A summary without the chat window (an older record) falls back to the duration.
    bare = lab.SwarmRun(Path("unused"), {"deliveries": 10, "duration_s": 2.0}, 0, 3.0)
    assert lab_load.LoadPoint("direct", 1, 5.0, bare, before, after, 0.0).chat_seconds == 2.0
