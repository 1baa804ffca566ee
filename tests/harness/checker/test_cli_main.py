"""The command line in-process: the record's settings, the overrides, the outputs and exit codes."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import pytest

from harness.checker.cli import config_for, main, read_record
from harness.record.history import ClientHistory, histories_to_dicts
from tests.harness.checker.histories import base, client, index_of


def _write_run(tmp_path: Path, histories: list[ClientHistory], **docs: object) -> Path:
    run = tmp_path / "run"
    run.mkdir()
    with (run / "events.jsonl").open("w") as f:
        for d in histories_to_dicts(histories):
            f.write(json.dumps(d) + "\n")
    for name, doc in docs.items():
        (run / f"{name}.json").write_text(json.dumps(doc))
    return run


def _broken() -> list[ClientHistory]:
    histories = base()
    bob = client(histories, "bob")
    del bob.events[index_of(bob, "MSG 4 ")]
    return histories


def test_a_correct_run_passes(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main([str(_write_run(tmp_path, base()))]) == 0
    out, err = capsys.readouterr()
    assert out == "PASS: 0 violations in 9 deliveries\n"
    assert err.startswith("2 clients, 2 joined, 5 sent, 9 delivered, seqs numbered; latency p50 10.0 ms p99 ")


def test_a_broken_run_fails_with_its_witnesses(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    run = _write_run(tmp_path, _broken())
    assert main([str(run / "events.jsonl"), "--witnesses", "1"]) == 1
    lines = capsys.readouterr().out.splitlines()
    assert lines[0] == "FAIL: 2 violations (seq 1, loss 1)"
    assert lines[1].startswith(
        '  [seq] bob never got seq 4 (gap)  {"client": "bob", "name": "bob", "missing": [4]'
    )
    assert lines[2:] == ["  ... 1 more"]


def test_json_is_one_document(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main([str(_write_run(tmp_path, _broken())), "--json"]) == 1
    doc = json.loads(capsys.readouterr().out)
    assert (doc["verdict"], doc["exit_code"], doc["passed"]) == ("FAIL", 1, False)
    assert doc["seq_style"] == "numbered" and doc["counts"]["loss"] == 1
    assert doc["violations"][0]["check"] == "seq"


def test_the_record_says_how_many_bots_were_asked(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    run = _write_run(tmp_path, base(), summary={"asked_clients": 3, "clients": 2})
    assert main([str(run)]) == 3
    assert capsys.readouterr().out.startswith(
        "UNKNOWN: 0 violations in 9 deliveries, but only 2 of 3 bots joined"
    )
    assert main([str(run), "--asked", "2"]) == 0


def test_the_record_settings_and_their_overrides(tmp_path: Path) -> None:
    run = _write_run(
        tmp_path,
        [],
        meta={"settings": {"handshake_bound": 7, "delivery_bound": 8.5}, "contested_names": ["Race0"]},
        summary={"run_end": 123.5, "delivery_bound": 9},
    )
    record = read_record(run)
    assert record["handshake_bound"] == 7 and record["delivery_bound"] == 9

    def args(*argv: str) -> argparse.Namespace:
        ns = argparse.Namespace(handshake_bound=None, delivery_bound=None, contested=None)
        for flag, value in zip(argv[::2], argv[1::2], strict=True):
            setattr(ns, flag, value)
        return ns

    config = config_for(args(), record)
    assert (config.handshake_bound, config.delivery_bound, config.run_end) == (7.0, 9.0, 123.5)
    assert config.contested_names == frozenset({"race0"})
    config = config_for(args("delivery_bound", 2.0, "contested", " A, b ,,"), record)
    assert config.delivery_bound == 2.0 and config.contested_names == frozenset({"a", "b"})
    assert config_for(args(), {}).handshake_bound == 5.0


def test_an_unreadable_record_file_is_ignored(tmp_path: Path) -> None:
    run = _write_run(tmp_path, base())
    (run / "summary.json").write_text("{not json")
    (run / "meta.json").write_text("[1, 2]")
    assert read_record(run) == {}


def test_usage_errors(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main([str(tmp_path / "nowhere")]) == 2
    assert capsys.readouterr().err == f"error: {tmp_path / 'nowhere'} not found\n"
    bad = tmp_path / "bad"
    bad.mkdir()
    (bad / "events.jsonl").write_text("not json\n")
    assert main([str(bad)]) == 2
    assert capsys.readouterr().err.startswith(f"error: cannot read {bad / 'events.jsonl'}: ")
    assert main([]) == 2
    assert capsys.readouterr().err == "error: give a run directory (or --bench N)\n"
    assert main(["--bench", "0"]) == 2
    assert capsys.readouterr().err == "error: --bench N needs N >= 1\n"


def test_bench(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--bench", "500", "--json"]) == 0
    figures = json.loads(capsys.readouterr().out)
    assert list(figures) == ["events", "deliveries", "generate_s", "check_s", "check_cpu_s", "events_per_s"]
    assert figures["deliveries"] >= 500
    assert main(["--bench", "500"]) == 0
    assert capsys.readouterr().out.startswith("checked ")
