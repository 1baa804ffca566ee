"""The bar: each goal's verdict for figures on either side of its threshold (pure, table-driven)."""

from __future__ import annotations

import dataclasses
from typing import Any

import pytest

from harness.bench.figures import aggregate, ratios
from harness.bench.goals import (
    GOAL_CHECKER_S,
    GOAL_MEMBERS,
    GOAL_P99_MS,
    GOAL_RATIO_BIG,
    CheckerFigures,
    GoalFigures,
    GoalVerdict,
    LoadChecks,
    Measured,
    ScaleFigures,
    goal_figures,
    goals,
)
from tests.harness.bench.records import saturation_run

PASS, FAIL, NA, INFO = GoalVerdict.PASS, GoalVerdict.FAIL, GoalVerdict.NOT_APPLICABLE, GoalVerdict.INFO

#: A run that meets every goal.
GOOD = GoalFigures(
    saturation_ratios={10: Measured(7.0), 50: Measured(9.7), 200: Measured(12.4)},
    latency_p99_ms=Measured(1.95),
    load=LoadChecks(runs=45, unclean=0, lost=0, order=0, drops=0, errors=0),
    scale=ScaleFigures(memory_runs=9, tried=1000, reached=1000, swarm_available=True, largest_pass=1000),
    checker=CheckerFigures(seconds=2.5, events=1_000_003),
    batched_at_50=Measured(1.5e6),
)


def verdicts(figures: GoalFigures) -> dict[str, GoalVerdict]:
    """Each goal's verdict, by the goal's first words."""
    return {row.goal.split(":")[0] + _at(row.goal): row.verdict for row in goals(figures)}


def _at(goal: str) -> str:
    return goal[goal.index(" at ") :].split(" members")[0] if goal.startswith("saturation") else ""


def with_(**changes: Any) -> GoalFigures:
    return dataclasses.replace(GOOD, **changes)


def test_a_run_that_meets_every_goal() -> None:
    assert verdicts(GOOD) == {
        "saturation at 10": PASS,
        "saturation at 50": PASS,
        "saturation at 200": PASS,
        "latency": PASS,
        "zero loss, order violations and slow drops in saturation and latency runs": PASS,
        "scale": PASS,
        "checker": PASS,
        "stretch": INFO,
    }


@pytest.mark.parametrize(
    ("figures", "goal", "verdict"),
    [
        # saturation: batched / direct, at least 1x at 10 members, GOAL_RATIO_BIG at 50 and 200
        (with_(saturation_ratios={10: Measured(1.0)}), "saturation at 10", PASS),
        (with_(saturation_ratios={10: Measured(0.99)}), "saturation at 10", FAIL),
        (with_(saturation_ratios={50: Measured(GOAL_RATIO_BIG)}), "saturation at 50", PASS),
        (with_(saturation_ratios={50: Measured(GOAL_RATIO_BIG - 0.01)}), "saturation at 50", FAIL),
        (with_(saturation_ratios={200: Measured(GOAL_RATIO_BIG - 0.01)}), "saturation at 200", FAIL),
        (with_(saturation_ratios={200: Measured(2.0, generator_bound=True)}), "saturation at 200", NA),
        (with_(saturation_ratios={}), "saturation at 50", NA),
        (with_(saturation_ratios={50: Measured(None)}), "saturation at 50", NA),
        # latency: batched p99 at most GOAL_P99_MS
        (with_(latency_p99_ms=Measured(GOAL_P99_MS)), "latency", PASS),
        (with_(latency_p99_ms=Measured(GOAL_P99_MS + 0.01)), "latency", FAIL),
        (with_(latency_p99_ms=Measured(GOAL_P99_MS + 5, generator_bound=True)), "latency", FAIL),
        (with_(latency_p99_ms=Measured(None)), "latency", NA),
        # zero loss, order violations and slow drops
        (
            with_(load=LoadChecks(3, 1, 5, 0, 0, 0)),
            "zero loss, order violations and slow drops in saturation and latency runs",
            FAIL,
        ),
        (
            with_(load=LoadChecks(0, 0, 0, 0, 0, 0)),
            "zero loss, order violations and slow drops in saturation and latency runs",
            NA,
        ),
        # scale: GOAL_MEMBERS connected, and a PASS swarm of as many
        (with_(scale=ScaleFigures(2, 500, 500, True, 500)), "scale", NA),  # --quick: not tried
        (with_(scale=ScaleFigures(3, GOAL_MEMBERS, 500, True, 1000)), "scale", FAIL),
        (with_(scale=ScaleFigures(3, GOAL_MEMBERS, GOAL_MEMBERS, True, 500)), "scale", FAIL),
        (with_(scale=ScaleFigures(3, GOAL_MEMBERS, GOAL_MEMBERS, False, 0)), "scale", NA),
        # checker: 1,000,000 events in under GOAL_CHECKER_S
        (with_(checker=CheckerFigures(GOAL_CHECKER_S - 0.01, 1_000_000)), "checker", PASS),
        (with_(checker=CheckerFigures(GOAL_CHECKER_S, 1_000_000)), "checker", FAIL),
        (with_(checker=CheckerFigures(0.3, 200_000)), "checker", NA),  # --quick: projected only
        (with_(checker=None), "checker", NA),
    ],
)
def test_each_threshold(figures: GoalFigures, goal: str, verdict: GoalVerdict) -> None:
    assert verdicts(figures)[goal] is verdict


