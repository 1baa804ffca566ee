"""The membership and names checks on hand-made histories."""

from __future__ import annotations

import pytest

from harness.checker import CheckConfig, Report, check_all
from harness.record.history import ClientHistory, Closed, Connected, Received, Sent
from tests.harness.checker.histories import (
    P,
    base,
    client,
    fired,
    handshake,
    index_of,
    line,
    only,
    racer,
)

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


def with_a_silent_name_held_twice() -> list[ClientHistory]:
    """The unnumbered base run plus carol, silent, a member before bob offered his name (0.5 to 7.0),
    and carol2, who takes the name carol at 10.0 and quits at 18.0: too near bob's end (21.02) for that
    LEAVE to be owed to bob. bob never sees the first carol say anything."""
    a0, a1, b0, a2 = P("alice", 0, 2.0), P("alice", 1, 3.0), P("bob", 0, 4.0), P("alice", 2, 5.0)
    histories = base(numbered=False)
    carol = ClientHistory(
        "carol",
        "carol",
        events=[
            *handshake(0.5, "carol"),
            Received(0.54, line("JOIN", None, "carol")),
            Received(1.06, line("JOIN", None, "bob")),
            Received(2.03, line("MSG", None, "alice", a0)),
            Received(3.03, line("MSG", None, "alice", a1)),
            Received(4.03, line("MSG", None, "bob", b0)),
            Received(5.03, line("MSG", None, "alice", a2)),
            Sent(7.0, "/quit"),
            Received(7.01, "BYE goodbye"),
            Closed(7.02, "quit"),
        ],
    )
    carol2 = ClientHistory(
        "carol2",
        "carol2",
        events=[
            *handshake(10.0, "carol"),
            Received(10.04, line("JOIN", None, "carol")),
            Sent(18.0, "/quit"),
            Received(18.01, "BYE goodbye"),
            Closed(18.02, "quit"),
        ],
    )
    alice = client(histories, "alice")
    at = index_of(alice, "JOIN bob")
    alice.events.insert(at, Received(0.55, line("JOIN", None, "carol")))
    alice.events.insert(
        index_of(alice, "MSG alice " + a2) + 1, Received(7.01, line("LEAVE", None, "carol", "quit"))
    )
    bob = client(histories, "bob")
    bob.events.insert(
        index_of(bob, "MSG alice " + a2) + 1, Received(7.01, line("LEAVE", None, "carol", "quit"))
    )
    at = index_of(bob, "LEAVE alice") + 1
    bob.events[at:at] = [
        Received(10.05, line("JOIN", None, "carol")),
        Received(18.02, line("LEAVE", None, "carol", "quit")),
    ]
    return [*histories, carol, carol2]


def test_a_later_holders_leave_does_not_stand_in_for_a_missing_one() -> None:
    """Without seqs: bob never got the first carol's LEAVE, and got the second carol's (not owed to
    him, so not counted as owed). That LEAVE came after the second carol's JOIN, so it cannot be the
    first's: the server announces a name's next holder only after its holder left."""
    histories = with_a_silent_name_held_twice()
    assert check_all(histories).passed(), check_all(histories).violations
    bob = client(histories, "bob")
    del bob.events[index_of(bob, "LEAVE carol")]
    report = check_all(histories)
    assert fired(report) == {"membership": 1}, report.violations
    (w,) = only(report, "membership")
    assert w["client"] == "bob" and w["left"] == "carol" and w["of"] == "carol"


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
