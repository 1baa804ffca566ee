"""The report card: one result per level, shown with rich, as ``--json``, or as Gradescope's results.json.

Pure data and formatting; the only I/O is :func:`show` (the terminal) and
:func:`write_gradescope` (the file the command line names). The ``--json``
schema is published in docs/exercises.md.
"""

from __future__ import annotations

import enum
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table

SCHEMA_VERSION = 1
#: The note of a level left out because an earlier one failed (without --keep-going).
AFTER_FAILURE = "an earlier level failed"


class Outcome(str, enum.Enum):
    PASS = "pass"
    FAIL = "fail"
    NOT_GRADED = "not graded"


@dataclass
class LevelResult:
    name: str
    promise: str
    outcome: Outcome
    runs: int = 0
    runs_passed: int = 0
    seconds: float = 0.0
    witness: str = ""
    hint: str = ""
    lesson: str = ""
    note: str = ""

    def as_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "result": self.outcome.value,
            "promise": self.promise,
            "runs": self.runs,
            "runs_passed": self.runs_passed,
            "seconds": round(self.seconds, 2),
            "witness": self.witness,
            "hint": self.hint,
            "lesson": self.lesson,
            "note": self.note,
        }


@dataclass
class Card:
    server: str
    levels: list[LevelResult] = field(default_factory=list)

    @property
    def passed(self) -> bool:
        """Every graded level passed (levels not graded do not fail the card)."""
        return all(r.outcome is not Outcome.FAIL for r in self.levels)

    def as_dict(self) -> dict[str, Any]:
        graded = [r for r in self.levels if r.outcome is not Outcome.NOT_GRADED]
        return {
            "schema": SCHEMA_VERSION,
            "grader": "harness.grade",
            "server": self.server,
            "result": "pass" if self.passed else "fail",
            "score": sum(r.outcome is Outcome.PASS for r in graded),
            "max_score": len(graded),
            "levels": [r.as_dict() for r in self.levels],
        }

    def gradescope(self) -> dict[str, Any]:
        """Gradescope's autograder results.json: one test per graded level, max_score 1 each."""
        tests = []
        for r in self.levels:
            if r.outcome is Outcome.NOT_GRADED:
                continue
            tests.append(
                {
                    "name": r.name,
                    "score": 1 if r.outcome is Outcome.PASS else 0,
                    "max_score": 1,
                    "status": "passed" if r.outcome is Outcome.PASS else "failed",
                    "output": _plain_detail(r),
                }
            )
        not_graded = [r.name for r in self.levels if r.outcome is Outcome.NOT_GRADED]
        return {
            "score": sum(t["score"] for t in tests),
            "output": "levels not graded: " + ", ".join(not_graded) if not_graded else "",
            "tests": tests,
        }


def _plain_detail(r: LevelResult) -> str:
    lines = [f"{r.promise}", f"runs passed: {r.runs_passed}/{r.runs}"]
    if r.witness:
        lines.append(f"witness: {r.witness}")
    if r.hint:
        lines.append(f"hint: {r.hint}")
    if r.lesson and r.outcome is Outcome.FAIL:
        lines.append(f"read: {r.lesson}")
    if r.note:
        lines.append(f"note: {r.note}")
    return "\n".join(lines)


def show(card: Card, console: Console) -> None:
    """The card for a person: a rich table on a terminal, plain lines otherwise."""
    if console.is_terminal:
        table = Table(title=f"Report card: {card.server}", show_lines=False)
        for column in ("level", "result", "runs", "time"):
            table.add_column(column)
        for r in card.levels:
            style = {"pass": "green", "fail": "bold red", "not graded": "dim"}[r.outcome.value]
            runs = f"{r.runs_passed}/{r.runs}" if r.runs else "-"
            table.add_row(r.name, f"[{style}]{r.outcome.value.upper()}[/]", runs, f"{r.seconds:.1f} s")
        console.print(table)
    else:
        console.print(f"Report card: {card.server}", highlight=False)
        for r in card.levels:
            runs = f"{r.runs_passed}/{r.runs} runs" if r.runs else "-"
            console.print(
                f"{r.name:<14} {r.outcome.value.upper():<10} {runs:<9} {r.seconds:5.1f} s", highlight=False
            )
    for r in card.levels:
        if r.outcome is Outcome.FAIL:
            console.print(f"\n{r.name} FAILED: {r.witness}", highlight=False, markup=False, soft_wrap=True)
            if r.hint:
                console.print(f"  hint: {r.hint}", highlight=False, markup=False, soft_wrap=True)
            if r.lesson:
                console.print(f"  read: {r.lesson}", highlight=False, markup=False, soft_wrap=True)
        elif r.note and r.note != AFTER_FAILURE:
            console.print(f"{r.name}: {r.note}", highlight=False, markup=False, soft_wrap=True)
    skipped = [r.name for r in card.levels if r.note == AFTER_FAILURE]
    if skipped:
        text = f"not graded after the failed level: {', '.join(skipped)} (--keep-going grades them all)"
        console.print(f"\n{text}", highlight=False, markup=False, soft_wrap=True)
    graded = card.as_dict()
    verdict = "PASS" if card.passed else "FAIL"
    console.print(
        f"\n{verdict}: {graded['score']}/{graded['max_score']} graded levels passed", highlight=False
    )


def to_json(card: Card) -> str:
    return json.dumps(card.as_dict(), indent=2)


def write_gradescope(card: Card, path: Path) -> None:
    path.write_text(json.dumps(card.gradescope(), indent=2) + "\n", encoding="utf-8")
