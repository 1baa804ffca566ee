"""Reading a chat server's Prometheus ``/metrics`` page: parsing, and a poller thread.

Not a metrics client library: it reads what the server exposes (see
docs/metrics.md) and turns it into small frozen views for the dashboard and the
run record. Anything absent is simply not shown, so the swarm works the same
against a server with no metrics, with fewer metrics, or with other labels.

Families read (all optional)::

    chat_lock_acquisitions_total{section}, chat_lock_contended_total{section}
    chat_lock_wait_seconds{section}, chat_lock_hold_seconds{section}     histograms
    chat_lock_site_acquisitions_total{section,site} and the site histograms
    chat_members, chat_connections, chat_threads, chat_backlog_lines,
    chat_backlog_max_lines, chat_broadcasts_total, chat_deliveries_total,
    chat_slow_drops_total

Percentiles come from the histogram buckets (linear inside a bucket, as
Prometheus' ``histogram_quantile`` does), over the window since the swarm's
first scrape; rates come from the last two scrapes.
"""

from __future__ import annotations

import logging
import math
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Mapping
from dataclasses import dataclass

from prometheus_client.parser import text_string_to_metric_families

log = logging.getLogger(__name__)

#: Seconds one scrape may take; a server too busy to answer within it is shown
#: as "no metrics" for that second rather than stalling the poller.
SCRAPE_TIMEOUT = 1.0
#: Longest page read: a metrics page is kilobytes; this bounds a wrong URL.
MAX_PAGE = 4 << 20

GAUGES = (
    "chat_members",
    "chat_connections",
    "chat_threads",
    "chat_backlog_lines",
    "chat_backlog_max_lines",
    "chat_broadcasts_total",
    "chat_deliveries_total",
    "chat_slow_drops_total",
    "chat_joins_total",
    "chat_refused_full_total",
)


class MetricsUnavailable(Exception):
    """The metrics page could not be fetched or parsed."""


@dataclass(frozen=True)
class Histogram:
    """Cumulative buckets ``(le, count)``, upper edges ascending, ``+Inf`` last."""

    buckets: tuple[tuple[float, float], ...]
    count: float
    total: float

    def minus(self, base: Histogram | None) -> Histogram:
        """The observations made since ``base`` (same bucket edges assumed)."""
        if base is None or len(base.buckets) != len(self.buckets):
            return self
        buckets = tuple((le, c - bc) for (le, c), (_, bc) in zip(self.buckets, base.buckets, strict=True))
        return Histogram(buckets, self.count - base.count, self.total - base.total)

    def quantile(self, q: float) -> float | None:
        """The ``q`` quantile in the histogram's unit (seconds); None without observations."""
        if not self.buckets or self.count <= 0:
            return None
        rank = q * self.count
        prev_le, prev_c = 0.0, 0.0
        for le, c in self.buckets:
            if c >= rank:
                if math.isinf(le):
                    return prev_le
                if c == prev_c:
                    return le
                return prev_le + (le - prev_le) * (rank - prev_c) / (c - prev_c)
            prev_le, prev_c = le, c
        return prev_le


@dataclass(frozen=True)
class LockSample:
    """Counters of one lock (``site`` empty) or of one critical section of a lock."""

    section: str
    site: str
    acquisitions: float
    contended: float
    wait: Histogram | None
    hold: Histogram | None


@dataclass(frozen=True)
class MetricsSnapshot:
    """One scrape, parsed."""

    t: float
    #: Every ``chat_*`` sample, keyed ``name{label="value",...}``: what the record keeps.
    samples: Mapping[str, float]
    locks: tuple[LockSample, ...]
    gauges: Mapping[str, float]


def _key(name: str, labels: Mapping[str, str]) -> str:
    if not labels:
        return name
    inner = ",".join(f'{k}="{v}"' for k, v in sorted(labels.items()))
    return f"{name}{{{inner}}}"


