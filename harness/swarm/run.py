"""One swarm run: the server, the hives, the phases, the verdict and the record. The CLI is in cli.py.

Theory of operation
-------------------
The parent process owns the run; the bots live in hives
(:mod:`harness.swarm.hives`): one on a thread of the parent by default, or one
per worker process with ``--procs P``.

Threads of the parent and what each owns:

* the **main thread** runs :meth:`Swarm.run`: its :class:`Conductor` reads the
  hives' reports, releases the phases and stops the run; then the run is
  judged and recorded;
* a **hive thread** (``--procs 1``) runs the bots and touches only its hive;
* the **metrics poller** (when the server has metrics) owns its scrapes;
* the own server's stdout drain (:mod:`harness.common.launcher`);
* rich's **Live refresh thread** reads :meth:`Monitor.snapshot`.

Shared between them: the :class:`~harness.swarm.monitor.Monitor` (guarded by its
lock: the main thread writes reports into it, the refresh thread reads
snapshots) and the hives' queues.

**Phases.** Every bot first joins; when every hive has arrived at
:attr:`Phase.JOINED`, the parent releases it with the start time, and the chat
phase runs for ``--duration``. When every bot has sent everything and seen its
last message come back (:attr:`Phase.DRAINED`), the parent releases the quit.
Each phase has a bound after which it is released anyway, and the whole run a
hard limit, so a hung server ends the run, never hangs it.

**The garbage collector** (the swarm's one policy; :mod:`harness.common.gctune`
owns the calls). A full collection walks every tracked object of the process and
everything those hold, and while bots run, asyncio's short-lived objects trigger
one every second or so. A run's heap only grows (the interpreter's own modules,
then every line read), so each pass would stall every bot of the loop for longer
as the run goes on: tens of milliseconds within seconds. So the process that
runs bots freezes what it holds when they start (``heap_frozen``, in the parent
and in each worker) and again each time its hive reports
(``freeze_survivors``, every :data:`harness.swarm.hives.REPORT_EVERY` seconds):
a collection walks only what was made since the last report. The events are
built after the bots are done, with the collector paused (``collector_paused``:
a million acyclic objects at once), and the parent freezes them too while it
judges and records them. Everything is unfrozen when the run ends.
"""

from __future__ import annotations

import dataclasses
import logging
import os
import random
import socket
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, NamedTuple

from chat.config import DEFAULT_MAX_BACKLOG
from harness.checker import CheckConfig, Report, check_all, judge, verdict_line
from harness.common.address import Endpoint, Target
from harness.common.gctune import freeze_survivors, heap_frozen
from harness.common.launcher import ServerProcess, ServerStartError, chat_server_command
from harness.common.metrics_scrape import MetricsPoller, MetricsView, view_to_dict
from harness.common.procstat import cpu_seconds
from harness.record import store
from harness.record.history import ClientHistory, Role, load_histories
from harness.swarm.bot import HiveConfig, Phase
from harness.swarm.dashboard import progress_line
from harness.swarm.hives import Arrived, Done, HiveMessage, HiveReport, HiveSet, Release, Stop
from harness.swarm.monitor import Monitor, Stage
from harness.swarm.scenarios import Plan, describe, plan
from harness.swarm.summary import CpuMark, cpu_figures, summary_document

log = logging.getLogger(__name__)

#: Seconds between plain progress lines (no terminal, or --no-dashboard).
PROGRESS_EVERY = 2.0
#: SO_SNDBUF of the own server's sockets when the plan has slow readers.
SLOW_SNDBUF = 4096
#: Seconds a worker process must have been dead, with its Done still unread,
#: before the run counts it as died without reporting.
DEAD_GRACE = 3.0
#: Seconds between releasing the start and the start itself: the first messages
#: must not be late already when the release reaches the bots.
START_AHEAD = 0.1
#: Seconds the hives get to stop after a stop, before the run gives up on them.
STOP_GRACE = 15.0
#: Seconds the main loop waits for a report before it looks at the clock again.
POLL = 0.25
#: Seconds the probe waits for the target to close its side after ours.
PROBE_LINGER = 1.0


