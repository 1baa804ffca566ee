"""harness.lab, the notebooks' kit: real servers on 127.0.0.1 and free ports, a short real swarm, and
the tabulation of hand-made histories (pure)."""

from __future__ import annotations

import math
import threading
from pathlib import Path

import pytest

from harness.lab import core as lab
from harness.record.history import ClientHistory, Closed, Connected, Received, Sent
from harness.record.payload import encode_payload

# -- the server -------------------------------------------------------------------------


def test_server_starts_on_a_free_port_and_stops_by_pid() -> None:
    srv = lab.start_server("--max-clients", "4")
    try:
        assert srv.host == "127.0.0.1" and srv.port > 0
        assert srv.address == f"127.0.0.1:{srv.port}"
        assert srv.is_running and srv.threads() >= 1
        assert srv.metrics_url is None
        with lab.LabClient(srv.address) as client:
            assert isinstance(client.join("ada"), lab.protocol.Ok)
    finally:
        code = srv.stop()
    assert code == 0 and not srv.is_running
    assert srv.stop() == 0  # idempotent
    assert "Traceback" not in srv.log()
    assert not srv.log_path.parent.exists()  # its log folder is removed, the text kept


def test_a_server_that_cannot_start_is_one_clear_error() -> None:
    with pytest.raises(RuntimeError, match=r"^chat.server did not start: .*invalid choice"):
        lab.start_server("--delivery", "nope")


def test_metrics_server_is_scraped_into_a_lock_table() -> None:
    with lab.chat_server("--max-clients", "10", metrics=True) as srv:
        assert srv.metrics_url is not None and srv.metrics_url.startswith("http://127.0.0.1:")
        before = lab.scrape_metrics(srv.metrics_url)
        answers = lab.race_for_name(srv.address, "grace", contenders=4)
        after = lab.scrape_metrics(srv.metrics_url)
    assert srv.returncode == 0
    assert sorted(answers) == ["ERR name-taken"] * 3 + ["OK grace"]
    table = lab.locks_frame(after, since=before)
    whole = table[(table["lock"] == "registry") & (table["site"] == "")]
    assert len(whole) == 1
    sites = set(table.loc[table["site"] != "", "site"])
    assert {"admit", "join"} <= sites
    join = table[table["site"] == "join"].iloc[0]
    assert join["acquisitions"] == 4  # one per contender, counted since `before`
    assert 0.0 <= join["contended_share"] <= 1.0
    bars = lab.lock_histogram(after, "hold", site="join", since=before)
    assert bars["count"].sum() == 4
    assert math.isinf(bars["hi_ms"].iloc[-1])
    assert (bars["lo_ms"] < bars["hi_ms"]).all()
    with pytest.raises(KeyError):
        lab.lock_histogram(after, "hold", site="no-such-site")
    with pytest.raises(ValueError, match=r"^kind must be"):
        lab.lock_histogram(after, "sleep")


def test_race_for_name_one_winner_on_the_safe_server_several_on_the_unsafe_one() -> None:
    threads_before = threading.active_count()
    with lab.chat_server("--max-clients", "10") as safe:
        answers = lab.race_for_name(safe.address, "alice", contenders=6)
    assert answers.count("OK alice") == 1
    assert answers.count("ERR name-taken") == 5
    # A race window of 0.5 s: every contender that arrives within it passes the check.
    with lab.chat_server("--max-clients", "10", "--unsafe", "name-check-race", "--race-window", "0.5") as bad:
        answers = lab.race_for_name(bad.address, "alice", contenders=6)
    assert answers.count("OK alice") >= 2, answers
    assert threading.active_count() == threads_before


def test_race_for_name_says_when_the_server_is_full() -> None:
    with lab.chat_server("--max-clients", "2") as srv:
        answers = lab.race_for_name(srv.address, "alice", contenders=4)
    assert any(a.startswith("refused: ") and "FULL" in a for a in answers), answers
    assert "OK alice" not in answers


# -- tables from histories (pure) ------------------------------------------------------------

T0 = 1_000.0


def _member(client: str, *events: object, role: str = "chat") -> ClientHistory:
    return ClientHistory(client, client.split(".")[0], role, list(events))  # type: ignore[arg-type]