def parse_metrics(text: str, t: float | None = None) -> MetricsSnapshot:
    """Parse a Prometheus text page. Raises :class:`MetricsUnavailable` on a page that is not one."""
    samples: dict[str, float] = {}
    counters: dict[tuple[str, str, str], float] = {}
    hist: dict[tuple[str, str, str], dict[str, object]] = {}
    try:
        families = list(text_string_to_metric_families(text))
    except (ValueError, TypeError, IndexError) as exc:
        raise MetricsUnavailable(f"not a Prometheus text page: {exc}") from None
    for family in families:
        for s in family.samples:
            name, labels, value = s.name, s.labels, float(s.value)
            if not name.startswith("chat_"):
                continue
            samples[_key(name, labels)] = value
            section = labels.get("section", "")
            site = labels.get("site", "")
            if name in ("chat_lock_acquisitions_total", "chat_lock_site_acquisitions_total"):
                counters[("acq", section, site)] = value
            elif name in ("chat_lock_contended_total", "chat_lock_site_contended_total"):
                counters[("cont", section, site)] = value
            for kind in ("wait", "hold"):
                for prefix in (f"chat_lock_{kind}_seconds", f"chat_lock_site_{kind}_seconds"):
                    if name.startswith(prefix) and name[len(prefix) :] in ("_bucket", "_count", "_sum"):
                        h = hist.setdefault((kind, section, site), {"buckets": []})
                        suffix = name[len(prefix) :]
                        if suffix == "_bucket":
                            le = float(labels.get("le", "inf").replace("+Inf", "inf"))
                            h["buckets"].append((le, value))  # type: ignore[attr-defined]
                        else:
                            h[suffix] = value
    keys = sorted({(section, site) for (_, section, site) in counters})
    locks = []
    for section, site in keys:
        locks.append(
            LockSample(
                section=section,
                site=site,
                acquisitions=counters.get(("acq", section, site), 0.0),
                contended=counters.get(("cont", section, site), 0.0),
                wait=_histogram(hist.get(("wait", section, site))),
                hold=_histogram(hist.get(("hold", section, site))),
            )
        )
    gauges = {name: samples[name] for name in GAUGES if name in samples}
    return MetricsSnapshot(t if t is not None else time.time(), samples, tuple(locks), gauges)


def _histogram(raw: dict[str, object] | None) -> Histogram | None:
    if raw is None:
        return None
    buckets = sorted(raw["buckets"])  # type: ignore[call-overload]
    count = float(raw.get("_count", buckets[-1][1] if buckets else 0.0))  # type: ignore[arg-type]
    return Histogram(tuple(buckets), count, float(raw.get("_sum", 0.0)))  # type: ignore[arg-type]


def scrape(url: str, timeout: float = SCRAPE_TIMEOUT) -> MetricsSnapshot:
    """Fetch and parse ``url``; raises :class:`MetricsUnavailable` with the reason."""
    try:
        with urllib.request.urlopen(url, timeout=timeout) as resp:  # noqa: S310 - a URL the user gave
            body = resp.read(MAX_PAGE)
    except (urllib.error.URLError, OSError, ValueError) as exc:
        raise MetricsUnavailable(f"cannot read {url}: {getattr(exc, 'reason', exc)}") from None
    return parse_metrics(body.decode("utf-8", "replace"))


# -- what the dashboard shows ---------------------------------------------------------


@dataclass(frozen=True)
class LockView:
    """One row of the lock table."""

    section: str
    site: str
    acquisitions: float
    #: Acquisitions per second: over the last scrape interval while the run goes on; over the whole run
    #: in a view read back from a summary (:func:`view_from_dict`).
    rate: float
    #: Share of acquisitions that had to wait, over the run so far (0..1).
    contended_share: float
    wait_p50_ms: float | None
    wait_p99_ms: float | None
    hold_p50_ms: float | None
    hold_p99_ms: float | None
    #: Acquisitions per second over the run so far (first scrape to latest); 0 before two scrapes.
    run_rate: float = 0.0


@dataclass(frozen=True)
class MetricsView:
    url: str
    t: float
    locks: tuple[LockView, ...]
    gauges: Mapping[str, float]
    #: Deliveries per second by the server's own count, over the last interval.
    deliveries_rate: float | None


def _ms(seconds: float | None) -> float | None:
    return None if seconds is None else seconds * 1000.0


def make_view(
    url: str, first: MetricsSnapshot, prev: MetricsSnapshot | None, latest: MetricsSnapshot
) -> MetricsView:
    """Figures over the run (``first`` to ``latest``) and rates over the last interval."""
    base = {(lk.section, lk.site): lk for lk in first.locks}
    before = {(lk.section, lk.site): lk for lk in prev.locks} if prev is not None else {}
    dt = latest.t - prev.t if prev is not None else 0.0
    span = latest.t - first.t
    rows = []
    for lk in latest.locks:
        b = base.get((lk.section, lk.site))
        p = before.get((lk.section, lk.site))
        acq = lk.acquisitions - (b.acquisitions if b else 0.0)
        cont = lk.contended - (b.contended if b else 0.0)
        wait = lk.wait.minus(b.wait if b else None) if lk.wait else None
        hold = lk.hold.minus(b.hold if b else None) if lk.hold else None
        rate = (lk.acquisitions - p.acquisitions) / dt if p is not None and dt > 0 else 0.0
        run_rate = acq / span if span > 0 else 0.0
        rows.append(
            LockView(
                section=lk.section,
                site=lk.site,
                acquisitions=acq,
                rate=rate,
                contended_share=cont / acq if acq > 0 else 0.0,
                wait_p50_ms=_ms(wait.quantile(0.5)) if wait else None,
                wait_p99_ms=_ms(wait.quantile(0.99)) if wait else None,
                hold_p50_ms=_ms(hold.quantile(0.5)) if hold else None,
                hold_p99_ms=_ms(hold.quantile(0.99)) if hold else None,
                run_rate=run_rate,
            )
        )
    deliveries_rate = None
    if prev is not None and dt > 0 and "chat_deliveries_total" in latest.gauges:
        deliveries_rate = (
            latest.gauges["chat_deliveries_total"] - prev.gauges.get("chat_deliveries_total", 0.0)
        ) / dt
    return MetricsView(url, latest.t, tuple(rows), dict(latest.gauges), deliveries_rate)


