"""Hives: the bots' event loops, in a thread of the parent or in worker processes, and their messages.

Theory of operation
-------------------
A :class:`Hive` runs a set of bots on one asyncio loop and reports to the
parent. A :class:`HiveSet` is the run's hives: one on a thread of the parent
(``--procs 1``), or one per worker process (``spawn`` context, so that no lock
or thread of the parent leaks into a child), each running :func:`worker_main`.

Parent and hives talk only through two queues (``queue.Queue`` in process, the
``multiprocessing`` kind across), and only in the named records below:

* commands, parent to hive: :class:`Release` (every hive arrived at a
  :class:`~harness.swarm.bot.Phase`; go on at ``t``), :class:`Stop` (end every
  bot now), :class:`Exit` (the run is over);
* reports, hive to parent: :class:`HiveReport` (the live counts, every
  :data:`REPORT_EVERY` seconds and once at the end), :class:`Arrived` (every bot
  of the hive is at a phase) and, last, :class:`Done` (the histories, or where
  the worker wrote them, or why it failed).

Threads of a hive: the loop's thread owns everything of the hive (connections,
histories, counters); the command listener hands each command to the loop with
``call_soon_threadsafe`` and touches nothing else. The listener is joined when
the loop ends.
"""

from __future__ import annotations

import asyncio
import logging
import multiprocessing
import queue
import signal
import sys
import threading
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from harness.common.gctune import collector_paused, freeze_survivors, heap_frozen
from harness.common.latency import LatencyHistogram
from harness.record import store
from harness.record.counters import LiveCounters, LiveCounts
from harness.record.history import ClientHistory, HowClosed, Role
from harness.swarm.bot import Behaviour, BotConnection, BotContext, ConnectionEnded, HiveConfig, Phase
from harness.swarm.ircbot import CONNECTS_IN_FLIGHT, IrcBotConnection
from harness.swarm.scenarios import BEHAVIOURS, BotSpec, Plan

log = logging.getLogger(__name__)

#: How often a hive reports its counters to the parent (seconds).
REPORT_EVERY = 0.5
#: Seconds between two checks of the command listener for the end of the loop.
LISTEN_POLL = 0.2


# -- what crosses between the parent and its hives ------------------------------------


@dataclass(frozen=True)
class Release:
    """Parent to hive: every hive has arrived at ``phase``; the bots go on at wall-clock ``t``."""

    phase: Phase
    t: float


@dataclass(frozen=True)
class Stop:
    """Parent to hive: stop every bot now (Ctrl+C, or the run's hard limit)."""


@dataclass(frozen=True)
class Exit:
    """Parent to hive: the run is over; the command listener ends."""


Command = Release | Stop | Exit


@dataclass(frozen=True)
class HiveReport:
    """Hive to parent, every :data:`REPORT_EVERY` seconds and once at the end."""

    wid: int
    #: Wall-clock time of the report.
    t: float
    #: Bots of this hive.
    bots: int
    #: The live counts, cumulative since the hive started.
    counts: LiveCounts
    #: Latency samples since the previous report only (the parent adds them up).
    latency: LatencyHistogram
    #: CPU seconds the hive's process has used so far.
    cpu: float


@dataclass(frozen=True)
class Arrived:
    """Hive to parent: every bot of hive ``wid`` is at ``phase``."""

    wid: int
    phase: Phase


@dataclass(frozen=True)
class Done:
    """Hive to parent, last: what it recorded (in memory, or in a file for a worker), or why it failed."""

    wid: int
    histories: list[ClientHistory] | None = None
    part_path: str | None = None
    error: str | None = None


HiveMessage = HiveReport | Arrived | Done


class ReportSink(Protocol):
    def put(self, item: HiveMessage) -> None: ...


class CommandSource(Protocol):
    def get(self, block: bool = True, timeout: float | None = None) -> Command: ...


# -- a hive: many bots on one loop ------------------------------------------------------


