"""What the checker reports: violations, the settings of a check, results, the report and the verdict.

Data, and the rules that turn a report into a verdict (:func:`judge`, :func:`verdict_line`);
no parsing and no checks. docs/checker.md describes every field.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import asdict, dataclass, field
from enum import Enum
from typing import NamedTuple

from harness.record.history import Role

CHECK_NAMES = ("seq", "agreement", "loss", "fifo", "membership", "names", "liveness")

#: Witnesses kept per check in a :class:`Report` (the counts are always exact):
#: a server that loses every message must not make the report a gigabyte.
MAX_WITNESSES = 200
#: Items listed inside one witness (missing seqs, candidate clients, ...).
WITNESS_ITEMS = 10
#: Roles whose bots stop reading on purpose: they are expected to be dropped as
#: slow, owe no latency and no delivery deadline.
SLOW_ROLES = frozenset({Role.SLOW})


class Verdict(str, Enum):
    """The outcome of a run (``str`` mixin, since 3.10 has no StrEnum: it compares, prints and
    serialises as its value)."""

    PASS = "PASS"
    FAIL = "FAIL"
    UNKNOWN = "UNKNOWN"

    def __str__(self) -> str:
        return self.value

    @property
    def exit_code(self) -> int:
        """The exit code of the swarm and of ``python -m harness.checker``: 0, 1 or 3."""
        return _EXIT_CODES[self]


_EXIT_CODES = {Verdict.PASS: 0, Verdict.FAIL: 1, Verdict.UNKNOWN: 3}


class SeqStyle(str, Enum):
    """How a server numbers its broadcasts, as read from its JOIN and LEAVE lines."""

    NUMBERED = "numbered"
    UNNUMBERED = "unnumbered"
    #: Some JOIN/LEAVE lines numbered, some not: judged as numbered (the seq check reports the rest).
    MIXED = "mixed"
    #: No JOIN or LEAVE line at all.
    NONE = "none"

    def __str__(self) -> str:
        return self.value

    @property
    def has_seqs(self) -> bool:
        """Whether the checks that read seqs apply."""
        return self in (SeqStyle.NUMBERED, SeqStyle.MIXED)


@dataclass(frozen=True)
class Violation:
    """One thing a correct server could not have done, with the smallest evidence that shows it."""

    check: str
    message: str
    witness: dict[str, object]


@dataclass(frozen=True)
class CheckConfig:
    """Bounds and facts about the run that the histories alone do not hold."""

    #: Seconds from connect to HELLO, and from a name line to its OK/ERR.
    handshake_bound: float = 5.0
    #: Seconds from sending a message to its echo; also how long a server may
    #: take to announce a LEAVE before a member that stayed is owed it.
    delivery_bound: float = 5.0
    #: Lower-cased names that several clients race for (name-race scenario).
    contested_names: frozenset[str] = frozenset()
    #: Wall-clock time the run stopped; the end of clients with no ``Closed``.
    run_end: float | None = None
    #: Seconds by which a recorded send time may trail the real write (bots
    #: record after writing; a preempted bot records late). Widens every time
    #: rule by this much, towards owing less.
    clock_slack: float = 0.02
    #: Longest line the server accepts; longer bot messages are not owed.
    max_line: int = 4096
    #: Other clients, whose histories are not given, may share the server (a
    #: distributed locust worker judges only its own users; people may chat
    #: during a run). What needs their histories is then not judged: a name
    #: no given client offered is not a phantom, a MSG whose sender is unknown
    #: or a LEAVE seen without its JOIN owes no JOIN, a name refused as taken
    #: may have been held by one of them, and the seq rule of loss is off (one
    #: of them may have reused a name). False: the histories are the whole run.
    foreign_clients: bool = False
    #: The server's bound on lines queued for one member (its ``--max-backlog``), when known: a slow
    #: reader then must have been dropped before more than that (past its kernel buffers) piled up for
    #: it (liveness). None: not judged (a ``--target`` whose bound the swarm was not told).
    max_backlog: int | None = None
    #: The protocol the histories speak: ``chat`` (ours) or ``irc`` (read through
    #: :mod:`harness.checker.irc`: no seqs, names under the server's CASEMAPPING).
    protocol: str = "chat"
    #: Judge agreement (one order for all members)? None: the protocol's promise. Ours makes it;
    #: IRC promises each member only each sender's order, so an IRC run judges it only when asked
    #: (``--strict-order``, for servers with one event loop).
    strict_order: bool | None = None

    @property
    def judges_agreement(self) -> bool:
        """Whether the agreement check runs."""
        return self.strict_order if self.strict_order is not None else self.protocol != "irc"


@dataclass
class LatencySummary:
    """Delivery latency, receiver side, from the message's *due* time (open loop)."""

    count: int = 0
    p50_ms: float = 0.0
    p95_ms: float = 0.0
    p99_ms: float = 0.0
    max_ms: float = 0.0