class SetupError(Exception):
    """The run could not start: unreachable target, server that would not start, bad folder."""


@dataclass(frozen=True)
class SwarmSettings:
    """Everything a run is made of; stored in the run record."""

    clients: int = 50
    duration: float = 10.0
    rate: float = 10.0
    scenario: str = "chat"
    #: A running server, or None to start our own.
    target: Endpoint | None = None
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
    #: The server's --max-backlog, for the check that slow readers are dropped; None: the own server's
    #: (from ``server_args``, else its default), not judged against a ``--target``.
    max_backlog: int | None = None
    #: What the target speaks: ``chat`` (ours) or ``irc`` (``--target irc://...``; docs/irc.md).
    protocol: str = "chat"
    #: The IRC channel (``irc`` only).
    channel: str = ""
    #: IRC: judge agreement between members too (``--strict-order``).
    strict_order: bool = False

    def to_dict(self) -> dict[str, Any]:
        d = dataclasses.asdict(self)
        d["target"] = self.target_text() or None
        d["server_args"] = list(self.server_args)
        return d

    def target_text(self) -> str:
        """The target as given (``HOST:PORT``, ``irc://HOST:PORT/#channel``); ``""`` for the own server."""
        if self.target is None:
            return ""
        return str(Target(self.target, self.protocol, self.channel))


def random_seed() -> int:
    return random.SystemRandom().randrange(2**31)


@dataclass
class SwarmResult:
    """What a run produced: the summary document (``--json``) and what it was made from."""

    doc: dict[str, Any]
    exit_code: int
    verdict: str
    histories: list[ClientHistory] = field(default_factory=list)
    report: Report | None = None
    record_dir: Path | None = None


class ChatWindow(NamedTuple):
    """When the chat phase ended and how long it lasted, for the verdict and the rates."""

    #: Wall-clock end of the run as judged: the stop, the quit's release, or the end of the bots.
    run_end: float
    #: Seconds of chat (0 when the chat phase never started).
    seconds: float
    #: The run was stopped early (Ctrl+C, or its hard limit).
    interrupted: bool


class StopFlag:
    """Set by Ctrl+C (or by a caller) to stop a run early; read by the main loop."""

    def __init__(self) -> None:
        self.event = threading.Event()

    def set(self) -> None:
        self.event.set()

    def is_set(self) -> bool:
        return self.event.is_set()


# -- the server under test --------------------------------------------------------------


def start_own_server(settings: SwarmSettings, log_path: Path, *, has_slow: bool) -> ServerProcess:
    """``python -m chat.server`` on a free port, sized for the swarm; raises :class:`SetupError`.

    It runs in a session of its own, so that a Ctrl+C meant for the swarm does
    not stop it mid-run: the run stops it at the end.
    """
    max_clients = settings.clients * 2 + 16  # churners and racers reconnect
    args = ["--max-clients", str(max_clients), "--metrics-port", "0"]
    if settings.delivery:
        args += ["--delivery", settings.delivery]
    if has_slow:
        # Kernel buffers would otherwise absorb a non-reader's share of a
        # short run (the send buffer grows to megabytes): with a small one, a
        # slow reader backs up within seconds and is dropped.
        args += ["--sndbuf", str(SLOW_SNDBUF)]
    server = ServerProcess(
        chat_server_command(*args, *settings.server_args), log_path=log_path, new_session=True
    )
    try:
        server.start()
    except ServerStartError:
        tail = " / ".join(line.rstrip() for line in server.log().splitlines()[-5:]) or "no output"
        raise SetupError(
            f"the own chat server did not start (exit code {server.returncode}): {tail}"
        ) from None
    return server


