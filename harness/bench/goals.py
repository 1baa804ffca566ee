"""The bar the bench measures against: measured figures in, one goal row with a verdict out.

:func:`goals` is a pure function of :class:`GoalFigures`, so that each threshold can be tested with
figures on either side of it; :func:`goal_figures` picks those figures out of a run's records. The bench
never fails because of a goal (its exit status is about loss, order and errors, docs/performance.md):
the verdicts are shown in the "Goals" table and stored in the summary.

A figure the generator, not the server, bounded never passes or fails a goal: its verdict is ``N/A``.
So is a goal against a peer that was not measured (not asked for with ``--peers``, or not installed):
every figure a goal compares comes from the run that prints it.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from enum import Enum
from typing import Any, NamedTuple

from harness.bench.figures import median_of
from harness.common.peers import PEERS

#: batched / direct in saturation: at least this at 50 and 200 members (and at least 1x at 10).
GOAL_RATIO_BIG = 4.0
#: batched's p99 latency at 200 msg/s to 50 members, in ms.
GOAL_P99_MS = 3.0
#: Members connected and chatting on one server, and in a swarm that passes.
GOAL_MEMBERS = 1000
#: Seconds for the checker to judge 1,000,000 events.
GOAL_CHECKER_S = 10.0
GOAL_CHECKER_EVENTS = 1_000_000
#: The saturation goals: member count -> the least batched / direct ratio.
RATIO_BARS = {10: 1.0, 50: GOAL_RATIO_BIG, 200: GOAL_RATIO_BIG}
#: The peer that the delivery goals measure against, and the least batched / peer ratio per member count.
GOAL_PEER = "redis"
PEER_BARS = {10: 1.0, 50: 1.0, 200: 1.0}
#: The member count at which batched's deliveries per server CPU-second must reach the peer's.
GOAL_EFFICIENCY_MEMBERS = 50
#: batched's p99 at 200 msg/s to 50 members may exceed the original design's (direct) by this, in ms.
GOAL_P99_OVER_DIRECT_MS = 0.3


class GoalVerdict(str, Enum):
    PASS = "PASS"
    FAIL = "FAIL"
    #: Not measured, measured too small (``--quick``), or bounded by the generator.
    NOT_APPLICABLE = "N/A"
    #: A figure shown for orientation, with no bar.
    INFO = "info"

    def __str__(self) -> str:
        return self.value


class GoalRow(NamedTuple):
    goal: str
    measured: str
    verdict: GoalVerdict

    def as_dict(self) -> dict[str, str]:
        return {"goal": self.goal, "measured": self.measured, "verdict": self.verdict.value}


class Measured(NamedTuple):
    """A figure, None when it was not measured, and whether the generator bounded it."""

    value: float | None
    generator_bound: bool = False


@dataclass(frozen=True)
class LoadChecks:
    """What the saturation and latency runs saw, in all."""

    runs: int
    unclean: int  #: runs that lost, reordered, dropped or failed
    lost: int
    order: int
    drops: int
    errors: int


@dataclass(frozen=True)
class ScaleFigures:
    """The memory case's member counts and the scale swarm's result."""

    memory_runs: int
    tried: int  #: the largest member count tried
    reached: int  #: the largest that connected and chatted without an error or a drop
    swarm_available: bool
    largest_pass: int  #: the largest swarm that passed


@dataclass(frozen=True)
class CheckerFigures:
    seconds: float
    events: int


@dataclass(frozen=True)
class GoalFigures:
    """Everything the goals are judged on."""

    saturation_ratios: Mapping[int, Measured]  #: batched / direct, per member count
    latency_p99_ms: Measured  #: batched, 200 msg/s, 50 members
    load: LoadChecks
    scale: ScaleFigures
    checker: CheckerFigures | None  #: None: not measured
    peer_ratios: Mapping[int, Measured]  #: batched / GOAL_PEER in saturation, per member count
    efficiency: Measured  #: batched's deliveries per server CPU-second at GOAL_EFFICIENCY_MEMBERS
    peer_efficiency: Measured  #: ... GOAL_PEER's
    latency_p99_direct_ms: Measured  #: direct, 200 msg/s, 50 members
    peer_asked: bool = False  #: GOAL_PEER was among ``--peers``
    peer_note: str | None = None  #: why GOAL_PEER was not measured (not installed), if it was asked for


def goal_figures(
    runs: Sequence[dict[str, Any]],
    rows: Sequence[dict[str, Any]],
    ratio_rows: Sequence[dict[str, Any]],
    extra: Mapping[str, Any],
    peers: Mapping[str, Mapping[str, Any]] | None = None,
) -> GoalFigures:
    """The figures the goals need, from the run records, their aggregated rows and ratios, the
    cases' other figures (``extra``: the scale swarm and the checker) and the peers asked for."""
    # The peers' own loss and order are in their rows; the zero-loss goal is about our designs.
    load_runs = [r for r in runs if r["case"] in ("saturation", "latency") and r["design"] not in PEERS]
    memory = [r for r in runs if r["case"] == "memory"]
    swarm = extra.get("swarm", {})
    checker = extra.get("checker", {})
    return GoalFigures(
        saturation_ratios={
            r["members"]: Measured(r["batched_over_direct"], r["generator_bound"]) for r in ratio_rows
        },
        latency_p99_ms=Measured(*median_of(rows, "latency", "batched", 50, "p99_ms", rate=200.0)),
        load=LoadChecks(
            runs=len(load_runs),
            unclean=sum(1 for r in load_runs if not r.get("clean")),
            lost=sum(r.get("lost", 0) for r in load_runs),
            order=sum(r.get("order_violations", 0) for r in load_runs),
            drops=sum(r.get("drops", 0) for r in load_runs),
            errors=sum(1 for r in load_runs if r.get("error")),
        ),
        scale=ScaleFigures(
            memory_runs=len(memory),
            tried=max((r["members"] for r in memory), default=0),
            reached=max(
                (r["members"] for r in memory if not r.get("error") and r.get("drops", 0) == 0), default=0
            ),
            swarm_available=bool(swarm.get("available")),
            largest_pass=int(swarm.get("largest_pass", 0)),
        ),
        checker=CheckerFigures(checker["seconds"], checker["events"]) if checker.get("available") else None,
        peer_ratios={m: _peer_ratio(rows, m) for m in PEER_BARS},
        efficiency=Measured(*_efficiency(rows, "batched")),
        peer_efficiency=Measured(*_efficiency(rows, GOAL_PEER)),
        latency_p99_direct_ms=Measured(*median_of(rows, "latency", "direct", 50, "p99_ms", rate=200.0)),
        peer_asked=GOAL_PEER in (peers or {}),
        peer_note=(peers or {}).get(GOAL_PEER, {}).get("note"),
    )


