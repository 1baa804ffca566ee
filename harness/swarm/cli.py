"""``python -m harness.swarm``: aim a swarm of bots at a chat server, judge its histories, show and record.

Theory of operation
-------------------
The parent process (this module) owns the run; the bots live in *hives*
(:class:`harness.bot.Hive`, one asyncio loop each): one hive on a thread of the
parent by default, or one per worker process with ``--procs P`` (``spawn``
context, so that no lock or thread of the parent leaks into a child).

Threads of the parent and what each owns:

* the **main thread** runs :meth:`Swarm.run`: it reads the hives' reports from
  one queue, releases the phases, stops the run, then judges and records;
* a **hive thread** (``--procs 1``) runs the bots and touches only its hive;
* the **metrics poller** (when the server has metrics) owns its scrapes;
* the **server log drains** read the own server's stdout and stderr;
* rich's **Live refresh thread** reads :meth:`Monitor.snapshot`.

Shared between them: the :class:`Monitor` (guarded by ``Monitor._lock``: the
main thread writes reports into it, the refresh thread reads snapshots) and
the queues. Commands go to the hives as ``("release", phase, t)`` and
``("stop",)``; reports come back as ``("report", HiveReport)``,
``("arrive", wid, phase)`` and ``("done", wid, result, error)``.

Phases: every bot first joins; when every hive has arrived at ``joined`` the
parent releases it with the start time, and the chat phase runs for
``--duration``. When every bot has sent everything and seen its last message
come back (``drained``), the parent releases the quit. Each phase has a bound
after which it is released anyway, so a hung server ends the run, never hangs it.

Exit codes: 0 PASS, 1 FAIL (any violation), 3 UNKNOWN (no violation, but too
little happened to judge), 2 usage or setup error (one line on stderr).
"""

from __future__ import annotations

import argparse
import dataclasses
import gc
import json
import logging
import multiprocessing
import os
import queue
import random
import select
import shlex
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import FrameType
from typing import IO, Any

from chat import cli
from harness.common.metrics_scrape import MetricsPoller, MetricsView, view_to_dict
from harness.record import store as record
from harness.record.history import ClientHistory, load_histories
from harness.swarm.bot import PHASES, Hive, HiveConfig, HiveReport, LatencyHistogram, split_round_robin
from harness.swarm.dashboard import (
    CHECK_ORDER,
    LIVE_CHECKS,
    CheckRow,
    LatencyFigures,
    LiveSnapshot,
)
from harness.swarm.scenarios import BEHAVIOURS, SCENARIOS, Plan, describe, plan

log = logging.getLogger(__name__)

PROG = "python -m harness.swarm"
EXIT_PASS, EXIT_FAIL, EXIT_USAGE, EXIT_UNKNOWN = 0, 1, 2, 3
#: Violations kept in the summary document; the counts always cover them all.
MAX_VIOLATIONS_KEPT = 200
#: Seconds between plain progress lines (no terminal, or --no-dashboard).
PROGRESS_EVERY = 2.0
#: SO_SNDBUF of the own server's sockets when the plan has slow readers.
SLOW_SNDBUF = 4096
#: Seconds the own server has to print its ``listening on`` line.
SERVER_START_TIMEOUT = 15.0
#: Seconds of rates kept for the sparklines.
SPARK_SECONDS = 60
#: Seconds a worker process must have been dead, with its "done" still unread,
#: before the run counts it as died without reporting.
DEAD_GRACE = 3.0
#: Seconds between releasing the start and the start itself.
START_AHEAD = 0.1
#: The window of the "last 2 s" latency figures.
RECENT_WINDOW = 2.0


class SetupError(Exception):
    """The run could not start: unreachable target, server that would not start, bad folder."""


# -- settings ----------------------------------------------------------------------------


@dataclass(frozen=True)
class SwarmSettings:
    """Everything a run is made of; stored in the run record."""

    clients: int = 50
    duration: float = 10.0
    rate: float = 10.0
    scenario: str = "chat"
    #: ``(host, port)`` of a running server, or None to start our own.
    target: tuple[str, int] | None = None
    metrics_url: str | None = None
    seed: int = 0
    procs: int = 1
    handshake_bound: float = 5.0
    delivery_bound: float = 5.0
    #: Extra arguments for the own server (e.g. ``--unsafe no-lock``).
    server_args: tuple[str, ...] = ()
    #: ``--delivery`` of the own server; None keeps its default.
    delivery: str | None = None
    pad: int = 0
    #: Messages per burst; None sizes it to the swarm.
    burst: int | None = None
    #: Steady bots joining per second (0: all at once).
    ramp: float = 100.0

    def to_dict(self) -> dict[str, Any]:
        d = dataclasses.asdict(self)
        d["target"] = f"{self.target[0]}:{self.target[1]}" if self.target else None
        d["server_args"] = list(self.server_args)
        return d


