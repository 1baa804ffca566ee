"""What a bench run is parameterised by: the cases, the designs, the sizes, and the ``--quick`` and
``--tiny`` profiles. Stored whole in the run record (meta.json) and the summary's ``settings``."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any

from harness.common.address import Endpoint

CASES = ("saturation", "latency", "memory", "instrumentation", "checker")
DESIGNS = ("direct", "queued", "batched")
#: The cases that run the peers (``--peers``) beside our designs: the others measure our server's
#: own machinery (threads, memory, lock metrics).
PEER_CASES = ("saturation", "latency")
#: The design label of every run against a ``--target`` (a server the bench did not start).
TARGET = "target"


@dataclass
class Settings:
    """Everything a bench run is parameterised by; stored in meta.json."""

    cases: list[str] = field(default_factory=lambda: list(CASES))
    designs: list[str] = field(default_factory=lambda: list(DESIGNS))
    #: Peer servers (:mod:`harness.common.peers`) measured beside our designs in the same run.
    peers: list[str] = field(default_factory=list)
    target: Endpoint | None = None
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

    @property
    def designs_to_run(self) -> list[str]:
        """The servers each case compares: the chosen designs, or the one ``--target``."""
        return [TARGET] if self.target else list(self.designs)

    def to_json(self) -> dict[str, Any]:
        d = dataclasses.asdict(self)
        d["target"] = str(self.target) if self.target else None
        return d


def apply_quick(s: Settings) -> None:
    """``--quick``: a run of about a minute: shorter windows, fewer sizes, one repetition."""
    s.quick = True
    s.seconds, s.warmup, s.latency_seconds = 1.0, 0.3, 1.5
    s.memory_sizes, s.memory_designs, s.memory_seconds = [100, 500], ["batched"], 1.0
    s.checker_events = 200_000
    s.swarm_sizes, s.swarm_seconds = [100], 4.0
    s.reps = 1


def apply_tiny(s: Settings) -> None:
    """``--tiny``: the smallest configuration that exercises every case (for tests)."""
    s.tiny = True
    s.sizes, s.publishers, s.seconds, s.warmup = [3], 2, 0.5, 0.2
    s.rates, s.latency_members, s.latency_seconds = [50.0], 3, 0.5
    s.memory_sizes, s.memory_designs, s.memory_rate, s.memory_seconds = [5], ["batched"], 20.0, 0.3
    s.instrumentation_members, s.checker_events, s.swarm_sizes, s.swarm_seconds = 3, 20_000, [5], 1.0
    s.procs, s.connect_timeout = 1, 30.0
    s.reps = 1
