"""The teaching notebooks' kit: servers, clients, swarms, and run records and metrics as pandas tables.

Not a new harness: every function here is a thin, documented wrapper over what chat/ and harness/
already do, so that a notebook cell reads like the lesson and copies no logic (docs/notebooks.md).
Notebooks use ``from harness import lab`` and ``lab.<name>``; notebooks 03 and 04 also use
:mod:`harness.lab.load`. The kit is the only part of the project that imports pandas (the ``notebooks``
extra). Every wait has a deadline, never a sleep; subprocesses run in the repository root, so the kit
works from the root or from ``notebooks/``.

===========  ==================================================================================
module       what it holds
===========  ==================================================================================
``servers``  chat servers started and stopped by PID (:mod:`harness.common.launcher`)
``client``   a blocking client driven line by line; the name race
``swarms``   swarm runs (:mod:`harness.swarm.invoke`): verdict and record
``frames``   a run record as tables: events, deliveries with latency, members, streams
``judging``  the checker over a record, and its counts and witnesses as tables
``locks``    lock metrics as tables: per critical section, histogram bars, recorded series
``load``     the experiments of notebooks 03 (a sweep) and 04 (a slow consumer)
===========  ==================================================================================
"""

from harness.lab.client import LINE_TIMEOUT, LabClient, race_for_name
from harness.lab.frames import (
    RunFrames,
    deliveries_frame,
    events_frame,
    frames_from_histories,
    latency_cdf,
    load_frames,
    members_frame,
    stream_frame,
    throughput,
)
from harness.lab.judging import check_config, checks_frame, judge, violations_frame
from harness.lab.locks import lock_histogram, locks_frame, metrics_series, scrape_metrics
from harness.lab.servers import LabServer, chat_server, start_server, thread_count
from harness.lab.swarms import SwarmRun, run_swarm

__all__ = [
    "LINE_TIMEOUT",
    "LabClient",
    "LabServer",
    "RunFrames",
    "SwarmRun",
    "chat_server",
    "check_config",
    "checks_frame",
    "deliveries_frame",
    "events_frame",
    "frames_from_histories",
    "judge",
    "latency_cdf",
    "load_frames",
    "lock_histogram",
    "locks_frame",
    "members_frame",
    "metrics_series",
    "race_for_name",
    "run_swarm",
    "scrape_metrics",
    "start_server",
    "stream_frame",
    "thread_count",
    "throughput",
    "violations_frame",
]
