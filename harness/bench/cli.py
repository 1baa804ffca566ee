"""``python -m harness.bench``: throughput, latency, memory and scale of the chat server, side by side.

Not a test (it never passes or fails on speed) and not a load generator (that is :mod:`harness.loadgen`):
this module starts the servers it compares, runs the cases, repeats them alternating the servers, and turns
the runs into medians, ratios and a table. Absolute figures on shared machines move by tens of percent from
run to run, so every claim it makes is a ratio between servers measured in the same run.

Cases (``--cases``):

``saturation``       deliveries/s summed over all members at 10, 50 and 200 members, 5 publishers, 64-byte
                     messages, closed loop with a bounded window, per ``--delivery`` design;
``latency``          50 members, 200 and 2000 msg/s in total on an open-loop schedule: p50, p99 and max
                     from each message's due time to its receipt, per design;
``memory``           server RSS and threads at 100, 500 and 1000 members, idle and then chatting;
                     bytes per member; and the largest swarm that passes, when ``harness.swarm`` exists;
``instrumentation``  saturation throughput with and without ``--metrics-port`` (lock metrics on);
``checker``          events per second through :mod:`harness.checker` on a 1,000,000-event history.

A figure from a run in which the generator, not the server, ran out of CPU is marked ``generator-bound``
and never counts as the server's (see :func:`harness.loadgen.is_generator_bound`).

Exit status: 0 when every run completed cleanly; 1 when a run failed or saw loss, reordering or a slow drop
(the figures are still printed); 2 for a usage error; 130 when interrupted (Ctrl+C: the runs done so far
are still reported and recorded).
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import importlib.util
import json
import logging
import math
import os
import platform
import select
import shlex
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

from rich.console import Console
from rich.table import Table
from rich.text import Text

from chat import cli
from harness.bench.loadgen import LoadError, LoadResult, LoadSpec, run_load

log = logging.getLogger(__name__)

T = TypeVar("T")

CASES = ("saturation", "latency", "memory", "instrumentation", "checker")
DESIGNS = ("direct", "queued", "batched")
TARGET = "target"

#: Reference figures quoted by the benchmark issue, measured on this machine kind but NOT here: ngircd (C,
#: epoll) in saturation, M deliveries/s at 10, 50 and 200 members. Shown for orientation only.
NGIRCD_REFERENCE = {10: 2.8e6, 50: 3.3e6, 200: 3.9e6}

#: The bar the issue sets.
GOAL_RATIO_BIG = 4.0  # batched / direct at 50 and 200 members
GOAL_P99_MS = 3.0  # batched, 200 msg/s, 50 members
GOAL_MEMBERS = 1000
GOAL_CHECKER_S = 10.0  # for 1,000,000 events

#: The scale swarm: messages per second over all its bots (each bot parses and records every line, so
#: this is kept small), the handshake bound it is judged with, and how long one swarm may take.
SWARM_TOTAL_RATE = 20.0
SWARM_HANDSHAKE_BOUND = 60.0
SWARM_DELIVERY_BOUND = 30.0
SWARM_TIMEOUT = 600.0

#: A latency run whose server delivered less than this share of the offered rate was past its capacity:
#: its latencies are those of a growing queue (marked OVERLOADED).
OVERLOAD_SHARE = 0.95

SERVER_START_TIMEOUT = 15.0
SERVER_STOP_TIMEOUT = 5.0


# -- settings --------------------------------------------------------------------------------------


@dataclass
class Settings:
    """Everything a bench run is parameterised by; stored in meta.json."""

    cases: list[str] = field(default_factory=lambda: list(CASES))
    designs: list[str] = field(default_factory=lambda: list(DESIGNS))
    target: tuple[str, int] | None = None
    reps: int = 3
    quick: bool = False
    tiny: bool = False
    sizes: list[int] = field(default_factory=lambda: [10, 50, 200])
    publishers: int = 5
    seconds: float = 3.0  # saturation window
    warmup: float = 0.5
    window: int = 200
    procs: int = 2
    rates: list[float] = field(default_factory=lambda: [200.0, 2000.0])
    latency_members: int = 50
    latency_seconds: float = 4.0
    memory_sizes: list[int] = field(default_factory=lambda: [100, 500, 1000])
    memory_designs: list[str] = field(default_factory=lambda: list(DESIGNS))
    memory_rate: float = 100.0
    memory_seconds: float = 2.0
    #: Memory and thread counts barely move between runs, and a 1000-member run takes a while: one
    #: repetition unless --memory-reps says otherwise.
    memory_reps: int = 1
    instrumentation_members: int = 50
    checker_events: int = 1_000_000
    checker_run: str | None = None
    swarm_sizes: list[int] = field(default_factory=lambda: [100, 500, 1000])
    swarm_seconds: float = 8.0
    connect_timeout: float = 120.0

    def to_json(self) -> dict[str, Any]:
        d = dataclasses.asdict(self)
        d["target"] = f"{self.target[0]}:{self.target[1]}" if self.target else None
        return d


# -- the servers under test ------------------------------------------------------------------------


class ManagedServer:
    """``python -m chat.server`` on a free port, started and stopped by PID."""

    def __init__(self, design: str, max_clients: int, extra: Sequence[str] = ()) -> None:
        self.design = design
        self.command = [
            sys.executable,
            "-m",
            "chat.server",
            "--host",
            "127.0.0.1",
            "--port",
            "0",
            "--max-clients",
            str(max_clients),
            "--delivery",
            design,
            *extra,
        ]
        self.proc: subprocess.Popen[bytes] | None = None
        self.port = 0
        # Closed in close(): the file lives as long as the server does.
        self._stderr = tempfile.TemporaryFile()  # noqa: SIM115

    @property
    def pid(self) -> int | None:
        return self.proc.pid if self.proc is not None else None

    def start(self) -> ManagedServer:
        self.proc = subprocess.Popen(self.command, stdout=subprocess.PIPE, stderr=self._stderr)
        assert self.proc.stdout is not None
        ready, _, _ = select.select([self.proc.stdout], [], [], SERVER_START_TIMEOUT)
        line = self.proc.stdout.readline().decode(errors="replace") if ready else ""
        if not line.startswith("listening on "):
            self.stop()
            raise LoadError(
                f"the server did not start: {line.strip() or 'no listening line'}; {self.errors()}"
            )
        self.port = int(line.strip().rsplit(":", 1)[1])
        return self

    def stop(self) -> None:
        proc = self.proc
        if proc is None:
            return
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(SERVER_STOP_TIMEOUT)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(SERVER_STOP_TIMEOUT)
        if proc.stdout is not None:
            proc.stdout.close()

    def errors(self) -> str:
        """The last lines of the server's stderr, when it logged a traceback."""
        self._stderr.seek(0)
        text = self._stderr.read().decode(errors="replace")
        if "Traceback" not in text:
            return ""
        return " | ".join(text.strip().splitlines()[-3:])

    def close(self) -> None:
        self.stop()
        self._stderr.close()