def _peer_ratio(rows: Sequence[dict[str, Any]], members: int) -> Measured:
    b, b_bound = median_of(rows, "saturation", "batched", members, "deliveries_per_s")
    p, p_bound = median_of(rows, "saturation", GOAL_PEER, members, "deliveries_per_s")
    return Measured(b / p if b and p else None, b_bound or p_bound)


def _efficiency(rows: Sequence[dict[str, Any]], design: str) -> Measured:
    return Measured(*median_of(rows, "saturation", design, GOAL_EFFICIENCY_MEMBERS, "deliveries_per_cpu_s"))


def _verdict(passed: bool) -> GoalVerdict:
    return GoalVerdict.PASS if passed else GoalVerdict.FAIL


def _bound_note(m: Measured) -> str:
    return " (generator-bound)" if m.generator_bound else ""


def goals(f: GoalFigures) -> list[GoalRow]:
    """Each goal with what was measured and a verdict: PASS, FAIL, N/A (with why) or info."""
    na = GoalVerdict.NOT_APPLICABLE
    out = []
    for members, bar in RATIO_BARS.items():
        goal = f"saturation: batched >= {bar:g}x direct at {members} members"
        ratio = f.saturation_ratios.get(members, Measured(None))
        if ratio.value is None:
            out.append(GoalRow(goal, "not measured", na))
        elif ratio.generator_bound:
            out.append(GoalRow(goal, f"{ratio.value:.1f}x (generator-bound)", na))
        else:
            out.append(GoalRow(goal, f"{ratio.value:.1f}x", _verdict(ratio.value >= bar)))

    goal = f"latency: batched p99 <= {GOAL_P99_MS:g} ms at 200 msg/s, 50 members"
    p99 = f.latency_p99_ms
    if p99.value is None:
        out.append(GoalRow(goal, "not measured", na))
    else:
        out.append(GoalRow(goal, f"{p99.value:.2f} ms{_bound_note(p99)}", _verdict(p99.value <= GOAL_P99_MS)))
    out.append(_latency_over_direct_goal(f))
    out.extend(_peer_goals(f))

    goal = "zero loss, order violations and slow drops in saturation and latency runs"
    load = f.load
    if load.runs:
        counts = f"lost {load.lost}, order {load.order}, drops {load.drops}, errors {load.errors}"
        measured = f"{load.runs} runs: {counts}"
        out.append(GoalRow(goal, measured, _verdict(load.unclean == 0)))
    else:
        out.append(GoalRow(goal, "not measured", na))

    out.append(_scale_goal(f.scale))
    out.append(_checker_goal(f.checker))
    return out


