"""The ladder: eight levels, in order, each a promise of docs/protocol.md that builds on the ones before.

Each level is a :class:`Level`: a stable name, how many runs it takes by
default (the racy ones several: a level passes only if every run does), the
hint and the lesson a failure points to, and ``play``, which raises
:class:`~harness.grade.probe.Broken` with a witness when the server breaks
the promise, or :class:`NotGraded` when this target cannot be graded on it.

The scripted levels (handshake, broadcast, slow-consumer, limits, shutdown)
speak to the server through :class:`~harness.grade.probe.Probe`; the racy
ones (ordering, name-race, churn) run a swarm against it
(:mod:`harness.swarm.invoke`) and take the checker's first witness.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

from chat import protocol
from harness.grade.probe import LINE_TIMEOUT, Broken, Probe, join, shown
from harness.grade.server import SHUTDOWN_BOUND, StartedServer, Target
from harness.swarm.invoke import SwarmSpec, run_swarm


class NotGraded(Exception):
    """This level cannot be graded on this target (for example ``shutdown`` with ``--target``)."""


@dataclass(frozen=True)
class RunContext:
    """What one run of a level gets: the target, and the run's number (names stay unique per run)."""

    target: Target
    run: int


@dataclass(frozen=True)
class Level:
    name: str
    promise: str
    runs: int
    hint: str
    lesson: str
    play: Callable[[RunContext], str]
    """One run: returns a note for the card ("" for none), raises Broken or NotGraded."""


BUGS = "docs/bugs.md"

#: The hint and lesson for each check of the checker, when a swarm level fails on it.
CHECK_HINTS: dict[str, tuple[str, str]] = {
    "seq": (
        "is the seq taken in the same critical section that picks the recipients and queues the line"
        " for each of them? Two broadcasts that interleave between those steps reach members in"
        " different orders",
        f"{BUGS}, seq-outside-lock; notebooks/01_threads_and_the_lock.ipynb",
    ),
    "agreement": (
        "do all members get one order? The seq, the recipients and the queueing must be one critical section",
        f"{BUGS}, seq-outside-lock and no-lock",
    ),
    "fifo": (
        "is each member's socket written by one thread only, from one queue, a whole line at a time?",
        f"{BUGS}, torn-writes",
    ),
    "loss": (
        "does every broadcast reach every member registered when its seq was taken? Register a newcomer"
        " before its JOIN is broadcast, and make sure a writer never misses a wake-up",
        f"{BUGS}, join-before-register and lost-wakeup",
    ),
    "membership": (
        "is every leave announced exactly once, in the critical section that removes the member, and"
        " nothing sent in its name afterwards?",
        f"{BUGS}, lost-leave and double-leave",
    ),
    "names": (
        "are the 'is this name free?' check and the registration one critical section?",
        f"{BUGS}, name-check-race",
    ),
    "liveness": (
        "did a thread hang? Two locks taken in opposite orders deadlock, and a send under the room's lock"
        " to a member that does not read blocks everyone",
        f"{BUGS}, lock-order-deadlock and send-under-lock",
    ),
}


# -- 1. handshake ----------------------------------------------------------------------------------


def play_handshake(ctx: RunContext) -> str:
    host, port = ctx.target.host, ctx.target.port
    first, second = f"Hs{ctx.run}ada", f"hs{ctx.run}bob"
    with Probe(host, port, first) as a, Probe(host, port, second) as b, Probe(host, port, "third") as c:
        for probe in (a, b, c):
            probe.expect(protocol.Hello, "HELLO, the server's first line")
        a.send(first)
        ok = a.expect(protocol.Ok, f"OK {first}")
        assert isinstance(ok, protocol.Ok)
        if ok.name != first:
            raise Broken(f"{first} sent its name and received 'OK {ok.name}'")
        b.send("not a name!")
        _expect_err(b, protocol.ErrorCode.INVALID_NAME, "the invalid name 'not a name!'")
        b.send(second)  # a retry on the same connection
        b.expect(protocol.Ok, f"OK {second} after a retry on the same connection")
        c.send(first.swapcase())
        _expect_err(
            c,
            protocol.ErrorCode.NAME_TAKEN,
            f"the name {first.swapcase()}, taken by {first} in another letter case",
            hint="compare names case-insensitively (name.lower()), in the critical section that"
            " registers them",
        )
    return ""


