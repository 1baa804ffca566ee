"""The generator of correct runs: deterministic, correct by the checker, and sized on demand."""

from __future__ import annotations

import pytest

from chat.protocol import Join, Leave, Msg, RemoteProtocolError, parse_server_line
from harness.checker import CheckConfig, SimConfig, check_all, simulate_events, simulate_run
from harness.checker.simulate import RACE_NAMES
from harness.record.history import ClientHistory, Closed, Received, Sent
from harness.record.payload import decode_payload


def test_a_seed_always_gives_the_same_run() -> None:
    cfg = SimConfig(clients=5, messages=50, seed=7, quits=2, drops=1, slow=1, whos=2, racers=2)
    assert simulate_run(cfg) == simulate_run(cfg)
    assert simulate_run(cfg) != simulate_run(SimConfig(clients=5, messages=50, seed=8))


@pytest.mark.parametrize(
    ("numbering", "style"), [("global", "numbered"), ("per-recipient", "numbered"), ("none", "unnumbered")]
)
def test_every_numbering_is_a_correct_run(numbering: str, style: str) -> None:
    cfg = SimConfig(clients=6, messages=80, seed=3, numbering=numbering, quits=2, drops=1, whos=3, racers=3)
    report = check_all(simulate_run(cfg), CheckConfig(contested_names=frozenset(RACE_NAMES[:1])))
    assert report.passed(), report.violations[:3]
    assert report.seq_style == style
    assert report.seq_global is (numbering == "global")


def test_broadcast_lines_follow_the_numbering() -> None:
    for numbering, seqs in (("global", True), ("per-recipient", True), ("none", False)):
        histories = simulate_run(SimConfig(clients=3, messages=10, seed=1, numbering=numbering))
        for h in histories:
            for e in h.events:
                if isinstance(e, Received):
                    try:
                        ev = parse_server_line(e.line, seqs=seqs)
                    except RemoteProtocolError:  # pragma: no cover - a failure shows the line
                        pytest.fail(e.line)
                    if isinstance(ev, (Join, Msg, Leave)):
                        assert (ev.seq is not None) is seqs, e.line


def test_every_client_ends_closed_and_in_time_order() -> None:
    histories = simulate_run(SimConfig(clients=4, messages=40, seed=2, quits=1, drops=1, slow=1))
    for h in histories:
        assert sum(isinstance(e, Closed) for e in h.events) == 1
        assert [e.t for e in h.events] == sorted(e.t for e in h.events)
    assert {e.how for h in histories for e in h.events if isinstance(e, Closed)} >= {"quit", "drop"}


def _senders(histories: list[ClientHistory]) -> set[str]:
    return {
        p.bot
        for h in histories
        for e in h.events
        if isinstance(e, Sent) and (p := decode_payload(e.line)) is not None
    }


def test_only_the_first_senders_chat() -> None:
    histories = simulate_run(SimConfig(clients=6, messages=60, seed=4, senders=2, quits=2))
    assert _senders(histories) == {"b0", "b1"}
    assert len(_senders(simulate_run(SimConfig(clients=6, messages=60, seed=4)))) > 2


@pytest.mark.parametrize(
    ("events", "members", "senders"),
    [(5000, 10, 3), (20_000, 50, 5), (1, 1, 0), (100, 1, 1), (3000, 2, 0), (777, 7, 0), (50, 10, 3)],
)
def test_simulate_events_makes_a_correct_run_of_the_size_asked(
    events: int, members: int, senders: int
) -> None:
    histories, end = simulate_events(events, members=members, senders=senders)
    made = sum(len(h.events) for h in histories)
    joins = 5 * members + members * (members + 1) // 2  # connect, HELLO, name, OK, close; the JOINs
    assert events <= made <= max(events + members, joins + members + 1)  # at least one message
    assert len(histories) == members
    assert end == max(e.t for h in histories for e in h.events)
    if senders:
        assert _senders(histories) <= {f"b{i}" for i in range(senders)}
    report = check_all(histories, CheckConfig(run_end=end))
    assert report.passed(), report.violations[:3]


def test_simulate_events_refuses_nonsense() -> None:
    with pytest.raises(ValueError, match=r"^simulate_events needs events >= 1 and members >= 1$"):
        simulate_events(0)
    with pytest.raises(ValueError, match=r"^simulate_events needs events >= 1 and members >= 1$"):
        simulate_events(10, members=0)
