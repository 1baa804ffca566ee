"""The bench's cases, and the runner that repeats them alternating the servers.

``saturation``, ``latency``, ``memory`` and ``instrumentation`` drive the load generator
(:mod:`harness.bench.loadgen`) against a server the bench starts for each run (or the ``--target``);
the memory case then runs the scale swarm (:mod:`harness.bench.scale`), and ``checker`` times the
checker (:mod:`harness.bench.checker_speed`). docs/performance.md says how each is measured.

Every run leaves one record (a dict, stored as is in the summary's ``runs``), whether it measured or
failed; a failure is the record's ``error``, and the other runs go on.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any, NamedTuple, TypeVar

from harness.bench.checker_speed import checker_speed
from harness.bench.loadgen import LoadError, LoadResult, LoadSpec, run_load
from harness.bench.loadgen.spec import DEFAULT_JOIN_WAVE
from harness.bench.loadgen.wire import Protocol
from harness.bench.reports import progress_line
from harness.bench.scale import swarm_scale
from harness.bench.settings import PEER_CASES, TARGET, Settings
from harness.common.latency import percentile
from harness.common.launcher import ServerStartError, start_chat_server
from harness.common.peers import PEERS, PeerNotInstalled, missing_reason, peer_version, start_peer
from harness.common.procstat import find_listening_pid, sample_process

log = logging.getLogger(__name__)

T = TypeVar("T")

#: A latency run whose server delivered less than this share of the offered rate was past its capacity:
#: its latencies are those of a growing queue (marked OVERLOADED).
OVERLOAD_SHARE = 0.95
#: Connections a bench server admits beyond the run's members (a margin for reconnects and probes).
SLOTS_MARGIN = 20


# -- the servers under test ------------------------------------------------------------------------


class Target(NamedTuple):
    """The server a run drives; ``pid`` is None for a ``--target`` whose process is not visible."""

    host: str
    port: int
    pid: int | None
    protocol: Protocol = "chat"
    #: Members each generator process connects at once: fewer than the server's listen backlog.
    join_wave: int = DEFAULT_JOIN_WAVE


#: Connections kept pending below a peer's listen backlog: a full accept queue drops SYNs, and each
#: costs the client a 1 s retransmission.
BACKLOG_MARGIN = 2


@contextlib.contextmanager
def server_for(settings: Settings, design: str, members: int, extra: Sequence[str] = ()) -> Iterator[Target]:
    """The server to drive: a fresh ``chat.server --delivery DESIGN`` for the block, a fresh peer server
    (``design`` names one of :data:`harness.common.peers.PEERS`), or the ``--target``.

    A fresh server that logged a traceback fails the run (LoadError) even when the load went through.
    """
    if design in PEERS:
        with _peer_for(design) as target:
            yield target
        return
    if design == TARGET:
        assert settings.target is not None
        host, port = settings.target
        yield Target(host, port, find_listening_pid(port))
        return
    try:
        server = start_chat_server("--max-clients", str(members + SLOTS_MARGIN), "--delivery", design, *extra)
    except ServerStartError as exc:
        raise LoadError(f"the server did not start: {exc}") from None
    try:
        yield Target(server.host, server.port, server.pid)
        problem = _traceback_tail(server.log())
        if problem:
            raise LoadError(f"the server logged a traceback: {problem}")
    finally:
        server.stop()


@contextlib.contextmanager
def _peer_for(name: str) -> Iterator[Target]:
    try:
        peer = start_peer(name)
    except (PeerNotInstalled, ServerStartError) as exc:
        raise LoadError(f"{name} did not start: {exc}") from None
    with peer:
        wave = min(DEFAULT_JOIN_WAVE, max(1, peer.spec.accept_backlog - BACKLOG_MARGIN))
        yield Target(peer.endpoint.host, peer.endpoint.port, peer.pid, peer.spec.protocol, wave)


def _traceback_tail(log_text: str) -> str:
    """The last lines of a server's log when it holds a traceback, else ''."""
    if "Traceback" not in log_text:
        return ""
    return " | ".join(log_text.strip().splitlines()[-3:])


class Baseline(NamedTuple):
    """RSS and threads of a fresh server with nobody connected: what a member's bytes are counted from."""

    rss: int | None
    threads: int | None


def server_baseline(design: str) -> Baseline:
    try:
        server = start_chat_server("--max-clients", "10", "--delivery", design)
    except ServerStartError as exc:
        log.warning("no baseline for %s: %s", design, exc)
        return Baseline(None, None)
    try:
        sample = sample_process(server.pid)
        return Baseline(sample.rss, sample.threads) if sample else Baseline(None, None)
    finally:
        server.stop()


