"""Hand-made histories for the checker's unit tests, and helpers to break them.

The base run: alice joins (seq 1), bob joins (seq 2); alice sends two messages
(seqs 3, 4), bob one (5), alice one more (6); alice quits (LEAVE 7); bob stays,
sends one more (8) long after, and quits. Each test breaks one thing and asserts
the check that must fire, and its witness. Every seq, time and position is
chosen by hand so that the tests can name them; the simulator
(:mod:`harness.checker.simulate`) makes the random runs of the property tests.
"""

from __future__ import annotations

import dataclasses

from chat.protocol import Join, Leave, Msg, RemoteProtocolError, parse_server_line, server_line
from harness.checker import Report
from harness.record.history import ClientHistory, Closed, Connected, Event, Received, Sent
from harness.record.payload import encode_payload


def P(bot: str, n: int, due: float) -> str:
    return encode_payload(bot, n, due)


def line(kind: str, seq: int | None, name: str, rest: str = "") -> str:
    """A broadcast line: ``JOIN``, ``MSG`` (``rest`` is the text) or ``LEAVE`` (``rest`` is the reason)."""
    if kind == "JOIN":
        return server_line(Join(seq, name))
    if kind == "MSG":
        return server_line(Msg(seq, name, rest))
    assert kind == "LEAVE"
    return server_line(Leave(seq, name, rest))


def handshake(t: float, name: str) -> list[Event]:
    return [
        Connected(t, t),
        Received(t + 0.01, "HELLO welcome"),
        Sent(t + 0.02, name),
        Received(t + 0.03, f"OK {name}"),
    ]


def base(numbered: bool = True, offset: int = 0) -> list[ClientHistory]:
    """The correct base run; ``offset`` shifts every seq (a server starting at 1000)."""

    def q(n: int) -> int | None:
        return n + offset if numbered else None

    a0, a1, b0, a2, b1 = (
        P("alice", 0, 2.0),
        P("alice", 1, 3.0),
        P("bob", 0, 4.0),
        P("alice", 2, 5.0),
        P("bob", 1, 20.0),
    )
    alice = ClientHistory(
        "alice",
        "alice",
        events=[
            *handshake(0.0, "alice"),
            Received(0.04, line("JOIN", q(1), "alice")),
            Received(1.04, line("JOIN", q(2), "bob")),
            Sent(2.0, a0, 2.0),
            Received(2.01, line("MSG", q(3), "alice", a0)),
            Sent(3.0, a1, 3.0),
            Received(3.01, line("MSG", q(4), "alice", a1)),
            Received(4.01, line("MSG", q(5), "bob", b0)),
            Sent(5.0, a2, 5.0),
            Received(5.01, line("MSG", q(6), "alice", a2)),
            Sent(8.0, "/quit"),
            Received(8.01, "BYE goodbye"),
            Closed(8.02, "quit"),
        ],
    )
    bob = ClientHistory(
        "bob",
        "bob",
        events=[
            *handshake(1.0, "bob"),
            Received(1.05, line("JOIN", q(2), "bob")),
            Received(2.02, line("MSG", q(3), "alice", a0)),
            Received(3.02, line("MSG", q(4), "alice", a1)),
            Sent(4.0, b0, 4.0),
            Received(4.02, line("MSG", q(5), "bob", b0)),
            Received(5.02, line("MSG", q(6), "alice", a2)),
            Received(8.02, line("LEAVE", q(7), "alice", "quit")),
            Sent(20.0, b1, 20.0),
            Received(20.01, line("MSG", q(8), "bob", b1)),
            Sent(21.0, "/quit"),
            Received(21.01, "BYE goodbye"),
            Closed(21.02, "quit"),
        ],
    )
    return [alice, bob]


def is_broadcast(text: str) -> bool:
    """A JOIN, MSG or LEAVE line (whatever its numbering)."""
    try:
        return isinstance(parse_server_line(text), (Join, Msg, Leave))
    except RemoteProtocolError:
        return False


def renumbered(text: str, seq: int | None) -> str:
    """The broadcast ``text`` with ``seq`` as its seq (None: unnumbered)."""
    event = parse_server_line(text)
    assert isinstance(event, (Join, Msg, Leave))
    return server_line(dataclasses.replace(event, seq=seq))


def renumber(histories: list[ClientHistory]) -> list[ClientHistory]:
    """Number the broadcasts of an unnumbered run with one global counter, in order of first receipt."""
    first: dict[str, float] = {}
    for h in histories:
        for e in h.events:
            if isinstance(e, Received) and is_broadcast(e.line):
                first[e.line] = min(first.get(e.line, e.t), e.t)
    seq = {text: i for i, text in enumerate(sorted(first, key=first.__getitem__), 1)}
    for h in histories:
        h.events = [
            Received(e.t, renumbered(e.line, seq[e.line])) if isinstance(e, Received) and e.line in seq else e
            for e in h.events
        ]
    return histories


def client(histories: list[ClientHistory], name: str) -> ClientHistory:
    return next(h for h in histories if h.client == name)


def index_of(h: ClientHistory, prefix: str) -> int:
    return next(i for i, e in enumerate(h.events) if isinstance(e, Received) and e.line.startswith(prefix))


def fired(report: Report) -> dict[str, int]:
    return {name: n for name, n in report.counts.items() if n}


def only(report: Report, check: str) -> list[dict[str, object]]:
    return [v.witness for v in report.violations if v.check == check]


def racer(client_id: str, name: str, t: float, quit_at: float, *, bot: str | None = None) -> ClientHistory:
    return ClientHistory(
        client_id,
        bot or client_id,
        role="racer",
        events=[
            *handshake(t, name),
            Received(t + 0.04, f"JOIN {name}"),
            Sent(quit_at, "/quit"),
            Received(quit_at + 0.01, "BYE goodbye"),
            Closed(quit_at + 0.02, "quit"),
        ],
    )
