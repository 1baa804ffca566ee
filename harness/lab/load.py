"""Load experiments for the notebooks on lock contention (03) and slow consumers (04).

Not a load generator and not a new kit: each experiment is a few calls of
:mod:`harness.lab` (a server subprocess, a swarm subprocess, a record read into
pandas, a metrics scrape) arranged the way the two notebooks need them, so that
their cells show the lesson and copy no loop or parsing.

* :func:`run_sweep` runs one short swarm per (broadcast design, client count)
  against a server of that design, and brackets each run with two scrapes of
  the server's ``/metrics`` and two readings of its CPU time. The run's figures
  are then *differences* between the two scrapes (:func:`harness.lab.locks_frame`
  with ``since``), so one server serves every client count of its design.
* :func:`run_slow_consumer` runs the ``slow`` scenario (one member that stops
  reading) against the safe server or an ``--unsafe`` one, with the same
  settings, so that the two records differ only by the server.
* The rest are pure functions from those results to tables.

Every wait is the lab's (a ready line, a process exit with a timeout); nothing
here sleeps.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from chat import protocol
from harness.common.metrics_scrape import LockSample, MetricsSnapshot
from harness.common.procstat import cpu_seconds
from harness.lab.frames import RunFrames
from harness.lab.locks import lock_histogram, locks_frame, scrape_metrics
from harness.lab.servers import chat_server
from harness.lab.swarms import SwarmRun, run_swarm
from harness.record.history import Received
from harness.swarm.run import START_AHEAD

#: The broadcast designs of ``chat.server --delivery``, oldest first (docs/architecture.md).
DESIGNS = ("direct", "queued", "batched")
#: The client counts notebook 03 sweeps: from a quiet room to one where a
#: message is a hundred deliveries.
SWEEP_CLIENTS = (5, 20, 50, 100)
#: Connections a sweep server admits per client of the largest run: the swarm's
#: own rule (twice the bots, plus some) so a bot that reconnects is never refused.
CLIENTS_HEADROOM = 2
#: The registry lock: the room's one lock (docs/metrics.md).
REGISTRY = "registry"


# -- notebook 03: a sweep over clients and designs ------------------------------------------


def server_cpu_seconds(pid: int) -> float:
    """User plus system CPU seconds the process ``pid`` has used so far."""
    seconds = cpu_seconds(pid)
    if seconds is None:
        raise ProcessLookupError(f"no process {pid}")
    return seconds


@dataclass(frozen=True)
class LoadPoint:
    """One swarm run of a sweep: its settings, its verdict, and the server's figures around it."""

    design: str
    clients: int
    rate: float
    run: SwarmRun
    before: MetricsSnapshot
    """The server's metrics just before the swarm started."""
    after: MetricsSnapshot
    """The server's metrics just after the swarm ended (every bot gone)."""
    server_cpu_s: float
    """CPU seconds the server used between the two scrapes (all its threads, user + system)."""

    @property
    def offered_per_s(self) -> float:
        """Deliveries per second the swarm asks for: every message goes to every member, sender included."""
        return self.rate * self.clients * self.clients

    @property
    def chat_seconds(self) -> float:
        """Seconds from the start of the chat phase until every sender had its last message back.

        Equal to the swarm's ``--duration`` (plus one message's latency) while
        the server keeps up; longer when messages queued up and had to drain.
        From the summary's ``cpu.load.window_s`` (docs/run-record.md), which
        also counts the swarm's :data:`harness.swarm.START_AHEAD` before the start.
        """
        load = (self.run.summary.get("cpu") or {}).get("load") or {}
        window = load.get("window_s")
        duration = float(self.run.summary.get("duration_s") or 0.0)
        if not isinstance(window, (int, float)):
            return duration
        return max(duration, float(window) - START_AHEAD)

    @property
    def achieved_per_s(self) -> float:
        """Deliveries per second the bots actually received, over :attr:`chat_seconds`."""
        seconds = self.chat_seconds
        return float(self.run.summary.get("deliveries", 0)) / seconds if seconds > 0 else 0.0

    def locks(self) -> pd.DataFrame:
        """:func:`harness.lab.locks_frame` over this run only (the lock and each critical section)."""
        return locks_frame(self.after, since=self.before)

    def hold_seconds(self, site: str = "", lock: str = REGISTRY) -> float:
        """Total seconds the lock was held during this run (the hold histogram's sum)."""
        now = _lock_sample(self.after, lock, site)
        then = _lock_sample(self.before, lock, site)
        if now is None or now.hold is None:
            return 0.0
        return now.hold.minus(then.hold if then is not None else None).total