@dataclass
class MemoryProbe:
    """The server's RSS and threads once every member joined (idle), and their peak while chatting."""

    idle_rss: int | None = None
    idle_threads: int | None = None
    chat_rss: int | None = None
    chat_threads: int | None = None

    def on_idle(self, pid: int | None) -> None:
        sample = sample_process(pid) if pid is not None else None
        if sample is not None:
            self.idle_rss, self.idle_threads = sample.rss, sample.threads

    def on_tick(self, pid: int | None) -> None:
        sample = sample_process(pid) if pid is not None else None
        if sample is not None:
            self.chat_rss = max(self.chat_rss or 0, sample.rss)
            self.chat_threads = max(self.chat_threads or 0, sample.threads)

    def figures(self) -> dict[str, int]:
        """What was read, as the run record stores it."""
        return {k: v for k, v in vars(self).items() if v is not None}


# -- one run ---------------------------------------------------------------------------------------


def run_record(case: str, design: str, members: int, rep: int, **extra: Any) -> dict[str, Any]:
    return {"case": case, "design": design, "members": members, "rep": rep, **extra}


def load_fields(r: LoadResult) -> dict[str, Any]:
    """The figures of one load run, as stored in the JSON."""
    return {
        "deliveries_per_s": round(r.deliveries_per_s, 1),
        "messages_per_s": round(r.deliveries_per_s / max(1, r.spec.members), 1),
        # Deliveries per second of server CPU: steadier than the rate when other programs take cores.
        "deliveries_per_cpu_s": round(r.deliveries_per_s / (r.cpu.server / 100.0), 1)
        if r.cpu.server is not None and r.cpu.server >= 1.0
        else None,
        "window_s": round(r.window_s, 3),
        "sent": r.sent,
        "expected": r.expected,
        "received": r.received,
        "lost": r.lost,
        "extra": r.extra,
        "drops": r.drops,
        "order_violations": r.order_violations,
        "order_sampled": r.sampled,
        "witnesses": r.witnesses,
        "server_cpu": None if r.cpu.server is None else round(r.cpu.server, 1),
        "generator_cpu": round(r.cpu.generator, 1),
        "generator_cpu_max": round(r.cpu.generator_max, 1),
        "machine_cpu": round(r.cpu.machine, 1),
        "generator_bound": r.generator_bound,
        "connect_s": round(r.connect_s, 3),
        "clean": r.is_clean,
        "error": None,
    }


def latency_fields(latencies: Sequence[float]) -> dict[str, Any]:
    """p50, p99 and max of a latency run's samples (seconds in, ms out, :mod:`harness.common.latency`)."""
    if not latencies:
        return {"samples": 0}
    p50, p99 = percentile(latencies, 0.50), percentile(latencies, 0.99)
    assert p50 is not None and p99 is not None
    return {
        "samples": len(latencies),
        "p50_ms": round(p50 * 1e3, 3),
        "p99_ms": round(p99 * 1e3, 3),
        "max_ms": round(max(latencies) * 1e3, 3),
    }


def _failed(record: dict[str, Any], exc: BaseException) -> dict[str, Any]:
    record.update({"error": str(exc), "clean": False, "generator_bound": False})
    return record


def rotated(rep: int, items: Sequence[T]) -> list[T]:
    """``items`` rotated by ``rep``, so that no design always runs first (or last) on a warming machine."""
    k = rep % max(1, len(items))
    return list(items[k:]) + list(items[:k])


