"""From runs to figures: medians with min and max over the repetitions, and ratios between designs.

Pure functions over the run records (the dicts stored in the summary's ``runs``). Absolute figures on a
shared machine move by tens of percent between runs, so every comparison the bench makes is a ratio
between medians of the same run.
"""

from __future__ import annotations

import statistics
from collections.abc import Sequence
from typing import Any, NamedTuple

#: The figures of a run record that the aggregated rows summarise (median, min, max, n).
SUMMARISED = (
    "deliveries_per_s",
    "deliveries_per_cpu_s",
    "server_cpu",
    "generator_cpu",
    "machine_cpu",
    "p50_ms",
    "p99_ms",
    "max_ms",
    "idle_rss",
    "chat_rss",
    "idle_threads",
    "chat_threads",
    "bytes_per_member",
    "connect_s",
)


def _stat(values: Sequence[float]) -> dict[str, float] | None:
    vals = [v for v in values if v is not None]
    if not vals:
        return None
    return {"median": statistics.median(vals), "min": min(vals), "max": max(vals), "n": len(vals)}


def aggregate(runs: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    """One row per (case, design or variant, members, rate): medians with min and max over the reps."""
    groups: dict[tuple[Any, ...], list[dict[str, Any]]] = {}
    for r in runs:
        key = (r["case"], r.get("variant", r["design"]), r["members"], r.get("rate"))
        groups.setdefault(key, []).append(r)
    rows = []
    for (case, label, members, rate), rs in groups.items():
        ok = [r for r in rs if not r.get("error")]
        row: dict[str, Any] = {
            "case": case,
            "design": label,
            "members": members,
            "rate": rate,
            "reps": len(rs),
            "errors": [r["error"] for r in rs if r.get("error")],
            "generator_bound": any(r.get("generator_bound") for r in ok),
            "overloaded": any(r.get("overloaded") for r in ok),
            "clean": all(r.get("clean") for r in rs),
            "lost": sum(r.get("lost", 0) for r in ok),
            "extra": sum(r.get("extra", 0) for r in ok),
            "drops": sum(r.get("drops", 0) for r in ok),
            "order_violations": sum(r.get("order_violations", 0) for r in ok),
        }
        for figure in SUMMARISED:
            st = _stat([r[figure] for r in ok if r.get(figure) is not None])
            if st is not None:
                row[figure] = st
        rows.append(row)
    return rows


class Median(NamedTuple):
    """One aggregated row's median of one figure, and whether the generator bounded any of its runs."""

    value: float | None
    generator_bound: bool


def median_of(
    rows: Sequence[dict[str, Any]], case: str, design: str, members: int, key: str, rate: float | None = None
) -> Median:
    """The median of figure ``key`` in the row of (case, design, members, rate); None when not measured."""
    for row in rows:
        if (
            row["case"] == case
            and row["design"] == design
            and row["members"] == members
            and row["rate"] == rate
        ):
            st = row.get(key)
            return Median(st["median"] if st else None, row["generator_bound"])
    return Median(None, False)


def ratios(
    rows: Sequence[dict[str, Any]], sizes: Sequence[int], peers: Sequence[str] = ()
) -> list[dict[str, Any]]:
    """Saturation ratios between designs, and of ``batched`` to each peer (``batched_over_<peer>``), per
    member count, from medians of the same run. ``generator_bound``: the generator bounded ``batched``'s
    or ``direct``'s figure (the ratio the goals judge; any design's when one of the two is missing);
    ``generator_bound_peers``: the peers whose ratio to ``batched`` it bounded. Kept apart, so that a
    peer the generator could not saturate voids only its own ratio."""
    out = []
    for m in sizes:
        d, d_bound = median_of(rows, "saturation", "direct", m, "deliveries_per_s")
        q, q_bound = median_of(rows, "saturation", "queued", m, "deliveries_per_s")
        b, b_bound = median_of(rows, "saturation", "batched", m, "deliveries_per_s")
        row: dict[str, Any] = {
            "members": m,
            "batched_over_direct": b / d if b and d else None,
            "queued_over_direct": q / d if q and d else None,
            "batched_over_queued": b / q if b and q else None,
            "generator_bound": (b_bound or d_bound) if b and d else (b_bound or d_bound or q_bound),
        }
        bound_peers = []
        for peer in peers:
            p, p_bound = median_of(rows, "saturation", peer, m, "deliveries_per_s")
            row[f"batched_over_{peer}"] = b / p if b and p else None
            if b and p and (b_bound or p_bound):
                bound_peers.append(peer)
        row["generator_bound_peers"] = bound_peers
        out.append(row)
    return out


def instrumentation_cost(rows: Sequence[dict[str, Any]], members: int) -> float | None:
    """Saturation throughput with lock metrics on, as a share of without (the instrumentation case)."""
    plain = median_of(rows, "instrumentation", "batched", members, "deliveries_per_s").value
    metered = median_of(rows, "instrumentation", "batched+metrics", members, "deliveries_per_s").value
    return metered / plain if plain and metered else None