def _expect_err(probe: Probe, code: protocol.ErrorCode, what: str, hint: str = "") -> None:
    event = probe.event(waiting_for=f"ERR {code.value}")
    if not (isinstance(event, protocol.Err) and event.code is code):
        raise Broken(
            f"{probe.label} sent {what} and received {shown(protocol.server_line(event))},"
            f" not 'ERR {code.value} ...'",
            hint,
        )


# -- 2. broadcast ----------------------------------------------------------------------------------


def play_broadcast(ctx: RunContext) -> str:
    host, port = ctx.target.host, ctx.target.port
    names = [f"b{ctx.run}{n}" for n in ("ann", "ben", "cat")]
    probes: list[Probe] = []
    try:
        for name in names:
            probes.append(join(host, port, name))
            for probe in probes:  # the newcomer's JOIN reaches every member, itself included
                _until_join(probe, name)
        ann, ben, cat = probes
        ann.send("hello everyone")
        for probe in probes:  # the sender included
            _until_msg(probe, names[0], "hello everyone")
        cat.send("/who")
        users = cat.until(protocol.Users, "USERS after /who")
        assert isinstance(users, protocol.Users)
        # Only our three are checked: a member of an earlier level may still be leaving.
        missing = [n for n in names if n.lower() not in {u.lower() for u in users.names}]
        if missing:
            listed = " ".join(users.names)
            raise Broken(f"{names[2]} sent /who with {', '.join(names)} joined and received 'USERS {listed}'")
        cat.send("/quit")
        cat.until(protocol.Bye, "BYE after /quit")
        for probe in (ann, ben):
            _until_leave(probe, names[2], "quit")
        ben.close()  # without /quit: a dropped connection
        _until_leave(ann, names[1], "disconnected")
    finally:
        for probe in probes:
            probe.close()
    return ""


def _until_join(probe: Probe, name: str) -> None:
    """Skip lines until the JOIN of ``name`` (lines of an earlier run may still arrive first)."""
    deadline = time.monotonic() + LINE_TIMEOUT
    while True:
        event = probe.event(max(0.01, deadline - time.monotonic()), f"the JOIN of {name}")
        if isinstance(event, protocol.Join) and event.name == name:
            return


def _until_msg(probe: Probe, sender: str, text: str) -> None:
    deadline = time.monotonic() + LINE_TIMEOUT
    while True:
        event = probe.event(max(0.01, deadline - time.monotonic()), f"{sender}'s message {text!r}")
        if isinstance(event, protocol.Msg) and event.name == sender and event.text == text:
            return


def _until_leave(probe: Probe, name: str, reason: str) -> None:
    deadline = time.monotonic() + LINE_TIMEOUT
    while True:
        event = probe.event(max(0.01, deadline - time.monotonic()), f"LEAVE <seq> {name} {reason}")
        if isinstance(event, protocol.Leave) and event.name == name:
            if event.reason != reason:
                raise Broken(
                    f"{probe.label} received {shown(protocol.server_line(event))}: the reason is {reason}"
                )
            return


# -- 3-5. the swarm levels ---------------------------------------------------------------------------


def swarm_level(scenario: str, clients: int, duration: float) -> Callable[[RunContext], str]:
    """A level played by a swarm of ``clients`` bots for ``duration`` s, judged by the checker."""

    def play(ctx: RunContext) -> str:
        target = f"{ctx.target.host}:{ctx.target.port}"
        spec = SwarmSpec(clients, duration, scenario, extra=("--target", target))
        outcome = run_swarm(spec)
        verdict = outcome.verdict_text
        if verdict == "PASS":
            return ""
        witness = outcome.first_witness
        if witness is None:
            why = outcome.last_error_line or f"the swarm's verdict was {verdict}"
            raise Broken(f"the swarm of {clients} bots could not judge the run: {why}")
        hint, lesson = CHECK_HINTS.get(witness.check, ("", ""))
        text = witness.message
        if text[:1] == "b" and text[1:3].isdigit():
            text = "bot " + text
        raise Broken(f"{text} ({witness.check} check)", f"{hint} (read {lesson})" if hint else "")

    return play


# -- 6. slow-consumer ------------------------------------------------------------------------------

