"""What the load generator's parent and its worker processes share: the run's spec, phases and reports.

See :mod:`harness.bench.loadgen` for how a run goes.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import Any, Literal, NamedTuple, TypeVar

from harness.bench.loadgen.wire import Protocol

# -- phases (the shared ``phase`` integer) ----------------------------------------
SETUP, GO, STOP, EXIT = 0, 1, 2, 3

#: The text every publisher sends is padded to exactly this many bytes (docs/performance.md).
DEFAULT_TEXT_BYTES = 64
#: Saturation: messages in flight across the run. Below the server's high-water mark (a quarter of
#: ``--max-backlog``, 250 by default), so the server's backpressure never has to step in.
DEFAULT_WINDOW = 200
#: Saturation: at most this many lines in one send of one publisher (clients may pipeline).
DEFAULT_BATCH = 64
#: Members a worker connects and joins at once (see ``_Worker.connect_all``).
DEFAULT_JOIN_WAVE = 50
#: Witnesses kept per worker, and per run, of the order violations seen.
MAX_WITNESSES = 5

Kind = Literal["saturate", "rate"]


class LoadError(Exception):
    """The run could not be done (connect, handshake, a worker died): no figure is reported."""


@dataclass(frozen=True)
class LoadSpec:
    """One run of the generator against one server."""

    host: str
    port: int
    members: int
    kind: Kind = "saturate"
    #: What the server speaks (:mod:`harness.bench.loadgen.wire`): ours, IRC or Redis pub/sub.
    protocol: Protocol = "chat"
    #: Members connected at once, per worker: fewer for a server with a short listen backlog (ngircd).
    join_wave: int = DEFAULT_JOIN_WAVE
    publishers: int = 5
    #: ``rate``: messages per second in total, over all publishers.
    rate: float = 0.0
    window: int = DEFAULT_WINDOW
    batch: int = DEFAULT_BATCH
    text_bytes: int = DEFAULT_TEXT_BYTES
    #: Seconds between the start of the load and the start of the measured window.
    warmup: float = 0.5
    #: Seconds of the measured window.
    seconds: float = 3.0
    #: Receiver processes (the publisher process comes on top).
    procs: int = 2
    #: Every member parses every line and records latencies (the latency case).
    parse: bool = False
    connect_timeout: float = 30.0
    #: The longest the end of a run waits for the last lines (see ``_Worker._drain``).
    drain_timeout: float = 120.0
    #: Makes this run's names unique, so that runs against a long-lived ``--target`` never collide.
    token: str = field(default_factory=lambda: os.urandom(2).hex())

    def names(self) -> list[str]:
        """Every member's name: ``p<i>-<token>`` for the publishers, first, then ``m<i>-<token>``."""
        pubs = [f"p{i}-{self.token}" for i in range(self.n_publishers)]
        rest = [f"m{i}-{self.token}" for i in range(self.n_publishers, self.members)]
        return pubs + rest

    @staticmethod
    def bot_id(name: str) -> str:
        """The id a member's payload carries (``b=p0``): its name without the run's token."""
        return name.rpartition("-")[0]

    @property
    def n_publishers(self) -> int:
        return max(1, min(self.publishers, self.members))


# -- what a worker tells the parent, through its pipe -------------------------------------


class Ready(NamedTuple):
    """The worker has started, and waits for the word to connect."""

    slot: int


class Joined(NamedTuple):
    """Every member of the worker has joined."""

    slot: int
    members: int
    began: float  #: ``time.monotonic()`` (one clock for every process) when its first connect started
    ended: float  #: ... when its last member got OK


class Started(NamedTuple):
    """The start marker came back to ``p0``: the publishers send from now on (the publisher process only)."""

    slot: int


@dataclass(frozen=True)
class Figures:
    """What one worker measured, sent once the run stops."""

    slot: int
    counts: list[int]  #: lines after the marker, per member
    lost: int
    extra: int
    drops: int
    violations: int
    witnesses: list[str]
    sampled: int
    latencies: bytes | None  #: an ``array("d")`` of seconds, in ``parse`` mode


class Failed(NamedTuple):
    """The worker could not go on: the run ends with this error."""

    slot: int
    error: str


Report = Ready | Joined | Started | Figures | Failed
R = TypeVar("R", Ready, Joined, Started, Figures)


#: ``Shared.wake_at`` when the publisher is not waiting for the window.
NOT_WAITING = 1 << 62


class Shared(NamedTuple):
    """What the parent and all its workers share in shared memory (single-writer slots, read without a
    lock: see :mod:`harness.bench.loadgen`)."""

    phase: Any  #: ``RawValue("i")``: SETUP, GO, STOP or EXIT, written by the parent
    counts: Any  #: ``RawArray("q")``: lines counted after the marker, per worker
    mins: Any  #: ``RawArray("q")``: the count of each worker's slowest member
    final_sent: Any  #: ``RawValue("q")``: messages sent in all, written once the publishers stop (-1 before)
    connect: Any  #: ``Event``: set once every worker is ready, so that all start connecting at once
    #: ``RawValue("q")``: while the publisher waits for the window to open, the count every worker's
    #: slowest member must reach for it to go on; NOT_WAITING otherwise (written by the publisher, and
    #: back to NOT_WAITING by the worker that wakes it)
    wake_at: Any
    #: The wake-up pipe (``Connection`` ends, used as raw fds): a counting worker whose slowest member
    #: crosses ``wake_at`` writes a byte to ``wake_w``; ``wake_r`` is in the publisher's poll set
    wake_r: Any
    wake_w: Any

    @classmethod
    def create(cls, ctx: Any, slots: int, phase: int = SETUP) -> Shared:
        """Everything at its starting value, for ``slots`` workers, from a multiprocessing context."""
        wake_r, wake_w = ctx.Pipe(duplex=False)
        return cls(
            phase=ctx.RawValue("i", phase),
            counts=ctx.RawArray("q", slots),
            mins=ctx.RawArray("q", slots),
            final_sent=ctx.RawValue("q", -1),
            connect=ctx.Event(),
            wake_at=ctx.RawValue("q", NOT_WAITING),
            wake_r=wake_r,
            wake_w=wake_w,
        )

    def close(self) -> None:
        """Close this process's ends of the wake-up pipe."""
        self.wake_r.close()
        self.wake_w.close()