@contextlib.contextmanager
def server_for(
    settings: Settings, design: str, members: int, extra: Sequence[str] = ()
) -> Iterator[tuple[str, int, int | None]]:
    """``(host, port, pid)`` of the server to drive: a fresh one of ``design``, or the ``--target``."""
    if design == TARGET:
        assert settings.target is not None
        host, port = settings.target
        yield host, port, find_listening_pid(port)
        return
    server = ManagedServer(design, max_clients=members + 20, extra=extra)
    try:
        server.start()
        yield "127.0.0.1", server.port, server.pid
        problem = server.errors()
        if problem:
            raise LoadError(f"the server logged a traceback: {problem}")
    finally:
        server.close()


def find_listening_pid(port: int) -> int | None:
    """The local process listening on ``port``, so that a ``--target``'s CPU can be measured too."""
    import psutil

    try:
        for conn in psutil.net_connections(kind="tcp"):
            if conn.status == psutil.CONN_LISTEN and conn.laddr and conn.laddr.port == port and conn.pid:
                return int(conn.pid)
    except (psutil.Error, OSError):
        return None
    return None


# -- one run ---------------------------------------------------------------------------------------


def _run_record(case: str, design: str, members: int, rep: int, **extra: Any) -> dict[str, Any]:
    return {"case": case, "design": design, "members": members, "rep": rep, **extra}


def _load_fields(r: LoadResult) -> dict[str, Any]:
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


def _failed(record: dict[str, Any], exc: BaseException) -> dict[str, Any]:
    record.update({"error": str(exc), "clean": False, "generator_bound": False})
    return record


def percentile(sorted_values: Sequence[float], q: float) -> float:
    """Nearest-rank percentile of already sorted values."""
    if not sorted_values:
        return float("nan")
    k = max(0, min(len(sorted_values) - 1, math.ceil(q / 100.0 * len(sorted_values)) - 1))
    return sorted_values[k]