def parse_target(text: str) -> tuple[str, int]:
    """``HOST:PORT`` (``[::1]:PORT`` for IPv6) -> ``(host, port)``."""
    host, sep, port_text = text.rpartition(":")
    if not sep or not host:
        raise argparse.ArgumentTypeError(f"expected HOST:PORT, got {text!r}")
    host = host[1:-1] if host.startswith("[") and host.endswith("]") else host
    try:
        port = int(port_text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a port number in {text!r}") from None
    if not 1 <= port <= 65535:
        raise argparse.ArgumentTypeError(f"port must be 1-65535 in {text!r}")
    return host, port


def build_parser() -> argparse.ArgumentParser:
    p = cli.OneLineParser(
        prog=PROG,
        description="Run a swarm of bots against a chat server, check every recorded history for "
        "ordering, loss and membership faults, show it live and record the run.",
        epilog="exit codes: 0 PASS, 1 FAIL (a violation), 3 UNKNOWN (too little happened to judge), "
        "2 usage or setup error",
    )
    p.add_argument("--clients", type=cli.positive_int, default=50, help="bots (default: %(default)s)")
    p.add_argument(
        "--duration", type=cli.seconds, default=10.0, help="seconds of the chat phase (default: %(default)s)"
    )
    p.add_argument(
        "--rate",
        type=cli.rate,
        default=10.0,
        help="messages per second per chatting bot (default: %(default)s)",
    )
    p.add_argument("--scenario", choices=SCENARIOS, default="chat", help="what the bots do (default: chat)")
    p.add_argument(
        "--target",
        type=parse_target,
        metavar="HOST:PORT",
        help="a running server to test; without it the swarm starts its own on a free port",
    )
    p.add_argument("--metrics", metavar="URL", help="the target's Prometheus metrics URL (with --target)")
    p.add_argument(
        "--no-dashboard", action="store_true", help="plain progress lines instead of the live view"
    )
    p.add_argument(
        "--json",
        action="store_true",
        help="print the summary as one JSON document on stdout (all else: stderr)",
    )
    rec = p.add_mutually_exclusive_group()
    rec.add_argument(
        "--record", metavar="DIR", help="save the run record in DIR (default: runs/<time>-<scenario>/)"
    )
    rec.add_argument("--no-record", action="store_true", help="do not save a run record")
    p.add_argument("--seed", type=int, default=None, help="random seed of the scenario (default: random)")
    p.add_argument(
        "--procs",
        type=cli.positive_int,
        default=1,
        help="worker processes the bots are spread over, for hundreds of bots (default: %(default)s)",
    )
    p.add_argument(
        "--handshake-bound",
        type=cli.seconds,
        default=5.0,
        help="seconds a handshake may take before it counts as hung (default: %(default)s)",
    )
    p.add_argument(
        "--delivery-bound",
        type=cli.seconds,
        default=5.0,
        help="seconds a message may take to arrive before it counts as hung (default: %(default)s)",
    )
    p.add_argument(
        "--delivery",
        choices=("direct", "queued", "batched"),
        help="--delivery of the own server (default: the server's)",
    )
    p.add_argument(
        "--server-arg",
        action="append",
        default=[],
        metavar="ARGS",
        help="extra arguments for the own server, e.g. --server-arg='--unsafe no-lock' (repeatable)",
    )
    p.add_argument(
        "--pad", type=cli.non_negative_int, default=0, help="bytes of padding per message (default: 0)"
    )
    p.add_argument(
        "--burst",
        type=cli.positive_int,
        default=None,
        help="messages per burst (default: sized to the swarm)",
    )
    p.add_argument(
        "--ramp",
        type=cli.rate,
        default=100.0,
        help="bots joining per second before the start; 0 joins them all at once (default: %(default)s)",
    )
    p.add_argument(
        "--log-level",
        default="WARNING",
        type=str.upper,
        choices=["DEBUG", "INFO", "WARNING", "ERROR"],
        help="log verbosity on stderr (default: %(default)s)",
    )
    return p


def settings_from_args(args: argparse.Namespace) -> SwarmSettings:
    parser = build_parser()
    if args.metrics and not args.target:
        parser.error("--metrics needs --target (the own server's metrics are found by the swarm)")
    if args.target and (args.server_arg or args.delivery):
        parser.error("--server-arg and --delivery apply to the own server, not to --target")
    server_args: list[str] = []
    for chunk in args.server_arg:
        try:
            server_args += shlex.split(chunk)
        except ValueError as exc:
            parser.error(f"--server-arg {chunk!r}: {exc}")
    return SwarmSettings(
        clients=args.clients,
        duration=args.duration,
        rate=args.rate,
        scenario=args.scenario,
        target=args.target,
        metrics_url=args.metrics,
        seed=args.seed if args.seed is not None else random.SystemRandom().randrange(2**31),
        procs=min(args.procs, args.clients),
        handshake_bound=args.handshake_bound,
        delivery_bound=args.delivery_bound,
        server_args=tuple(server_args),
        delivery=args.delivery,
        pad=args.pad,
        burst=args.burst,
        ramp=args.ramp,
    )


# -- the own server --------------------------------------------------------------------------


def _server_supports(option: str) -> bool:
    """Whether our chat.server has ``option`` (the metrics issue adds --metrics-port)."""
    try:
        from chat.server.cli import build_parser as server_parser
    except ImportError:
        return False
    return any(option in action.option_strings for action in server_parser()._actions)


class OwnServer:
    """``python -m chat.server`` on a free port, started and stopped by PID.

    It runs in a session of its own, so that a Ctrl+C meant for the swarm
    does not stop it mid-run: the swarm stops it at the end. Its stdout and
    stderr are drained by two threads (a full pipe would block the server);
    stderr goes to ``log_path`` and is searched for ``metrics on URL``.
    """

    def __init__(self, settings: SwarmSettings, log_path: Path, *, has_slow: bool = False) -> None:
        max_clients = settings.clients * 2 + 16  # churners and racers reconnect
        args = ["--host", "127.0.0.1", "--port", "0", "--max-clients", str(max_clients)]
        if _server_supports("--metrics-port"):
            args += ["--metrics-port", "0"]
        if settings.delivery:
            args += ["--delivery", settings.delivery]
        if has_slow and _server_supports("--sndbuf"):
            # Kernel buffers would otherwise absorb a non-reader's share of a
            # short run (the send buffer grows to megabytes): with a small
            # one, a slow reader backs up within seconds and is dropped.
            args += ["--sndbuf", str(SLOW_SNDBUF)]
        self.command = [sys.executable, "-m", "chat.server", *args, *settings.server_args]
        self.log_path = log_path
        self.proc: subprocess.Popen[str] | None = None
        self.port = 0
        self.metrics_url: str | None = None
        self._metrics_seen = threading.Event()
        self._threads: list[threading.Thread] = []
        self._stderr_tail: deque[str] = deque(maxlen=5)
        self._log: IO[str] | None = None

    @property
    def pid(self) -> int | None:
        return self.proc.pid if self.proc else None

    def start(self) -> tuple[str, int]:
        import chat

        root = str(Path(chat.__file__).resolve().parent.parent)
        env = dict(os.environ, PYTHONUNBUFFERED="1")
        env["PYTHONPATH"] = os.pathsep.join(p for p in (root, env.get("PYTHONPATH", "")) if p)
        self._log = open(self.log_path, "w", encoding="utf-8")  # noqa: SIM115 - closed in stop()
        self.proc = subprocess.Popen(
            self.command,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=env,
            start_new_session=True,
        )
        assert self.proc.stdout is not None and self.proc.stderr is not None
        self._drain(self.proc.stderr, "stderr", self._on_stderr)
        deadline = time.monotonic() + SERVER_START_TIMEOUT
        line = ""
        while time.monotonic() < deadline:
            ready, _, _ = select.select([self.proc.stdout], [], [], max(0.0, deadline - time.monotonic()))
            if not ready:
                break
            line = self.proc.stdout.readline()
            if not line or line.startswith("listening on "):
                break
        if not line.startswith("listening on "):
            code = self.stop()
            tail = " / ".join(self._stderr_tail) or "no output"
            raise SetupError(f"the own chat server did not start (exit code {code}): {tail}")
        self.port = int(line.strip().rsplit(":", 1)[1])
        self._drain(self.proc.stdout, "stdout", None)
        # The server prints its metrics URL before its ready line: it is in the pipe already.
        if "--metrics-port" in self.command:
            self._metrics_seen.wait(2.0)
        return "127.0.0.1", self.port

    def _on_stderr(self, line: str) -> None:
        self._stderr_tail.append(line.rstrip())
        if line.startswith("metrics on "):
            self.metrics_url = line.split(" ", 2)[2].strip()
            self._metrics_seen.set()

    def _drain(self, stream: IO[str], name: str, on_line: Callable[[str], None] | None) -> None:
        def run() -> None:
            for line in stream:
                if on_line is not None:
                    on_line(line)
                if self._log is not None and not self._log.closed:
                    try:
                        self._log.write(line)
                    except ValueError:
                        pass  # closed by stop() between the check and the write
            stream.close()

        thread = threading.Thread(target=run, name=f"server-{name}", daemon=True)
        thread.start()
        self._threads.append(thread)

    def stop(self, timeout: float = 5.0) -> int | None:
        """SIGTERM, wait, SIGKILL if needed; returns the exit code."""
        if self.proc is None:
            return None
        if self.proc.poll() is None:
            self.proc.terminate()
        try:
            self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            log.warning("the own server did not stop within %gs; killing it", timeout)
            self.proc.kill()
            self.proc.wait(timeout)
        for thread in self._threads:
            thread.join(2.0)
        if self._log is not None:
            self._log.close()
        return self.proc.returncode


#: Seconds the probe waits for the target to close its side after ours.
PROBE_LINGER = 1.0


def probe(host: str, port: int, timeout: float) -> None:
    """Raise :class:`SetupError` unless a TCP connection to the target opens.

    The probe closes its side at once and waits (briefly, bounded) for the
    server to close too, so that its slot is free again before the bots come:
    a server whose ``--max-clients`` fits the swarm exactly must not refuse a
    bot because of the probe.
    """
    try:
        sock = socket.create_connection((host, port), timeout=timeout)
    except OSError as exc:
        reason = exc.strerror or str(exc) or type(exc).__name__
        raise SetupError(f"cannot reach {host}:{port}: {reason}") from None
    with sock:
        try:
            sock.shutdown(socket.SHUT_WR)
            sock.settimeout(PROBE_LINGER)
            deadline = time.monotonic() + PROBE_LINGER
            while time.monotonic() < deadline and sock.recv(4096):
                pass  # HELLO, then the server's close
        except OSError as exc:  # timeout or reset: the bots will tell
            log.debug("probe of %s:%d: %s", host, port, exc)


# -- hives: in this process or in workers ------------------------------------------------------


def worker_main(
    wid: int,
    specs: Sequence[Any],
    config: HiveConfig,
    commands: Any,
    reports: Any,
    part_path: str,
    log_level: int,
) -> None:
    """Body of a worker process: run a hive, write its histories, report ``done``."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the parent handles Ctrl+C and tells us
    logging.basicConfig(level=log_level, stream=sys.stderr, format="%(levelname)s %(name)s: %(message)s")
    try:
        histories = Hive(wid, specs, config, BEHAVIOURS, reports, commands).run()
        record.write_events(part_path, histories)
    except BaseException as exc:
        reports.put(("done", wid, None, f"{type(exc).__name__}: {exc}"))
        raise
    reports.put(("done", wid, part_path, None))


class CpuMeter:
    """CPU seconds (user + system) of the harness (this process and its workers) and of the own server."""

    def __init__(self, server_pid: int | None) -> None:
        self.server_pid = server_pid

    @staticmethod
    def _cpu(pid: int | None) -> float | None:
        try:
            import psutil

            times = psutil.Process(pid).cpu_times()
            return float(times.user + times.system)
        except Exception as exc:  # psutil.Error or ImportError: CPU figures are optional
            log.debug("no CPU figure for pid %s: %s", pid, exc)
            return None

    def sample(self, worker_pids: Sequence[int]) -> tuple[float, float | None]:
        harness = time.process_time()
        for pid in worker_pids:
            harness += self._cpu(pid) or 0.0
        server = self._cpu(self.server_pid) if self.server_pid is not None else None
        return harness, server


def cpu_figures(
    begin: tuple[float, float, float | None],
    end: tuple[float, float, float | None],
    marks: dict[str, tuple[float, float, float | None]],
) -> dict[str, Any]:
    """CPU of the whole bot phase, and of the load window (start of chat to the quit)."""

    def window(a: tuple[float, float, float | None], b: tuple[float, float, float | None]) -> dict[str, Any]:
        server = round(b[2] - a[2], 3) if a[2] is not None and b[2] is not None else None
        return {"harness_s": round(b[1] - a[1], 3), "server_s": server, "window_s": round(b[0] - a[0], 3)}

    out = window(begin, end)
    if "joined" in marks and "drained" in marks:
        out["load"] = window(marks["joined"], marks["drained"])
    return out


class HiveSet:
    """The run's hives and their channels: one thread of ours, or ``procs`` processes."""

    def __init__(self, plan_: Plan, config: HiveConfig, procs: int, workdir: Path) -> None:
        self.groups = [g for g in split_round_robin(plan_.specs, procs) if g]
        self.config = config
        self.workdir = workdir
        self.in_process = len(self.groups) == 1
        self._threads: list[threading.Thread] = []
        self._procs: list[Any] = []
        self.commands: list[Any] = []
        self.reports: Any = None

    def start(self) -> None:
        if self.in_process:
            self.reports = queue.Queue()
            commands: queue.Queue[Any] = queue.Queue()
            self.commands = [commands]
            hive = Hive(0, self.groups[0], self.config, BEHAVIOURS, self.reports, commands)

            def run() -> None:
                try:
                    self.reports.put(("done", 0, hive.run(), None))
                except BaseException as exc:  # report, never vanish: the parent waits for "done"
                    log.exception("the hive failed")
                    self.reports.put(("done", 0, None, f"{type(exc).__name__}: {exc}"))

            thread = threading.Thread(target=run, name="hive-0", daemon=True)
            thread.start()
            self._threads.append(thread)
            return
        ctx = multiprocessing.get_context("spawn")
        self.reports = ctx.Queue()
        level = logging.getLogger().getEffectiveLevel()
        for wid, group in enumerate(self.groups):
            commands_q = ctx.Queue()
            self.commands.append(commands_q)
            part = str(self.workdir / f"events.part{wid}.jsonl")
            proc = ctx.Process(
                target=worker_main,
                args=(wid, group, self.config, commands_q, self.reports, part, level),
                name=f"swarm-worker-{wid}",
                daemon=True,
            )
            proc.start()
            self._procs.append(proc)

    def send(self, cmd: tuple[Any, ...]) -> None:
        for q in self.commands:
            try:
                q.put(cmd)
            except (OSError, ValueError):
                pass  # that worker is gone; its "done" (or its absence) tells the rest

    def pids(self) -> list[int]:
        return [p.pid for p in self._procs if p.pid is not None and p.is_alive()]

    def dead_without_done(self, done: set[int]) -> list[int]:
        return [wid for wid, p in enumerate(self._procs) if wid not in done and not p.is_alive()]

    def join(self, timeout: float = 5.0) -> None:
        self.send(("exit",))
        deadline = time.monotonic() + timeout
        for thread in self._threads:
            thread.join(max(0.1, deadline - time.monotonic()))
        for proc in self._procs:
            proc.join(max(0.1, deadline - time.monotonic()))
            if proc.is_alive():
                log.warning("worker %s did not exit; terminating it", proc.name)
                proc.terminate()
                proc.join(2.0)


# -- the live picture ---------------------------------------------------------------------------


class Monitor:
    """Adds up the hives' reports; hands out snapshots. Guarded by ``_lock``.

    Written by the main thread (:meth:`add`, :meth:`tick`, phase changes),
    read by the dashboard's refresh thread (:meth:`snapshot`).
    """

    def __init__(self, settings: SwarmSettings, plan_: Plan, target: str) -> None:
        self.settings = settings
        self.plan = plan_
        self.target = target
        self._lock = threading.Lock()
        self._latest: dict[int, HiveReport] = {}
        self._run_latency = LatencyHistogram()
        self._recent: deque[tuple[float, LatencyHistogram]] = deque()
        self._sent_rates: deque[float] = deque(maxlen=SPARK_SECONDS)
        self._delivered_rates: deque[float] = deque(maxlen=SPARK_SECONDS)
        self._last_tick: tuple[float, int, int] | None = None
        self.phase = "connecting"
        self.start: float | None = None
        self.metrics: Callable[[], MetricsView | None] = lambda: None

    def add(self, report: HiveReport) -> None:
        with self._lock:
            self._latest[report.wid] = report
            if report.latency.count:
                self._run_latency.merge(report.latency)
                self._recent.append((report.t, report.latency))

    def set_phase(self, phase: str, start: float | None = None) -> None:
        with self._lock:
            self.phase = phase
            if start is not None:
                self.start = start

    def totals(self) -> dict[str, int]:
        with self._lock:
            return self._totals_locked()

    def _totals_locked(self) -> dict[str, int]:
        """Called with the lock held."""
        keys = (
            "connected",
            "members",
            "joins",
            "refused",
            "timeouts",
            "sent",
            "delivered",
            "seq_anomalies",
            "fifo_anomalies",
        )
        return {k: sum(getattr(r, k) for r in self._latest.values()) for k in keys}

    def hive_cpu(self) -> float:
        with self._lock:
            return sum(r.cpu for r in self._latest.values())

    def tick(self, now: float) -> None:
        """Sample the rates (called about once a second by the main thread)."""
        with self._lock:
            totals = self._totals_locked()
            if self._last_tick is not None:
                t0, sent0, delivered0 = self._last_tick
                dt = now - t0
                if dt > 0:
                    self._sent_rates.append((totals["sent"] - sent0) / dt)
                    self._delivered_rates.append((totals["delivered"] - delivered0) / dt)
            self._last_tick = (now, totals["sent"], totals["delivered"])
            while self._recent and self._recent[0][0] < now - RECENT_WINDOW:
                self._recent.popleft()

    def snapshot(self) -> LiveSnapshot:
        metrics = self.metrics()
        with self._lock:
            totals = self._totals_locked()
            recent = LatencyHistogram()
            for _, h in self._recent:
                recent.merge(h)
            elapsed = time.time() - self.start if self.start is not None else 0.0
            checks = []
            live = {
                "seq": totals["seq_anomalies"],
                "fifo": totals["fifo_anomalies"],
                "liveness": totals["timeouts"],
            }
            for name in CHECK_ORDER:
                if name in live:
                    checks.append(CheckRow(name, live[name], LIVE_CHECKS[name]))
                else:
                    checks.append(CheckRow(name, None, "judged at the end"))
            return LiveSnapshot(
                scenario=self.settings.scenario,
                target=self.target,
                phase=self.phase,
                elapsed=max(0.0, elapsed),
                duration=self.settings.duration,
                bots=len(self.plan.specs),
                connected=totals["connected"],
                members=totals["members"],
                joins=totals["joins"],
                refused=totals["refused"],
                sent=totals["sent"],
                delivered=totals["delivered"],
                sent_rates=tuple(self._sent_rates),
                delivered_rates=tuple(self._delivered_rates),
                latency_recent=figures(recent),
                latency_run=figures(self._run_latency),
                checks=tuple(checks),
                metrics=metrics,
                roles=describe(self.plan),
            )


def figures(h: LatencyHistogram) -> LatencyFigures:
    return LatencyFigures(
        count=h.count,
        p50=h.percentile(0.50),
        p95=h.percentile(0.95),
        p99=h.percentile(0.99),
        max=h.max_ms if h.count else None,
    )


# -- the run ------------------------------------------------------------------------------------


@dataclass
class SwarmResult:
    """What a run produced: the summary document (``--json``) and what it was made from."""

    doc: dict[str, Any]
    exit_code: int
    verdict: str
    histories: list[ClientHistory] = field(default_factory=list)
    report: Any = None
    record_dir: Path | None = None


class StopFlag:
    """Set by Ctrl+C (or by a caller) to stop a run early; read by the main loop."""

    def __init__(self) -> None:
        self.event = threading.Event()

    def set(self) -> None:
        self.event.set()

    def is_set(self) -> bool:
        return self.event.is_set()


class Swarm:
    """One run: server, hives, phases, verdict, record."""

    def __init__(
        self,
        settings: SwarmSettings,
        *,
        record_dir: Path | None,
        progress: Callable[[str], None] | None = None,
        argv: Sequence[str] | None = None,
        stop: StopFlag | None = None,
    ) -> None:
        self.settings = settings
        self.record_dir = record_dir
        self.progress = progress
        self.argv = list(argv) if argv is not None else list(sys.argv)
        self.stop = stop or StopFlag()
        self.plan = plan(
            settings.scenario,
            settings.clients,
            rate=settings.rate,
            duration=settings.duration,
            seed=settings.seed,
            burst=settings.burst,
            ramp=settings.ramp,
        )
        self.server: OwnServer | None = None
        self.poller: MetricsPoller | None = None
        self.monitor: Monitor | None = None
        self.target = ""
        self._tmp: tempfile.TemporaryDirectory[str] | None = None
        #: Seconds spent in each step after the bots: for the docs' figures and --log-level INFO.
        self.timings: dict[str, float] = {}

    # The steps, in order. prepare() may raise SetupError; run() never leaves a server behind.
    def prepare(self) -> Monitor:
        s = self.settings
        workdir = self.record_dir
        if workdir is None:
            self._tmp = tempfile.TemporaryDirectory(prefix="swarm-")
            workdir = Path(self._tmp.name)
        self.workdir = workdir
        if s.target is not None:
            host, port = s.target
            probe(host, port, timeout=max(1.0, s.handshake_bound))
            metrics_url = s.metrics_url
        else:
            has_slow = any(spec.role == "slow" for spec in self.plan.specs)
            self.server = OwnServer(s, workdir / record.SERVER_LOG, has_slow=has_slow)
            host, port = self.server.start()
            metrics_url = self.server.metrics_url
        self.host, self.port = host, port
        self.target = f"{host}:{port}"
        self.monitor = Monitor(s, self.plan, self.target)
        if metrics_url:
            self.poller = MetricsPoller(metrics_url).start()
            self.monitor.metrics = self.poller.view
        return self.monitor

    def run(self) -> SwarmResult:
        """Prepare (if not yet), run the bots, judge, record; always stops the own server."""
        try:
            if self.monitor is None:
                self.prepare()
            return self._run()
        finally:
            gc.unfreeze()  # frozen once the histories were collected (see _run)
            if self.poller is not None:
                self.poller.stop()
            if self.server is not None:
                self.server.stop()
            if self._tmp is not None:
                self._tmp.cleanup()

    def close(self) -> None:
        """Release what :meth:`prepare` took, when :meth:`run` will not be called."""
        if self.poller is not None:
            self.poller.stop()
        if self.server is not None:
            self.server.stop()
        if self._tmp is not None:
            self._tmp.cleanup()

    def _run(self) -> SwarmResult:
        s = self.settings
        monitor = self.monitor
        assert monitor is not None
        hb, db = s.handshake_bound, s.delivery_bound
        ramp_seconds = max((spec.join_at for spec in self.plan.specs), default=0.0)
        connect_allowance = ramp_seconds + hb + 5.0 + s.clients / 100.0
        hive_config = HiveConfig(
            host=self.host,
            port=self.port,
            duration=s.duration,
            handshake_bound=hb,
            delivery_bound=db,
            pad=s.pad,
            hard_limit=connect_allowance + ramp_seconds + s.duration + 3 * db + hb + 30.0,
            t0=time.time(),
        )
        hives = HiveSet(self.plan, hive_config, s.procs, self.workdir)
        meter = CpuMeter(self.server.pid if self.server else None)
        cpu_begin = meter.sample([])
        t_begin = time.time()
        hives.start()
        cpu_marks: dict[str, tuple[float, float, float | None]] = {}

        arrived: dict[str, set[int]] = {phase: set() for phase in PHASES}
        released: dict[str, float] = {}
        done: dict[int, tuple[Any, str | None]] = {}
        n_hives = len(hives.groups)
        joined_deadline = time.time() + connect_allowance
        drained_deadline: float | None = None
        hard_deadline = t_begin + hive_config.hard_limit + 10.0
        stopped_at: float | None = None
        next_tick = time.time() + 1.0
        next_progress = time.time() + PROGRESS_EVERY

        dead_since: dict[int, float] = {}

        def handle(msg: tuple[Any, ...]) -> None:
            kind = msg[0]
            if kind == "report":
                monitor.add(msg[1])
            elif kind == "arrive":
                arrived[msg[2]].add(msg[1])
            elif kind == "done":
                done[msg[1]] = (msg[2], msg[3])
                if msg[3]:
                    log.error("worker %d failed: %s", msg[1], msg[3])

        def release(phase: str) -> None:
            nonlocal drained_deadline
            cpu_marks[phase] = (time.time(), *meter.sample(hives.pids()))
            # A start a moment ahead, so that the first messages are not
            # already late when the command reaches the bots.
            t = time.time() + (START_AHEAD if phase == "joined" else 0.0)
            released[phase] = t
            hives.send(("release", phase, t))
            if phase == "joined":
                monitor.set_phase("chatting", start=t)
                drained_deadline = t + s.duration + 2 * db + hb + 10.0
            else:
                monitor.set_phase("quitting")

        while len(done) < n_hives:
            now = time.time()
            if self.stop.is_set() and stopped_at is None:
                stopped_at = now
                monitor.set_phase("stopping")
                hives.send(("stop",))
            try:
                handle(hives.reports.get(timeout=0.25))
            except queue.Empty:
                pass
            for phase in PHASES:
                if phase in released or stopped_at is not None:
                    continue
                if phase == "drained" and "joined" not in released:
                    continue
                if len(arrived[phase]) == n_hives:
                    release(phase)
                elif phase == "joined" and now > joined_deadline:
                    log.warning("not every bot joined within %.0fs; starting anyway", connect_allowance)
                    release(phase)
                elif phase == "drained" and drained_deadline is not None and now > drained_deadline:
                    log.warning("not every bot drained in time; quitting anyway")
                    release(phase)
            if (
                "joined" in released
                and "drained" not in released
                and monitor.phase == "chatting"
                and now > released["joined"] + s.duration
            ):
                monitor.set_phase("draining")
            for wid in hives.dead_without_done(set(done)):
                # Its "done" may still be in the queue behind other reports:
                # only a worker dead for a while with nothing left to read died
                # without reporting.
                first_seen = dead_since.setdefault(wid, now)
                if now - first_seen > DEAD_GRACE:
                    done[wid] = (None, "the worker process died")
                    log.error("worker %d died without reporting", wid)
            if now >= hard_deadline and stopped_at is None:
                log.error("the run passed its hard limit; stopping it")
                self.stop.set()
            if stopped_at is not None and now > stopped_at + 15.0:
                log.error("hives did not stop within 15 s; giving up on them")
                break
            if now >= next_tick:
                monitor.tick(now)
                next_tick = now + 1.0
            if self.progress is not None and now >= next_progress:
                self.progress_line()
                next_progress = now + PROGRESS_EVERY

        t_end = time.time()
        # Whatever is still in the queue (the last reports come just before each "done").
        while True:
            try:
                handle(hives.reports.get_nowait())
            except (queue.Empty, OSError, ValueError):
                break
        hives.join()
        harness_end, server_end = meter.sample([])
        harness_end += 0.0 if hives.in_process else monitor.hive_cpu()  # the workers' last reports
        cpu = cpu_figures((t_begin, *cpu_begin), (t_end, harness_end, server_end), cpu_marks)
        monitor.set_phase("checking")
        metrics_view = self.poller.view() if self.poller is not None else None
        if self.poller is not None:
            self.poller.stop()
        if self.server is not None:
            self.server.stop()

        t_collect = time.monotonic()
        histories = self._collect(hives, done)
        # The histories are immutable from here on: out of the collector's
        # sight, so that the checker's own garbage is collected without
        # rescanning a million events each time (undone at the end of run()).
        gc.freeze()
        self.timings["bots_s"] = round(t_end - t_begin, 3)
        self.timings["collect_s"] = round(time.monotonic() - t_collect, 3)
        start = released.get("joined", t_begin)
        run_end = stopped_at if stopped_at is not None else released.get("drained", t_end)
        chat_seconds = max(1e-9, min(run_end, start + s.duration) - start) if "joined" in released else 0.0
        return self._judge(
            histories,
            run_end=run_end,
            chat_seconds=chat_seconds,
            interrupted=stopped_at is not None,
            cpu=cpu,
            metrics_view=metrics_view,
        )

    def _collect(self, hives: HiveSet, done: dict[int, tuple[Any, str | None]]) -> list[ClientHistory]:
        histories: list[ClientHistory] = []
        parts: list[str] = []
        for wid in sorted(done):
            result, _ = done[wid]
            if result is None:
                continue
            if isinstance(result, list):
                histories.extend(result)
            else:
                parts.append(str(result))
                histories.extend(load_histories(result))
        if self.record_dir is not None:
            events = self.record_dir / record.EVENTS
            if parts:
                record.concat_events(events, parts)
            else:
                record.write_events(events, histories)
        for part in parts:
            try:
                os.remove(part)
            except OSError as exc:
                log.debug("could not remove %s: %s", part, exc)
        return histories

    def _judge(
        self,
        histories: list[ClientHistory],
        *,
        run_end: float,
        chat_seconds: float,
        interrupted: bool,
        cpu: dict[str, Any],
        metrics_view: MetricsView | None,
    ) -> SwarmResult:
        from harness.checker import CheckConfig, check_all, judge, verdict_line

        s = self.settings
        config = CheckConfig(
            handshake_bound=s.handshake_bound,
            delivery_bound=s.delivery_bound,
            contested_names=self.plan.contested_names,
            run_end=run_end,
        )
        t_check = time.monotonic()
        report = check_all(histories, config)
        self.timings["check_s"] = round(time.monotonic() - t_check, 3)
        log.info("checked %d clients in %.2f s", len(histories), self.timings["check_s"])
        verdict, code = judge(report, s.clients)
        doc = summary_document(
            report,
            verdict=verdict,
            exit_code=code,
            line=verdict_line(report, s.clients)
            + (f" (interrupted after {chat_seconds:.1f} s of chat)" if interrupted else ""),
            settings=s,
            plan_=self.plan,
            target=self.target,
            own_server=self.server is not None,
            chat_seconds=chat_seconds,
            interrupted=interrupted,
            run_end=run_end,
            cpu=cpu,
            metrics=view_to_dict(metrics_view) if metrics_view is not None else None,
            record_dir=self.record_dir,
        )
        doc["timings"] = dict(self.timings)
        if self.record_dir is not None:
            record.write_json(self.record_dir / record.SUMMARY, doc)
            meta = record.meta_document(
                settings=s.to_dict(),
                server_command=self.server.command if self.server else None,
                metrics_series=self.poller.series() if self.poller else (),
                argv=self.argv,
                extra={"plan": describe(self.plan), "contested_names": sorted(self.plan.contested_names)},
            )
            record.write_json(self.record_dir / record.META, meta)
        return SwarmResult(doc, code, verdict, histories, report, self.record_dir)

    def progress_line(self) -> None:
        from harness.swarm.dashboard import progress_line

        if self.progress is not None and self.monitor is not None:
            self.progress(progress_line(self.monitor.snapshot()))


def summary_document(
    report: Any,
    *,
    verdict: str,
    exit_code: int,
    line: str,
    settings: SwarmSettings,
    plan_: Plan,
    target: str,
    own_server: bool,
    chat_seconds: float,
    interrupted: bool,
    run_end: float,
    cpu: dict[str, Any],
    metrics: dict[str, Any] | None,
    record_dir: Path | None,
) -> dict[str, Any]:
    """The run's summary: what ``--json`` prints and summary.json stores."""
    lat = report.latency
    violations = [
        {"check": v.check, "message": v.message, "witness": _jsonable(v.witness)}
        for v in report.violations[:MAX_VIOLATIONS_KEPT]
    ]
    per_s = 1.0 / chat_seconds if chat_seconds > 0 else 0.0
    return {
        "verdict": verdict,
        "exit_code": exit_code,
        "summary": line,
        "interrupted": interrupted,
        "scenario": settings.scenario,
        "roles": plan_.role_counts(),
        "roles_line": describe(plan_),
        "target": target,
        "own_server": own_server,
        "asked_clients": settings.clients,
        "joined": report.bots_joined,
        "clients": report.clients,
        "clients_joined": report.joined,
        "seq_style": report.seq_style,
        "messages_sent": report.messages_sent,
        "deliveries": report.deliveries,
        "duration_s": round(chat_seconds, 3),
        "rates": {
            "sent_per_s": round(report.messages_sent * per_s, 1),
            "delivered_per_s": round(report.deliveries * per_s, 1),
        },
        "latency_ms": {
            "count": lat.count,
            "p50_ms": lat.p50_ms,
            "p95_ms": lat.p95_ms,
            "p99_ms": lat.p99_ms,
            "max_ms": lat.max_ms,
        },
        "checks": dict(report.counts),
        "violations_total": len(report.violations),
        "violations": violations,
        "cpu": cpu,
        "metrics": metrics,
        "contested_names": sorted(plan_.contested_names),
        "run_end": run_end,
        "settings": settings.to_dict(),
        "record": str(record_dir) if record_dir is not None else None,
    }


def _jsonable(value: Any) -> Any:
    """Witnesses hold tuples, sets and frozen dataclasses: make them JSON."""
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    if isinstance(value, (set, frozenset)):
        return sorted(_jsonable(v) for v in value)
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return _jsonable(dataclasses.asdict(value))
    if isinstance(value, (str, int, float, bool)) or value is None:
        return value
    return repr(value)


# -- command line ---------------------------------------------------------------------------------


def _record_dir(args: argparse.Namespace, scenario: str) -> Path | None:
    if args.no_record:
        return None
    try:
        if args.record:
            path = Path(args.record)
            path.mkdir(parents=True, exist_ok=True)
            return path
        return record.new_run_dir("runs", scenario)
    except OSError as exc:
        raise SetupError(f"cannot create the run record folder: {exc.strerror or exc}") from None


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    args = build_parser().parse_args(argv)
    settings = settings_from_args(args)

    from rich.console import Console
    from rich.live import Live
    from rich.logging import RichHandler

    from harness.swarm.dashboard import Dashboard, summary_view, verdict_text, witness_lines

    err = Console(stderr=True)
    logging.basicConfig(
        level=args.log_level,
        handlers=[RichHandler(console=err, show_path=False, show_time=False)],
        format="%(message)s",
    )
    use_live = not args.no_dashboard and err.is_terminal
    stop = StopFlag()
    interrupts = 0

    def on_signal(signum: int, frame: FrameType | None) -> None:
        nonlocal interrupts
        interrupts += 1
        stop.set()
        if interrupts == 1:
            # os.write, not the console: the handler may run in the middle of a
            # console write, and a buffered stream refuses a reentrant call.
            try:
                os.write(2, b"stopping: the bots quit, then the summary of what ran\n")
            except OSError:
                pass  # stderr closed: the summary will say it all the same

    try:
        record_dir = _record_dir(args, settings.scenario)
        swarm = Swarm(
            settings,
            record_dir=record_dir,
            progress=None
            if use_live
            else (lambda line: err.print(line, markup=False, highlight=False, soft_wrap=True)),
            argv=[PROG.split()[-1], *argv],
            stop=stop,
        )
        previous = {sig: signal.signal(sig, on_signal) for sig in (signal.SIGINT, signal.SIGTERM)}
        try:
            try:
                monitor = swarm.prepare()
            except SetupError:
                swarm.close()
                if record_dir is not None and not args.record:
                    shutil.rmtree(record_dir, ignore_errors=True)  # the folder we made for nothing
                raise
            if not use_live:
                err.print(
                    f"swarm: {describe(swarm.plan)} at {swarm.target}, {settings.scenario}, "
                    f"{settings.duration:g} s at {settings.rate:g} msg/s, seed {settings.seed}",
                    markup=False,
                    highlight=False,
                    soft_wrap=True,
                )
            if use_live:
                with Live(
                    get_renderable=Dashboard(monitor.snapshot).__rich__,
                    console=err,
                    refresh_per_second=4,
                    transient=False,
                ):
                    result = swarm.run()
            else:
                result = swarm.run()
        finally:
            for sig, handler in previous.items():
                signal.signal(sig, handler)
    except SetupError as exc:
        print(f"{PROG}: {exc}", file=sys.stderr)
        return EXIT_USAGE

    doc = result.doc
    err.print(summary_view(doc))
    if result.record_dir is not None:
        err.print(f"run record: {result.record_dir}", markup=False, highlight=False)
    try:
        if args.json:
            err.print(verdict_text(doc))
            for line in witness_lines(doc):
                err.print(line, markup=False, highlight=False, soft_wrap=True)
            sys.stdout.write(json.dumps(doc, indent=2, ensure_ascii=False) + "\n")
        else:
            err.print()
            sys.stdout.write(doc["summary"] + "\n")
            sys.stdout.flush()
            for line in witness_lines(doc):
                err.print(line, markup=False, highlight=False, soft_wrap=True)
        sys.stdout.flush()
    except BrokenPipeError:
        # The reader of stdout went away (e.g. `| head -0`): the exit code still tells.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
    return result.exit_code
