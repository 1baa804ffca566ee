"""What processes use: CPU seconds, memory, threads and descriptors (psutil), read one way everywhere.

Used for a server under test (its CPU beside the harness's, its RSS and threads
over a soak), for the load generator's own processes, and for the notebooks. A
process that has exited reads as ``None``, never as an exception: these figures
are reported beside results, and a missing one must not end a run.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Mapping
from typing import NamedTuple

import psutil

log = logging.getLogger(__name__)


class ProcessSample(NamedTuple):
    """One process at one instant."""

    t: float
    """``time.monotonic()`` when it was read."""
    cpu_s: float
    """CPU seconds used since it started, user plus system, all threads."""
    rss: int
    """Resident memory, bytes."""
    threads: int
    fds: int
    """Open file descriptors (sockets included)."""


def _process(pid: int | None) -> psutil.Process | None:
    try:
        return psutil.Process(pid)
    except psutil.Error:
        return None


def _cpu(proc: psutil.Process) -> float | None:
    try:
        t = proc.cpu_times()
    except psutil.Error:
        return None
    return float(t.user + t.system)


def cpu_seconds(pid: int | None = None) -> float | None:
    """CPU seconds (user + system) of ``pid`` (this process when None); None when it is gone."""
    proc = _process(pid)
    return _cpu(proc) if proc is not None else None


def sample_process(pid: int | None = None) -> ProcessSample | None:
    """CPU, RSS, threads and descriptors of ``pid`` (this process when None); None when it is gone."""
    proc = _process(pid)
    if proc is None:
        return None
    try:
        with proc.oneshot():
            times = proc.cpu_times()
            return ProcessSample(
                t=time.monotonic(),
                cpu_s=float(times.user + times.system),
                rss=int(proc.memory_info().rss),
                threads=int(proc.num_threads()),
                fds=int(proc.num_fds()),
            )
    except psutil.Error as exc:
        log.debug("no sample of pid %s: %s", pid, exc)
        return None


def find_listening_pid(port: int) -> int | None:
    """The local process listening on TCP ``port`` (a ``--target`` whose CPU we may measure), if visible."""
    try:
        for conn in psutil.net_connections(kind="tcp"):
            if conn.status == psutil.CONN_LISTEN and conn.laddr and conn.laddr.port == port and conn.pid:
                return int(conn.pid)
    except (psutil.Error, OSError):
        return None
    return None


class CpuReading(NamedTuple):
    """CPU seconds of several processes and of the whole machine, read at one instant."""

    t: float
    """``time.monotonic()``."""
    seconds: Mapping[str, float | None]
    """Per named process; None when it could not be read (gone, or another user's)."""
    machine_busy: float
    """Seconds all cores spent not idle since boot."""
    machine_total: float
    """Seconds all cores spent, idle included, since boot."""


class CpuUse(NamedTuple):
    """CPU used between two readings, in percent of one core per process and of all cores for the machine."""

    wall_s: float
    percent: Mapping[str, float | None]
    machine_percent: float
    cores: int

    def seconds(self, name: str) -> float | None:
        """CPU seconds ``name`` used in the window."""
        p = self.percent.get(name)
        return None if p is None else p * self.wall_s / 100.0


class CpuMeter:
    """Reads the CPU seconds of named processes together, so that their figures cover the same window.

    ``meter = CpuMeter({"server": pid, "harness": None})``, then ``a = meter.read()``
    and later ``use(a, meter.read())``. A pid of None is this process.
    """

    def __init__(self, pids: Mapping[str, int | None] | None = None) -> None:
        self._procs: dict[str, psutil.Process | None] = {}
        for name, pid in (pids or {}).items():
            self.add(name, pid)

    def add(self, name: str, pid: int | None) -> None:
        self._procs[name] = _process(pid)

    def read(self) -> CpuReading:
        t = time.monotonic()
        seconds = {name: (_cpu(p) if p is not None else None) for name, p in self._procs.items()}
        m = psutil.cpu_times()
        idle = m.idle + getattr(m, "iowait", 0.0)
        total = float(sum(m))
        return CpuReading(t, seconds, total - idle, total)


def use(a: CpuReading, b: CpuReading) -> CpuUse:
    """CPU used from reading ``a`` to reading ``b``."""
    wall = max(b.t - a.t, 1e-9)
    percent: dict[str, float | None] = {}
    for name, end in b.seconds.items():
        begin = a.seconds.get(name)
        percent[name] = None if begin is None or end is None else 100.0 * (end - begin) / wall
    total = b.machine_total - a.machine_total
    machine = 100.0 * (b.machine_busy - a.machine_busy) / total if total > 0 else 0.0
    return CpuUse(wall, percent, machine, os.cpu_count() or 1)