def _lock_sample(snapshot: MetricsSnapshot, lock: str, site: str) -> LockSample | None:
    return next((lk for lk in snapshot.locks if (lk.section, lk.site) == (lock, site)), None)


def run_sweep(
    record_root: str | os.PathLike[str],
    *,
    designs: Sequence[str] = DESIGNS,
    clients: Sequence[int] = SWEEP_CLIENTS,
    duration: float = 1.5,
    rate: float = 10.0,
    seed: int = 1,
    ramp: float = 0.0,
) -> list[LoadPoint]:
    """One ``chat`` swarm per (design, client count), each against a metrics-enabled server of that design.

    Designs run one after the other, each with a server of its own (started
    and stopped by PID); the client counts of a design run in the given order
    against that server. Every bot chats at ``rate`` messages per second for
    ``duration`` seconds on an open-loop schedule. ``ramp`` is the swarm's
    ``--ramp`` (0: all bots join at once; the join is not what is measured).
    Records go to ``record_root/<design>-<clients>/``. A run that gives no
    verdict raises RuntimeError (from :func:`harness.lab.run_swarm`).

    The swarm is not given the metrics URL: the two scrapes around each run
    are all the figures need, and a server scraped every second meanwhile
    would count serving those pages in its CPU time.
    """
    root = Path(record_root)
    max_clients = max(clients) * CLIENTS_HEADROOM + 16
    points: list[LoadPoint] = []
    for design in designs:
        server_args = ("--delivery", design, "--max-clients", str(max_clients))
        with chat_server(*server_args, metrics=True) as srv:
            if srv.metrics_url is None:
                raise RuntimeError("the server announced no metrics URL")
            for n in clients:
                before = scrape_metrics(srv.metrics_url)
                cpu_before = server_cpu_seconds(srv.pid)
                run = run_swarm(
                    root / f"{design}-{n}",
                    clients=n,
                    duration=duration,
                    seed=seed,
                    extra=[
                        "--rate",
                        f"{rate:g}",
                        "--ramp",
                        f"{ramp:g}",
                        "--target",
                        srv.address,
                    ],
                )
                cpu_after = server_cpu_seconds(srv.pid)
                after = scrape_metrics(srv.metrics_url)
                points.append(LoadPoint(design, n, rate, run, before, after, cpu_after - cpu_before))
    return points