class Bench:
    """Runs the selected cases; collects one record per run; prints progress to ``progress``."""

    def __init__(self, settings: Settings, progress: Console) -> None:
        self.s = settings
        self.progress = progress
        self.runs: list[dict[str, Any]] = []
        self.notes: dict[str, str] = {}  # case -> why it was not available
        self.extra: dict[str, Any] = {}  # case -> figures that are not per-run records

    @property
    def designs(self) -> list[str]:
        return [TARGET] if self.s.target else list(self.s.designs)

    def _say(self, text: str) -> None:
        self.progress.print(text, highlight=False)

    def _order(self, rep: int, designs: Sequence[T]) -> list[T]:
        """Rotate the designs by rep, so that no design always runs first (or last) on a warming machine."""
        k = rep % max(1, len(designs))
        return list(designs[k:]) + list(designs[:k])

    def _spec(self, host: str, port: int, members: int, **kw: Any) -> LoadSpec:
        base: dict[str, Any] = {
            "publishers": self.s.publishers,
            "procs": self.s.procs,
            "window": self.s.window,
            "warmup": self.s.warmup,
            "connect_timeout": self.s.connect_timeout,
        }
        base.update(kw)
        return LoadSpec(host=host, port=port, members=members, **base)

    def _load(
        self,
        record: dict[str, Any],
        members: int,
        spec_kw: dict[str, Any],
        extra: Sequence[str] = (),
        on_joined: Callable[[int | None], None] | None = None,
        on_tick: Callable[[int | None], None] | None = None,
    ) -> LoadResult | None:
        design = record["design"]
        try:
            with server_for(self.s, design, members, extra) as (host, port, pid):
                result = run_load(
                    self._spec(host, port, members, **spec_kw),
                    server_pid=pid,
                    on_joined=(lambda: on_joined(pid)) if on_joined else None,
                    on_tick=(lambda: on_tick(pid)) if on_tick else None,
                )
            record.update(_load_fields(result))
            return result
        except (LoadError, OSError) as exc:
            _failed(record, exc)
            return None
        finally:
            self.runs.append(record)

    # -- saturation -----------------------------------------------------------------
    def saturation(self) -> None:
        s = self.s
        for rep in range(s.reps):
            for members in s.sizes:
                for design in self._order(rep, self.designs):
                    record = _run_record("saturation", design, members, rep)
                    self._load(record, members, {"kind": "saturate", "seconds": s.seconds})
                    self._say(_progress_line(record))

    def instrumentation(self) -> None:
        s = self.s
        if s.target:
            self.notes["instrumentation"] = "not available with --target (needs a server the bench starts)"
            return
        if not server_supports("--metrics-port"):
            self.notes["instrumentation"] = "not available: this server has no --metrics-port"
            return
        members = s.instrumentation_members
        variants: list[tuple[str, tuple[str, ...]]] = [
            ("batched", ()),
            ("batched+metrics", ("--metrics-port", "0")),
        ]
        for rep in range(s.reps):
            for label, extra in self._order(rep, variants):
                record = _run_record("instrumentation", "batched", members, rep, variant=label)
                self._load(record, members, {"kind": "saturate", "seconds": s.seconds}, extra=extra)
                self._say(_progress_line(record))

    # -- latency --------------------------------------------------------------------
    def latency(self) -> None:
        s = self.s
        members = s.latency_members
        for rep in range(s.reps):
            for rate in s.rates:
                for design in self._order(rep, self.designs):
                    record = _run_record("latency", design, members, rep, rate=rate)
                    result = self._load(
                        record,
                        members,
                        {"kind": "rate", "rate": rate, "parse": True, "seconds": s.latency_seconds},
                    )
                    if result is not None and result.latencies is not None:
                        lat = sorted(result.latencies)
                        record.update(
                            samples=len(lat),
                            p50_ms=round(percentile(lat, 50) * 1e3, 3),
                            p99_ms=round(percentile(lat, 99) * 1e3, 3),
                            max_ms=round(lat[-1] * 1e3, 3) if lat else None,
                            offered_per_s=rate * members,
                            overloaded=result.deliveries_per_s < OVERLOAD_SHARE * rate * members,
                        )
                    self._say(_progress_line(record))

    # -- memory and scale ------------------------------------------------------------
    def memory(self) -> None:
        s = self.s
        if s.target:
            self.notes["memory"] = "not available with --target (needs a server the bench starts)"
        else:
            import psutil

            designs = [d for d in s.memory_designs if d in s.designs] or s.memory_designs
            for rep in range(s.memory_reps):
                for members in s.memory_sizes:
                    for design in self._order(rep, designs):
                        record = _run_record("memory", design, members, rep, rate=s.memory_rate)
                        probe: dict[str, Any] = {}

                        def idle(pid: int | None, probe: dict[str, Any] = probe) -> None:
                            if pid is None:
                                return
                            p = psutil.Process(pid)
                            probe["idle_rss"] = p.memory_info().rss
                            probe["idle_threads"] = p.num_threads()

                        def tick(pid: int | None, probe: dict[str, Any] = probe) -> None:
                            if pid is None:
                                return
                            p = psutil.Process(pid)
                            probe["chat_rss"] = max(probe.get("chat_rss", 0), p.memory_info().rss)
                            probe["chat_threads"] = max(probe.get("chat_threads", 0), p.num_threads())

                        baseline = server_baseline(design)
                        self._load(
                            record,
                            members,
                            {
                                "kind": "rate",
                                "rate": s.memory_rate,
                                "seconds": s.memory_seconds,
                                "warmup": 0.2,
                            },
                            on_joined=idle,
                            on_tick=tick,
                        )
                        record.update(baseline_rss=baseline[0], baseline_threads=baseline[1], **probe)
                        if "deliveries_per_s" in record:
                            offered = s.memory_rate * members
                            record["overloaded"] = record["deliveries_per_s"] < OVERLOAD_SHARE * offered
                        if "idle_rss" in probe and baseline[0]:
                            record["bytes_per_member"] = round((probe["idle_rss"] - baseline[0]) / members)
                        self._say(_progress_line(record))
        self.extra["swarm"] = self.swarm_scale()

    def swarm_scale(self) -> dict[str, Any]:
        """The largest member count reached with a PASS swarm, when the swarm exists."""
        if importlib.util.find_spec("harness.swarm") is None:
            return {"available": False, "note": "not available: harness.swarm does not exist yet"}
        help_text = _module_help("harness.swarm")
        needed = (
            "--json",
            "--no-dashboard",
            "--no-record",
            "--rate",
            "--procs",
            "--handshake-bound",
            "--delivery-bound",
        )
        missing = [flag for flag in needed if flag not in help_text]
        if missing:
            return {"available": False, "note": f"not available: harness.swarm has no {', '.join(missing)}"}
        results = []
        largest = 0
        for clients in self.s.swarm_sizes:
            # A scale test, not a stress test: about SWARM_TOTAL_RATE messages/s in all, bots spread over
            # processes, and liveness bounds that allow for a thousand joins (and quits) arriving at once:
            # each one is a broadcast that wakes every member's writer.
            cmd = [
                sys.executable,
                "-m",
                "harness.swarm",
                "--json",
                "--no-dashboard",
                "--no-record",
                "--clients",
                str(clients),
                "--duration",
                str(self.s.swarm_seconds),
                "--rate",
                f"{SWARM_TOTAL_RATE / clients:.4g}",
                "--procs",
                "2" if clients >= 200 else "1",
                "--handshake-bound",
                str(SWARM_HANDSHAKE_BOUND),
                "--delivery-bound",
                str(SWARM_DELIVERY_BOUND),
            ]
            if self.s.target:
                cmd += ["--target", f"{self.s.target[0]}:{self.s.target[1]}"]
            t0 = time.monotonic()
            try:
                proc = subprocess.run(cmd, capture_output=True, text=True, timeout=SWARM_TIMEOUT)
                doc = json.loads(proc.stdout) if proc.stdout.strip().startswith("{") else {}
                exit_code: int | None = proc.returncode
                if not doc:
                    tail = proc.stderr.strip().splitlines()[-1:] or ["no output"]
                    doc = {"verdict": f"no verdict ({tail[0][:200]})"}
            except (subprocess.TimeoutExpired, json.JSONDecodeError) as exc:
                doc, exit_code = {"verdict": f"error: {exc}"}, None
            verdict = str(doc.get("verdict", "no verdict"))
            first = [
                str(v.get("message") if isinstance(v, dict) else v) for v in (doc.get("violations") or [])[:3]
            ]
            results.append(
                {
                    "clients": clients,
                    "verdict": verdict,
                    "exit_code": exit_code,
                    "joined": doc.get("joined"),
                    "violations_total": doc.get("violations_total"),
                    "checks": doc.get("checks"),
                    "first_violations": first,
                    "seconds": round(time.monotonic() - t0, 1),
                    "command": shlex.join(["python", *cmd[1:]]),
                }
            )
            self._say(f"swarm {clients} clients: {verdict} " + "; ".join(first))
            if verdict.upper().startswith("PASS"):
                largest = clients
            else:
                break
        return {"available": True, "largest_pass": largest, "runs": results}

    # -- checker --------------------------------------------------------------------
    def checker(self) -> None:
        self.extra["checker"] = checker_speed(
            self.s.checker_events, self.s.quick or self.s.tiny, run_dir=self.s.checker_run
        )
        info = self.extra["checker"]
        if info.get("available"):
            self._say(f"checker: {info['events']:,} events in {info['seconds']:.2f} s")
        else:
            self.notes["checker"] = info["note"]

    def run(self) -> None:
        for case in CASES:
            if case in self.s.cases:
                getattr(self, case)()


