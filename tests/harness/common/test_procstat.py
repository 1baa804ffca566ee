"""Process figures: read together, and None (never an exception) for a process that is gone."""

from __future__ import annotations

import os
import subprocess
import sys
import time

from harness.common.procstat import CpuMeter, cpu_seconds, sample_process, use


def _gone_pid() -> int:
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


def test_sample_of_this_process() -> None:
    s = sample_process()
    assert s is not None
    assert s.cpu_s > 0 and s.rss > 0 and s.threads >= 1 and s.fds >= 3


def test_a_process_that_is_gone_reads_as_none() -> None:
    pid = _gone_pid()
    assert sample_process(pid) is None
    assert cpu_seconds(pid) is None


def test_cpu_meter_window() -> None:
    meter = CpuMeter({"self": None, "gone": _gone_pid()})
    a = meter.read()
    start = time.process_time()
    deadline = time.monotonic() + 5.0
    while time.process_time() - start < 0.05 and time.monotonic() < deadline:
        pass  # some CPU to measure (the kernel counts it in ticks of 10 ms)
    b = meter.read()
    u = use(a, b)
    assert u.wall_s > 0
    assert u.percent["gone"] is None
    self_pct = u.percent["self"]
    assert self_pct is not None and self_pct > 0
    assert u.seconds("self") is not None
    assert 0 <= u.machine_percent <= 100
    assert u.cores == (os.cpu_count() or 1)