def sweep_frame(points: Iterable[LoadPoint], site: str = "", lock: str = REGISTRY) -> pd.DataFrame:
    """One row per run: offered and achieved deliveries/s, latency, server CPU, and the lock's figures.

    Columns: design, clients, verdict, offered_per_s, achieved_per_s,
    chat_s, p50_ms, p99_ms, max_ms (latency from each message's due time to
    its receipt), server_cpu_s, cpu_us_per_delivery (server CPU per delivery
    received), then the lock's figures over the whole run: acquisitions,
    contended_share, wait_p99_ms, hold_p50_ms, hold_p99_ms, and lock_busy
    (seconds held per second of chat phase: 0.5 means held half the time).
    The lock figures are those of ``site`` (a critical section, e.g. ``say``)
    or, with ``site`` empty, of the whole lock.
    """
    rows = []
    for p in points:
        latency = p.run.summary.get("latency_ms") or {}
        locks = p.locks()
        found = locks[(locks["lock"] == lock) & (locks["site"] == site)]
        lk = found.iloc[0] if len(found) else None
        deliveries = float(p.run.summary.get("deliveries", 0))
        rows.append(
            {
                "design": p.design,
                "clients": p.clients,
                "verdict": p.run.verdict,
                "offered_per_s": p.offered_per_s,
                "achieved_per_s": p.achieved_per_s,
                "chat_s": p.chat_seconds,
                "p50_ms": latency.get("p50_ms"),
                "p99_ms": latency.get("p99_ms"),
                "max_ms": latency.get("max_ms"),
                "server_cpu_s": p.server_cpu_s,
                "cpu_us_per_delivery": p.server_cpu_s / deliveries * 1e6 if deliveries else None,
                "acquisitions": lk["acquisitions"] if lk is not None else None,
                "contended_share": lk["contended_share"] if lk is not None else None,
                "wait_p99_ms": lk["wait_p99_ms"] if lk is not None else None,
                "hold_p50_ms": lk["hold_p50_ms"] if lk is not None else None,
                "hold_p99_ms": lk["hold_p99_ms"] if lk is not None else None,
                "lock_busy": p.hold_seconds(site, lock) / p.chat_seconds if p.chat_seconds > 0 else None,
            }
        )
    frame = pd.DataFrame(rows)
    float_columns = [c for c in frame.columns if c not in ("design", "clients", "verdict")]
    return frame.astype({c: float for c in float_columns})


def sites_frame(points: Iterable[LoadPoint]) -> pd.DataFrame:
    """:meth:`LoadPoint.locks` of every run, critical sections only, plus design, clients and hold_s."""
    parts = []
    for p in points:
        locks = p.locks()
        locks = locks[locks["site"] != ""].copy()
        locks.insert(0, "clients", p.clients)
        locks.insert(0, "design", p.design)
        pairs = zip(locks["lock"], locks["site"], strict=True)
        locks["hold_s"] = [p.hold_seconds(site, lock) for lock, site in pairs]
        parts.append(locks)
    return pd.concat(parts, ignore_index=True) if parts else pd.DataFrame()


def histograms_frame(
    points: Iterable[LoadPoint], kind: str = "wait", site: str = "", lock: str = REGISTRY
) -> pd.DataFrame:
    """The ``kind`` (``wait`` or ``hold``) histogram of every run, as bars with ``design`` and ``clients``.

    Columns: design, clients, lo_ms, hi_ms, count (from
    :func:`harness.lab.lock_histogram`, this run only) and share (count over
    the run's total, so runs of different sizes compare). A run in which the
    site never took the lock has no rows.
    """
    parts = []
    for p in points:
        try:
            bars = lock_histogram(p.after, kind, site=site, lock=lock, since=p.before)
        except KeyError:
            continue  # this server never entered that section
        total = float(bars["count"].sum())
        if total <= 0:
            continue
        bars = bars.assign(share=bars["count"] / total)
        bars.insert(0, "clients", p.clients)
        bars.insert(0, "design", p.design)
        parts.append(bars)
    if not parts:
        return pd.DataFrame(columns=["design", "clients", "lo_ms", "hi_ms", "count", "share"])
    return pd.concat(parts, ignore_index=True)


# -- notebook 04: one member stops reading ----------------------------------------------------


