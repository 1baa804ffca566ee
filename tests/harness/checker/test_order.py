"""The order checks on hand-made histories: seq (gaps, repeats, reorderings, misnumbering), agreement
(by seq and by order), fifo."""

from __future__ import annotations

from harness.checker import check_all
from harness.record.history import Received
from tests.harness.checker.histories import P, base, client, fired, index_of, only

# -- seq -------------------------------------------------------------------------------


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