def judged_backlog(settings: SwarmSettings, own_server: bool) -> int | None:
    """The --max-backlog the slow-reader rule judges against (see :attr:`SwarmSettings.max_backlog`)."""
    if settings.max_backlog is not None:
        return settings.max_backlog
    if not own_server:
        return None
    value = DEFAULT_MAX_BACKLOG
    args = list(settings.server_args)
    for i, arg in enumerate(args):  # the last one wins, as in argparse
        text = args[i + 1] if arg == "--max-backlog" and i + 1 < len(args) else None
        if arg.startswith("--max-backlog="):
            text = arg.split("=", 1)[1]
        if text is not None:
            try:
                value = int(text)
            except ValueError:
                return None  # the server refuses it; nothing to judge against
    return value


def probe(target: Endpoint, timeout: float) -> None:
    """Raise :class:`SetupError` unless a TCP connection to the target opens.

    The probe closes its side at once and waits (briefly, bounded) for the
    server to close too, so that its slot is free again before the bots come:
    a server whose ``--max-clients`` fits the swarm exactly must not refuse a
    bot because of the probe.
    """
    try:
        sock = socket.create_connection(target, timeout=timeout)
    except OSError as exc:
        reason = exc.strerror or str(exc) or type(exc).__name__
        raise SetupError(f"cannot reach {target}: {reason}") from None
    with sock:
        try:
            sock.shutdown(socket.SHUT_WR)
            sock.settimeout(PROBE_LINGER)
            deadline = time.monotonic() + PROBE_LINGER
            while time.monotonic() < deadline and sock.recv(4096):
                pass  # HELLO, then the server's close
        except OSError as exc:  # timeout or reset: the bots will tell
            log.debug("probe of %s: %s", target, exc)


def cpu_mark(server_pid: int | None, worker_pids: Sequence[int] = (), hives_cpu: float = 0.0) -> CpuMark:
    """CPU so far of this process and the given workers (plus ``hives_cpu``), and of the own server."""
    harness = (cpu_seconds() or 0.0) + sum(cpu_seconds(pid) or 0.0 for pid in worker_pids) + hives_cpu
    return CpuMark(time.time(), harness, cpu_seconds(server_pid) if server_pid is not None else None)


# -- the phases ---------------------------------------------------------------------------