#: Seconds a member that stops reading may keep its place before the level fails.
SLOW_DROP_BOUND = 30.0
#: Seconds a reading member may wait for its own echo while another member does not read.
STALL_BOUND = 5.0
PAD = "x" * 1000  # fills the non-reader's buffers quickly
BATCH = 20


def play_slow_consumer(ctx: RunContext) -> str:
    host, port = ctx.target.host, ctx.target.port
    reader_name, slow_name = f"s{ctx.run}reader", f"s{ctx.run}sloth"
    with join(host, port, reader_name) as reader, join(host, port, slow_name, rcvbuf=4096):
        _until_join(reader, slow_name)
        # From here on, nobody reads ``slow``: its small receive buffer fills, then the server's side.
        start = time.monotonic()
        sent = 0
        while True:
            elapsed = time.monotonic() - start
            if elapsed > SLOW_DROP_BOUND:
                raise Broken(
                    f"{slow_name} stopped reading and was never dropped: after {SLOW_DROP_BOUND:g} s and"
                    f" {sent} messages of 1 KB it was still a member",
                    "bound each member's queue (--max-backlog) and drop a member whose queue overflows,"
                    " announcing LEAVE <seq> <name> slow (docs/protocol.md, Slow consumers)",
                )
            for i in range(BATCH):
                reader.send(f"{sent + i} {PAD}")
            sent += BATCH
            last = f"{sent - 1} {PAD}"
            waited = time.monotonic()
            while True:
                event = reader.event(STALL_BOUND, f"its own message while {slow_name} does not read")
                if isinstance(event, protocol.Leave) and event.name == slow_name:
                    if event.reason != "slow":
                        raise Broken(
                            f"{reader_name} received {shown(protocol.server_line(event))}:"
                            " the reason should be slow"
                        )
                    return f"{slow_name} dropped as slow after {time.monotonic() - start:.1f} s"
                if isinstance(event, protocol.Msg) and event.name == reader_name and event.text == last:
                    break
                if time.monotonic() - waited > STALL_BOUND:
                    raise Broken(
                        f"{reader_name} waited over {STALL_BOUND:g} s for its own message while {slow_name}"
                        " did not read: one slow member stalled the room",
                        "a send to a member that does not read blocks: never send under the room's lock;"
                        " give each member a queue and a writer thread",
                    )


# -- 7. limits ---------------------------------------------------------------------------------------

SILENT = 5


def play_limits(ctx: RunContext) -> str:
    host, port = ctx.target.host, ctx.target.port
    speaker, listener = f"l{ctx.run}speaker", f"l{ctx.run}ear"
    with join(host, port, speaker) as s, join(host, port, listener) as e:
        _until_join(s, listener)
        s.send("y" * (protocol.DEFAULT_MAX_LINE + 1000))
        _until_err(s, protocol.ErrorCode.LINE_TOO_LONG, f"a line of {protocol.DEFAULT_MAX_LINE + 1000} bytes")
        s.send_raw(b"caf\xc3 \xff\xfe\n")
        _until_err(s, protocol.ErrorCode.BAD_ENCODING, "a line that is not UTF-8")
        s.send("still here")
        _until_msg(e, speaker, "still here")
        silent = [Probe(host, port, f"silent{i}") for i in range(SILENT)]
        try:
            s.send("past the silent ones")
            _until_msg(e, speaker, "past the silent ones")
        finally:
            for probe in silent:
                probe.close()
    if ctx.target.started is None:
        return "ERR full past --max-clients: not graded with --target"
    _full_at_three(ctx.target.started)
    return ""


def _until_err(probe: Probe, code: protocol.ErrorCode, what: str) -> None:
    deadline = time.monotonic() + LINE_TIMEOUT
    while True:
        event = probe.event(max(0.01, deadline - time.monotonic()), f"ERR {code.value} after {what}")
        if isinstance(event, protocol.Err):
            if event.code is not code:
                raise Broken(f"{probe.label} sent {what} and received {shown(protocol.server_line(event))}")
            return