class Hive:
    """Runs a set of bots on one asyncio loop and reports to the parent.

    ``behaviours`` maps a role to its coroutine function. :meth:`run` returns
    every connection's history.
    """

    def __init__(
        self,
        wid: int,
        specs: Sequence[BotSpec],
        config: HiveConfig,
        behaviours: Mapping[Role, Behaviour],
        sink: ReportSink,
        commands: CommandSource,
    ) -> None:
        self.wid = wid
        self.specs = list(specs)
        self.config = config
        self.behaviours = behaviours
        self.sink = sink
        self.commands = commands
        self.counters = LiveCounters()
        self.connections: list[BotConnection] = []
        self.connection_class: type[BotConnection] = (
            IrcBotConnection if config.protocol == "irc" else BotConnection
        )
        self.connect_gate: asyncio.Semaphore | None = None  # made in _main, on the loop it belongs to
        self._arrivals = dict.fromkeys(Phase, 0)
        self._released: dict[Phase, asyncio.Future[float]] = {}
        self._stopping = False
        self._stop_requested: asyncio.Event  # made in _main, on the loop it belongs to
        self._listener_done = threading.Event()
        self._loop: asyncio.AbstractEventLoop | None = None

    @property
    def loop(self) -> asyncio.AbstractEventLoop:
        assert self._loop is not None
        return self._loop

    # -- running -----------------------------------------------------------------------
    def run(self) -> list[ClientHistory]:
        listener = threading.Thread(target=self._listen, name=f"hive-{self.wid}-commands", daemon=True)
        try:
            asyncio.run(self._main(listener))
        finally:
            self._listener_done.set()
            if listener.is_alive():
                listener.join(2.0)
        # Hundreds of thousands of new (acyclic) events at once: the collector's
        # policy is in harness.swarm.run.
        with collector_paused():
            return [conn.rec.take_history() for conn in self.connections]

    async def _main(self, listener: threading.Thread) -> None:
        self._loop = asyncio.get_running_loop()
        self._released = {phase: self._loop.create_future() for phase in Phase}
        self._stop_requested = asyncio.Event()
        if self.config.protocol == "irc":
            self.connect_gate = asyncio.Semaphore(CONNECTS_IN_FLIGHT)
        listener.start()
        tasks = [
            asyncio.create_task(self._run_bot(BotContext(self, spec)), name=f"bot-{spec.bot}")
            for spec in self.specs
        ]
        reporter = asyncio.create_task(self._report_loop())
        try:
            await self._wait_bots(tasks)
        finally:
            reporter.cancel()
            try:
                await reporter
            except asyncio.CancelledError:
                pass  # the reporter's only way to end
            self.sink.put(self.report())

    async def _wait_bots(self, tasks: Iterable[asyncio.Task[None]]) -> None:
        """Wait for every bot, until the hard limit or a stop; then cancel until they are all gone.

        Cancelling is repeated because ``asyncio.wait_for`` may swallow a
        cancellation that races with its result (bpo-42130); a bot that
        survives one cancel gets another a second later, a bounded number of
        times.
        """
        loop = self.loop
        pending: set[asyncio.Task[Any]] = set(tasks)
        stop_wait = asyncio.create_task(self._stop_requested.wait())
        deadline = loop.time() + self.config.hard_limit
        try:
            while pending and not self._stopping:
                remaining = deadline - loop.time()
                if remaining <= 0:
                    log.warning("hive %d: %d bots still running at the hard limit", self.wid, len(pending))
                    self._stopping = True
                    break
                _, still = await asyncio.wait(
                    pending | {stop_wait}, timeout=remaining, return_when=asyncio.FIRST_COMPLETED
                )
                pending = {t for t in still if t is not stop_wait}
            for _ in range(10):
                if not pending:
                    break
                for task in pending:
                    task.cancel()
                _, pending = await asyncio.wait(pending, timeout=1.0)
            if pending:
                log.error("hive %d: %d bots would not stop", self.wid, len(pending))
        finally:
            stop_wait.cancel()

    async def _run_bot(self, ctx: BotContext) -> None:
        behaviour = self.behaviours[ctx.role]
        try:
            await behaviour(ctx)
        except asyncio.CancelledError:
            ctx.stop_all()
        except ConnectionEnded:
            pass  # the behaviour's connection went away under it: recorded already
        except Exception:
            log.exception("bot %s (%s) failed", ctx.bot, ctx.role)
            for conn in ctx.connections:
                conn.close(HowClosed.ERROR, "the bot's behaviour failed")
        finally:
            for conn in ctx.connections:
                if conn.is_open:
                    conn.close(
                        HowClosed.STOPPED if self._stopping else HowClosed.DROP, "left open by the behaviour"
                    )
                else:
                    conn.close(HowClosed.STOPPED if self._stopping else HowClosed.EOF)
            for phase in Phase:
                ctx.arrive(phase)

    async def _report_loop(self) -> None:
        while True:
            await asyncio.sleep(REPORT_EVERY)
            self.sink.put(self.report())
            freeze_survivors()  # the collector's policy: harness.swarm.run

    def report(self) -> HiveReport:
        """A report of the counts so far; the latency samples are handed over and start afresh."""
        counts, latency = self.counters.take()
        return HiveReport(self.wid, time.time(), len(self.specs), counts, latency, time.process_time())

    # -- phases ------------------------------------------------------------------------
    def arrive(self, phase: Phase) -> None:
        """Count one bot at ``phase``; tell the parent when the whole hive is there."""
        self._arrivals[phase] += 1
        if self._arrivals[phase] == len(self.specs):
            self.sink.put(Arrived(self.wid, phase))

    async def released(self, phase: Phase) -> float:
        """Wait (bounded) until the parent releases ``phase``; returns the release time."""
        fut = self._released[phase]
        # asyncio.wait, not wait_for: it never cancels ``fut`` (shared by every
        # bot) and never swallows this task's own cancellation.
        await asyncio.wait({fut}, timeout=self.config.hard_limit)
        if fut.done():
            return fut.result()
        log.warning("hive %d: phase %s never released; going on", self.wid, phase)
        return time.time()

    # -- commands from the parent ------------------------------------------------------
    def _listen(self) -> None:
        """The command listener thread: hands each command to the loop, touches nothing else."""
        while not self._listener_done.is_set():
            try:
                cmd = self.commands.get(timeout=LISTEN_POLL)
            except queue.Empty:
                continue
            except (EOFError, OSError):
                return  # the parent is gone; the hard limit ends the hive
            loop = self._loop
            if loop is None or loop.is_closed():
                return
            try:
                loop.call_soon_threadsafe(self._on_command, cmd)
            except RuntimeError:
                return  # the loop closed meanwhile
            if isinstance(cmd, Exit):
                return

    def _on_command(self, cmd: Command) -> None:
        """Called on the loop's thread."""
        if isinstance(cmd, Release):
            fut = self._released.get(cmd.phase)
            if fut is not None and not fut.done():
                fut.set_result(cmd.t)
        elif isinstance(cmd, Stop):
            self._stopping = True
            self._stop_requested.set()