def _histories() -> list[ClientHistory]:
    m0 = encode_payload("a", 0, T0 + 1.0)
    m1 = encode_payload("b", 0, T0 + 1.5)
    a = _member(
        "a",
        Connected(T0, T0),
        Received(T0 + 0.1, "HELLO welcome"),
        Sent(T0 + 0.1, "a"),
        Received(T0 + 0.2, "OK a"),
        Received(T0 + 0.2, "JOIN 1 a"),
        Received(T0 + 0.3, "JOIN 2 b"),
        Sent(T0 + 1.0, m0, T0 + 1.0),
        Received(T0 + 1.002, f"MSG 3 a {m0}"),
        Received(T0 + 1.504, f"MSG 4 b {m1}"),
        Received(T0 + 1.6, "MSG 5 b not a payload"),
        Sent(T0 + 2.0, "/quit"),
        Received(T0 + 2.0, "BYE goodbye"),
        Closed(T0 + 2.0, "quit"),
    )
    b = _member(
        "b",
        Connected(T0 + 0.25, T0 + 0.25),
        Received(T0 + 0.26, "HELLO welcome"),
        Sent(T0 + 0.26, "b"),
        Received(T0 + 0.3, "OK b"),
        Received(T0 + 0.3, "JOIN 2 b"),
        Received(T0 + 1.001, f"MSG 3 a {m0}"),
        Sent(T0 + 1.5, m1, T0 + 1.5),
        Received(T0 + 1.503, f"MSG 4 b {m1}"),
        Closed(T0 + 2.5, "drop"),
    )
    refused = _member("c.2", Connected(T0 + 0.5, T0 + 0.5), Received(T0 + 0.5, "ERR full"), role="churn")
    return [a, b, refused]


def test_frames_tabulate_events_deliveries_and_members() -> None:
    frames = lab.frames_from_histories(_histories(), {"verdict": "PASS"}, {})
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
    frames = lab.frames_from_histories(_histories())
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
    history = _member("x", Received(T0 + 0.01, "OK x"), Received(T0 + 0.02, f"MSG x {payload}"))
    d = lab.deliveries_frame([history])
    assert len(d) == 1 and d["seq"].isna().all()
    assert d["latency_ms"].round(3).tolist() == [20.0]


def test_throughput_bins_and_latency_cdf() -> None:
    d = lab.frames_from_histories(_histories()).deliveries
    rates = lab.throughput(d, bin_s=0.25)
    assert rates["s"].tolist() == [1.0, 1.25, 1.5]  # seconds from the first event; the empty bin kept
    assert rates["per_s"].tolist() == [8.0, 0.0, 8.0]
    cdf = lab.latency_cdf(d)
    assert cdf["latency_ms"].is_monotonic_increasing
    assert cdf["p"].tolist() == [0.25, 0.5, 0.75, 1.0]
    assert lab.throughput(d.iloc[:0]).empty


def test_judging_tabulated_histories() -> None:
    frames = lab.frames_from_histories(
        _histories(), {"run_end": T0 + 3.0}, {"settings": {"delivery_bound": 5}}
    )
    config = lab.check_config(frames.summary, frames.meta)
    assert config.delivery_bound == 5.0 and config.run_end == T0 + 3.0
    report = lab.judge(frames)
    checks = lab.checks_frame(report)
    assert set(checks.index) >= {"seq", "fifo", "loss"}
    assert list(lab.violations_frame(report).columns) == ["check", "message", "witness"]


# -- a real swarm ------------------------------------------------------------------------------


def test_a_short_swarm_is_recorded_and_loads_into_frames(tmp_path: Path) -> None:
    run = lab.run_swarm(tmp_path / "run", clients=4, duration=1.0, seed=3, delivery="queued")
    assert run.verdict == "PASS", run.line
    assert run.exit_code == 0 and run.line.startswith("PASS")
    assert (run.record / "events.jsonl").is_file()
    frames = lab.load_frames(run.record)
    assert len(frames.deliveries) == run.summary["deliveries"]
    assert frames.meta["settings"]["delivery"] == "queued"
    assert lab.judge(frames).passed()
    assert int(lab.checks_frame(run.summary)["violations"].sum()) == 0
    series = lab.metrics_series(frames.meta, ["chat_deliveries_total"])
    assert list(series.columns) == ["s", "t", "chat_deliveries_total"]


def test_a_swarm_that_gives_no_verdict_is_one_clear_error(tmp_path: Path) -> None:
    with pytest.raises(RuntimeError, match=r"^the swarm gave no verdict \(exit 2\): "):
        lab.run_swarm(tmp_path / "run", scenario="no-such-scenario")