def _progress_line(r: dict[str, Any]) -> str:
    head = f"{r['case']:<15} {r.get('variant', r['design']):<16} {r['members']:>5} members"
    if r.get("rate"):
        head += f" {r['rate']:>7.0f} msg/s"
    head += f"  rep {r['rep'] + 1}"
    if r.get("error"):
        return f"{head}: [red]error[/red] {r['error']}"
    if r["case"] == "latency":
        body = f"p50 {r.get('p50_ms', float('nan')):.2f} ms p99 {r.get('p99_ms', float('nan')):.2f} ms"
    elif r["case"] == "memory":
        body = f"RSS idle {_mib(r.get('idle_rss'))} chatting {_mib(r.get('chat_rss'))}"
    else:
        body = f"{r['deliveries_per_s'] / 1e6:.3f} M deliveries/s"
    cpu = (
        f"cpu server {_pct(r['server_cpu'])} gen {_pct(r['generator_cpu'])} machine {_pct(r['machine_cpu'])}"
    )
    flags = _flags(r)
    return f"{head}: {body}  ({cpu}){'  ' + flags if flags else ''}"


def _flags(r: dict[str, Any]) -> str:
    out = []
    if r.get("error"):
        out.append("ERROR")
    if r.get("lost"):
        out.append(f"LOST {r['lost']}")
    if r.get("extra"):
        out.append(f"EXTRA {r['extra']}")
    if r.get("drops"):
        out.append(f"DROPS {r['drops']}")
    if r.get("order_violations"):
        out.append(f"ORDER {r['order_violations']}")
    if r.get("generator_bound"):
        out.append("GENERATOR-BOUND")
    return " ".join(out)


def server_supports(flag: str) -> bool:
    return flag in _module_help("chat.server")


def _module_help(module: str) -> str:
    try:
        proc = subprocess.run(
            [sys.executable, "-m", module, "--help"], capture_output=True, text=True, timeout=30
        )
    except (subprocess.TimeoutExpired, OSError):
        return ""
    return proc.stdout


def server_baseline(design: str) -> tuple[int | None, int | None]:
    """RSS and threads of a fresh server with nobody connected: what a member's bytes are counted from."""
    import psutil

    server = ManagedServer(design, max_clients=10)
    try:
        server.start()
        assert server.pid is not None
        p = psutil.Process(server.pid)
        return p.memory_info().rss, p.num_threads()
    except (LoadError, psutil.Error, OSError):
        return None, None
    finally:
        server.close()


# -- checker speed ---------------------------------------------------------------------------------


def checker_speed(events: int, reduced: bool, run_dir: str | None = None) -> dict[str, Any]:
    """Events/s through :func:`harness.checker.check_all`: on a synthetic clean history of ``events``,
    or on the recorded run in ``run_dir`` (a swarm's run record)."""
    if importlib.util.find_spec("harness.checker") is None:
        return {"available": False, "note": "not available: harness.checker does not exist yet"}
    import harness.checker as checker

    check_all = getattr(checker, "check_all", None)
    if check_all is None:
        return {"available": False, "note": "not available: harness.checker has no check_all()"}
    source = "synthetic"
    if run_dir is not None:
        from harness.record import store as record

        try:
            histories, summary, _ = record.load_run(run_dir)
        except (OSError, ValueError) as exc:
            return {"available": False, "note": f"not available: cannot load {run_dir}: {exc}"}
        end = summary.get("run_end")
        run_end = float(end) if isinstance(end, (int, float)) else None
        source = str(run_dir)
    else:
        histories, run_end = synthetic_histories(events)
    n_events = sum(len(h.events) for h in histories)
    config = checker.CheckConfig(run_end=run_end) if hasattr(checker, "CheckConfig") else None
    t0 = time.perf_counter()
    report = check_all(histories, config)
    seconds = time.perf_counter() - t0
    total = report.total() if hasattr(report, "total") else None
    return {
        "available": True,
        "events": n_events,
        "seconds": round(seconds, 3),
        "events_per_s": round(n_events / seconds) if seconds > 0 else None,
        "violations": total,
        "history": source,
        "note": f"{n_events:,} events, fewer than the goal's 1,000,000" + (" (quick mode)" if reduced else "")
        if n_events < 1_000_000
        else "",
    }


def synthetic_histories(events: int, members: int = 50, senders: int = 5) -> tuple[list[Any], float]:
    """A clean recorded chat run of about ``events`` events, and its end time.

    ``members`` join one after the other; ``senders`` of them chat; every member receives every
    broadcast: :func:`harness.checker.simulate_events`, the checker's generator of correct runs.
    """
    from harness.checker import simulate_events

    return simulate_events(events, members=members, senders=senders)


# -- aggregation -----------------------------------------------------------------------------------


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
        for figure in (
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
        ):
            st = _stat([r[figure] for r in ok if r.get(figure) is not None])
            if st is not None:
                row[figure] = st
        rows.append(row)
    return rows


def _median(
    rows: Sequence[dict[str, Any]], case: str, design: str, members: int, key: str, rate: float | None = None
) -> tuple[float | None, bool]:
    """(median, generator_bound) of one aggregated row's figure."""
    for row in rows:
        if (
            row["case"] == case
            and row["design"] == design
            and row["members"] == members
            and row["rate"] == rate
        ):
            st = row.get(key)
            return (st["median"] if st else None), row["generator_bound"]
    return None, False