# -- the run's hives: in this process or in workers ------------------------------------------


def worker_main(
    wid: int,
    specs: Sequence[BotSpec],
    config: HiveConfig,
    commands: Any,
    reports: Any,
    part_path: str,
    log_level: int,
) -> None:
    """Body of a worker process: run a hive, write its histories to ``part_path``, report :class:`Done`."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the parent handles Ctrl+C and tells us
    logging.basicConfig(level=log_level, stream=sys.stderr, format="%(levelname)s %(name)s: %(message)s")
    try:
        with heap_frozen():  # the collector's policy: harness.swarm.run
            histories = Hive(wid, specs, config, BEHAVIOURS, reports, commands).run()
            store.write_events(part_path, histories)
    except BaseException as exc:
        reports.put(Done(wid, error=f"{type(exc).__name__}: {exc}"))
        raise
    reports.put(Done(wid, part_path=part_path))


def split_round_robin(items: Iterable[Any], parts: int) -> list[list[Any]]:
    """Deal ``items`` into ``parts`` lists, so every process gets a mix of roles."""
    out: list[list[Any]] = [[] for _ in range(max(1, parts))]
    for i, item in enumerate(items):
        out[i % len(out)].append(item)
    return out


class HiveSet:
    """The run's hives and their queues: one thread of ours, or ``procs`` processes."""

    def __init__(self, plan_: Plan, config: HiveConfig, procs: int, workdir: Path) -> None:
        self.groups = [g for g in split_round_robin(plan_.specs, procs) if g]
        self.config = config
        self.workdir = workdir
        self.in_process = len(self.groups) == 1
        self._threads: list[threading.Thread] = []
        self._procs: list[Any] = []
        self._commands: list[Any] = []
        self.reports: Any = None

    def __len__(self) -> int:
        return len(self.groups)

    def start(self) -> None:
        if self.in_process:
            self._start_thread()
        else:
            self._start_workers()

    def _start_thread(self) -> None:
        reports: queue.Queue[HiveMessage] = queue.Queue()
        commands: queue.Queue[Command] = queue.Queue()
        self.reports = reports
        self._commands = [commands]
        hive = Hive(0, self.groups[0], self.config, BEHAVIOURS, reports, commands)

        def run() -> None:
            try:
                reports.put(Done(0, histories=hive.run()))
            except BaseException as exc:  # report, never vanish: the parent waits for Done
                log.exception("the hive failed")
                reports.put(Done(0, error=f"{type(exc).__name__}: {exc}"))

        thread = threading.Thread(target=run, name="hive-0", daemon=True)
        thread.start()
        self._threads.append(thread)

    def _start_workers(self) -> None:
        ctx = multiprocessing.get_context("spawn")
        self.reports = ctx.Queue()
        level = logging.getLogger().getEffectiveLevel()
        for wid, group in enumerate(self.groups):
            commands = ctx.Queue()
            self._commands.append(commands)
            part = str(self.workdir / f"events.part{wid}.jsonl")
            proc = ctx.Process(
                target=worker_main,
                args=(wid, group, self.config, commands, self.reports, part, level),
                name=f"swarm-worker-{wid}",
                daemon=True,
            )
            proc.start()
            self._procs.append(proc)

    def send(self, cmd: Command) -> None:
        for q in self._commands:
            try:
                q.put(cmd)
            except (OSError, ValueError):
                pass  # that worker is gone; its Done (or its absence) tells the rest

    def next_report(self, timeout: float) -> HiveMessage | None:
        """The next report, waiting at most ``timeout`` seconds; None when there is none."""
        try:
            return self.reports.get(timeout=timeout)  # type: ignore[no-any-return]
        except queue.Empty:
            return None

    def pending_reports(self) -> list[HiveMessage]:
        """Every report already queued, without waiting."""
        out: list[HiveMessage] = []
        while True:
            try:
                out.append(self.reports.get_nowait())
            except (queue.Empty, OSError, ValueError):
                return out

    def worker_pids(self) -> dict[int, int]:
        """Worker id to pid, for the workers alive now (none for an in-process hive)."""
        return {wid: p.pid for wid, p in enumerate(self._procs) if p.pid is not None and p.is_alive()}

    def dead_without_done(self, done: Iterable[int]) -> list[int]:
        """Workers that have exited although their :class:`Done` has not been read."""
        seen = set(done)
        return [wid for wid, p in enumerate(self._procs) if wid not in seen and not p.is_alive()]

    def join(self, timeout: float = 5.0) -> None:
        """Tell every hive the run is over and wait (bounded) for its thread or process."""
        self.send(Exit())
        deadline = time.monotonic() + timeout
        for thread in self._threads:
            thread.join(max(0.1, deadline - time.monotonic()))
        for proc in self._procs:
            proc.join(max(0.1, deadline - time.monotonic()))
            if proc.is_alive():
                log.warning("worker %s did not exit; terminating it", proc.name)
                proc.terminate()
                proc.join(2.0)
