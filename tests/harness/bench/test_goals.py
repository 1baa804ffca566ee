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
    GOAL_P99_OVER_DIRECT_MS,
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
from tests.harness.bench.records import a_generator_bound_peer_at_10, saturation_run

PASS, FAIL, NA, INFO = GoalVerdict.PASS, GoalVerdict.FAIL, GoalVerdict.NOT_APPLICABLE, GoalVerdict.INFO

#: A run that meets every goal.
GOOD = GoalFigures(
    saturation_ratios={10: Measured(7.0), 50: Measured(9.7), 200: Measured(12.4)},
    latency_p99_ms=Measured(1.95),
    load=LoadChecks(runs=45, unclean=0, lost=0, order=0, drops=0, errors=0),
    scale=ScaleFigures(memory_runs=9, tried=1000, reached=1000, swarm_available=True, largest_pass=1000),
    checker=CheckerFigures(seconds=2.5, events=1_000_003),
    peer_ratios={10: Measured(1.2), 50: Measured(1.1), 200: Measured(1.0)},
    efficiency=Measured(9.0e6),
    peer_efficiency=Measured(8.9e6),
    latency_p99_direct_ms=Measured(1.87),
    peer_asked=True,
)


def verdicts(figures: GoalFigures) -> dict[str, GoalVerdict]:
    """Each goal's verdict, by a short key (:func:`_key`)."""
    return {_key(row.goal): row.verdict for row in goals(figures)}


def _key(goal: str) -> str:
    """``saturation at 50``, ``latency``, ``latency vs direct``, ``redis at 50``, ``redis per CPU-s``, or the
    goal's first word."""
    at = goal[goal.index(" at ") :].split(" members")[0] if " at " in goal else ""
    if goal.startswith("saturation"):
        return "saturation" + at
    if goal.startswith("latency"):
        return "latency vs direct" if "direct's" in goal else "latency"
    if goal.startswith("peers"):
        return "redis per CPU-s" if "CPU-s" in goal else "redis" + at
    return goal.split(":")[0]


def with_(**changes: Any) -> GoalFigures:
    return dataclasses.replace(GOOD, **changes)


def test_a_run_that_meets_every_goal() -> None:
    assert verdicts(GOOD) == {
        "saturation at 10": PASS,
        "saturation at 50": PASS,
        "saturation at 200": PASS,
        "latency": PASS,
        "latency vs direct": PASS,
        "redis at 10": PASS,
        "redis at 50": PASS,
        "redis at 200": PASS,
        "redis per CPU-s": PASS,
        "zero loss, order violations and slow drops in saturation and latency runs": PASS,
        "scale": PASS,
        "checker": PASS,
    }


#: (figures, goal, verdict): each goal fed figures on either side of its threshold.
THRESHOLD_CASES: list[tuple[GoalFigures, str, GoalVerdict]] = [
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
    # latency against the original design in the same run: at most GOAL_P99_OVER_DIRECT_MS above it
    (with_(latency_p99_ms=Measured(1.87 + GOAL_P99_OVER_DIRECT_MS)), "latency vs direct", PASS),
    (with_(latency_p99_ms=Measured(1.87 + GOAL_P99_OVER_DIRECT_MS + 0.01)), "latency vs direct", FAIL),
    (with_(latency_p99_ms=Measured(0.5)), "latency vs direct", PASS),
    (with_(latency_p99_direct_ms=Measured(None)), "latency vs direct", NA),
    # batched against Redis in the same run: at least 1.0x at 10, 50 and 200 members
    (with_(peer_ratios={10: Measured(1.0)}), "redis at 10", PASS),
    (with_(peer_ratios={10: Measured(0.99)}), "redis at 10", FAIL),
    (with_(peer_ratios={50: Measured(0.99)}), "redis at 50", FAIL),
    (with_(peer_ratios={200: Measured(1.01)}), "redis at 200", PASS),
    (with_(peer_ratios={200: Measured(0.99)}), "redis at 200", FAIL),
    (with_(peer_ratios={200: Measured(0.5, generator_bound=True)}), "redis at 200", NA),
    (with_(peer_ratios={}), "redis at 50", NA),
    (with_(peer_ratios={50: Measured(None)}, peer_note="not installed (x)"), "redis at 50", NA),
    # deliveries per server CPU-second at 50 members: at least Redis's
    (with_(efficiency=Measured(8.9e6)), "redis per CPU-s", PASS),
    (with_(efficiency=Measured(8.8e6)), "redis per CPU-s", FAIL),
    (with_(efficiency=Measured(1.0e6, generator_bound=True)), "redis per CPU-s", NA),
    (with_(peer_efficiency=Measured(None)), "redis per CPU-s", NA),
    (with_(efficiency=Measured(None)), "redis per CPU-s", NA),
]


@pytest.mark.parametrize(("figures", "goal", "verdict"), THRESHOLD_CASES)
def test_each_threshold(figures: GoalFigures, goal: str, verdict: GoalVerdict) -> None:
    assert verdicts(figures)[goal] is verdict