def ratios(rows: Sequence[dict[str, Any]], sizes: Sequence[int]) -> list[dict[str, Any]]:
    """Saturation ratios between designs, per member count (from medians of the same run)."""
    out = []
    for m in sizes:
        d, d_bound = _median(rows, "saturation", "direct", m, "deliveries_per_s")
        q, q_bound = _median(rows, "saturation", "queued", m, "deliveries_per_s")
        b, b_bound = _median(rows, "saturation", "batched", m, "deliveries_per_s")
        ref = NGIRCD_REFERENCE.get(m)
        out.append(
            {
                "members": m,
                "batched_over_direct": b / d if b and d else None,
                "queued_over_direct": q / d if q and d else None,
                "batched_over_queued": b / q if b and q else None,
                "generator_bound": (b_bound or d_bound) if b and d else (b_bound or d_bound or q_bound),
                "batched_over_ngircd_reference": b / ref if b and ref else None,
            }
        )
    return out


def goals(
    bench: Bench, rows: Sequence[dict[str, Any]], ratio_rows: Sequence[dict[str, Any]]
) -> list[dict[str, Any]]:
    """The issue's bar, each with what was measured and a verdict: PASS, FAIL or N/A (with why)."""
    out: list[dict[str, Any]] = []

    def add(goal: str, measured: str, verdict: str) -> None:
        out.append({"goal": goal, "measured": measured, "verdict": verdict})

    by_m = {r["members"]: r for r in ratio_rows}
    for m, bar in ((10, 1.0), (50, GOAL_RATIO_BIG), (200, GOAL_RATIO_BIG)):
        goal = f"saturation: batched >= {bar:g}x direct at {m} members"
        r = by_m.get(m)
        if r is None or r["batched_over_direct"] is None:
            add(goal, "not measured", "N/A")
        elif r["generator_bound"]:
            add(goal, f"{r['batched_over_direct']:.1f}x (generator-bound)", "N/A")
        else:
            add(
                goal,
                f"{r['batched_over_direct']:.1f}x",
                "PASS" if r["batched_over_direct"] >= bar else "FAIL",
            )
    p99, bound = _median(rows, "latency", "batched", 50, "p99_ms", rate=200.0)
    goal = f"latency: batched p99 <= {GOAL_P99_MS:g} ms at 200 msg/s, 50 members"
    if p99 is None:
        add(goal, "not measured", "N/A")
    else:
        add(
            goal,
            f"{p99:.2f} ms" + (" (generator-bound)" if bound else ""),
            "PASS" if p99 <= GOAL_P99_MS else "FAIL",
        )
    load_runs = [r for r in bench.runs if r["case"] in ("saturation", "latency")]
    if load_runs:
        bad = [r for r in load_runs if not r.get("clean")]
        lost = sum(r.get("lost", 0) for r in load_runs)
        order = sum(r.get("order_violations", 0) for r in load_runs)
        drops = sum(r.get("drops", 0) for r in load_runs)
        errors = sum(1 for r in load_runs if r.get("error"))
        add(
            "zero loss, order violations and slow drops in saturation and latency runs",
            f"{len(load_runs)} runs: lost {lost}, order {order}, drops {drops}, errors {errors}",
            "PASS" if not bad else "FAIL",
        )
    else:
        add(
            "zero loss, order violations and slow drops in saturation and latency runs", "not measured", "N/A"
        )
    mem = [r for r in bench.runs if r["case"] == "memory"]
    reached = max((r["members"] for r in mem if not r.get("error") and r.get("drops", 0) == 0), default=0)
    swarm = bench.extra.get("swarm", {})
    measured = f"{reached} members connected and chatting" if mem else "not measured"
    if swarm.get("available"):
        measured += f"; largest PASS swarm {swarm.get('largest_pass', 0)}"
    elif mem:
        measured += "; swarm not available"
    tried = max((r["members"] for r in mem), default=0)
    if tried < GOAL_MEMBERS:
        verdict = "N/A"  # e.g. --quick: the goal's size was not tried
    elif reached < GOAL_MEMBERS:
        verdict = "FAIL"
    elif not swarm.get("available"):
        verdict = "N/A"
    else:
        verdict = "PASS" if swarm.get("largest_pass", 0) >= GOAL_MEMBERS else "FAIL"
    add(f"scale: {GOAL_MEMBERS} connected members on one server, PASS swarm", measured, verdict)
    chk = bench.extra.get("checker", {})
    goal = f"checker: 1,000,000 events in < {GOAL_CHECKER_S:g} s"
    if not chk.get("available"):
        add(goal, "not measured", "N/A")
    else:
        projected = chk["seconds"] * 1_000_000 / chk["events"]
        text = f"{chk['seconds']:.2f} s for {chk['events']:,} events"
        if chk["events"] < 1_000_000:
            text += f" (projected {projected:.1f} s for 1M)"
        add(
            goal,
            text,
            ("PASS" if projected < GOAL_CHECKER_S else "FAIL") if chk["events"] >= 1_000_000 else "N/A",
        )
    b50, bound50 = _median(rows, "saturation", "batched", 50, "deliveries_per_s")
    if b50 is not None:
        add(
            "stretch: batched at 50 members vs ngircd's 3.3 M/s (the issue's figure, NOT measured here)",
            f"{b50 / 1e6:.2f} M/s = {b50 / NGIRCD_REFERENCE[50]:.0%} of the reference"
            + (" (generator-bound)" if bound50 else ""),
            "info",
        )
    return out


# -- rendering (pure functions over the summary) ---------------------------------------------------


def _mib(v: float | None) -> str:
    return "-" if v is None else f"{v / 2**20:.1f} MiB"


def _pct(v: float | None) -> str:
    return "-" if v is None else f"{v:.0f}%"


def _rate(v: float | None) -> str:
    return "-" if v is None else f"{v / 1e6:.3f} M/s"