def _latency_over_direct_goal(f: GoalFigures) -> GoalRow:
    goal = (
        f"latency: batched p99 <= direct's + {GOAL_P99_OVER_DIRECT_MS:g} ms at 200 msg/s, 50 members "
        "(same run)"
    )
    b, d = f.latency_p99_ms, f.latency_p99_direct_ms
    if b.value is None or d.value is None:
        return GoalRow(goal, "not measured", GoalVerdict.NOT_APPLICABLE)
    over = b.value - d.value
    measured = f"batched {b.value:.2f} ms, direct {d.value:.2f} ms ({over:+.2f} ms)"
    return GoalRow(
        goal,
        measured + _bound_note(Measured(0, b.generator_bound or d.generator_bound)),
        _verdict(over <= GOAL_P99_OVER_DIRECT_MS + 1e-9),
    )


def _not_measured(f: GoalFigures) -> str:
    """Why a goal against the peer has no figure."""
    if f.peer_note:
        return f"{GOAL_PEER}: {f.peer_note}"
    return "not measured" if f.peer_asked else f"not measured (needs --peers {GOAL_PEER})"


def _peer_goals(f: GoalFigures) -> list[GoalRow]:
    """batched against the peer, side by side in this run: throughput at each size, and efficiency."""
    na = GoalVerdict.NOT_APPLICABLE
    out = []
    for members, bar in PEER_BARS.items():
        goal = f"peers: batched >= {bar:.1f}x {GOAL_PEER} at {members} members (same run)"
        ratio = f.peer_ratios.get(members, Measured(None))
        if ratio.value is None:
            out.append(GoalRow(goal, _not_measured(f), na))
        elif ratio.generator_bound:
            out.append(GoalRow(goal, f"{ratio.value:.2f}x (generator-bound)", na))
        else:
            out.append(GoalRow(goal, f"{ratio.value:.2f}x", _verdict(ratio.value >= bar)))
    goal = (
        f"peers: batched's deliveries per server CPU-s >= {GOAL_PEER}'s at {GOAL_EFFICIENCY_MEMBERS} members "
        "(same run)"
    )
    ours, theirs = f.efficiency, f.peer_efficiency
    if theirs.value is None:
        out.append(GoalRow(goal, _not_measured(f), na))
    elif ours.value is None:
        out.append(GoalRow(goal, "batched not measured", na))
    else:
        measured = (
            f"batched {ours.value / 1e6:.2f} M, {GOAL_PEER} {theirs.value / 1e6:.2f} M "
            f"({ours.value / theirs.value:.2f}x)"
        )
        if ours.generator_bound or theirs.generator_bound:
            out.append(GoalRow(goal, measured + " (generator-bound)", na))
        else:
            out.append(GoalRow(goal, measured, _verdict(ours.value >= theirs.value)))
    return out


def _scale_goal(scale: ScaleFigures) -> GoalRow:
    goal = f"scale: {GOAL_MEMBERS} connected members on one server, PASS swarm"
    measured = f"{scale.reached} members connected and chatting" if scale.memory_runs else "not measured"
    if scale.swarm_available:
        measured += f"; largest PASS swarm {scale.largest_pass}"
    elif scale.memory_runs:
        measured += "; swarm not available"
    if scale.tried < GOAL_MEMBERS:
        verdict = GoalVerdict.NOT_APPLICABLE  # e.g. --quick: the goal's size was not tried
    elif scale.reached < GOAL_MEMBERS:
        verdict = GoalVerdict.FAIL
    elif not scale.swarm_available:
        verdict = GoalVerdict.NOT_APPLICABLE
    else:
        verdict = _verdict(scale.largest_pass >= GOAL_MEMBERS)
    return GoalRow(goal, measured, verdict)


def _checker_goal(checker: CheckerFigures | None) -> GoalRow:
    goal = f"checker: 1,000,000 events in < {GOAL_CHECKER_S:g} s"
    if checker is None:
        return GoalRow(goal, "not measured", GoalVerdict.NOT_APPLICABLE)
    projected = checker.seconds * GOAL_CHECKER_EVENTS / checker.events
    measured = f"{checker.seconds:.2f} s for {checker.events:,} events"
    if checker.events < GOAL_CHECKER_EVENTS:
        # Fewer events (--quick): the projection is shown, but only the goal's size can pass or fail.
        return GoalRow(goal, measured + f" (projected {projected:.1f} s for 1M)", GoalVerdict.NOT_APPLICABLE)
    return GoalRow(goal, measured, _verdict(projected < GOAL_CHECKER_S))
