"""The run record's files: events.jsonl, summary.json and meta.json, written and loaded back."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from harness.record.history import (
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
from tests.harness.record.samples import sample_histories


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


def _record(root: Path, name: str) -> Path:
    path = root / name
    path.mkdir()
    (path / "events.jsonl").write_text("")
    return path


def test_prune_keeps_the_newest_swarm_records_and_nothing_else(tmp_path: Path) -> None:
    from harness.record.store import prune_runs

    old = [_record(tmp_path, f"2026112{i}T000000Z-mixed") for i in range(5)]
    bench = tmp_path / "20261101T000000Z-bench"
    bench.mkdir()  # a bench record: no events.jsonl, never pruned
    mine = tmp_path / "notes"
    mine.mkdir()
    (mine / "events.jsonl").write_text("")  # not a name new_run_dir makes
    current = tmp_path / "20261130T000000Z-chat"
    current.mkdir()  # the run being recorded: still empty, spared, counts as one
    gone = prune_runs(tmp_path, 3, spare=current)
    assert sorted(gone) == old[:3]
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(
        [old[3].name, old[4].name, bench.name, mine.name, current.name]
    )
    assert prune_runs(tmp_path, 0) == []  # 0 keeps all
    assert prune_runs(tmp_path, 1) == [old[3]]  # without a spare: the newest one stays
    assert prune_runs(tmp_path / "missing", 3) == []