def _range(st: dict[str, float] | None, fmt: Callable[[float], str]) -> str:
    """``median [min-max]`` over the repetitions (just the value when there was one)."""
    if not st:
        return "-"
    if st["n"] == 1:
        return fmt(st["median"])
    return f"{fmt(st['median'])} [{fmt(st['min'])}-{fmt(st['max'])}]"


def _checks(row: dict[str, Any]) -> Text:
    parts = []
    if row["errors"]:
        parts.append(f"{len(row['errors'])} error(s)")
    for key, label in (
        ("lost", "lost"),
        ("extra", "extra"),
        ("drops", "drops"),
        ("order_violations", "order"),
    ):
        if row.get(key):
            parts.append(f"{label} {row[key]}")
    return Text(", ".join(parts), style="bold red") if parts else Text("ok", style="green")


def _note(row: dict[str, Any]) -> Text:
    notes = []
    if row["generator_bound"]:
        notes.append("GENERATOR-BOUND")
    if row.get("overloaded"):
        notes.append("OVERLOADED")
    return Text(" ".join(notes), style="bold yellow")


def saturation_table(
    rows: Sequence[dict[str, Any]], case: str = "saturation", title: str = "Saturation throughput"
) -> Table:
    t = Table(title=title, title_justify="left")
    for col in (
        "members",
        "design",
        "M deliveries/s, median [min-max]",
        "M per server CPU-s",
        "server CPU",
        "gen CPU",
        "machine",
        "checks",
        "note",
    ):
        t.add_column(
            col, justify="right" if col in ("members", "server CPU", "gen CPU", "machine") else "left"
        )
    for row in rows:
        if row["case"] != case:
            continue
        t.add_row(
            str(row["members"]),
            row["design"],
            _range(row.get("deliveries_per_s"), lambda v: f"{v / 1e6:.3f}"),
            "-"
            if not row.get("deliveries_per_cpu_s")
            else f"{row['deliveries_per_cpu_s']['median'] / 1e6:.3f}",
            _pct(row.get("server_cpu", {}).get("median") if row.get("server_cpu") else None),
            _pct(row.get("generator_cpu", {}).get("median") if row.get("generator_cpu") else None),
            _pct(row.get("machine_cpu", {}).get("median") if row.get("machine_cpu") else None),
            _checks(row),
            _note(row),
        )
    return t


def ratio_table(ratio_rows: Sequence[dict[str, Any]]) -> Table:
    t = Table(title="Ratios of medians (same run)", title_justify="left")
    for col in (
        "members",
        "batched/direct",
        "queued/direct",
        "batched/queued",
        "batched vs ngircd ref.*",
        "note",
    ):
        t.add_column(col, justify="right" if col != "note" else "left")

    def x(v: float | None) -> str:
        return "-" if v is None else f"{v:.2f}x"

    for r in ratio_rows:
        ref = r["batched_over_ngircd_reference"]
        t.add_row(
            str(r["members"]),
            x(r["batched_over_direct"]),
            x(r["queued_over_direct"]),
            x(r["batched_over_queued"]),
            "-" if ref is None else f"{ref:.0%}",
            Text("GENERATOR-BOUND", style="bold yellow") if r["generator_bound"] else "",
        )
    t.caption = (
        "* ngircd 2.8 / 3.3 / 3.9 M/s at 10 / 50 / 200 members: the issue's figures, not measured here"
    )
    return t


def latency_table(rows: Sequence[dict[str, Any]]) -> Table:
    t = Table(title="Latency, due time to receipt (open loop)", title_justify="left")
    for col in ("msg/s", "members", "design", "p50 ms", "p99 ms", "max ms", "server CPU", "checks", "note"):
        t.add_column(col, justify="left" if col in ("design", "checks", "note") else "right")
    for row in rows:
        if row["case"] != "latency":
            continue
        t.add_row(
            f"{row['rate']:.0f}",
            str(row["members"]),
            row["design"],
            _range(row.get("p50_ms"), lambda v: f"{v:.2f}"),
            _range(row.get("p99_ms"), lambda v: f"{v:.2f}"),
            _range(row.get("max_ms"), lambda v: f"{v:.1f}"),
            _pct(row["server_cpu"]["median"] if row.get("server_cpu") else None),
            _checks(row),
            _note(row),
        )
    return t


def memory_table(rows: Sequence[dict[str, Any]], swarm: dict[str, Any]) -> Table:
    t = Table(title="Memory and scale (server process)", title_justify="left")
    for col in (
        "members",
        "design",
        "RSS idle MiB",
        "RSS chatting MiB",
        "threads idle/chatting",
        "KiB/member",
        "join all (s)",
        "checks",
        "note",
    ):
        t.add_column(col, justify="left" if col in ("design", "checks", "note") else "right")
    for row in rows:
        if row["case"] != "memory":
            continue
        ti = row.get("idle_threads", {}).get("median") if row.get("idle_threads") else None
        tc = row.get("chat_threads", {}).get("median") if row.get("chat_threads") else None
        t.add_row(
            str(row["members"]),
            row["design"],
            _range(row.get("idle_rss"), lambda v: f"{v / 2**20:.1f}"),
            _range(row.get("chat_rss"), lambda v: f"{v / 2**20:.1f}"),
            f"{'-' if ti is None else int(ti)} / {'-' if tc is None else int(tc)}",
            _range(row.get("bytes_per_member"), lambda v: f"{v / 1024:.1f}"),
            _range(row.get("connect_s"), lambda v: f"{v:.1f}"),
            _checks(row),
            _note(row),
        )
    if swarm.get("available"):
        t.caption = f"largest member count with a PASS swarm: {swarm.get('largest_pass', 0)}"
    elif swarm:
        t.caption = f"PASS swarm: {swarm.get('note', 'not available')}"
    return t


def goals_table(goal_rows: Sequence[dict[str, Any]]) -> Table:
    t = Table(title="Goals (the bar)", title_justify="left")
    t.add_column("goal")
    t.add_column("measured")
    t.add_column("verdict")
    styles = {"PASS": "bold green", "FAIL": "bold red", "N/A": "yellow", "info": "cyan"}
    for g in goal_rows:
        t.add_row(g["goal"], g["measured"], Text(g["verdict"], style=styles.get(g["verdict"], "")))
    return t


