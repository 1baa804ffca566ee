"""Unit tests of every check on small hand-made histories, correct and broken.

The base run: alice joins (seq 1), bob joins (seq 2); alice sends two messages
(seqs 3, 4), bob one (5), alice one more (6); alice quits (LEAVE 7); bob stays,
sends one more (8) long after, and quits. Each test breaks one thing and asserts
the check that must fire, and its witness.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from harness.checker.core import (
    CHECK_NAMES,
    CheckConfig,
    Report,
    check_all,
    judge,
    parse_run,
    verdict_line,
)
from harness.record.history import (
    ClientHistory,
    Closed,
    Connected,
    Event,
    Received,
    Sent,
    histories_to_dicts,
)
from harness.record.payload import encode_payload

REPO = Path(__file__).resolve().parent.parent


def P(bot: str, n: int, due: float) -> str:
    return encode_payload(bot, n, due)


def line(kind: str, seq: int | None, name: str, rest: str = "") -> str:
    parts = [kind] + ([str(seq)] if seq is not None else []) + [name] + ([rest] if rest else [])
    return " ".join(parts)


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


def client(histories: list[ClientHistory], name: str) -> ClientHistory:
    return next(h for h in histories if h.client == name)


def index_of(h: ClientHistory, prefix: str) -> int:
    return next(i for i, e in enumerate(h.events) if isinstance(e, Received) and e.line.startswith(prefix))


def fired(report: Report) -> dict[str, int]:
    return {name: n for name, n in report.counts.items() if n}


def only(report: Report, check: str) -> list[dict[str, object]]:
    return [v.witness for v in report.violations if v.check == check]


# -- correct runs -----------------------------------------------------------------


@pytest.mark.parametrize("numbered", [True, False])
def test_the_base_run_passes(numbered: bool) -> None:
    report = check_all(base(numbered))
    assert report.passed(), report.violations
    assert set(report.counts) == set(CHECK_NAMES)
    assert report.deliveries == 9
    assert report.messages_sent == 5
    assert report.joined == report.clients == report.bots_joined == 2
    assert report.seq_style == ("numbered" if numbered else "unnumbered")
    assert report.latency.count == 9
    assert report.latency.p50_ms == pytest.approx(10.0)
    assert report.latency.max_ms == pytest.approx(20.0)
    assert report.summary_line() == "PASS: 0 violations in 9 deliveries"


def test_a_server_numbering_from_1000_passes() -> None:
    report = check_all(base(offset=999))
    assert report.passed(), report.violations
    assert report.seq_global


def test_a_server_numbering_per_recipient_passes() -> None:
    histories = base()
    bob = client(histories, "bob")
    # bob's own counter: 1 at its JOIN, one more per line it gets.
    renumbered: list[Event] = []
    k = 0
    for e in bob.events:
        if isinstance(e, Received) and e.line.split(" ")[0] in ("JOIN", "MSG", "LEAVE"):
            kind, _, rest = e.line.split(" ", 2)
            k += 1
            e = Received(e.t, f"{kind} {k} {rest}")
        renumbered.append(e)
    bob.events = renumbered
    report = check_all(histories)
    assert report.passed(), report.violations
    assert report.seq_style == "numbered"
    assert not report.seq_global


def renumber(histories: list[ClientHistory]) -> list[ClientHistory]:
    """Number the broadcasts of an unnumbered run with one global counter, in order of first receipt."""
    first: dict[str, float] = {}
    for h in histories:
        for e in h.events:
            if isinstance(e, Received) and e.line.split(" ", 1)[0] in ("JOIN", "MSG", "LEAVE"):
                first[e.line] = min(first.get(e.line, e.t), e.t)
    seq = {text: i for i, text in enumerate(sorted(first, key=first.__getitem__), 1)}
    for h in histories:
        h.events = [
            Received(e.t, "{} {} {}".format(*e.line.split(" ", 1)[:1], seq[e.line], e.line.split(" ", 1)[1]))
            if isinstance(e, Received) and e.line in seq
            else e
            for e in h.events
        ]
    return histories


@pytest.mark.parametrize("numbered", [True, False])
def test_a_slow_member_dropped_is_owed_nothing_after_its_drop(numbered: bool) -> None:
    histories = base(numbered=False)
    slow = ClientHistory(
        "slow",
        "slow",
        role="slow",
        events=[*handshake(0.5, "slow"), Received(0.6, "JOIN slow"), Closed(30.0, "eof")],
    )
    alice, bob = histories
    alice.events.insert(index_of(alice, "JOIN bob"), Received(0.6, "JOIN slow"))
    for h in histories:  # dropped as slow right before alice's first message
        i = index_of(h, "MSG alice")
        h.events.insert(i, Received(h.events[i].t - 0.001, "LEAVE slow slow"))
    histories.append(slow)
    report = check_all(renumber(histories) if numbered else histories)
    assert report.passed(), report.violations


# -- seq -------------------------------------------------------------------------------


def test_a_gap_is_a_seq_violation_and_a_loss() -> None:
    histories = base()
    bob = client(histories, "bob")
    del bob.events[index_of(bob, "MSG 4 ")]
    report = check_all(histories)
    assert fired(report) == {"seq": 1, "loss": 1}
    (gap,) = only(report, "seq")
    assert gap["client"] == "bob"
    assert gap["missing"] == [4]
    (loss,) = only(report, "loss")
    assert loss["client"] == "bob"
    assert loss["sender"] == "alice"
    assert loss["message"] == {"bot": "alice", "n": 1}
    assert report.summary_line() == "FAIL: 2 violations (seq 1, loss 1)"


def test_a_duplicate_is_a_seq_and_fifo_violation() -> None:
    histories = base()
    bob = client(histories, "bob")
    i = index_of(bob, "MSG 4 ")
    bob.events.insert(i + 1, Received(bob.events[i].t, bob.events[i].line))  # type: ignore[union-attr]
    report = check_all(histories)
    assert fired(report) == {"seq": 1, "fifo": 1}
    (dup,) = only(report, "seq")
    assert dup["seq"] == 4 and dup["client"] == "bob"
    (fifo,) = only(report, "fifo")
    assert fifo["message"] == {"bot": "alice", "n": 1}
    assert "twice" in next(v.message for v in report.violations if v.check == "fifo")


def test_a_swap_is_one_reordering() -> None:
    histories = base()
    bob = client(histories, "bob")
    i, j = index_of(bob, "MSG 3 "), index_of(bob, "MSG 4 ")
    ei, ej = bob.events[i], bob.events[j]
    bob.events[i], bob.events[j] = Received(ei.t, ej.line), Received(ej.t, ei.line)  # type: ignore[union-attr]
    report = check_all(histories)
    assert fired(report) == {"seq": 1, "fifo": 1, "agreement": 1}
    (seq,) = only(report, "seq")
    assert (seq["seq"], seq["after"]) in ((3, 4), (4, 2))  # either one is the one out of place
    (fifo,) = only(report, "fifo")
    assert fifo["message"] == {"bot": "alice", "n": 0} and fifo["after_n"] == 1
    (agreement,) = only(report, "agreement")
    assert agreement["clients"] == ["bob", "alice"]
    assert {"bot": "alice", "n": 0} in agreement["messages"]  # type: ignore[operator]


def test_a_misnumbered_line_is_a_seq_violation() -> None:
    histories = base()
    bob = client(histories, "bob")
    i = index_of(bob, "MSG 5 ")
    bob.events[i] = Received(bob.events[i].t, bob.events[i].line.replace("MSG 5 ", "MSG 4 "))  # type: ignore[union-attr]
    report = check_all(histories)
    assert "seq" in fired(report)
    assert set(fired(report)) <= {"seq", "agreement"}


# -- agreement --------------------------------------------------------------------


def test_one_seq_two_events_is_a_disagreement() -> None:
    histories = base()
    alice = client(histories, "alice")
    i = index_of(alice, "MSG 5 ")
    alice.events[i] = Received(alice.events[i].t, "MSG 5 bob hello")
    report = check_all(histories)
    assert report.counts["agreement"] == 1
    (w,) = only(report, "agreement")
    assert w["seq"] == 5
    assert sorted(w["clients"]) == ["alice", "bob"]  # type: ignore[type-var]
    # And alice never got bob's real message.
    assert only(report, "loss")[0]["message"] == {"bot": "bob", "n": 0}


def test_order_disagreement_without_seqs() -> None:
    histories = base(numbered=False)
    bob = client(histories, "bob")
    i, j = index_of(bob, "MSG alice " + P("alice", 1, 3.0)), index_of(bob, "MSG bob ")
    ei, ej = bob.events[i], bob.events[j]
    bob.events[i], bob.events[j] = Received(ei.t, ej.line), Received(ej.t, ei.line)  # type: ignore[union-attr]
    report = check_all(histories)
    assert fired(report) == {"agreement": 1}
    (w,) = only(report, "agreement")
    assert w["client"] == "bob"
    assert w["clients"] == ["bob", "alice"]


# -- loss, fifo without seqs -------------------------------------------------------


def test_a_loss_without_seqs() -> None:
    histories = base(numbered=False)
    bob = client(histories, "bob")
    del bob.events[index_of(bob, "MSG alice " + P("alice", 1, 3.0))]
    report = check_all(histories)
    assert fired(report) == {"loss": 1}
    assert only(report, "loss")[0]["message"] == {"bot": "alice", "n": 1}


def test_a_message_sent_before_the_receiver_joined_is_not_owed() -> None:
    histories = base()
    alice = client(histories, "alice")
    early = P("alice", 9, 0.5)
    alice.events.insert(index_of(alice, "JOIN 2 bob"), Sent(0.5, early, 0.5))
    report = check_all(histories)
    # alice never got her own early message back: liveness, not a loss for bob.
    assert report.counts["loss"] == 1
    assert only(report, "loss")[0]["client"] == "alice"


@pytest.mark.parametrize("numbered", [True, False])
def test_a_dropped_member_is_owed_only_what_it_could_have_read(numbered: bool) -> None:
    alice, bob = base(numbered=False)
    # bob closes abruptly after alice's second message; what followed was in
    # flight, and the server announced his leave a moment later.
    bob.events = [*bob.events[: index_of(bob, "MSG alice " + P("alice", 1, 3.0)) + 1], Closed(3.5, "drop")]
    bob.events = [e for e in bob.events if not (isinstance(e, Sent) and e.t > 3.5)]
    alice.events = [e for e in alice.events if not (isinstance(e, Received) and e.line.startswith("MSG bob"))]
    alice.events.insert(
        index_of(alice, "MSG alice " + P("alice", 2, 5.0)), Received(3.6, "LEAVE bob disconnected")
    )
    histories = renumber([alice, bob]) if numbered else [alice, bob]
    report = check_all(histories)
    assert report.passed(), report.violations


def test_a_refused_line_is_not_owed() -> None:
    histories = base(numbered=False)
    alice, bob = histories
    refused = "MSG alice " + P("alice", 1, 3.0)
    for h in histories:
        del h.events[index_of(h, refused)]
    alice.events.insert(
        index_of(alice, "MSG bob"), Received(3.01, "ERR line-too-long a line is at most 4096 bytes")
    )
    report = check_all(histories, CheckConfig(delivery_bound=6.0))
    assert report.passed(), report.violations


def test_fifo_without_seqs() -> None:
    histories = base(numbered=False)
    bob = client(histories, "bob")
    i, j = index_of(bob, "MSG alice " + P("alice", 0, 2.0)), index_of(bob, "MSG alice " + P("alice", 1, 3.0))
    ei, ej = bob.events[i], bob.events[j]
    bob.events[i], bob.events[j] = Received(ei.t, ej.line), Received(ej.t, ei.line)  # type: ignore[union-attr]
    report = check_all(histories)
    assert fired(report) == {"fifo": 1, "agreement": 1}
    (w,) = only(report, "fifo")
    assert w["client"] == "bob" and w["sender"] == "alice"
    assert w["message"] == {"bot": "alice", "n": 0} and w["after_n"] == 1


# -- membership ---------------------------------------------------------------------


def test_own_join_not_first() -> None:
    histories = base()
    bob = client(histories, "bob")
    del bob.events[index_of(bob, "JOIN 2 bob")]
    report = check_all(histories)
    assert report.counts["membership"] == 1
    (w,) = only(report, "membership")
    assert w["client"] == "bob" and w["first"] == "MSG 3 alice " + P("alice", 0, 2.0)


def test_msg_before_join() -> None:
    histories = base()
    alice = client(histories, "alice")
    i, j = index_of(alice, "JOIN 2 bob"), index_of(alice, "MSG 5 bob")
    join = alice.events.pop(i)
    alice.events.insert(j, join)
    report = check_all(histories)
    assert report.counts["membership"] >= 1
    w = only(report, "membership")[0]
    assert w["client"] == "alice" and w["of"] == "bob"
    assert "before its JOIN" in next(v.message for v in report.violations if v.check == "membership")


def test_msg_after_leave() -> None:
    histories = base()
    bob = client(histories, "bob")
    i = index_of(bob, "LEAVE 7 alice")
    bob.events.insert(i + 1, Received(bob.events[i].t + 0.001, "MSG 8 alice late"))
    bob.events = [
        Received(e.t, e.line.replace("MSG 8 bob", "MSG 9 bob")) if isinstance(e, Received) else e
        for e in bob.events
    ]
    report = check_all(histories)
    assert report.counts["membership"] == 1
    (w,) = only(report, "membership")
    assert w["client"] == "bob" and w["of"] == "alice" and w["line"] == "MSG 8 alice late"


@pytest.mark.parametrize("numbered", [True, False])
def test_missing_leave(numbered: bool) -> None:
    histories = base(numbered)
    bob = client(histories, "bob")
    del bob.events[index_of(bob, "LEAVE ")]
    report = check_all(histories)
    assert report.counts["membership"] == 1
    (w,) = only(report, "membership")
    assert w["client"] == "bob" and w["left"] == "alice"
    assert report.counts["seq"] == (1 if numbered else 0)


def test_a_leave_is_not_owed_to_a_member_that_did_not_stay() -> None:
    histories = base()
    bob = client(histories, "bob")
    # bob leaves right after alice: no time for her LEAVE to be due.
    bob.events = [e for e in bob.events if not (isinstance(e, Received) and e.line.startswith("LEAVE"))]
    bob.events = [e for e in bob.events if e.t < 8.0] + [Sent(8.005, "/quit"), Received(8.5, "BYE goodbye")]
    bob.events.append(Closed(8.6, "quit"))
    report = check_all(histories)
    assert report.counts["membership"] == 0, report.violations


def test_a_phantom_name() -> None:
    histories = base()
    bob = client(histories, "bob")
    i = index_of(bob, "MSG 6 ")
    bob.events[i] = Received(bob.events[i].t, "MSG 6 zed hi")
    report = check_all(histories)
    phantoms = [w for w in only(report, "membership") if "phantom" in w]
    assert phantoms == [
        {"client": "bob", "name": "bob", "phantom": "zed", "position": 4, "line": "MSG 6 zed hi"}
    ]


def test_a_message_under_another_name() -> None:
    histories = base()
    bob = client(histories, "bob")
    i = index_of(bob, "MSG 6 ")
    bob.events[i] = Received(bob.events[i].t, "MSG 6 bob " + P("alice", 2, 5.0))
    report = check_all(histories)
    assert report.counts["membership"] == 1
    (w,) = only(report, "membership")
    assert w["sender"] == "alice" and w["message"] == {"bot": "alice", "n": 2}


def _with_who(answer: str, numbered: bool = True) -> Report:
    histories = base(numbered)
    bob = client(histories, "bob")
    i = index_of(bob, "MSG 6 " if numbered else "MSG alice " + P("alice", 2, 5.0))
    bob.events.insert(i + 1, Sent(5.5, "/who"))
    bob.events.insert(i + 2, Received(5.51, answer))
    return check_all(histories)


@pytest.mark.parametrize("numbered", [True, False])
def test_a_right_users_answer_passes(numbered: bool) -> None:
    assert _with_who("USERS alice bob", numbered).passed()


@pytest.mark.parametrize(
    ("answer", "key"),
    [
        ("USERS bob", "missing"),  # alice is there
        ("USERS alice", None),  # the asker is missing
        ("USERS alice bob zed", "phantom"),
    ],
)
def test_a_wrong_users_answer(answer: str, key: str | None) -> None:
    report = _with_who(answer)
    assert report.counts["membership"] >= 1
    w = only(report, "membership")[0]
    assert w["client"] == "bob"
    if key is not None:
        assert key in w
    else:
        assert "not in the answer" in report.violations[0].message


def test_users_after_a_leave_must_not_list_the_leaver() -> None:
    histories = base()
    bob = client(histories, "bob")
    i = index_of(bob, "LEAVE 7")
    bob.events.insert(i + 1, Sent(9.0, "/who"))
    bob.events.insert(i + 2, Received(9.01, "USERS alice bob"))
    report = check_all(histories)
    assert report.counts["membership"] == 1
    assert only(report, "membership")[0]["extra"] == "alice"


# -- names ------------------------------------------------------------------------


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


def test_two_members_with_one_name_case_insensitively() -> None:
    a = racer("r1", "race0", 0.0, 5.0)
    b = racer("r2", "RACE0", 1.0, 6.0)
    report = check_all([a, b], CheckConfig(contested_names=frozenset({"race0"})))
    assert report.counts["names"] == 1
    (w,) = only(report, "names")
    assert w["clients"] == ["r1", "r2"] and w["name"] == "race0" and w["contested"] is True


def test_one_name_held_one_after_the_other_passes() -> None:
    a = racer("r1", "race0", 0.0, 1.0)
    b = racer("r2", "Race0", 2.0, 3.0)
    report = check_all([a, b])
    assert report.counts["names"] == 0, report.violations


def test_a_name_refused_while_free() -> None:
    a = racer("r1", "race0", 0.0, 1.0)
    loser = ClientHistory(
        "r2",
        "r2",
        role="racer",
        events=[
            Connected(3.0, 3.0),
            Received(3.01, "HELLO welcome"),
            Sent(3.02, "race0"),
            Received(3.03, "ERR name-taken the name race0 is taken"),
            Sent(3.04, "/quit"),
            Received(3.05, "BYE goodbye"),
            Closed(3.06, "quit"),
        ],
    )
    report = check_all([a, loser])
    assert report.counts["names"] == 1
    assert only(report, "names")[0] == {
        "client": "r2",
        "name": "race0",
        "offered_at": 3.02,
        "refused_at": 3.03,
        "contested": False,
    }


def test_a_name_refused_while_held_passes() -> None:
    a = racer("r1", "race0", 0.0, 5.0)
    loser = ClientHistory(
        "r2",
        "r2",
        role="racer",
        events=[
            Connected(3.0, 3.0),
            Received(3.01, "HELLO welcome"),
            Sent(3.02, "RACE0"),
            Received(3.03, "ERR name-taken taken"),
            Closed(3.06, "drop"),
        ],
    )
    report = check_all([a, loser])
    assert report.passed(), report.violations


# -- liveness ------------------------------------------------------------------------


def test_a_late_hello() -> None:
    h = ClientHistory("c", "c", events=[Connected(0.0, 0.0), Received(6.0, "HELLO hi"), Closed(7.0, "drop")])
    report = check_all([h])
    assert fired(report) == {"liveness": 1}
    assert only(report, "liveness")[0]["greeted_at"] == 6.0


def test_a_hanging_handshake_and_a_timeout() -> None:
    hung = ClientHistory("c", "c", events=[Connected(0.0, 0.0), Closed(5.5, "timeout", "no HELLO")])
    report = check_all([hung])
    assert fired(report) == {"liveness": 1}
    unanswered = ClientHistory(
        "d",
        "d",
        events=[Connected(0.0, 0.0), Received(0.1, "HELLO hi"), Sent(0.2, "dan"), Closed(9.0, "timeout")],
    )
    report = check_all([unanswered])
    assert fired(report) == {"liveness": 1}
    assert only(report, "liveness")[0]["offered"] == "dan"


def test_a_handshake_within_bounds_passes() -> None:
    h = ClientHistory("c", "c", events=[Connected(0.0, 0.0), Received(4.0, "HELLO hi"), Closed(4.1, "drop")])
    assert check_all([h]).passed()


def test_a_hanging_delivery() -> None:
    histories = base()
    bob = client(histories, "bob")
    del bob.events[index_of(bob, "MSG 8 ")]
    # bob stays a member 10 s after sending, and never gets his message back.
    bob.events[-3:] = [Sent(30.0, "/quit"), Received(30.01, "BYE goodbye"), Closed(30.02, "quit")]
    report = check_all(histories)
    assert report.counts["liveness"] == 1
    (w,) = only(report, "liveness")
    assert w["client"] == "bob" and w["message"] == {"bot": "bob", "n": 1}
    assert "never got" in next(v.message for v in report.violations if v.check == "liveness")


def test_a_late_delivery() -> None:
    histories = base()
    alice = client(histories, "alice")
    i = index_of(alice, "MSG 6 ")
    alice.events[i] = Received(7.9, alice.events[i].line)  # type: ignore[union-attr]
    report = check_all(histories, CheckConfig(delivery_bound=2.0))
    assert report.counts["liveness"] == 1
    assert only(report, "liveness")[0]["echo_at"] == 7.9


def test_a_sender_that_left_is_not_owed_its_echo() -> None:
    histories = base()
    alice = client(histories, "alice")
    # A message written right before /quit, never processed: not a hang.
    alice.events.insert(index_of(alice, "BYE"), Sent(8.0, P("alice", 3, 8.0), 8.0))
    report = check_all(histories)
    assert report.passed(), report.violations


# -- the verdict ------------------------------------------------------------------------


def test_judge() -> None:
    report = check_all(base())
    assert judge(report, 2) == ("PASS", 0)
    assert judge(report, 3) == ("UNKNOWN", 3)
    assert verdict_line(report, 3) == "UNKNOWN: 0 violations in 9 deliveries, but only 2 of 3 bots joined"
    empty = check_all([])
    assert judge(empty, 0) == ("UNKNOWN", 3)
    assert verdict_line(empty, 0).startswith("UNKNOWN: 0 violations, but no message was delivered")
    hung = check_all([ClientHistory("c", "c", events=[Connected(0.0, 0.0), Closed(9.0, "timeout")])])
    # A liveness failure fails the run even though nobody joined.
    assert judge(hung, 50) == ("FAIL", 1)
    assert verdict_line(hung, 50) == "FAIL: 1 violation (liveness 1)"


def test_witnesses_are_capped_counts_are_not() -> None:
    histories = base()
    alice = client(histories, "alice")
    for k in range(300):
        alice.events.insert(index_of(alice, "JOIN 2"), Received(0.05, f"MSG 1 ghost{k} boo"))
    report = check_all(histories)
    assert report.counts["membership"] >= 300
    assert len([v for v in report.violations if v.check == "membership"]) < report.counts["membership"]


def test_parse_run_exposes_members_and_messages() -> None:
    run = parse_run(base())
    assert [m.client for m in run.members] == ["alice", "bob"]
    assert len(run.table) == 5
    assert run.seq_global


def test_the_report_is_json_ready() -> None:
    doc = check_all(base()).to_dict()
    assert json.loads(json.dumps(doc))["passed"] is True


# -- the command line ------------------------------------------------------------------


def _write_run(tmp_path: Path, histories: list[ClientHistory]) -> Path:
    run = tmp_path / "run"
    run.mkdir()
    with (run / "events.jsonl").open("w") as f:
        for d in histories_to_dicts(histories):
            f.write(json.dumps(d) + "\n")
    return run


def _cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "harness.checker", *args],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=REPO,
    )


def test_cli_rechecks_a_recorded_run(tmp_path: Path) -> None:
    run = _write_run(tmp_path, base())
    done = _cli(str(run))
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines()[0] == "PASS: 0 violations in 9 deliveries"


def test_cli_fails_a_broken_run_with_a_witness(tmp_path: Path) -> None:
    histories = base()
    bob = client(histories, "bob")
    del bob.events[index_of(bob, "MSG 4 ")]
    run = _write_run(tmp_path, histories)
    done = _cli(str(run / "events.jsonl"))
    assert done.returncode == 1
    lines = done.stdout.splitlines()
    assert lines[0] == "FAIL: 2 violations (seq 1, loss 1)"
    assert any("[loss]" in ln and '"sender": "alice"' in ln for ln in lines)
    doc = json.loads(_cli(str(run), "--json").stdout)
    assert doc["verdict"] == "FAIL" and doc["counts"]["loss"] == 1


def test_cli_usage_errors_are_one_line(tmp_path: Path) -> None:
    done = _cli(str(tmp_path / "nowhere"))
    assert done.returncode == 2
    assert done.stderr.count("\n") == 1 and "not found" in done.stderr
    bad = tmp_path / "bad"
    bad.mkdir()
    (bad / "events.jsonl").write_text("not json\n")
    done = _cli(str(bad))
    assert done.returncode == 2
    assert done.stderr.startswith("error: cannot read") and "Traceback" not in done.stderr
    done = _cli()
    assert done.returncode == 2 and "Traceback" not in done.stderr


def test_cli_bench_runs_a_small_benchmark() -> None:
    done = _cli("--bench", "2000", "--json")
    assert done.returncode == 0, done.stderr
    figures = json.loads(done.stdout)
    assert figures["deliveries"] >= 2000


def _leave_seen_without_join(carol_join_seq: int) -> list[ClientHistory]:
    """dave gets carol's LEAVE but not her JOIN; the recorded times say carol offered her name
    after dave's OK (a crowded machine: her process recorded its send late), the seqs say
    whether she registered before dave (JOIN 1) or after him (JOIN 3, which dave then missed).
    One message from dave, seen by both, shows that the seqs are global."""
    early = carol_join_seq < 2
    msg_seq, leave_seq = (3, 4) if early else (4, 5)
    d0 = P("dave", 0, 2.0)
    carol = ClientHistory(
        "carol",
        "carol",
        events=[
            *handshake(1.5, "carol"),
            Received(1.54, line("JOIN", carol_join_seq, "carol")),
            *([Received(1.55, line("JOIN", 2, "dave"))] if early else []),
            Received(2.02, line("MSG", msg_seq, "dave", d0)),
            Sent(3.0, "/quit"),
            Received(3.01, "BYE goodbye"),
            Closed(3.02, "quit"),
        ],
    )
    dave = ClientHistory(
        "dave",
        "dave",
        events=[
            *handshake(1.0, "dave"),
            Received(1.04, line("JOIN", 2, "dave")),
            Sent(2.0, d0, 2.0),
            Received(2.01, line("MSG", msg_seq, "dave", d0)),
            Received(3.01, line("LEAVE", leave_seq, "carol", "quit")),
            Sent(9.0, "/quit"),
            Received(9.01, "BYE goodbye"),
            Closed(9.02, "quit"),
        ],
    )
    return [carol, dave]


def test_a_leave_of_a_member_that_joined_first_by_seq_is_not_owed_its_join() -> None:
    report = check_all(_leave_seen_without_join(1), CheckConfig(run_end=10.0))
    assert fired(report).get("membership", 0) == 0, only(report, "membership")


def test_a_leave_of_a_member_that_joined_later_by_seq_without_its_join_is_a_violation() -> None:
    report = check_all(_leave_seen_without_join(3), CheckConfig(run_end=10.0))
    messages = [v.message for v in report.violations if v.check == "membership"]
    assert "dave got LEAVE of carol without its JOIN" in messages, messages
