"""The report card's documents: --json (schema in docs/exercises.md) and Gradescope's results.json."""

from __future__ import annotations

import io
import json
from pathlib import Path

from rich.console import Console

from harness.grade.card import Card, LevelResult, Outcome, show, to_json, write_gradescope
from harness.grade.levels import LEVEL_NAMES

LEVEL_KEYS = {"name", "result", "promise", "runs", "runs_passed", "seconds", "witness", "hint", "lesson"}
LEVEL_KEYS.add("note")


def sample_card() -> Card:
    return Card(
        server="my_server.py",
        levels=[
            LevelResult("handshake", "p1", Outcome.PASS, runs=1, runs_passed=1, seconds=0.1),
            LevelResult(
                "broadcast",
                "p2",
                Outcome.FAIL,
                runs=1,
                witness="b1ann waited 5 s for the JOIN of b1ann and got nothing",
                hint="send each line to all of them",
                lesson="docs/protocol.md",
            ),
            LevelResult("shutdown", "p8", Outcome.NOT_GRADED, note="--target"),
        ],
    )


def test_json_document_follows_the_schema() -> None:
    doc = json.loads(to_json(sample_card()))
    assert set(doc) == {"schema", "grader", "server", "result", "score", "max_score", "levels"}
    assert doc["schema"] == 1 and doc["grader"] == "harness.grade"
    assert doc["result"] == "fail"
    assert (doc["score"], doc["max_score"]) == (1, 2)  # the level not graded is left out of the total
    for level in doc["levels"]:
        assert set(level) == LEVEL_KEYS
        assert level["result"] in ("pass", "fail", "not graded")
        assert level["name"] in LEVEL_NAMES
    assert doc["levels"][1]["witness"].startswith("b1ann waited")


def test_a_card_with_only_passes_and_levels_not_graded_passes() -> None:
    card = sample_card()
    card.levels[1].outcome = Outcome.PASS
    assert card.passed
    assert json.loads(to_json(card))["result"] == "pass"


def test_gradescope_results(tmp_path: Path) -> None:
    path = tmp_path / "results.json"
    write_gradescope(sample_card(), path)
    doc = json.loads(path.read_text())
    assert doc["score"] == 1
    names = [t["name"] for t in doc["tests"]]
    assert names == ["handshake", "broadcast"]  # not graded: left out
    for test in doc["tests"]:
        assert set(test) >= {"name", "score", "max_score", "output"}
        assert test["max_score"] == 1 and test["score"] in (0, 1)
    assert "witness: b1ann waited" in doc["tests"][1]["output"]
    assert "shutdown" in doc["output"]


def test_plain_card_without_a_terminal() -> None:
    out = io.StringIO()
    show(sample_card(), Console(file=out, force_terminal=False, width=80))
    text = out.getvalue()
    assert "handshake      PASS" in text
    assert "broadcast FAILED: b1ann waited 5 s for the JOIN of b1ann and got nothing" in text
    assert "  hint: send each line to all of them" in text
    assert "FAIL: 1/2 graded levels passed" in text
    assert "\x1b[" not in text  # no colour codes when not a terminal