def render(summary: dict[str, Any], console: Console) -> None:
    rows = summary["rows"]
    cases = summary["settings"]["cases"]
    if "saturation" in cases:
        console.print(saturation_table(rows))
        if not summary["settings"]["target"]:
            console.print(ratio_table(summary["ratios"]))
    if "latency" in cases:
        console.print(latency_table(rows))
    if "memory" in cases:
        console.print(memory_table(rows, summary["extra"].get("swarm", {})))
    if "instrumentation" in cases and any(r["case"] == "instrumentation" for r in rows):
        console.print(
            saturation_table(rows, "instrumentation", "Instrumentation cost (lock metrics on vs off)")
        )
        cost = summary.get("instrumentation_cost")
        if cost is not None:
            console.print(f"throughput with metrics = {cost:.0%} of without")
    if "checker" in cases:
        chk = summary["extra"].get("checker", {})
        if chk.get("available"):
            console.print(
                f"Checker speed: {chk['events']:,} events in {chk['seconds']:.2f} s = "
                f"{chk['events_per_s']:,} events/s" + (f"  ({chk['note']})" if chk.get("note") else "")
            )
    for case, note in summary["notes"].items():
        console.print(f"{case}: {note}")
    console.print(goals_table(summary["goals"]))
    console.print(
        f"CPU: server and generator in % of one core, machine in % of all "
        f"{summary['machine']['cpus']} cores, "
        "over each measured window. GENERATOR-BOUND: the load generator, not the server, ran out of CPU. "
        "OVERLOADED: the server delivered less than 95% of the offered rate."
    )


# -- the summary and the run record ----------------------------------------------------------------


def machine_info() -> dict[str, Any]:
    import psutil

    model = ""
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    try:
        import resource

        nofile = resource.getrlimit(resource.RLIMIT_NOFILE)[0]
    except (ImportError, OSError):
        nofile = None
    return {
        "cpus": os.cpu_count(),
        "cpu_model": model,
        "memory_bytes": psutil.virtual_memory().total,
        "platform": platform.platform(),
        "python": platform.python_version(),
        "ulimit_nofile": nofile,
        "load_average": list(os.getloadavg()) if hasattr(os, "getloadavg") else None,
    }


def build_summary(bench: Bench, started: float, load_before: list[float] | None) -> dict[str, Any]:
    rows = aggregate(bench.runs)
    ratio_rows = ratios(rows, bench.s.sizes) if "saturation" in bench.s.cases else []
    summary: dict[str, Any] = {
        "kind": "bench",
        "settings": bench.s.to_json(),
        "machine": machine_info(),
        "load_average_before": load_before,
        "load_average_after": list(os.getloadavg()) if hasattr(os, "getloadavg") else None,
        "seconds": round(time.time() - started, 1),
        "runs": bench.runs,
        "rows": rows,
        "ratios": ratio_rows,
        "notes": bench.notes,
        "extra": bench.extra,
    }
    plain, _ = _median(
        rows, "instrumentation", "batched", bench.s.instrumentation_members, "deliveries_per_s"
    )
    metr, _ = _median(
        rows, "instrumentation", "batched+metrics", bench.s.instrumentation_members, "deliveries_per_s"
    )
    summary["instrumentation_cost"] = metr / plain if plain and metr else None
    summary["goals"] = goals(bench, rows, ratio_rows)
    summary["clean"] = all(r.get("clean") for r in bench.runs) and not any(r.get("error") for r in bench.runs)
    return summary


def write_record(summary: dict[str, Any], runs_dir: str, argv: Sequence[str]) -> Path | None:
    """``runs/<time>-bench/`` with summary.json and meta.json, like the swarm's run records."""
    try:
        from harness.record import store as record

        folder = record.new_run_dir(runs_dir, "bench")
        record.write_json(folder / "summary.json", summary)
        record.write_json(
            folder / "meta.json",
            record.meta_document(
                settings=summary["settings"],
                server_command=None,
                argv=[sys.executable, "-m", "harness.bench", *argv],
                extra={"machine": summary["machine"], "kind": "bench"},
            ),
        )
        return folder
    except ImportError:
        stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())
        folder = Path(runs_dir) / f"{stamp}-bench"
        folder.mkdir(parents=True, exist_ok=True)
        (folder / "summary.json").write_text(json.dumps(summary, indent=2, default=str) + "\n")
        meta = {"command_line": [sys.executable, "-m", "harness.bench", *argv], "machine": summary["machine"]}
        (folder / "meta.json").write_text(json.dumps(meta, indent=2, default=str) + "\n")
        return folder


# -- command line ----------------------------------------------------------------------------------


