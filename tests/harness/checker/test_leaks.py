"""The leaks check: flat series pass, growth after warm-up fails, warm-up and one late burst do not."""

from __future__ import annotations

import random

import pytest

from harness.checker.leaks import MIN_SAMPLES, ResourceSample, check_leaks, judge_resource, slope

MIB = 1024 * 1024


def series(
    n: int = 120,
    rss: float = 40 * MIB,
    threads: float = 20,
    fds: float = 30,
    grow: dict[str, float] | None = None,
) -> list[ResourceSample]:
    """``n`` samples a second apart, with load noise (members come and go), growing by ``grow`` per sample."""
    rng = random.Random(7)
    grow = grow or {}
    out = []
    for i in range(n):
        members = rng.randint(0, 30)
        out.append(
            ResourceSample(
                t=float(i),
                rss=int(rss + rng.uniform(-2, 2) * MIB + grow.get("rss", 0) * i),
                threads=int(threads + 2 * members + grow.get("threads", 0) * i),
                fds=int(fds + members + grow.get("fds", 0) * i),
            )
        )
    return out


def grew(samples: list[ResourceSample]) -> set[str]:
    return {v.resource for v in check_leaks(samples) if v.grew}


def test_a_flat_noisy_server_passes() -> None:
    verdicts = check_leaks(series())
    assert all(v.judged for v in verdicts)
    assert not any(v.grew for v in verdicts)


@pytest.mark.parametrize(("resource", "per_sample"), [("threads", 3.0), ("fds", 3.0), ("rss", 1.0 * MIB)])
def test_steady_growth_after_warm_up_fails_with_the_figures(resource: str, per_sample: float) -> None:
    verdicts = {v.resource: v for v in check_leaks(series(grow={resource: per_sample}))}
    assert grew(series(grow={resource: per_sample})) == {resource}
    v = verdicts[resource]
    assert v.last_third_max > v.first_third_max + v.margin and v.trend > v.margin
    assert "kept growing after warm-up" in v.message()
    assert set(v.as_dict()) >= {"first_third_max", "last_third_max", "trend", "margin"}


def test_a_thread_per_connection_leak_is_caught() -> None:
    # 30 connections per 10 s round, one thread each never ends: +3 threads a second
    assert grew(series(grow={"threads": 3.0})) == {"threads"}


def test_growth_within_the_load_swing_is_not_a_leak() -> None:
    """Threads swing by 60 with the members; 0.2 a second over 100 s stays inside that."""
    assert grew(series(grow={"threads": 0.2})) == set()


def test_warm_up_growth_then_a_plateau_passes() -> None:
    samples = series()
    warm = [s._replace(rss=s.rss * min(1.0, 0.5 + i / 40)) for i, s in enumerate(samples)]  # climbs for 20 s
    assert grew(warm) == set()


def test_one_burst_at_the_end_is_not_a_trend() -> None:
    samples = series()
    burst = samples[:-2] + [s._replace(threads=s.threads + 200) for s in samples[-2:]]
    assert "threads" not in grew(burst)


def test_a_series_too_short_is_not_judged() -> None:
    verdicts = check_leaks(series(n=MIN_SAMPLES))  # the warm-up takes some: fewer than needed remain
    assert not any(v.judged or v.grew for v in verdicts)
    assert check_leaks([]) and not any(v.judged for v in check_leaks([]))


def test_slope() -> None:
    assert slope([0, 1, 2, 3], [1, 3, 5, 7]) == pytest.approx(2.0)
    assert slope([1], [5]) == 0.0
    assert slope([2, 2], [1, 9]) == 0.0
    v = judge_resource("threads", [0.0, 1.0], [1.0, 2.0])
    assert not v.judged
