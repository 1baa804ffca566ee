"""From run records to aggregated rows and ratios (pure)."""

from __future__ import annotations

import pytest

from harness.bench.figures import Median, aggregate, instrumentation_cost, median_of, ratios
from tests.harness.bench.records import a_generator_bound_peer_at_10
from tests.harness.bench.records import saturation_run as _run


def test_aggregate_takes_medians_and_ratios_compare_them() -> None:
    runs = [
        _run("direct", 50, 0, 1.0e5),
        _run("direct", 50, 1, 3.0e5),
        _run("direct", 50, 2, 2.0e5),
        _run("batched", 50, 0, 1.0e6),
        _run("batched", 50, 1, 1.2e6, generator_bound=True),
        _run("batched", 50, 2, 0.8e6),
    ]
    rows = aggregate(runs)
    direct = next(r for r in rows if r["design"] == "direct")
    assert direct["deliveries_per_s"] == {"median": 2.0e5, "min": 1.0e5, "max": 3.0e5, "n": 3}
    batched = next(r for r in rows if r["design"] == "batched")
    assert batched["generator_bound"] is True
    (ratio,) = ratios(rows, [50])
    assert ratio["batched_over_direct"] == pytest.approx(5.0)
    assert ratio["queued_over_direct"] is None
    assert ratio["generator_bound"] is True


def test_a_peer_the_generator_bounded_voids_its_own_ratio_not_ours() -> None:
    runs = a_generator_bound_peer_at_10()
    (ratio,) = ratios(aggregate(runs), [10], peers=["ngircd", "redis"])
    assert ratio["batched_over_direct"] == pytest.approx(10.0) and ratio["generator_bound"] is False
    assert ratio["batched_over_ngircd"] == pytest.approx(2.0)
    assert ratio["batched_over_redis"] == pytest.approx(0.8)
    assert ratio["generator_bound_peers"] == ["ngircd"]
    # ... and when batched itself was bounded, every ratio it is in was.
    (ratio,) = ratios(
        aggregate([*runs, _run("batched", 10, 1, 2.0e6, generator_bound=True)]), [10], ["redis"]
    )
    assert ratio["generator_bound"] is True and ratio["generator_bound_peers"] == ["redis"]


def test_a_failed_run_counts_as_a_rep_but_not_in_the_medians() -> None:
    rows = aggregate([_run("direct", 10, 0, 1.0e5), _run("direct", 10, 1, 9.9e9, error="refused")])
    (row,) = rows
    assert row["reps"] == 2 and row["errors"] == ["refused"]
    assert row["deliveries_per_s"]["n"] == 1 and row["deliveries_per_s"]["median"] == 1.0e5


def test_median_of_names_a_row_by_case_design_members_and_rate() -> None:
    rows = aggregate([_run("batched", 50, 0, 2.0e6, generator_bound=True)])
    assert median_of(rows, "saturation", "batched", 50, "deliveries_per_s") == Median(2.0e6, True)
    assert median_of(rows, "saturation", "batched", 200, "deliveries_per_s") == Median(None, False)
    assert median_of(rows, "saturation", "batched", 50, "p99_ms").value is None


def test_instrumentation_cost_is_metered_over_plain() -> None:
    runs = [
        _run("batched", 50, 0, 2.0e6, case="instrumentation", variant="batched"),
        _run("batched", 50, 0, 1.8e6, case="instrumentation", variant="batched+metrics"),
    ]
    assert instrumentation_cost(aggregate(runs), 50) == pytest.approx(0.9)
    assert instrumentation_cost(aggregate(runs[:1]), 50) is None
