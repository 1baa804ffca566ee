"""The server's Prometheus metrics: collected on each scrape, served over HTTP.

Not instrumentation of the hot path: nothing here runs when a message is
broadcast. The room already counts what it does inside its critical sections
(:class:`chat.room.RoomStats`) and the instrumented lock counts its own
acquisitions (:mod:`chat.lockstat`); a custom collector reads those figures
when Prometheus (or the swarm) scrapes ``/metrics``. A scrape never takes the
room's lock, so it cannot stall the room, nor hang behind a room that is
stalled (a deadlock is then visible in ``chat_lock_held_seconds``).

Metric families (documented in docs/metrics.md)::

    chat_members, chat_connections, chat_threads                        gauges
    chat_backlog_lines, chat_backlog_max_lines                          gauges
    chat_broadcasts_total, chat_deliveries_total, chat_joins_total      counters
    chat_leaves_total{reason}, chat_slow_drops_total                    counters
    chat_refused_full_total                                             counter
    chat_lock_acquisitions_total{section}                               counter
    chat_lock_contended_total{section}                                  counter
    chat_lock_wait_seconds{section}, chat_lock_hold_seconds{section}    histograms
    chat_lock_held_seconds{section}                                     gauge
    chat_lock_site_acquisitions_total{section,site}                     counter
    chat_lock_site_contended_total{section,site}                        counter
    chat_lock_site_wait_seconds{section,site}                           histogram
    chat_lock_site_hold_seconds{section,site}                           histogram
    chat_lock_blocked_by_total{section,site,holder}                     counter
    chat_unsafe_info{bug}                                               gauge (only in --unsafe mode)

``section`` is the lock's name (``registry`` for the room's lock, and one
section per other lock that :meth:`chat.room.Room.locks` reports); ``site`` is
the critical section that took it (``say``, ``join``, ...).
"""

from __future__ import annotations

import logging
import socketserver
import threading
from collections.abc import Callable, Iterable, Iterator
from typing import Any
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server

from prometheus_client import CollectorRegistry, ProcessCollector, make_wsgi_app
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily, Metric
from prometheus_client.registry import Collector

from chat.lockstat import HistogramSnapshot, InstrumentedLock, LockStatistics
from chat.room import Connection, Room

log = logging.getLogger(__name__)

#: A copy of a set or dict that another thread mutates can fail with
#: "changed size during iteration"; copying is retried this many times.
_COPY_TRIES = 5


def _snapshot(items: Callable[[], Iterable[Connection]]) -> list[Connection]:
    for _ in range(_COPY_TRIES):
        try:
            return list(items())
        except RuntimeError:
            continue  # mutated under us: try again
    return []


def _buckets(h: HistogramSnapshot) -> list[tuple[str, float]]:
    return [("+Inf" if b == float("inf") else repr(b), float(n)) for b, n in h.cumulative()]


class RoomCollector(Collector):
    """Reads the room (and its locks, when instrumented) on every scrape."""

    def __init__(self, room: Room, *, unsafe: str | None = None) -> None:
        self.room = room
        #: Every lock the room says it takes (:meth:`chat.room.Room.locks`) that
        #: measures itself; a plain lock has no figures to give.
        self.locks = [lock for lock in room.locks() if isinstance(lock, InstrumentedLock)]
        #: The injected bug's name, shown as ``chat_unsafe_info{bug}``; None for the safe server.
        self.unsafe = unsafe

    def collect(self) -> Iterator[Metric]:
        yield from self._room_metrics()
        for lock in self.locks:
            yield from lock_metrics(lock.statistics())
        if self.unsafe is not None:
            info = GaugeMetricFamily(
                "chat_unsafe_info", "1 when the server runs with a deliberately injected bug", labels=["bug"]
            )
            info.add_metric([self.unsafe], 1.0)
            yield info

    def _room_metrics(self) -> Iterator[Metric]:
        room = self.room
        stats = room.stats
        members = _snapshot(room.members.values)
        connections = _snapshot(lambda: room.connections)
        backlogs = [c.outbox.backlog() for c in connections]

        yield GaugeMetricFamily("chat_members", "Members in the room (joined, not yet left)", len(members))
        yield GaugeMetricFamily(
            "chat_connections", "Open connections, handshaking ones included", len(connections)
        )
        yield GaugeMetricFamily(
            "chat_threads", "Threads alive in the server process", threading.active_count()
        )
        yield GaugeMetricFamily(
            "chat_backlog_lines", "Lines waiting in outboxes, summed over connections", sum(backlogs)
        )
        yield GaugeMetricFamily(
            "chat_backlog_max_lines", "Lines waiting in the fullest outbox", max(backlogs, default=0)
        )
        yield CounterMetricFamily("chat_broadcasts", "Broadcast events (JOIN, MSG, LEAVE)", stats.broadcasts)
        yield CounterMetricFamily(
            "chat_deliveries", "Broadcast lines put to a member's outbox", stats.deliveries
        )
        yield CounterMetricFamily("chat_joins", "Names accepted", stats.joins)
        leaves = CounterMetricFamily("chat_leaves", "Members that left, by reason", labels=["reason"])
        for reason, n in sorted(dict(stats.leaves).items()):
            leaves.add_metric([reason], n)
        yield leaves
        yield CounterMetricFamily(
            "chat_slow_drops", "Members dropped because their backlog overflowed", stats.leaves.get("slow", 0)
        )
        yield CounterMetricFamily(
            "chat_refused_full", "Connections refused with ERR full", stats.refused_full
        )


