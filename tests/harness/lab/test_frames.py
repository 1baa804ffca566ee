"""harness.lab.frames: hand-made histories tabulated (pure)."""

from __future__ import annotations

import pytest

pytest.importorskip("pandas")

from harness import lab  # noqa: E402
from harness.record.history import Received  # noqa: E402
from harness.record.payload import encode_payload  # noqa: E402
from tests.harness.lab.histories import T0, member, two_members_and_a_refusal  # noqa: E402


def test_frames_tabulate_events_deliveries_and_members() -> None:
    frames = lab.frames_from_histories(two_members_and_a_refusal(), {"verdict": "PASS"}, {})
    assert frames.start == T0
    assert len(frames.events) == 13 + 9 + 2
    assert set(frames.events["kind"]) == {"connected", "sent", "received", "closed"}
    assert frames.events["s"].min() == 0.0
    d = frames.deliveries
    assert list(d["receiver"]) == ["a", "a", "b", "b"]  # the line without a payload is no delivery
    assert list(d["seq"]) == [3, 4, 3, 4]
    assert list(d["sender_bot"]) == ["a", "b", "a", "b"]
    assert set(d["sender_role"]) == {"chat"}
    assert d["latency_ms"].round(3).tolist() == [2.0, 4.0, 1.0, 3.0]
    m = frames.members
    assert m.loc["a", "sent"] == 1 and m.loc["a", "received"] == 3 and bool(m.loc["a", "joined"])
    assert not bool(m.loc["c.2", "joined"]) and m.loc["c.2", "role"] == "churn"
    assert m.loc["b", "first_s"] == pytest.approx(0.25)


def test_stream_frame_numbers_a_members_broadcasts_as_the_checker_does() -> None:
    frames = lab.frames_from_histories(two_members_and_a_refusal())
    stream = lab.stream_frame(frames.histories, "a", frames.start)
    assert stream["kind"].tolist() == ["JOIN", "JOIN", "MSG", "MSG", "MSG"]
    assert stream["position"].tolist() == [0, 1, 2, 3, 4]
    assert stream["seq"].tolist() == [1, 2, 3, 4, 5]
    assert stream["s"].iloc[0] == pytest.approx(0.2)
    assert lab.stream_frame(frames.histories, "c.2").empty
    with pytest.raises(KeyError):
        lab.stream_frame(frames.histories, "nobody")


def test_unnumbered_lines_have_no_seq() -> None:
    payload = encode_payload("x", 0, T0)
    history = member("x", Received(T0 + 0.01, "OK x"), Received(T0 + 0.02, f"MSG x {payload}"))
    d = lab.deliveries_frame([history])
    assert len(d) == 1 and d["seq"].isna().all()
    assert d["latency_ms"].round(3).tolist() == [20.0]


def test_throughput_bins_and_latency_cdf() -> None:
    d = lab.frames_from_histories(two_members_and_a_refusal()).deliveries
    rates = lab.throughput(d, bin_s=0.25)
    assert rates["s"].tolist() == [1.0, 1.25, 1.5]  # seconds from the first event; the empty bin kept
    assert rates["per_s"].tolist() == [8.0, 0.0, 8.0]
    cdf = lab.latency_cdf(d)
    assert cdf["latency_ms"].is_monotonic_increasing
    assert cdf["p"].tolist() == [0.25, 0.5, 0.75, 1.0]
    assert lab.throughput(d.iloc[:0]).empty
