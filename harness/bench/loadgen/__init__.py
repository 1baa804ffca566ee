"""The benchmark's load generator: members spread over processes that count lines instead of parsing them.

Not a bot and not a judge of the protocol (that is :mod:`harness.swarm` and :mod:`harness.checker`): its one
job is to push a server as hard as it can go, or at an exact rate, without being the bottleneck itself, and
still notice loss, reordering and slow drops.

Theory of operation
-------------------
One run connects ``members`` clients to one server. They are spread over worker *processes* (Python
threads would share one GIL with each other, and a parsing bot cannot read 3 M lines/s):

* the **publisher process** (slot 0) holds the ``publishers`` members that send. They are members like the
  others and receive every broadcast too;
* ``procs`` **receiver processes** (slots 1..procs) hold the rest.

Every worker polls its sockets (``epoll``), and receives into one preallocated buffer. A *counting* member
adds ``buffer.count(b"\\n")`` and never looks at its lines. One member per process is the *sample*: it scans
a share of its lines (all of them in ``parse`` mode) with :func:`chat.protocol.broadcast_scanner` and checks
that seqs are consecutive and each sender's counter goes up by one. In ``parse`` mode every member parses
every line and records, per line, the time from the message's due time (carried in its payload,
:mod:`harness.record.payload`) to the ``recv`` that brought it: latency honest under coordinated omission.

The phases, driven by the parent through one shared integer (``phase``):

``SETUP``  workers start and report ``ready``; once all are, the parent says ``connect`` and they connect
           and do the handshake together, then report ``joined``;
``GO``     publisher ``p0`` sends a marker line; every member ignores what it receives up to and including
           that marker, and counts what follows. The publishers start sending once ``p0`` has seen the
           marker come back, so every counted line is a message of this run;
``STOP``   the publishers stop and write how many messages they sent in all; every member drains until it has
           that many lines (or a deadline passes), and each worker reports its figures;
``EXIT``   workers close their sockets and end.

Two kinds of load:

``saturate``  closed loop. The publishers keep at most ``window`` messages in flight: sent, but not yet
              received by the slowest member of the run. Workers publish their slowest member's count in
              shared memory, and the publisher reads it before each batch; when the window is full it
              says which count it waits for, and the worker that sees it crossed wakes it through a pipe
              (a timed poll there, rounded up to a millisecond, set the pace at 10 members). So a
              healthy member's backlog in the server never passes ``window`` lines (keep it under the
              server's high-water mark), no member is dropped as slow and nothing is lost: the figure is
              the sustainable rate, not a burst into buffers.
``rate``      open loop. Message ``j`` is due at ``t0 + j / rate`` whatever happened before; a late message
              is sent at once and its lateness counts in its latency.

The shared figures (``counts``, ``mins``, ``final_sent``) are single-writer slots in shared memory, read
without a lock: a reader may see a value one update old, which only delays a decision by one loop. What a
worker tells the parent (joined, started, its figures, or why it failed) goes through its pipe as one of
the named reports of :mod:`harness.bench.loadgen.spec`.

=========  ====================================================================
module     what it holds
=========  ====================================================================
``spec``   what the parent and the workers share: the spec, phases and reports
``worker`` one worker process: members, poll loop, sample checks, publishers
``run``    the parent: :func:`run_load`, the CPU window and the generator-bound rule
=========  ====================================================================
"""

from harness.bench.loadgen.run import CpuWindow, LoadResult, is_generator_bound, run_load
from harness.bench.loadgen.spec import LoadError, LoadSpec

__all__ = ["CpuWindow", "LoadError", "LoadResult", "LoadSpec", "is_generator_bound", "run_load"]
