"""The load generator's parent: it starts the workers, drives the phases, measures the window.

See :mod:`harness.bench.loadgen` for how a run goes.
"""

from __future__ import annotations

import multiprocessing
import threading
import time
from array import array
from collections.abc import Callable
from dataclasses import dataclass
from multiprocessing.connection import Connection
from multiprocessing.connection import wait as wait_connections
from typing import Any

from harness.bench.loadgen.spec import (
    EXIT,
    GO,
    MAX_WITNESSES,
    STOP,
    Failed,
    Figures,
    Joined,
    LoadError,
    LoadSpec,
    R,
    Ready,
    Report,
    Shared,
    Started,
)
from harness.bench.loadgen.wire import wire_for
from harness.bench.loadgen.worker import worker_main
from harness.common.procstat import CpuMeter, CpuUse, use

#: The server's name in the run's :class:`harness.common.procstat.CpuMeter` (workers are ``loadgen-<slot>``).
SERVER = "server"


@dataclass
class CpuWindow:
    """CPU used over the measured window, in percent of one core (processes) or of the machine."""

    server: float | None  #: the server process (can pass 100: sends run outside the GIL)
    generator: float  #: every generator process, summed
    generator_max: float  #: the busiest single generator process
    machine: float  #: the whole machine, percent of all its cores
    cores: int

    @classmethod
    def from_use(cls, cpu: CpuUse) -> CpuWindow:
        """The window of a :class:`harness.common.procstat.CpuMeter` that read ``server`` and the
        generator's processes (every other name)."""
        workers = [p for name, p in cpu.percent.items() if name != SERVER and p is not None]
        return cls(
            server=cpu.percent.get(SERVER),
            generator=sum(workers),
            generator_max=max(workers, default=0.0),
            machine=cpu.machine_percent,
            cores=cpu.cores,
        )


@dataclass
class LoadResult:
    """What one run measured. Rates are per second of the measured window."""

    spec: LoadSpec
    window_s: float
    deliveries: int  #: lines received by all members during the window
    sent: int  #: messages the publishers sent after the marker, in all
    expected: int  #: sent x members: what the members should have received by the end
    received: int  #: what they did receive (counted after the marker)
    lost: int
    extra: int  #: lines beyond ``sent`` on some member (e.g. a LEAVE): the load was disturbed
    drops: int  #: members whose connection the server closed
    order_violations: int
    sampled: int  #: lines whose order was checked
    witnesses: list[str]
    latencies: array[float] | None  #: seconds, due time to receipt, ``parse`` runs only
    cpu: CpuWindow
    generator_bound: bool
    connect_s: float  #: from the first connect to the last member joined

    @property
    def deliveries_per_s(self) -> float:
        return self.deliveries / self.window_s if self.window_s > 0 else 0.0

    @property
    def is_clean(self) -> bool:
        return self.lost == 0 and self.extra == 0 and self.drops == 0 and self.order_violations == 0


#: A worker process whose CPU use over the window passed this share of one core was itself the
#: bottleneck: it could not have read (or sent) faster.
GEN_PROCESS_BOUND = 90.0
#: A machine this busy had no core left for the server to grow into.
MACHINE_BUSY = 95.0
#: ... and a generator that used this much of it took a real share (on a machine made busy by other
#: programs, a light generator is not what held the server back).
GEN_BUSY = 50.0


def is_generator_bound(cpu: CpuWindow) -> bool:
    """The rule that marks a figure as the generator's, not the server's.

    Either one generator process used (nearly) a whole core, or the machine was full and the generator
    used a real share of it, more than the server: the server then lost the contest for cores to its
    own load.
    """
    if cpu.generator_max >= GEN_PROCESS_BOUND:
        return True
    return (
        cpu.server is not None
        and cpu.machine >= MACHINE_BUSY
        and cpu.generator >= GEN_BUSY
        and cpu.generator > cpu.server
    )


def _context() -> Any:
    """``fork`` where it is safe (a single-threaded parent on a system that has it): a run then starts its
    workers in milliseconds; ``spawn`` otherwise (a parent with threads, such as the thread that reads
    a launched server's stdout), which costs each worker about 0.1 s of imports before it connects."""
    if "fork" in multiprocessing.get_all_start_methods() and threading.active_count() == 1:
        return multiprocessing.get_context("fork")
    return multiprocessing.get_context("spawn")


def _split(names: list[str], n_pub: int, procs: int) -> list[list[str]]:
    """Publishers in slot 0; the rest dealt round-robin over the receiver processes."""
    rest = names[n_pub:]
    procs = max(1, min(procs, len(rest))) if rest else 0
    return [names[:n_pub]] + [rest[i::procs] for i in range(procs)]


