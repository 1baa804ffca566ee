"""harness.lab's servers and clients against real servers on 127.0.0.1 and free ports."""

from __future__ import annotations

import math
import threading

import pytest

pytest.importorskip("pandas")

from chat import protocol  # noqa: E402
from harness import lab  # noqa: E402

pytestmark = pytest.mark.e2e


def test_server_starts_on_a_free_port_and_stops_by_pid() -> None:
    srv = lab.start_server("--max-clients", "4")
    try:
        assert srv.host == "127.0.0.1" and srv.port > 0
        assert srv.address == f"127.0.0.1:{srv.port}"
        assert srv.is_running and srv.threads() >= 1
        assert srv.metrics_url is None
        with lab.LabClient(srv.address) as client:
            assert isinstance(client.join("ada"), protocol.Ok)
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