def test_measured_texts() -> None:
    rows = {row.goal.split(":")[0]: row for row in goals(GOOD)}
    assert rows["latency"].measured == "1.95 ms"
    assert rows["scale"].measured == "1000 members connected and chatting; largest PASS swarm 1000"
    assert rows["checker"].measured == "2.50 s for 1,000,003 events"
    assert rows["stretch"].measured == "1.50 M/s = 45% of the reference"
    quick = goals(with_(checker=CheckerFigures(0.3, 200_000), latency_p99_ms=Measured(1.1, True)))
    by_goal = {row.goal.split(":")[0]: row for row in quick}
    assert by_goal["checker"].measured == "0.30 s for 200,000 events (projected 1.5 s for 1M)"
    assert by_goal["latency"].measured == "1.10 ms (generator-bound)"
    none = goals(with_(scale=ScaleFigures(0, 0, 0, False, 0), batched_at_50=Measured(None)))
    assert {row.goal.split(":")[0]: row for row in none}["scale"].measured == "not measured"
    assert not any(row.goal.startswith("stretch") for row in none)


def test_goal_rows_serialise_with_the_verdicts_text() -> None:
    assert goals(GOOD)[0].as_dict() == {
        "goal": "saturation: batched >= 1x direct at 10 members",
        "measured": "7.0x",
        "verdict": "PASS",
    }


def test_figures_are_picked_out_of_the_runs() -> None:
    runs = [
        saturation_run("direct", 50, 0, 1.0e5),
        saturation_run("batched", 50, 0, 5.0e5),
        saturation_run("batched", 200, 0, 9.0e5, lost=4, clean=False),
        {"case": "memory", "design": "batched", "members": 500, "rep": 0, "drops": 0, "error": None},
        {"case": "memory", "design": "batched", "members": 1000, "rep": 0, "error": "refused"},
    ]
    rows = aggregate(runs)
    extra = {"swarm": {"available": True, "largest_pass": 100}, "checker": {"available": False}}
    f = goal_figures(runs, rows, ratios(rows, [50, 200]), extra)
    assert f.saturation_ratios[50] == Measured(5.0, False)
    assert f.saturation_ratios[200].value is None
    assert f.load == LoadChecks(runs=3, unclean=1, lost=4, order=0, drops=0, errors=0)
    assert f.scale == ScaleFigures(
        memory_runs=2, tried=1000, reached=500, swarm_available=True, largest_pass=100
    )
    assert f.checker is None
    assert f.batched_at_50 == Measured(5.0e5, False)
    assert f.latency_p99_ms == Measured(None, False)