class Conductor:
    """Drives the phases of one run from the parent's main thread, one short :meth:`step` at a time.

    Each step takes a report (waiting at most :data:`POLL`), releases every phase
    that is due, notices the end of the chat, workers that died without a word,
    a stop and the run's limits, and shows progress. The run's bots are over when
    every hive is :attr:`done` (or the hives did not stop in time after a stop).
    """

    def __init__(
        self,
        hives: HiveSet,
        monitor: Monitor,
        settings: SwarmSettings,
        *,
        server_pid: int | None,
        connect_allowance: float,
        hard_limit: float,
        stop: StopFlag,
        progress: Callable[[], None] | None,
    ) -> None:
        self.hives = hives
        self.monitor = monitor
        self.settings = settings
        self.server_pid = server_pid
        self.stop = stop
        self.progress = progress
        self.cpu_begin = cpu_mark(server_pid)
        self.t_begin = time.time()
        self.arrived: dict[Phase, set[int]] = {phase: set() for phase in Phase}
        #: Wall-clock time each phase was released for.
        self.released: dict[Phase, float] = {}
        self.cpu_marks: dict[Phase, CpuMark] = {}
        self.done: dict[int, Done] = {}
        self.stopped_at: float | None = None
        self.gave_up = False
        self._joined_deadline = self.t_begin + connect_allowance
        self._drained_deadline: float | None = None
        self._hard_deadline = self.t_begin + hard_limit + 10.0
        self._dead_since: dict[int, float] = {}
        # The first tick at once: it is the base of the rates, so the first progress line has some.
        self._next_tick = self.t_begin
        self._next_progress = self.t_begin + PROGRESS_EVERY

    @property
    def is_over(self) -> bool:
        return len(self.done) >= len(self.hives) or self.gave_up

    def step(self) -> None:
        now = time.time()
        self._honour_stop(now)
        report = self.hives.next_report(POLL)
        if report is not None:
            self.take(report)
        self._release_due(now)
        self._note_draining(now)
        self._reap_dead_workers(now)
        self._enforce_limits(now)
        self._show(now)

    def finish(self) -> float:
        """Read what is still queued (each hive's last report comes just before its Done), join the hives."""
        t_end = time.time()
        for report in self.hives.pending_reports():
            self.take(report)
        self.hives.join()
        return t_end

    def chat_window(self, t_end: float) -> ChatWindow:
        """The chat phase as it went: from the start's release to the end of ``--duration`` or the stop."""
        start = self.released.get(Phase.JOINED)
        stopped_at = self.stopped_at
        run_end = stopped_at if stopped_at is not None else self.released.get(Phase.DRAINED, t_end)
        if start is None:
            return ChatWindow(run_end, 0.0, stopped_at is not None)
        seconds = max(1e-9, min(run_end, start + self.settings.duration) - start)
        return ChatWindow(run_end, seconds, stopped_at is not None)

    def take(self, msg: HiveMessage) -> None:
        if isinstance(msg, HiveReport):
            self.monitor.add(msg)
        elif isinstance(msg, Arrived):
            self.arrived[msg.phase].add(msg.wid)
        elif isinstance(msg, Done):
            self.done[msg.wid] = msg
            if msg.error:
                log.error("worker %d failed: %s", msg.wid, msg.error)

    # -- the steps ------------------------------------------------------------------------
    def _honour_stop(self, now: float) -> None:
        if self.stop.is_set() and self.stopped_at is None:
            self.stopped_at = now
            self.monitor.set_stage(Stage.STOPPING)
            self.hives.send(Stop())

    def _release_due(self, now: float) -> None:
        """Release each phase every hive has reached, or whose bound has passed."""
        if self.stopped_at is not None:
            return
        for phase in Phase:
            if phase in self.released:
                continue
            if phase is Phase.DRAINED and Phase.JOINED not in self.released:
                return
            if len(self.arrived[phase]) == len(self.hives):
                self._release(phase)
            elif phase is Phase.JOINED and now > self._joined_deadline:
                log.warning(
                    "not every bot joined within %.0fs; starting anyway", self._joined_deadline - self.t_begin
                )
                self._release(phase)
            elif (
                phase is Phase.DRAINED and self._drained_deadline is not None and now > self._drained_deadline
            ):
                log.warning("not every bot drained in time; quitting anyway")
                self._release(phase)

    def _release(self, phase: Phase) -> None:
        self.cpu_marks[phase] = cpu_mark(self.server_pid, list(self.hives.worker_pids().values()))
        t = time.time() + (START_AHEAD if phase is Phase.JOINED else 0.0)
        self.released[phase] = t
        self.hives.send(Release(phase, t))
        if phase is Phase.JOINED:
            s = self.settings
            self.monitor.set_stage(Stage.CHATTING, start=t)
            self._drained_deadline = t + s.duration + 2 * s.delivery_bound + s.handshake_bound + 10.0
        else:
            self.monitor.set_stage(Stage.QUITTING)

    def _note_draining(self, now: float) -> None:
        start = self.released.get(Phase.JOINED)
        if (
            start is not None
            and Phase.DRAINED not in self.released
            and self.monitor.stage is Stage.CHATTING
            and now > start + self.settings.duration
        ):
            self.monitor.set_stage(Stage.DRAINING)

    def _reap_dead_workers(self, now: float) -> None:
        for wid in self.hives.dead_without_done(self.done):
            # Its Done may still be in the queue behind other reports: only a
            # worker dead for a while with nothing left to read died without reporting.
            first_seen = self._dead_since.setdefault(wid, now)
            if now - first_seen > DEAD_GRACE:
                self.done[wid] = Done(wid, error="the worker process died")
                log.error("worker %d died without reporting", wid)

    def _enforce_limits(self, now: float) -> None:
        if now >= self._hard_deadline and self.stopped_at is None:
            log.error("the run passed its hard limit; stopping it")
            self.stop.set()
        if self.stopped_at is not None and now > self.stopped_at + STOP_GRACE:
            log.error("hives did not stop within %.0f s; giving up on them", STOP_GRACE)
            self.gave_up = True

    def _show(self, now: float) -> None:
        if now >= self._next_tick:
            self.monitor.tick(now)
            self._next_tick = now + 1.0
        if self.progress is not None and now >= self._next_progress:
            self.progress()
            self._next_progress = now + PROGRESS_EVERY