def run_slow_consumer(
    record_dir: str | os.PathLike[str],
    *,
    bug: str | None = None,
    clients: int = 6,
    duration: float = 4.0,
    rate: float = 20.0,
    pad: int = 100,
    max_backlog: int = 200,
    delivery_bound: float = 1.5,
    seed: int = 1,
) -> SwarmRun:
    """The ``slow`` scenario against the swarm's own server: a fifth of the bots (one, below 10) stop reading.

    The slow bot joins with a small receive buffer and reads nothing for the
    whole chat phase; the swarm gives the server ``--sndbuf 4096`` for that
    (docs/swarm.md), and ``--unsafe send-under-lock`` keeps it at most that.
    ``pad`` bytes on every message fill those small buffers within about a
    second. ``max_backlog`` is the server's ``--max-backlog`` (lines queued for
    one member before it is dropped as slow; ``direct`` has no queue, so it
    does not apply there). ``delivery_bound`` is the swarm's: a message that
    takes longer to arrive is a liveness violation. ``bug`` is an ``--unsafe``
    mode, or None for the safe server; everything else is the same for both.
    """
    return run_swarm(
        record_dir,
        scenario="slow",
        clients=clients,
        duration=duration,
        seed=seed,
        bug=bug,
        extra=[
            "--rate",
            f"{rate:g}",
            "--pad",
            str(pad),
            "--delivery-bound",
            f"{delivery_bound:g}",
            f"--server-arg=--max-backlog {max_backlog}",
        ],
    )


def others_deliveries(frames: RunFrames, role: str = "slow") -> pd.DataFrame:
    """The deliveries received by everyone *but* the members with ``role``, with ``due_s`` added.

    ``due_s`` is when the message was due to be sent, in seconds from the
    record's first event (the same origin as ``s``, the time of receipt).
    """
    d = frames.deliveries
    others = d[d["role"] != role]
    return others.assign(due_s=others["due"] - frames.start)


def latency_bins(deliveries: pd.DataFrame, bin_s: float = 0.25, by: str = "due_s") -> pd.DataFrame:
    """Latency per time bin: ``s`` (bin start, seconds), count, p50_ms, p99_ms and max_ms.

    ``by`` is the time column that places a delivery in a bin: ``due_s`` (when
    the message was due to be sent: what the users waited through) or ``s``
    (when it arrived). Empty bins are left out.
    """
    if bin_s <= 0:
        raise ValueError(f"bin_s must be positive, not {bin_s!r}")
    columns = ["s", "count", "p50_ms", "p99_ms", "max_ms"]
    if not len(deliveries):
        return pd.DataFrame(columns=columns)
    bins = (deliveries[by] // bin_s).astype(int)
    grouped = deliveries.groupby(bins)["latency_ms"]
    out = pd.DataFrame(
        {
            "count": grouped.size(),
            "p50_ms": grouped.quantile(0.5),
            "p99_ms": grouped.quantile(0.99),
            "max_ms": grouped.max(),
        }
    )
    out.insert(0, "s", out.index * bin_s)
    return out.reset_index(drop=True)[columns]


def slow_drops(frames: RunFrames) -> pd.DataFrame:
    """Members the server dropped as slow: the first ``LEAVE <seq> <name> slow`` anyone received.

    Columns: s (seconds from the record's first event), seq, name, and
    seen_by (how many connections received that LEAVE). Lines are parsed by
    :func:`chat.protocol.parse_server_line`.
    """
    first: dict[str, tuple[float, int | None]] = {}
    seen: dict[str, int] = {}
    for h in frames.histories:
        for e in h.events:
            if not isinstance(e, Received) or not e.line.startswith("LEAVE "):
                continue
            try:
                event = protocol.parse_server_line(e.line)
            except protocol.RemoteProtocolError:
                continue  # a garbled line is the checker's business
            if not isinstance(event, protocol.Leave) or event.reason != protocol.LeaveReason.SLOW:
                continue
            seen[event.name] = seen.get(event.name, 0) + 1
            if event.name not in first or e.t < first[event.name][0]:
                first[event.name] = (e.t, event.seq)
    rows = [(t - frames.start, seq, name, seen[name]) for name, (t, seq) in first.items()]
    frame = pd.DataFrame(rows, columns=["s", "seq", "name", "seen_by"])
    return frame.sort_values("s", ignore_index=True)
