"""``python -m harness.bench.instrumentation``: what the instrumented lock costs per critical section.

A micro-benchmark, in one process, with no sockets: the end-to-end figure
(server throughput with and without ``--metrics-port``) is the
``instrumentation`` case of ``python -m harness.bench``. This one says where
that difference comes from: the time of one critical section of the room with
a plain ``threading.Lock`` and with :class:`chat.lockstat.InstrumentedLock`,
for an empty section and for ``Room.say`` broadcasting one line to N members.

The two locks are measured in alternation, round after round, and the
medians compared, so that a machine that gets busier during the run slows
both alike: on a shared machine the ratio is the figure to trust, not the
nanoseconds.
"""

from __future__ import annotations

import argparse
import json
import socket
import statistics
import sys
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass

from chat.delivery import BatchedOutbox
from chat.lockstat import InstrumentedLock, SupportsLock
from chat.room import Connection, Room

PROG = "python -m harness.bench.instrumentation"


@dataclass(frozen=True)
class Cost:
    """One case: the median time of one call with each lock."""

    case: str
    plain_ns: float
    instrumented_ns: float

    @property
    def extra_ns(self) -> float:
        return self.instrumented_ns - self.plain_ns

    @property
    def ratio(self) -> float:
        return self.instrumented_ns / self.plain_ns if self.plain_ns else float("nan")


def _time_per_call(fn: Callable[[], object], calls: int) -> float:
    start = time.perf_counter()
    for _ in range(calls):
        fn()
    return (time.perf_counter() - start) / calls * 1e9


def _alternate(
    plain: Callable[[], object], inst: Callable[[], object], calls: int, rounds: int
) -> tuple[float, float]:
    ps, ins = [], []
    for _ in range(rounds):
        ps.append(_time_per_call(plain, calls))
        ins.append(_time_per_call(inst, calls))
    return statistics.median(ps), statistics.median(ins)


class _Members:
    """A room with N members whose outboxes never send (their queues are emptied between rounds)."""

    def __init__(self, lock: SupportsLock, members: int) -> None:
        self.room = Room(max_clients=members + 1, max_backlog=10**9, lock=lock)
        self.socks: list[socket.socket] = []
        self.conns: list[Connection] = []
        for i in range(members):
            a, b = socket.socketpair()
            self.socks += [a, b]
            outbox = BatchedOutbox(a, f"m{i}")
            outbox.send_when_idle = False  # and no writer started: the cost measured is the room's
            conn = Connection(outbox, f"m{i}")
            self.room.admit(conn)
            self.room.join(conn, f"m{i}")
            self.conns.append(conn)
        self.sender = self.conns[0]
        self.texts = ["b=b0 n=0 t=0.000000 " + "x" * 32]

    def say(self) -> None:
        self.room.say(self.sender, self.texts, may_pause=False)

    def drain(self) -> None:
        for c in self.conns:
            c.outbox._lines.clear()  # type: ignore[attr-defined]  # BatchedOutbox's queue

    def close(self) -> None:
        for s in self.socks:
            s.close()


def measure(members: Sequence[int] = (10, 50, 200), calls: int = 2000, rounds: int = 15) -> list[Cost]:
    """The cost of an empty critical section, and of ``Room.say`` to each member count."""
    plain_lock = threading.Lock()
    inst_lock = InstrumentedLock("bench")

    def empty_plain() -> None:
        with plain_lock:
            pass

    def empty_inst() -> None:
        with inst_lock:
            pass

    costs = [Cost("empty section", *_alternate(empty_plain, empty_inst, calls * 50, rounds))]
    for n in members:
        a = _Members(threading.Lock(), n)
        b = _Members(InstrumentedLock("registry"), n)
        try:

            def plain_say(a: _Members = a) -> None:
                a.say()

            def inst_say(b: _Members = b) -> None:
                b.say()

            ps, ins = [], []
            for _ in range(rounds):
                a.drain()
                b.drain()
                ps.append(_time_per_call(plain_say, calls))
                ins.append(_time_per_call(inst_say, calls))
            costs.append(Cost(f"say to {n} members", statistics.median(ps), statistics.median(ins)))
        finally:
            a.close()
            b.close()
    return costs


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog=PROG, description=__doc__.splitlines()[0] if __doc__ else None)
    p.add_argument(
        "--rounds", type=int, default=15, help="alternating rounds per case (default: %(default)s)"
    )
    p.add_argument("--json", action="store_true", help="print the figures as JSON")
    args = p.parse_args(argv)
    if args.rounds < 1:
        print(f"{PROG}: --rounds must be at least 1", file=sys.stderr)
        return 2
    costs = measure(rounds=args.rounds)
    if args.json:
        print(json.dumps([{**asdict(c), "extra_ns": c.extra_ns, "ratio": c.ratio} for c in costs], indent=2))
        return 0
    print(f"{'case':<22} {'plain':>10} {'instrumented':>13} {'extra':>9} {'ratio':>7}")
    for c in costs:
        figures = f"{c.plain_ns:>8.0f}ns {c.instrumented_ns:>11.0f}ns {c.extra_ns:>7.0f}ns {c.ratio:>6.2f}x"
        print(f"{c.case:<22} {figures}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