# -- the run ------------------------------------------------------------------------------


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
        self.plan: Plan = plan(
            settings.scenario,
            settings.clients,
            rate=settings.rate,
            duration=settings.duration,
            seed=settings.seed,
            burst=settings.burst,
            ramp=settings.ramp,
        )
        self.server: ServerProcess | None = None
        self.poller: MetricsPoller | None = None
        self.monitor: Monitor | None = None
        self.endpoint = Endpoint("127.0.0.1", 0)
        self.target = ""
        self.workdir = Path(".")
        self._tmp: tempfile.TemporaryDirectory[str] | None = None
        #: Seconds spent in each step after the bots: for the docs' figures and --log-level INFO.
        self.timings: dict[str, float] = {}

    # The steps, in order. prepare() may raise SetupError; run() never leaves a server behind.
    def prepare(self) -> Monitor:
        s = self.settings
        if self.record_dir is None:
            self._tmp = tempfile.TemporaryDirectory(prefix="swarm-")
            self.workdir = Path(self._tmp.name)
        else:
            self.workdir = self.record_dir
        if s.target is not None:
            probe(s.target, timeout=max(1.0, s.handshake_bound))
            self.endpoint, metrics_url = s.target, s.metrics_url
        else:
            has_slow = any(spec.role is Role.SLOW for spec in self.plan.specs)
            self.server = start_own_server(s, self.workdir / store.SERVER_LOG, has_slow=has_slow)
            self.endpoint, metrics_url = self.server.endpoint, self.server.metrics_url
        self.target = s.target_text() or str(self.endpoint)
        self.monitor = Monitor(s.scenario, s.duration, self.plan, self.target)
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
            self.close()

    def close(self) -> None:
        """Release what :meth:`prepare` took (idempotent)."""
        if self.poller is not None:
            self.poller.stop()
        if self.server is not None:
            self.server.stop()
        if self._tmp is not None:
            self._tmp.cleanup()

    def _run(self) -> SwarmResult:
        with heap_frozen():  # the collector's policy: see the module's docstring
            conductor = self._start_bots()
            while not conductor.is_over:
                conductor.step()
            t_end = conductor.finish()
            cpu, metrics_view = self._stop_measuring(conductor, t_end)
            t_collect = time.monotonic()
            histories = self._collect(conductor.done)
            self.timings["bots_s"] = round(t_end - conductor.t_begin, 3)
            self.timings["collect_s"] = round(time.monotonic() - t_collect, 3)
            freeze_survivors()
            return self._judge(histories, conductor.chat_window(t_end), cpu=cpu, metrics_view=metrics_view)

    def _start_bots(self) -> Conductor:
        """Start the hives, with the bounds of every phase; the conductor that drives them."""
        s, monitor = self.settings, self.monitor
        assert monitor is not None
        hb, db = s.handshake_bound, s.delivery_bound
        ramp_seconds = max((spec.join_at for spec in self.plan.specs), default=0.0)
        connect_allowance = ramp_seconds + hb + 5.0 + s.clients / 100.0
        hive_config = HiveConfig(
            host=self.endpoint.host,
            port=self.endpoint.port,
            duration=s.duration,
            handshake_bound=hb,
            delivery_bound=db,
            pad=s.pad,
            hard_limit=connect_allowance + ramp_seconds + s.duration + 3 * db + hb + 30.0,
            t0=time.time(),
            protocol=s.protocol,
            channel=s.channel or "#chat",
        )
        hives = HiveSet(self.plan, hive_config, s.procs, self.workdir)
        conductor = Conductor(
            hives,
            monitor,
            s,
            server_pid=self.server.pid if self.server is not None else None,
            connect_allowance=connect_allowance,
            hard_limit=hive_config.hard_limit,
            stop=self.stop,
            progress=self.progress_line if self.progress is not None else None,
        )
        hives.start()
        return conductor

    def _stop_measuring(
        self, conductor: Conductor, t_end: float
    ) -> tuple[dict[str, Any], MetricsView | None]:
        """The bots are done: the run's CPU figures and the server's last metrics; the own server stops."""
        assert self.monitor is not None
        # Worker processes are gone by now: their CPU is what their last reports said.
        hives_cpu = 0.0 if conductor.hives.in_process else self.monitor.hive_cpu()
        cpu_end = dataclasses.replace(cpu_mark(conductor.server_pid, hives_cpu=hives_cpu), t=t_end)
        cpu = cpu_figures(conductor.cpu_begin, cpu_end, conductor.cpu_marks)
        self.monitor.set_stage(Stage.CHECKING)
        metrics_view = self.poller.view() if self.poller is not None else None
        if self.poller is not None:
            self.poller.stop()
        if self.server is not None:
            self.server.stop()
        return cpu, metrics_view

    def _collect(self, done: Mapping[int, Done]) -> list[ClientHistory]:
        """Every hive's histories (in memory, or read back from the workers' files); the record's events."""
        histories: list[ClientHistory] = []
        parts: list[str] = []
        for wid in sorted(done):
            result = done[wid]
            if result.histories is not None:
                histories.extend(result.histories)
            elif result.part_path is not None:
                parts.append(result.part_path)
                histories.extend(load_histories(result.part_path))
        if self.record_dir is not None:
            events = self.record_dir / store.EVENTS
            if parts:
                store.concat_events(events, parts)
            else:
                store.write_events(events, histories)
        for part in parts:
            try:
                os.remove(part)
            except OSError as exc:
                log.debug("could not remove %s: %s", part, exc)
        return histories

    def _judge(
        self,
        histories: list[ClientHistory],
        window: ChatWindow,
        *,
        cpu: dict[str, Any],
        metrics_view: MetricsView | None,
    ) -> SwarmResult:
        s = self.settings
        run_end, chat_seconds, interrupted = window
        config = CheckConfig(
            handshake_bound=s.handshake_bound,
            delivery_bound=s.delivery_bound,
            contested_names=self.plan.contested_names,
            run_end=run_end,
            max_backlog=judged_backlog(s, self.server is not None),
            protocol=s.protocol,
            strict_order=s.strict_order if s.protocol == "irc" else None,
        )
        t_check = time.monotonic()
        report = check_all(histories, config)
        self.timings["check_s"] = round(time.monotonic() - t_check, 3)
        log.info("checked %d clients in %.2f s", len(histories), self.timings["check_s"])
        verdict, code = judge(report, s.clients)
        interrupted_note = f" (interrupted after {chat_seconds:.1f} s of chat)" if interrupted else ""
        doc = summary_document(
            report,
            verdict=verdict,
            exit_code=code,
            line=verdict_line(report, s.clients) + interrupted_note,
            settings=s.to_dict(),
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
        if s.protocol == "irc":
            doc["protocol"] = report.protocol
            doc["agreement_judged"] = report.agreement_judged
            doc["throttled"] = list(report.throttled)
        if self.record_dir is not None:
            store.write_json(self.record_dir / store.SUMMARY, doc)
            meta = store.meta_document(
                settings=s.to_dict(),
                server_command=self.server.command if self.server else None,
                metrics_series=self.poller.series() if self.poller else (),
                argv=self.argv,
                extra={"plan": describe(self.plan), "contested_names": sorted(self.plan.contested_names)},
            )
            store.write_json(self.record_dir / store.META, meta)
        return SwarmResult(doc, code, verdict, histories, report, self.record_dir)

    def progress_line(self) -> None:
        if self.progress is not None and self.monitor is not None:
            self.progress(progress_line(self.monitor.snapshot()))
