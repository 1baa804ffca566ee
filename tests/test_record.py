"""The run record: events.jsonl, summary.json and meta.json, written and loaded back."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from harness.record.history import (
    ClientHistory,
    Closed,
    Connected,
    Received,
    Sent,
    histories_from_dicts,
    histories_to_dicts,
    load_histories,
)
from harness.record.store import (
    EVENTS,
    META,
    SUMMARY,
    concat_events,
    load_run,
    meta_document,
    new_run_dir,
    write_events,
    write_json,
)


def sample_histories() -> list[ClientHistory]:
    a = ClientHistory("b0", "b0", "chat")
    a.events += [
        Connected(100.0, 99.5),
        Received(100.1, "HELLO welcome"),
        Sent(100.2, "b0"),
        Received(100.3, "OK b0"),
        Received(100.3, "JOIN 1 b0"),
        Sent(100.4, "b=b0 n=0 t=100.400000", 100.4),
        Received(100.5, "MSG 2 b0 b=b0 n=0 t=100.400000"),
        Received(100.6, 'MSG 3 x quotes " and \\ and ünïcödé \ufffd'),
        Sent(100.7, "/quit"),
        Received(100.8, "BYE goodbye"),
        Closed(100.9, "quit"),
    ]
    b = ClientHistory("b1.2", "b1", "churn")
    b.events += [Closed(101.0, "error", "connect: Connection refused")]
    return [a, b]


def test_events_round_trip(tmp_path: Path) -> None:
    path = tmp_path / EVENTS
    histories = sample_histories()
    n = write_events(path, histories)
    assert n == sum(len(h.events) + 1 for h in histories)  # a header line per client
    assert load_histories(path) == histories


def test_every_line_is_one_json_object_and_clients_have_a_header(tmp_path: Path) -> None:
    path = tmp_path / EVENTS
    write_events(path, sample_histories())
    lines = path.read_text(encoding="utf-8").splitlines()
    docs = [json.loads(line) for line in lines]
    assert docs[0] == {"c": "b0", "k": "client", "bot": "b0", "role": "chat"}
    assert docs[1] == {"c": "b0", "k": "connected", "t": 100.0, "asked": 99.5}
    assert docs[6] == {"c": "b0", "k": "sent", "t": 100.4, "line": "b=b0 n=0 t=100.400000", "due": 100.4}
    assert {
        "c": "b1.2",
        "k": "closed",
        "t": 101.0,
        "how": "error",
        "detail": "connect: Connection refused",
    } in docs


def test_lines_are_exactly_the_json_of_the_event_dicts(tmp_path: Path) -> None:
    path = tmp_path / EVENTS
    histories = sample_histories()
    write_events(path, histories)
    expected = [
        json.dumps(d, separators=(",", ":"), ensure_ascii=False) for d in histories_to_dicts(histories)
    ]
    assert path.read_text(encoding="utf-8").splitlines() == expected


def test_interleaved_events_load_per_client() -> None:
    items = list(histories_to_dicts(sample_histories()))
    headers = [d for d in items if d["k"] == "client"]
    events = [d for d in items if d["k"] != "client"]
    assert histories_from_dicts(headers + events[::-1])[1].events == sample_histories()[1].events


def test_event_before_its_header_is_refused() -> None:
    with pytest.raises(ValueError, match="before its header"):
        histories_from_dicts([{"c": "x", "k": "received", "t": 1.0, "line": "HELLO"}])


def test_parts_of_several_processes_concatenate(tmp_path: Path) -> None:
    h = sample_histories()
    write_events(tmp_path / "p0", h[:1])
    write_events(tmp_path / "p1", h[1:])
    concat_events(tmp_path / EVENTS, [tmp_path / "p0", tmp_path / "p1"])
    assert load_histories(tmp_path / EVENTS) == h


def test_load_run_gives_histories_summary_and_meta(tmp_path: Path) -> None:
    write_events(tmp_path / EVENTS, sample_histories())
    summary = {"verdict": "PASS", "exit_code": 0, "summary": "PASS: 0 violations in 1 deliveries"}
    write_json(tmp_path / SUMMARY, summary)
    meta = meta_document(
        settings={"clients": 2, "seed": 7},
        server_command=["python", "-m", "chat.server"],
        metrics_series=[{"t": 1.0, "chat_members": 2.0}],
        argv=["swarm", "--clients", "2"],
    )
    write_json(tmp_path / META, meta)
    histories, summary2, meta2 = load_run(tmp_path)
    assert histories == sample_histories()
    assert summary2 == summary
    assert meta2["seed"] == 7
    assert meta2["command_line"] == ["swarm", "--clients", "2"]
    assert meta2["metrics_series"] == [{"t": 1.0, "chat_members": 2.0}]
    assert {"python", "platform", "rich", "chat-harness"} <= set(meta2["versions"])


def test_load_run_of_a_folder_without_files(tmp_path: Path) -> None:
    assert load_run(tmp_path) == ([], {}, {})
    with pytest.raises(FileNotFoundError):
        load_run(tmp_path / "missing")


def test_run_folders_are_named_by_utc_time_and_scenario_and_never_reused(tmp_path: Path) -> None:
    a = new_run_dir(tmp_path / "runs", "mixed", now=0.0)
    b = new_run_dir(tmp_path / "runs", "mixed", now=0.0)
    assert a.name == "19700101T000000Z-mixed"
    assert b.name == "19700101T000000Z-mixed-2"
    assert a.is_dir() and b.is_dir()