def lock_metrics(st: LockStatistics) -> Iterator[Metric]:
    """The metric families of one lock's statistics (see the module docstring)."""
    sec = [st.name]
    acq = CounterMetricFamily("chat_lock_acquisitions", "Times the lock was taken", labels=["section"])
    acq.add_metric(sec, st.acquisitions)
    yield acq
    con = CounterMetricFamily(
        "chat_lock_contended", "Acquisitions that found the lock held and waited", labels=["section"]
    )
    con.add_metric(sec, st.contended)
    yield con
    wait = HistogramMetricFamily(
        "chat_lock_wait_seconds",
        "Time from asking for the lock to getting it (contended only)",
        labels=["section"],
    )
    wait.add_metric(sec, _buckets(st.wait), st.wait.total)
    yield wait
    hold = HistogramMetricFamily(
        "chat_lock_hold_seconds", "Time from getting the lock to releasing it", labels=["section"]
    )
    hold.add_metric(sec, _buckets(st.hold), st.hold.total)
    yield hold
    held = GaugeMetricFamily(
        "chat_lock_held_seconds",
        "How long the current holder has held the lock (0 when free)",
        labels=["section"],
    )
    held.add_metric(sec, st.held_for)
    yield held

    site_acq = CounterMetricFamily(
        "chat_lock_site_acquisitions", "Times a critical section took the lock", labels=["section", "site"]
    )
    site_con = CounterMetricFamily(
        "chat_lock_site_contended",
        "Acquisitions of a critical section that waited",
        labels=["section", "site"],
    )
    site_wait = HistogramMetricFamily(
        "chat_lock_site_wait_seconds",
        "Wait time of a critical section's contended acquisitions",
        labels=["section", "site"],
    )
    site_hold = HistogramMetricFamily(
        "chat_lock_site_hold_seconds", "Hold time of a critical section", labels=["section", "site"]
    )
    blocked = CounterMetricFamily(
        "chat_lock_blocked_by",
        "Contended acquisitions of a site, by the site that held the lock when the wait began",
        labels=["section", "site", "holder"],
    )
    for s in st.sites:
        labels = [st.name, s.site]
        site_acq.add_metric(labels, s.acquisitions)
        site_con.add_metric(labels, s.contended)
        site_wait.add_metric(labels, _buckets(s.wait), s.wait.total)
        site_hold.add_metric(labels, _buckets(s.hold), s.hold.total)
        for holder, n in sorted(s.blocked_by.items()):
            blocked.add_metric([*labels, holder], n)
    yield from (site_acq, site_con, site_wait, site_hold, blocked)


# -- serving ----------------------------------------------------------------------


#: Scrapes served at once; a connection past them is closed unanswered. A
#: scraper needs one; the bound keeps idle connections from taking threads and
#: descriptors that chat clients need.
MAX_SCRAPES = 8
#: Seconds a scrape connection may stay silent (request or keep-alive) before it is closed.
REQUEST_TIMEOUT = 5.0


class _ThreadingWSGIServer(socketserver.ThreadingMixIn, WSGIServer):
    """One thread per scrape, at most :data:`MAX_SCRAPES` at once."""

    daemon_threads = True  # a scrape in progress never holds up the server's exit

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        # Critical section: taken by the accepting thread before a scrape's
        # thread starts, released by that thread when the scrape ends.
        self._slots = threading.BoundedSemaphore(MAX_SCRAPES)

    def process_request(self, request: Any, client_address: Any) -> None:
        if not self._slots.acquire(blocking=False):
            log.debug("metrics: refusing %s: %d scrapes in progress", client_address, MAX_SCRAPES)
            self.shutdown_request(request)
            return
        try:
            super().process_request(request, client_address)
        except BaseException:
            self._slots.release()
            raise

    def process_request_thread(self, request: Any, client_address: Any) -> None:
        try:
            super().process_request_thread(request, client_address)
        finally:
            self._slots.release()

    def handle_error(self, request: Any, client_address: Any) -> None:
        # A scraper that times out or hangs up is its own business: no traceback on the server's stderr.
        log.debug("metrics: request from %s failed", client_address, exc_info=True)


class _QuietHandler(WSGIRequestHandler):
    timeout = REQUEST_TIMEOUT  # socket timeout of every read: an idle connection is closed

    def log_message(self, format: str, *args: object) -> None:  # noqa: A002 - the base class's name
        log.debug("metrics: " + format, *args)


class MetricsServer:
    """``/metrics`` over HTTP on its own thread; owned, and joined on :meth:`close`."""

    def __init__(self, host: str, port: int, registry: CollectorRegistry) -> None:
        self._httpd = make_server(
            host,
            port,
            make_wsgi_app(registry),
            server_class=_ThreadingWSGIServer,
            handler_class=_QuietHandler,
        )
        self.host = host
        self.port: int = self._httpd.server_address[1]
        self._thread = threading.Thread(
            target=self._httpd.serve_forever, kwargs={"poll_interval": 0.2}, name="metrics", daemon=True
        )

    @property
    def url(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}/metrics"

    def start(self) -> MetricsServer:
        self._thread.start()
        return self

    def close(self, timeout: float = 1.0) -> None:
        if self._thread.is_alive():
            self._httpd.shutdown()
            self._thread.join(timeout)
        self._httpd.server_close()


def serve_metrics(room: Room, host: str, port: int, *, unsafe: str | None = None) -> MetricsServer:
    """Start serving the room's metrics; raises ``OSError`` when the port cannot be bound."""
    registry = CollectorRegistry(auto_describe=False)
    ProcessCollector(registry=registry)  # process_cpu_seconds_total, process_resident_memory_bytes, ...
    registry.register(RoomCollector(room, unsafe=unsafe))
    return MetricsServer(host, port, registry).start()
