"""The loss check on hand-made histories: what is owed, with seqs and without, and what is not."""

from __future__ import annotations

import pytest

from harness.checker import CheckConfig, check_all
from harness.record.history import Closed, Received, Sent
from tests.harness.checker.histories import P, base, client, fired, index_of, only, renumber


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