class Bench:
    """Runs the selected cases; collects one record per run; says each run's figures to ``progress``."""

    def __init__(self, settings: Settings, progress: Callable[[str], None]) -> None:
        self.s = settings
        self.progress = progress
        self.runs: list[dict[str, Any]] = []
        self.notes: dict[str, str] = {}  # case (or peer) -> why it was not available
        self.extra: dict[str, Any] = {}  # case -> figures that are not per-run records
        #: Each peer asked for: whether it runs, its version, or why not (the summary's ``peers``).
        self.peers: dict[str, dict[str, Any]] = {}
        for name in settings.peers:
            reason = missing_reason(name)
            self.peers[name] = {"available": reason is None, "version": peer_version(name), "note": reason}
            if reason is not None:
                self.notes[name] = reason

    def servers(self, case: str) -> list[str]:
        """The servers a case compares: our designs (or the ``--target``), then the installed peers."""
        peers = [n for n, info in self.peers.items() if info["available"]] if case in PEER_CASES else []
        return self.s.designs_to_run + peers

    def run(self) -> None:
        """Every selected case, in the order of :data:`harness.bench.settings.CASES`."""
        cases: dict[str, Callable[[], None]] = {
            "saturation": self.saturation,
            "latency": self.latency,
            "memory": self.memory,
            "instrumentation": self.instrumentation,
            "checker": self.checker,
        }
        for name, case in cases.items():
            if name in self.s.cases:
                case()

    def _spec(self, target: Target, members: int, **kw: Any) -> LoadSpec:
        base: dict[str, Any] = {
            "publishers": self.s.publishers,
            "procs": self.s.procs,
            "window": self.s.window,
            "warmup": self.s.warmup,
            "connect_timeout": self.s.connect_timeout,
        }
        base.update(kw)
        return LoadSpec(
            host=target.host,
            port=target.port,
            members=members,
            protocol=target.protocol,
            join_wave=target.join_wave,
            **base,
        )

    def _load(
        self,
        record: dict[str, Any],
        members: int,
        spec_kw: dict[str, Any],
        extra: Sequence[str] = (),
        probe: MemoryProbe | None = None,
    ) -> LoadResult | None:
        """One load run against a server of the record's design; its figures (or error) go into ``record``."""
        try:
            with server_for(self.s, record["design"], members, extra) as target:
                result = run_load(
                    self._spec(target, members, **spec_kw),
                    server_pid=target.pid,
                    on_joined=(lambda: probe.on_idle(target.pid)) if probe else None,
                    on_tick=(lambda: probe.on_tick(target.pid)) if probe else None,
                )
            record.update(load_fields(result))
            return result
        except (LoadError, OSError) as exc:
            _failed(record, exc)
            return None
        finally:
            self.runs.append(record)

    # -- the cases -------------------------------------------------------------------------------
    def saturation(self) -> None:
        s = self.s
        for rep in range(s.reps):
            for members in s.sizes:
                for design in rotated(rep, self.servers("saturation")):
                    record = run_record("saturation", design, members, rep)
                    self._load(record, members, {"kind": "saturate", "seconds": s.seconds})
                    self.progress(progress_line(record))

    def instrumentation(self) -> None:
        s = self.s
        if s.target:
            self.notes["instrumentation"] = "not available with --target (needs a server the bench starts)"
            return
        members = s.instrumentation_members
        variants: list[tuple[str, tuple[str, ...]]] = [
            ("batched", ()),
            ("batched+metrics", ("--metrics-port", "0")),
        ]
        for rep in range(s.reps):
            for label, extra in rotated(rep, variants):
                record = run_record("instrumentation", "batched", members, rep, variant=label)
                self._load(record, members, {"kind": "saturate", "seconds": s.seconds}, extra=extra)
                self.progress(progress_line(record))

    def latency(self) -> None:
        s = self.s
        members = s.latency_members
        for rep in range(s.reps):
            for rate in s.rates:
                for design in rotated(rep, self.servers("latency")):
                    record = run_record("latency", design, members, rep, rate=rate)
                    result = self._load(
                        record,
                        members,
                        {"kind": "rate", "rate": rate, "parse": True, "seconds": s.latency_seconds},
                    )
                    if result is not None and result.latencies is not None:
                        record.update(
                            **latency_fields(result.latencies),
                            offered_per_s=rate * members,
                            overloaded=result.deliveries_per_s < OVERLOAD_SHARE * rate * members,
                        )
                    self.progress(progress_line(record))

    def memory(self) -> None:
        s = self.s
        if s.target:
            self.notes["memory"] = "not available with --target (needs a server the bench starts)"
        else:
            designs = [d for d in s.memory_designs if d in s.designs] or s.memory_designs
            for rep in range(s.memory_reps):
                for members in s.memory_sizes:
                    for design in rotated(rep, designs):
                        self._memory_run(design, members, rep)
        self.extra["swarm"] = swarm_scale(s, self.progress)

    def _memory_run(self, design: str, members: int, rep: int) -> None:
        s = self.s
        record = run_record("memory", design, members, rep, rate=s.memory_rate)
        probe = MemoryProbe()
        baseline = server_baseline(design)
        spec_kw = {"kind": "rate", "rate": s.memory_rate, "seconds": s.memory_seconds, "warmup": 0.2}
        self._load(record, members, spec_kw, probe=probe)
        record.update(baseline_rss=baseline.rss, baseline_threads=baseline.threads, **probe.figures())
        if "deliveries_per_s" in record:
            offered = s.memory_rate * members
            record["overloaded"] = record["deliveries_per_s"] < OVERLOAD_SHARE * offered
        if probe.idle_rss is not None and baseline.rss:
            record["bytes_per_member"] = round((probe.idle_rss - baseline.rss) / members)
        self.progress(progress_line(record))

    def checker(self) -> None:
        info = checker_speed(self.s.checker_events, self.s.quick or self.s.tiny, run_dir=self.s.checker_run)
        self.extra["checker"] = info
        if info.get("available"):
            self.progress(f"checker: {info['events']:,} events in {info['seconds']:.2f} s")
        else:
            self.notes["checker"] = info["note"]