def _int_list(text: str) -> list[int]:
    try:
        values = [int(x) for x in text.split(",") if x.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a comma-separated list of integers: {text!r}") from None
    if not values or any(v < 1 for v in values):
        raise argparse.ArgumentTypeError(f"every value must be at least 1: {text!r}")
    return values


def _float_list(text: str) -> list[float]:
    try:
        values = [float(x) for x in text.split(",") if x.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a comma-separated list of numbers: {text!r}") from None
    if not values or any(not v > 0 for v in values):
        raise argparse.ArgumentTypeError(f"every value must be more than 0: {text!r}")
    return values


def _choices(allowed: Sequence[str]) -> Callable[[str], list[str]]:
    def parse(text: str) -> list[str]:
        values = [x.strip() for x in text.split(",") if x.strip()]
        bad = [v for v in values if v not in allowed]
        if bad or not values:
            raise argparse.ArgumentTypeError(
                f"unknown {', '.join(bad) or 'empty list'}; choose from {', '.join(allowed)}"
            )
        return values

    return parse


def _target(text: str) -> tuple[str, int]:
    host, sep, port = text.rpartition(":")
    if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise argparse.ArgumentTypeError(f"expected HOST:PORT, got {text!r}")
    return host, int(port)


def build_parser() -> argparse.ArgumentParser:
    p = cli.OneLineParser(
        prog="python -m harness.bench",
        description="Benchmark the chat server's delivery designs: saturation throughput, latency, memory "
        "and scale, lock-metrics cost, checker speed. Prints a table; exit 1 if a run saw loss, "
        "reordering, a slow drop or an error.",
    )
    p.add_argument(
        "--cases",
        type=_choices(CASES),
        help=f"comma-separated cases to run (default: all of {', '.join(CASES)})",
    )
    p.add_argument(
        "--designs", type=_choices(DESIGNS), help="comma-separated --delivery designs (default: all)"
    )
    p.add_argument(
        "--target", type=_target, help="benchmark this running server (HOST:PORT) instead of starting ours"
    )
    p.add_argument(
        "--reps",
        type=cli.positive_int,
        help="repetitions of each run, alternating servers (default: 3; 1 with --quick)",
    )
    p.add_argument(
        "--quick", action="store_true", help="a run of about a minute: shorter windows, fewer sizes"
    )
    p.add_argument(
        "--tiny", action="store_true", help="the smallest configuration that exercises every case (for tests)"
    )
    p.add_argument("--members", type=_int_list, help="saturation member counts (default: 10,50,200)")
    p.add_argument("--publishers", type=cli.positive_int, help="members that send (default: 5)")
    p.add_argument(
        "--seconds", type=cli.positive_float, help="measured window of each saturation run (default: 3)"
    )
    p.add_argument("--window", type=cli.positive_int, help="saturation: messages in flight (default: 200)")
    p.add_argument(
        "--procs", type=cli.positive_int, help="receiver processes of the load generator (default: 2)"
    )
    p.add_argument("--rates", type=_float_list, help="latency: total msg/s (default: 200,2000)")
    p.add_argument("--latency-members", type=cli.positive_int, help="latency: members (default: 50)")
    p.add_argument("--memory-reps", type=cli.positive_int, help="memory: repetitions (default: 1)")
    p.add_argument("--memory-members", type=_int_list, help="memory: member counts (default: 100,500,1000)")
    p.add_argument(
        "--checker-events", type=cli.positive_int, help="checker: events in the history (default: 1,000,000)"
    )
    p.add_argument(
        "--checker-run",
        metavar="DIR",
        help="checker: time it on this recorded run (a swarm's run record) instead of a synthetic history",
    )
    p.add_argument(
        "--json",
        metavar="PATH",
        help="also write the summary as JSON to PATH ('-' for stdout, tables then go to stderr)",
    )
    p.add_argument(
        "--runs-dir", default="runs", help="where the run record folder goes (default: %(default)s)"
    )
    p.add_argument("--no-record", action="store_true", help="do not write a run record folder")
    return p


def settings_from_args(args: argparse.Namespace) -> Settings:
    s = Settings()
    if args.quick:
        s.quick = True
        s.seconds, s.warmup, s.latency_seconds = 1.0, 0.3, 1.5
        s.memory_sizes, s.memory_designs, s.memory_seconds = [100, 500], ["batched"], 1.0
        s.checker_events = 200_000
        s.swarm_sizes, s.swarm_seconds = [100], 4.0
        s.reps = 1
    if args.tiny:
        s.tiny = True
        s.sizes, s.publishers, s.seconds, s.warmup = [3], 2, 0.5, 0.2
        s.rates, s.latency_members, s.latency_seconds = [50.0], 3, 0.5
        s.memory_sizes, s.memory_designs, s.memory_rate, s.memory_seconds = [5], ["batched"], 20.0, 0.3
        s.instrumentation_members, s.checker_events, s.swarm_sizes, s.swarm_seconds = 3, 20_000, [5], 1.0
        s.procs, s.connect_timeout = 1, 30.0
        s.reps = 1
    if args.cases:
        s.cases = args.cases
    if args.designs:
        s.designs = args.designs
    if args.target:
        s.target = args.target
    for name in (
        "reps",
        "publishers",
        "seconds",
        "window",
        "procs",
        "rates",
        "latency_members",
        "checker_events",
        "memory_reps",
    ):
        value = getattr(args, name)
        if value is not None:
            setattr(s, name, value)
    if args.members:
        s.sizes = args.members
    if args.checker_run:
        s.checker_run = args.checker_run
    if args.memory_members:
        s.memory_sizes = args.memory_members
        s.swarm_sizes = args.memory_members
    return s


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    parser = build_parser()
    args = parser.parse_args(argv)
    settings = settings_from_args(args)
    to_stdout_json = args.json == "-"
    stream = sys.stderr if to_stdout_json else sys.stdout
    out = Console(file=stream, width=None if stream.isatty() else 130)
    progress = Console(file=sys.stderr, highlight=False, soft_wrap=True)
    logging.basicConfig(level=logging.WARNING, stream=sys.stderr)
    started = time.time()
    load_before = list(os.getloadavg()) if hasattr(os, "getloadavg") else None
    if load_before and load_before[0] > (os.cpu_count() or 1) * 0.5:
        progress.print(
            f"[yellow]note: the machine is busy (load average {load_before[0]:.1f}); figures will be noisy[/]"
        )
    bench = Bench(settings, progress)
    interrupted = False
    try:
        bench.run()
    except KeyboardInterrupt:
        progress.print("interrupted: reporting the runs done so far")
        interrupted = True
    summary = build_summary(bench, started, load_before)
    render(summary, out)
    if not args.no_record:
        folder = write_record(summary, args.runs_dir, argv)
        if folder is not None:
            progress.print(f"run record: {folder}")
    if args.json:
        text = json.dumps(summary, indent=2, default=str)
        if to_stdout_json:
            sys.stdout.write(text + "\n")
        else:
            with open(args.json, "w", encoding="utf-8") as f:
                f.write(text + "\n")
    if interrupted:
        return 130
    return 0 if summary["clean"] else 1