def test_every_goal_has_a_failing_and_a_passing_case() -> None:
    """A goal that always says PASS (or always FAIL) survives unless some case expects the other
    verdict; this keeps a new goal from joining the table without both."""
    goals_seen = set(verdicts(GOOD))
    failing = {goal for _, goal, verdict in THRESHOLD_CASES if verdict is FAIL}
    passing = {goal for _, goal, verdict in THRESHOLD_CASES if verdict is PASS} | {
        goal for goal, verdict in verdicts(GOOD).items() if verdict is PASS
    }
    assert goals_seen - failing == set(), "goals with no figures that fail them"
    assert goals_seen - passing == set(), "goals with no figures that pass them"


def test_measured_texts() -> None:
    rows = {_key(row.goal): row for row in goals(GOOD)}
    assert rows["latency"].measured == "1.95 ms"
    assert rows["scale"].measured == "1000 members connected and chatting; largest PASS swarm 1000"
    assert rows["checker"].measured == "2.50 s for 1,000,003 events"
    quick = goals(with_(checker=CheckerFigures(0.3, 200_000), latency_p99_ms=Measured(1.1, True)))
    by_goal = {_key(row.goal): row for row in quick}
    assert by_goal["checker"].measured == "0.30 s for 200,000 events (projected 1.5 s for 1M)"
    assert by_goal["latency"].measured == "1.10 ms (generator-bound)"
    none = goals(with_(scale=ScaleFigures(0, 0, 0, False, 0)))
    assert {row.goal.split(":")[0]: row for row in none}["scale"].measured == "not measured"
    assert not any("issue" in row.goal or "NOT measured here" in row.goal for row in goals(GOOD))


def test_measured_texts_of_the_goals_against_the_peer_and_direct() -> None:
    rows = {_key(row.goal): row for row in goals(GOOD)}
    assert rows["redis at 50"].goal == "peers: batched >= 1.0x redis at 50 members (same run)"
    assert rows["redis at 50"].measured == "1.10x"
    assert rows["redis per CPU-s"].measured == "batched 9.00 M, redis 8.90 M (1.01x)"
    assert rows["latency vs direct"].measured == "batched 1.95 ms, direct 1.87 ms (+0.08 ms)"
    missing = {_key(r.goal): r for r in goals(with_(peer_ratios={}, peer_note="not installed (apt-get x)"))}
    assert missing["redis at 10"].measured == "redis: not installed (apt-get x)"
    unasked = {_key(r.goal): r for r in goals(with_(peer_ratios={}, peer_asked=False))}
    assert unasked["redis at 10"].measured == "not measured (needs --peers redis)"
    bound = {_key(r.goal): r for r in goals(with_(peer_ratios={10: Measured(0.7, generator_bound=True)}))}
    assert bound["redis at 10"].measured == "0.70x (generator-bound)"


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
    f = goal_figures(runs, rows, ratios(rows, [50, 200], ["redis"]), extra, {"redis": {"note": None}})
    assert f.saturation_ratios[50] == Measured(5.0, False)
    assert f.saturation_ratios[200].value is None
    assert f.load == LoadChecks(runs=3, unclean=1, lost=4, order=0, drops=0, errors=0)
    assert f.scale == ScaleFigures(
        memory_runs=2, tried=1000, reached=500, swarm_available=True, largest_pass=100
    )
    assert f.checker is None
    assert f.latency_p99_ms == Measured(None, False)
    assert f.peer_asked and f.peer_note is None


def test_peer_figures_are_picked_out_of_the_runs_and_peer_runs_are_not_ours_to_judge() -> None:
    runs = [
        saturation_run("batched", 50, 0, 4.0e6, deliveries_per_cpu_s=4.2e6),
        saturation_run("redis", 50, 0, 5.0e6, deliveries_per_cpu_s=9.0e6, generator_bound=True),
        saturation_run("redis", 10, 0, 2.0e6, lost=7, clean=False),
        saturation_run("batched", 10, 0, 3.0e6),
    ]
    rows = aggregate(runs)
    f = goal_figures(runs, rows, ratios(rows, [10, 50], ["redis"]), {}, {"redis": {"note": None}})
    assert f.peer_ratios[10] == Measured(1.5, False)
    assert f.peer_ratios[50] == Measured(0.8, True)
    assert f.peer_ratios[200] == Measured(None, False)
    assert f.efficiency == Measured(4.2e6, False) and f.peer_efficiency == Measured(9.0e6, True)
    # The peer's loss shows in its own row, not in the goal about our designs.
    assert f.load == LoadChecks(runs=2, unclean=0, lost=0, order=0, drops=0, errors=0)


def test_a_peer_the_generator_bounded_leaves_the_goals_between_our_designs_judged() -> None:
    runs = a_generator_bound_peer_at_10()
    rows = aggregate(runs)
    peers = ["ngircd", "redis"]
    f = goal_figures(runs, rows, ratios(rows, [10], peers), {}, {p: {"note": None} for p in peers})
    assert f.saturation_ratios[10] == Measured(10.0, False)
    assert f.peer_ratios[10] == Measured(0.8, False)
    verdicts = {_key(r.goal): r.verdict for r in goals(f)}
    assert verdicts["saturation at 10"] == PASS and verdicts["redis at 10"] == FAIL