def view_to_dict(view: MetricsView) -> dict[str, object]:
    return {
        "url": view.url,
        "locks": [
            {
                "section": lk.section,
                "site": lk.site,
                "acquisitions": lk.acquisitions,
                "per_s": round(lk.run_rate, 1),
                "contended_share": round(lk.contended_share, 6),
                "wait_p50_ms": lk.wait_p50_ms,
                "wait_p99_ms": lk.wait_p99_ms,
                "hold_p50_ms": lk.hold_p50_ms,
                "hold_p99_ms": lk.hold_p99_ms,
            }
            for lk in view.locks
        ],
        "gauges": dict(view.gauges),
    }


def view_from_dict(d: Mapping[str, object]) -> MetricsView:
    """The inverse of :func:`view_to_dict`; ``rate`` becomes the run's average (``per_s``), since the
    last interval's rate is a live figure that a summary does not keep."""
    locks = tuple(
        LockView(
            section=str(lk["section"]),
            site=str(lk.get("site", "")),
            acquisitions=float(lk["acquisitions"]),
            rate=float(lk.get("per_s") or 0.0),
            contended_share=float(lk["contended_share"]),
            wait_p50_ms=lk.get("wait_p50_ms"),
            wait_p99_ms=lk.get("wait_p99_ms"),
            hold_p50_ms=lk.get("hold_p50_ms"),
            hold_p99_ms=lk.get("hold_p99_ms"),
        )
        for lk in d.get("locks", [])  # type: ignore[attr-defined]
    )
    return MetricsView(str(d.get("url", "")), 0.0, locks, dict(d.get("gauges", {})), None)  # type: ignore[call-overload]


def _recorded(samples: Mapping[str, float]) -> dict[str, float]:
    """The samples a run record keeps each second: all but the per-site buckets (the bulk)."""
    return {k: v for k, v in samples.items() if not (k.startswith("chat_lock_site_") and "_bucket" in k)}


class MetricsPoller:
    """Scrapes a URL every ``interval`` seconds in a thread of its own, until :meth:`stop`.

    The thread owns the scrape results; readers get them through
    :meth:`view` and :meth:`series`, which take ``_lock`` (never held during
    a scrape).
    """

    def __init__(self, url: str, interval: float = 1.0) -> None:
        self.url = url
        self.interval = interval
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._first: MetricsSnapshot | None = None
        self._prev: MetricsSnapshot | None = None
        self._latest: MetricsSnapshot | None = None
        self._series: list[dict[str, object]] = []
        self._errors = 0
        self.last_error: str | None = None
        self._thread = threading.Thread(target=self._run, name="metrics-poller", daemon=True)

    def start(self) -> MetricsPoller:
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop after one last scrape, and join the thread. Idempotent."""
        if self._stop.is_set():
            return
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(SCRAPE_TIMEOUT * 3 + 1.0)
        self.poll_once()

    def poll_once(self) -> bool:
        try:
            snap = scrape(self.url)
        except MetricsUnavailable as exc:
            with self._lock:
                self._errors += 1
                if self.last_error is None:
                    log.warning("metrics: %s", exc)
                self.last_error = str(exc)
            return False
        with self._lock:
            if self._first is None:
                self._first = snap
            self._prev, self._latest = self._latest, snap
            self._series.append({"t": snap.t, **_recorded(snap.samples)})
        return True

    def _run(self) -> None:
        while not self._stop.is_set():
            self.poll_once()
            self._stop.wait(self.interval)

    def view(self) -> MetricsView | None:
        with self._lock:
            if self._first is None or self._latest is None:
                return None
            return make_view(self.url, self._first, self._prev, self._latest)

    def series(self) -> list[dict[str, object]]:
        with self._lock:
            return list(self._series)