def run_load(
    spec: LoadSpec,
    *,
    server_pid: int | None = None,
    on_joined: Callable[[], None] | None = None,
    on_tick: Callable[[], None] | None = None,
) -> LoadResult:
    """Run one load against ``spec.host:spec.port`` and measure it. Raises :class:`LoadError`.

    ``on_joined`` is called once every member has joined and before any load (the memory case measures
    the idle server there); ``on_tick`` about every 0.1 s during the measured window.
    """
    if spec.members < 1:
        raise LoadError("a run needs at least one member")
    ctx = _context()
    groups = _split(spec.names(), spec.n_publishers, spec.procs)
    slots = len(groups)
    shared = Shared.create(ctx, slots)
    pipes: list[Connection] = []
    procs: list[Any] = []
    try:
        for slot, names in enumerate(groups):
            parent_end, child_end = ctx.Pipe(duplex=False)
            proc = ctx.Process(
                target=worker_main,
                args=(slot, spec, names, shared, child_end),
                name=f"loadgen-{slot}",
                daemon=True,
            )
            proc.start()
            child_end.close()
            pipes.append(parent_end)
            procs.append(proc)
        return _drive(spec, procs, pipes, shared, server_pid, on_joined, on_tick)
    finally:
        shared.phase.value = EXIT
        shared.connect.set()  # a worker still waiting to connect sees EXIT and ends
        for proc in procs:
            proc.join(5.0)
            if proc.is_alive():
                proc.kill()
                proc.join(5.0)
        for pipe in pipes:
            pipe.close()
        shared.close()


def _collect(pipes: list[Connection], procs: list[Any], want: type[R], timeout: float) -> dict[int, R]:
    """Wait for a report of type ``want`` from every worker of ``pipes``, by slot.

    A :class:`Failed` report or a dead worker ends the run (LoadError).
    """
    got: dict[int, R] = {}
    deadline = time.monotonic() + timeout
    open_pipes = list(pipes)
    while len(got) < len(pipes):
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise LoadError(
                f"the load generator timed out waiting for {want.__name__.lower()!r} "
                f"({len(got)}/{len(pipes)} workers)"
            )
        for ready in wait_connections(open_pipes, timeout=min(remaining, 0.5)):
            assert isinstance(ready, Connection)
            try:
                report: Report = ready.recv()
            except EOFError:
                open_pipes.remove(ready)
                raise LoadError("a load generator process ended without reporting") from None
            if isinstance(report, Failed):
                raise LoadError(f"load generator worker {report.slot}: {report.error}")
            if isinstance(report, want):
                got[report.slot] = report
        if any(not p.is_alive() and p.exitcode not in (0, None) for p in procs):
            raise LoadError("a load generator process died")
    return got


def _drive(
    spec: LoadSpec,
    procs: list[Any],
    pipes: list[Connection],
    shared: Shared,
    server_pid: int | None,
    on_joined: Callable[[], None] | None,
    on_tick: Callable[[], None] | None,
) -> LoadResult:
    """The phases of one run (see :mod:`harness.bench.loadgen`), and its figures."""
    phase, counts = shared.phase, shared.counts
    _collect(pipes, procs, Ready, spec.connect_timeout)
    shared.connect.set()
    joined = _collect(pipes, procs, Joined, spec.connect_timeout + 10.0).values()
    # From the first connect to the last OK, read in the workers (one monotonic clock for all processes).
    connect_s = max(j.ended for j in joined) - min(j.began for j in joined)
    if on_joined is not None:
        on_joined()
    meter = CpuMeter({f"loadgen-{slot}": p.pid for slot, p in enumerate(procs)})
    if server_pid is not None:
        meter.add(SERVER, server_pid)
    phase.value = GO
    _collect(pipes[:1], procs, Started, spec.connect_timeout)
    # Warm up, then the measured window. The waits are on the workers' pipes, so that a worker that fails
    # ends the run at once; nothing is expected on them in between.
    _quiet_wait(pipes, spec.warmup, on_tick)
    a, count_a = meter.read(), sum(counts)
    _quiet_wait(pipes, spec.seconds, on_tick)
    b, count_b = meter.read(), sum(counts)
    phase.value = STOP
    results = _collect(pipes, procs, Figures, spec.drain_timeout + spec.connect_timeout)
    cpu = CpuWindow.from_use(use(a, b))
    sent = max(0, shared.final_sent.value)
    figures = [results[slot] for slot in sorted(results)]
    latencies: array[float] | None = None
    if spec.parse:
        latencies = array("d")
        for f in figures:
            if f.latencies:
                latencies.frombytes(f.latencies)
    return LoadResult(
        spec=spec,
        window_s=b.t - a.t,
        deliveries=count_b - count_a,
        sent=sent,
        # A server that echoes nothing to the sender (IRC) delivers each message to members - 1.
        expected=sent * (spec.members - (0 if wire_for(spec.protocol, spec.token).echo else 1)),
        received=sum(sum(f.counts) for f in figures),
        lost=sum(f.lost for f in figures),
        extra=sum(f.extra for f in figures),
        drops=sum(f.drops for f in figures),
        order_violations=sum(f.violations for f in figures),
        sampled=sum(f.sampled for f in figures),
        witnesses=[w for f in figures for w in f.witnesses][:MAX_WITNESSES],
        latencies=latencies,
        cpu=cpu,
        generator_bound=is_generator_bound(cpu),
        connect_s=connect_s,
    )


def _quiet_wait(pipes: list[Connection], seconds: float, on_tick: Callable[[], None] | None) -> None:
    """Let ``seconds`` pass while watching the workers: any message now is an error report."""
    end = time.monotonic() + seconds
    while True:
        remaining = end - time.monotonic()
        if remaining <= 0:
            return
        for ready in wait_connections(pipes, timeout=min(remaining, 0.1)):
            assert isinstance(ready, Connection)
            try:
                report: Report = ready.recv()
            except EOFError:
                raise LoadError("a load generator process ended early") from None
            if isinstance(report, Failed):
                raise LoadError(f"load generator worker {report.slot}: {report.error}")
        if on_tick is not None:
            on_tick()