def _full_at_three(main: StartedServer) -> None:
    """A second start with --max-clients 3: three join, the fourth gets ERR full."""
    with StartedServer(main.path, max_clients=3).start() as small:
        host, port = small.endpoint.host, small.endpoint.port
        members: list[Probe] = []
        try:
            deadline = time.monotonic() + LINE_TIMEOUT
            while len(members) < 3:  # the readiness probe's connection may hold a slot for a moment
                try:
                    members.append(join(host, port, f"full{len(members)}"))
                except Broken:
                    if time.monotonic() > deadline:
                        raise
            with Probe(host, port, "fourth") as fourth:
                event = fourth.event(waiting_for="ERR full")
                if not (isinstance(event, protocol.Err) and event.code is protocol.ErrorCode.FULL):
                    raise Broken(
                        "with --max-clients 3 and 3 members, a fourth connection received"
                        f" {shown(protocol.server_line(event))}, not 'ERR full ...'",
                        "count open connections under the lock and refuse past --max-clients",
                    )
        finally:
            for probe in members:
                probe.close()


# -- 8. shutdown -------------------------------------------------------------------------------------


def play_shutdown(ctx: RunContext) -> str:
    if ctx.target.started is None:
        raise NotGraded("the grader did not start this server (--target): it does not signal it")
    with StartedServer(ctx.target.started.path).start() as server:
        host, port = server.endpoint.host, server.endpoint.port
        with (
            join(host, port, "sd_ann") as ann,
            join(host, port, "sd_bob") as bob,
            Probe(host, port, "newcomer") as new,
        ):
            new.expect(protocol.Hello, "HELLO")
            code, took = server.terminate()
            for probe in (ann, bob, new):
                probe.until(protocol.Bye, "BYE after the server's SIGTERM", timeout=SHUTDOWN_BOUND + 1)
            if code is None:
                raise Broken(
                    f"the server was still running {SHUTDOWN_BOUND:g} s after SIGTERM",
                    "on SIGTERM: stop accepting, BYE to everyone, close every socket (that wakes the"
                    " blocked threads), join the threads with a timeout, exit 0",
                )
            if code != 0:
                raise Broken(f"the server exited with code {code} after SIGTERM, not 0")
    return f"exit 0 {took:.2f} s after SIGTERM"


LEVELS: tuple[Level, ...] = (
    Level(
        "handshake",
        "HELLO; OK for a valid name; ERR invalid-name and a retry; ERR name-taken in any letter case",
        1,
        "follow the handshake of docs/protocol.md line by line",
        "docs/protocol.md, Handshake",
        play_handshake,
    ),
    Level(
        "broadcast",
        "a message reaches every member, the sender included; JOIN, LEAVE (quit, disconnected); /who",
        1,
        "keep every connected member in one registry, guarded by one lock, and send each line to all of them",
        "docs/protocol.md, Member to server; exercises/README.md",
        play_broadcast,
    ),
    Level(
        "ordering",
        "30 bots at once: consecutive seqs for every member, one order for all, each sender's order, no loss",
        3,
        CHECK_HINTS["seq"][0],
        CHECK_HINTS["seq"][1],
        swarm_level("chat", 30, 4.0),
    ),
    Level(
        "name-race",
        "connections racing for a few names: exactly one winner at a time",
        3,
        CHECK_HINTS["names"][0],
        CHECK_HINTS["names"][1],
        swarm_level("name-race", 30, 3.0),
    ),
    Level(
        "churn",
        "joins and leaves while others chat: nothing after a leave, every leave announced once",
        3,
        CHECK_HINTS["membership"][0],
        CHECK_HINTS["membership"][1],
        swarm_level("churn", 30, 4.0),
    ),
    Level(
        "slow-consumer",
        "a member that stops reading stalls nobody and is dropped as slow within 30 s",
        1,
        "give each member a bounded queue and a writer thread; drop a member whose queue overflows",
        "docs/bugs.md, send-under-lock; notebooks/04_slow_consumers.ipynb",
        play_slow_consumer,
    ),
    Level(
        "limits",
        "over-long lines and bad UTF-8 get an ERR; silent handshakes harm nobody;"
        " ERR full past --max-clients",
        1,
        "read docs/protocol.md, Limits and refused lines",
        "docs/protocol.md, Limits and refused lines",
        play_limits,
    ),
    Level(
        "shutdown",
        "SIGTERM: BYE to everyone and exit 0 within 2 s",
        1,
        "on SIGTERM stop accepting, send BYE to every connection, close the sockets, exit 0",
        "docs/protocol.md, Shutdown",
        play_shutdown,
    ),
)

LEVEL_NAMES = tuple(level.name for level in LEVELS)


def level_named(name: str) -> Level:
    for level in LEVELS:
        if level.name == name:
            return level
    raise KeyError(name)