@dataclass
class CheckResult:
    """What one check found: the exact count and the first witnesses."""

    name: str
    count: int = 0
    violations: list[Violation] = field(default_factory=list)
    limit: int = MAX_WITNESSES

    def add(self, message: str, witness: dict[str, object]) -> None:
        self.count += 1
        if len(self.violations) < self.limit:
            self.violations.append(Violation(self.name, message, witness))

    @property
    def is_full(self) -> bool:
        """No more witnesses are kept: costly ones need not be built, only counted."""
        return len(self.violations) >= self.limit


@dataclass
class Report:
    """Every check's verdict on one run, and what the run was made of."""

    violations: list[Violation]
    #: Violations per check, every name of :data:`CHECK_NAMES` present (exact,
    #: even when fewer witnesses are kept).
    counts: dict[str, int]
    #: MSG lines received by members.
    deliveries: int
    #: Chat messages (with a bot payload) sent by members.
    messages_sent: int
    #: Clients (connections) that got ``OK``.
    joined: int
    clients: int
    latency: LatencySummary
    #: Read from the JOIN/LEAVE lines.
    seq_style: SeqStyle
    #: Distinct bots with at least one client that got ``OK``.
    bots_joined: int = 0
    #: Whether seqs are one global counter (False: per recipient; see docs).
    seq_global: bool = False
    #: Seconds the check took.
    elapsed: float = 0.0
    #: The protocol judged (``chat`` or ``irc``).
    protocol: str = "chat"
    #: Whether the agreement check ran (see :attr:`CheckConfig.judges_agreement`).
    agreement_judged: bool = True
    #: Members the server threw out for their pace (IRC flood control, send queues): who, the kind
    #: (``flood`` or ``sendq``), the server's text, and what to change in its configuration.
    throttled: list[dict[str, str]] = field(default_factory=list)

    def total(self) -> int:
        return sum(self.counts.values())

    def passed(self) -> bool:
        return self.total() == 0

    def summary_line(self) -> str:
        """``PASS: 0 violations in 123,456 deliveries`` or ``FAIL: 3 violations (loss 2, fifo 1)``."""
        total = self.total()
        if total == 0:
            return f"PASS: 0 violations in {self.deliveries:,} deliveries" + self.not_judged_note()
        order = {name: i for i, name in enumerate(CHECK_NAMES)}
        counts = self.counts
        names = sorted((n for n, c in counts.items() if c), key=lambda n: (-counts[n], order[n]))
        detail = ", ".join(f"{n} {counts[n]:,}" for n in names)
        return f"FAIL: {total:,} violation{'s' if total != 1 else ''} ({detail})" + self.not_judged_note()

    def not_judged_note(self) -> str:
        """What the verdict line adds: a check that did not run, members the server throttled; or ``""``."""
        note = ""
        if not self.agreement_judged:
            note += "; agreement not judged (IRC promises each sender's order only; --strict-order judges it)"
        if self.throttled:
            n = len(self.throttled)
            note += f"; {n} member{'s' if n != 1 else ''} throttled by the server, not lost (see the hints)"
        return note

    def to_dict(self) -> dict[str, object]:
        """A JSON-ready copy (for ``--json`` and summary.json); the IRC fields only for an IRC run."""
        d = asdict(self)
        if self.protocol != "irc":
            for name in ("protocol", "agreement_judged", "throttled"):
                del d[name]
        d["passed"] = self.passed()
        return d


class Judgement(NamedTuple):
    """A verdict and the exit code that goes with it."""

    verdict: Verdict
    exit_code: int


def judge(report: Report, asked_clients: int) -> Judgement:
    """The verdict and exit code of a run: ``FAIL``/1, ``UNKNOWN``/3 or ``PASS``/0.

    Any violation fails the run, a liveness one included, even when as a result
    fewer bots joined than asked (see CONTRACT-NOTES). Otherwise a run with no
    delivery, or with fewer bots joined than ``asked_clients``, is ``UNKNOWN``:
    too little happened to call it a pass.
    """
    if not report.passed():
        verdict = Verdict.FAIL
    elif report.deliveries == 0 or report.bots_joined < asked_clients:
        verdict = Verdict.UNKNOWN
    else:
        verdict = Verdict.PASS
    return Judgement(verdict, verdict.exit_code)


def verdict_line(report: Report, asked_clients: int) -> str:
    """The one-line verdict, ``UNKNOWN`` included.

    For example ``UNKNOWN: 0 violations in 1,234 deliveries, but only 3 of 50 bots joined``.
    """
    if judge(report, asked_clients).verdict is not Verdict.UNKNOWN:
        return report.summary_line()
    note = report.not_judged_note()
    if report.deliveries == 0:
        return (
            f"UNKNOWN: 0 violations, but no message was delivered ({report.bots_joined} bots joined)" + note
        )
    return (
        f"UNKNOWN: 0 violations in {report.deliveries:,} deliveries, "
        f"but only {report.bots_joined} of {asked_clients} bots joined" + note
    )


def short(items: Iterable[object]) -> list[object]:
    """The first :data:`WITNESS_ITEMS` of ``items`` for a witness, then ``"..."`` if there were more."""
    out: list[object] = []
    for i, x in enumerate(items):
        if i >= WITNESS_ITEMS:
            out.append("...")
            break
        out.append(x)
    return out
