"""The ``leaks`` check: does a server resource keep growing after warm-up? A pure function of a series.

A soak (``python -m harness.swarm --soak``) samples the server's resident memory, threads and open
descriptors all along. A server that leaks (a thread or a socket per connection, memory per message)
grows with the work done; a healthy one climbs to a plateau while its caches, pools and allocator
arenas warm up, then moves up and down with the load. The rule, per resource, after dropping the warm-up
(the first :data:`WARMUP_SHARE` of the samples):

* the **trend**: the (Theil-Sen) slope over the second half of what is left, times that half's span,
  must stay within the resource's margin; and
* the **peaks**: the largest value of the last third must stay within the margin of the largest value
  of the first third.

A resource fails only when both say it grew: one burst at the end moves the peaks but not a trend, and
a slow climb back to the plateau after a dip moves the trend but not the peaks. The margin is absolute
plus relative (:data:`MARGINS`: RSS moves by megabytes with the allocator and the GC), plus the swing
of the first third (the spread of its values around its own trend): threads and descriptors follow the
connections open at the instant of a sample, and growth counts only beyond what the load alone moves.
The witness gives the figures.
Fewer than :data:`MIN_SAMPLES` samples after warm-up: not judged (too short to tell).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import NamedTuple

#: Share of the samples, from the start, that is warm-up and not judged.
WARMUP_SHARE = 0.2
#: Samples needed after warm-up to judge at all.
MIN_SAMPLES = 9
#: Resource -> (absolute margin, relative margin): growth allowed before it counts.
MARGINS: Mapping[str, tuple[float, float]] = {
    "rss": (8 * 1024 * 1024, 0.10),
    "threads": (4, 0.10),
    "fds": (8, 0.10),
}
RESOURCES = tuple(MARGINS)


class ResourceSample(NamedTuple):
    """The server at one instant: seconds since the soak began, and its resources."""

    t: float
    rss: int
    threads: int
    fds: int


@dataclass(frozen=True)
class ResourceVerdict:
    """What the check found for one resource; ``grew`` is the verdict, the rest its witness."""

    resource: str
    judged: bool
    grew: bool
    first: float  #: the first sample after warm-up
    last: float
    first_third_max: float
    last_third_max: float
    trend: float  #: slope over the second half times its span: growth along the trend
    margin: float

    def as_dict(self) -> dict[str, object]:
        return {
            "resource": self.resource,
            "judged": self.judged,
            "grew": self.grew,
            "first": self.first,
            "last": self.last,
            "first_third_max": self.first_third_max,
            "last_third_max": self.last_third_max,
            "trend": round(self.trend, 3),
            "margin": round(self.margin, 3),
        }

    def message(self) -> str:
        u = _unit(self.resource)
        return (
            f"server {self.resource} kept growing after warm-up: peak {_fmt(self.first_third_max, u)} in "
            f"the first third, {_fmt(self.last_third_max, u)} in the last; trend +{_fmt(self.trend, u)} "
            f"over the second half (margin {_fmt(self.margin, u)}); {_fmt(self.first, u)} -> "
            f"{_fmt(self.last, u)}"
        )


def _unit(resource: str) -> str:
    return "MiB" if resource == "rss" else ""


def _fmt(value: float, unit: str) -> str:
    if unit == "MiB":
        return f"{value / (1024 * 1024):.1f} MiB"
    return f"{value:.0f}"


def slope(ts: Sequence[float], ys: Sequence[float]) -> float:
    """Theil-Sen slope of ``ys`` over ``ts``: the median of the slopes between every two samples.

    Robust where least squares is not: a few samples taken at a peak of connections (a burst, a round's
    end) move it little. Quadratic in the samples, which a soak keeps to hundreds. 0 for fewer than two
    distinct times.
    """
    slopes = sorted(
        (ys[j] - ys[i]) / (ts[j] - ts[i])
        for i in range(len(ts))
        for j in range(i + 1, len(ts))
        if ts[j] != ts[i]
    )
    if not slopes:
        return 0.0
    mid = len(slopes) // 2
    return slopes[mid] if len(slopes) % 2 else (slopes[mid - 1] + slopes[mid]) / 2


def judge_resource(resource: str, ts: Sequence[float], ys: Sequence[float]) -> ResourceVerdict:
    """The rule of the module docstring for one resource's series (warm-up already dropped)."""
    n = len(ys)
    if n < MIN_SAMPLES:
        last = float(ys[-1]) if ys else 0.0
        first = float(ys[0]) if ys else 0.0
        return ResourceVerdict(resource, False, False, first, last, 0.0, 0.0, 0.0, 0.0)
    third = n // 3
    first_max = float(max(ys[:third]))
    last_max = float(max(ys[n - third :]))
    half = n // 2
    t2, y2 = ts[half:], ys[half:]
    trend = slope(t2, y2) * (t2[-1] - t2[0])
    absolute, relative = MARGINS[resource]
    # How much the load alone moves it: the spread of the first third around its own trend (so that
    # steady growth is not taken for load).
    s1 = slope(ts[:third], ys[:third])
    residuals = [y - s1 * t for t, y in zip(ts[:third], ys[:third], strict=True)]
    swing = max(residuals) - min(residuals)
    margin = absolute + relative * first_max + swing
    grew = trend > margin and last_max > first_max + margin
    return ResourceVerdict(
        resource, True, grew, float(ys[0]), float(ys[-1]), first_max, last_max, trend, margin
    )


def check_leaks(series: Sequence[ResourceSample]) -> list[ResourceVerdict]:
    """Each resource's verdict over ``series`` (in time order), after the warm-up."""
    start = int(len(series) * WARMUP_SHARE)
    kept = series[start:]
    ts = [s.t for s in kept]
    return [judge_resource(r, ts, [getattr(s, r) for s in kept]) for r in RESOURCES]
