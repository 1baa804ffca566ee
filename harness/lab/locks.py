"""A server's lock metrics as tables: per lock and critical section, histogram bars, and the series a
swarm recorded (docs/metrics.md names the metrics)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import pandas as pd

from harness.common.metrics_scrape import Histogram, MetricsSnapshot, scrape


def scrape_metrics(url: str) -> MetricsSnapshot:
    """One scrape of a server's ``/metrics`` (:func:`harness.common.metrics_scrape.scrape`)."""
    return scrape(url)


def _ms(h: Histogram | None, q: float) -> float | None:
    value = h.quantile(q) if h is not None else None
    return None if value is None else value * 1000.0


def locks_frame(snapshot: MetricsSnapshot, since: MetricsSnapshot | None = None) -> pd.DataFrame:
    """Lock figures: one row per lock (``site`` empty) and one per critical section that took it.

    ``lock`` is the lock's name (``registry``: the room's one lock) and
    ``site`` the critical section, named as in chat/room.py (``join``,
    ``say``, ...); see docs/metrics.md. With ``since``, counts and percentiles
    cover only what happened between the two scrapes. Columns: acquisitions,
    contended, contended_share (0..1), wait_p50_ms, wait_p99_ms, hold_p50_ms,
    hold_p99_ms (milliseconds; NaN where nothing was measured).
    """
    base = {(lk.section, lk.site): lk for lk in since.locks} if since is not None else {}
    rows = []
    for lk in snapshot.locks:
        b = base.get((lk.section, lk.site))
        acq = lk.acquisitions - (b.acquisitions if b else 0.0)
        cont = lk.contended - (b.contended if b else 0.0)
        wait = lk.wait.minus(b.wait if b else None) if lk.wait else None
        hold = lk.hold.minus(b.hold if b else None) if lk.hold else None
        rows.append(
            (
                lk.section,
                lk.site,
                acq,
                cont,
                cont / acq if acq else 0.0,
                _ms(wait, 0.5),
                _ms(wait, 0.99),
                _ms(hold, 0.5),
                _ms(hold, 0.99),
            )
        )
    columns = [
        "lock",
        "site",
        "acquisitions",
        "contended",
        "contended_share",
        "wait_p50_ms",
        "wait_p99_ms",
        "hold_p50_ms",
        "hold_p99_ms",
    ]
    return pd.DataFrame(rows, columns=columns).astype({c: float for c in columns[5:]})


def lock_histogram(
    snapshot: MetricsSnapshot,
    kind: str = "wait",
    site: str = "",
    lock: str = "registry",
    since: MetricsSnapshot | None = None,
) -> pd.DataFrame:
    """One lock histogram as bars: ``lo_ms``, ``hi_ms`` (bucket edges, ms) and ``count`` in that bucket.

    ``kind`` is ``wait`` (asking for the lock to getting it; contended
    acquisitions only) or ``hold`` (getting it to releasing it); ``site`` picks
    a critical section (empty: the whole lock). The last bucket's upper edge
    is infinite. Raises KeyError when the server has no such lock or site.
    """
    if kind not in ("wait", "hold"):
        raise ValueError(f"kind must be 'wait' or 'hold', not {kind!r}")
    found = [lk for lk in snapshot.locks if (lk.section, lk.site) == (lock, site)]
    if not found:
        raise KeyError(f"no lock {lock!r} site {site!r} in the metrics")
    h: Histogram | None = getattr(found[0], kind)
    if h is None:
        return pd.DataFrame({"lo_ms": [], "hi_ms": [], "count": []})
    if since is not None:
        prev = next((b for b in since.locks if (b.section, b.site) == (lock, site)), None)
        h = h.minus(getattr(prev, kind) if prev is not None else None)
    rows, lo, below = [], 0.0, 0.0
    for le, cumulative in h.buckets:
        rows.append((lo * 1000.0, le * 1000.0, cumulative - below))
        lo, below = le, cumulative
    return pd.DataFrame(rows, columns=["lo_ms", "hi_ms", "count"])


def metrics_series(meta: dict[str, Any], names: Sequence[str] = ()) -> pd.DataFrame:
    """The scrapes a swarm kept in meta.json (about one a second): ``s`` from the first, then samples.

    ``names`` picks sample keys (e.g. ``chat_deliveries_total``,
    ``chat_lock_acquisitions_total{section="say"}``); empty keeps them all.
    """
    series = pd.DataFrame(list(meta.get("metrics_series") or []))
    if not len(series):
        return series
    series.insert(0, "s", series["t"] - series["t"].min())
    if names:
        series = series[["s", "t", *[n for n in names if n in series.columns]]]
    return series
