"""Property tests of the checker: simulated correct runs pass; each kind of damage is caught
by the check made for it, with seqs (global or per recipient) and without.

The runs come from :func:`harness.checker.simulate_run`, a pure model of a correct
server (lagging receivers, abrupt drops that lose what was in flight, slow
members dropped, name races). Every example is small, so the file runs in seconds.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from itertools import pairwise
from typing import Any, TypeVar

from hypothesis import HealthCheck, given, note, settings
from hypothesis import strategies as st

from chat.protocol import (
    Join,
    Leave,
    Msg,
    Ok,
    RemoteProtocolError,
    ServerEvent,
    parse_server_line,
    server_line,
)
from harness.checker import CheckConfig, Report, SimConfig, check_all, simulate_run
from harness.record.history import ClientHistory, Closed, Event, Received, Sent
from harness.record.payload import decode_payload

C = TypeVar("C")

#: Simulated time runs in milliseconds, so the bounds are scaled down too.
CONFIG = CheckConfig(handshake_bound=0.05, delivery_bound=0.02, clock_slack=0.0)
NUMBERINGS = ("global", "per-recipient", "none")
SETTINGS = settings(
    max_examples=40,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
)

sim_configs = st.builds(
    SimConfig,
    clients=st.integers(2, 6),
    messages=st.integers(20, 70),
    seed=st.integers(0, 2**20),
    numbering=st.sampled_from(NUMBERINGS),
    seq_start=st.sampled_from((1, 1000)),
    quits=st.integers(0, 2),
    drops=st.integers(0, 2),
    slow=st.integers(0, 1),
    whos=st.integers(0, 3),
    racers=st.integers(0, 3),
    lag=st.sampled_from((0.0005, 0.003)),
)


def fired(report: Report) -> set[str]:
    return {name for name, n in report.counts.items() if n}


def copy(histories: list[ClientHistory]) -> list[ClientHistory]:
    return [dataclasses.replace(h, events=list(h.events)) for h in histories]


def event(line: str) -> ServerEvent | None:
    """A recorded server line as an event (None for a line no event fits)."""
    try:
        return parse_server_line(line)
    except RemoteProtocolError:
        return None


def stream(h: ClientHistory) -> list[int]:
    """Indexes of the broadcasts a member received after its OK."""
    out = []
    member = False
    for i, e in enumerate(h.events):
        if isinstance(e, Received):
            ev = event(e.line)
            if isinstance(ev, Ok):
                member = True
            elif member and isinstance(ev, (Join, Msg, Leave)):
                out.append(i)
    return out


def ok_time(h: ClientHistory) -> float:
    return next(e.t for e in h.events if isinstance(e, Received) and isinstance(event(e.line), Ok))


def msg_of(line: str) -> Msg:
    """A MSG line, numbered or not."""
    ev = parse_server_line(line)
    assert isinstance(ev, Msg)
    return ev


def payload(line: str) -> tuple[str, int, float] | None:
    p = decode_payload(msg_of(line).text)
    return (p.bot, p.n, p.due) if p else None


def members(histories: list[ClientHistory]) -> list[ClientHistory]:
    return [
        h for h in histories if any(isinstance(e, Received) and e.line.startswith("OK ") for e in h.events)
    ]


def msg_receipts(histories: list[ClientHistory]) -> list[tuple[str, int]]:
    """(client, event index) of every MSG a member received after its OK."""
    return [
        (h.client, i)
        for h in members(histories)
        for i in stream(h)
        if h.events[i].line.startswith("MSG ")  # type: ignore[union-attr]
    ]


def event_line(histories: list[ClientHistory], client: str, i: int) -> str:
    e = next(h for h in histories if h.client == client).events[i]
    assert isinstance(e, Received)
    return e.line


def receipt_times(histories: list[ClientHistory]) -> dict[Any, dict[str, dict[Any, float]]]:
    """payload -> client -> (payload -> when that client received it), for members' MSG receipts."""
    per_client: dict[str, dict[Any, float]] = {}
    for h in members(histories):
        times = per_client.setdefault(h.client, {})
        for e in h.events:
            if isinstance(e, Received) and e.line.startswith("MSG "):
                times.setdefault(payload(e.line), e.t)
    out: dict[Any, dict[str, dict[Any, float]]] = {}
    for client, times in per_client.items():
        for key in times:
            out.setdefault(key, {})[client] = times
    return out


def leave_started(histories: list[ClientHistory], name: str, before: float) -> float:
    """When the client that held ``name`` (and left before ``before``) sent /quit or closed."""
    best = 0.0
    for h in members(histories):
        if not any(isinstance(e, Received) and e.line == f"OK {name}" for e in h.events):
            continue
        for e in h.events:
            started = (isinstance(e, Sent) and e.line == "/quit") or (
                isinstance(e, Closed) and e.how == "drop"
            )
            if started and e.t <= before:
                best = max(best, e.t)
                break
    return best


#: Runs tried per example before a test gives up on finding something to damage (and fails).
TRIES = 12


def run_with(
    cfg: SimConfig, find: Callable[[list[ClientHistory]], list[C]]
) -> tuple[SimConfig, list[ClientHistory], list[C]]:
    """A simulated run from ``cfg`` with at least one candidate for the damage, and the candidates.

    An example whose run offers nothing to damage would test nothing; returning early there let a
    quarter of some tests' examples pass without an assertion. Instead the run grows (another seed, more
    messages, at least three clients) until ``find`` returns candidates; an example that never finds any
    fails, so a change that starves a test of candidates shows instead of passing quietly.
    """
    for k in range(TRIES):
        tried = cfg
        if k:
            tried = dataclasses.replace(
                cfg, seed=cfg.seed + k, messages=cfg.messages + 20 * k, clients=max(3, cfg.clients)
            )
        histories = simulate_run(tried)
        candidates = find(histories)
        if candidates:
            note(f"tries {k + 1}")
            return tried, histories, candidates
    raise AssertionError(f"no candidate in {TRIES} runs grown from {cfg}")


@SETTINGS
@given(sim_configs)
def test_correct_runs_pass(cfg: SimConfig) -> None:
    report = check_all(simulate_run(cfg), CONFIG)
    assert report.passed(), [v.message for v in report.violations[:5]]
    expected_style = {"global": "numbered", "per-recipient": "numbered", "none": "unnumbered"}[cfg.numbering]
    assert report.seq_style == expected_style


@SETTINGS
@given(sim_configs, st.data())
def test_a_dropped_delivery_is_a_loss(cfg: SimConfig, data: st.DataObject) -> None:

    def find(histories: list[ClientHistory]) -> list[tuple[str, int]]:
        # A victim the checker must owe: sent after the receiver's OK, and followed
        # in the receiver's stream by a later message of the same sender.
        candidates = []
        for h in members(histories):
            ok = ok_time(h)
            msgs = [i for i in stream(h) if h.events[i].line.startswith("MSG ")]  # type: ignore[union-attr]
            for a, i in enumerate(msgs):
                key = payload(h.events[i].line)  # type: ignore[union-attr]
                if key is None or key[2] <= ok:
                    continue
                later = (payload(h.events[k].line) for k in msgs[a + 1 :])  # type: ignore[union-attr]
                if any(p is not None and p[0] == key[0] and p[1] > key[1] for p in later):
                    candidates.append((h.client, i))
        return candidates

    cfg, histories, candidates = run_with(cfg, find)
    client, i = data.draw(st.sampled_from(candidates))
    broken = copy(histories)
    victim = next(h for h in broken if h.client == client)
    del victim.events[i]
    report = check_all(broken, CONFIG)
    assert "loss" in fired(report)
    assert fired(report) <= {"loss", "seq", "liveness"}
    if cfg.numbering != "none":
        assert "seq" in fired(report)
    loss = next(v for v in report.violations if v.check == "loss")
    assert loss.witness["client"] == client


@SETTINGS
@given(sim_configs, st.data())
def test_a_duplicated_delivery_breaks_fifo(cfg: SimConfig, data: st.DataObject) -> None:
    cfg, histories, candidates = run_with(cfg, msg_receipts)
    client, i = data.draw(st.sampled_from(candidates))
    broken = copy(histories)
    h = next(h for h in broken if h.client == client)
    e = h.events[i]
    h.events.insert(i + 1, Received(e.t, e.line))  # type: ignore[union-attr]
    report = check_all(broken, CONFIG)
    assert "fifo" in fired(report)
    assert fired(report) <= {"fifo", "seq"}
    if cfg.numbering != "none":
        assert "seq" in fired(report)
    assert next(v for v in report.violations if v.check == "fifo").witness["client"] == client


@SETTINGS
@given(sim_configs, st.data())
def test_two_swapped_deliveries_break_agreement(cfg: SimConfig, data: st.DataObject) -> None:

    def find(histories: list[ClientHistory]) -> list[tuple[str, int, int, bool]]:
        when = receipt_times(histories)
        candidates = []
        for h in members(histories):
            s = stream(h)
            for a, b in pairwise(s):
                la, lb = h.events[a].line, h.events[b].line  # type: ignore[union-attr]
                if la.startswith("MSG ") and lb.startswith("MSG "):
                    ka, kb = payload(la), payload(lb)
                    # Someone else must have them too, one after the other (not at one instant, as a
                    # slow member that drains its backlog at once may), so the order can be compared.
                    if (
                        ka
                        and kb
                        and any(
                            c != h.client and kb in times and times[ka] != times[kb]
                            for c, times in when.get(ka, {}).items()
                        )
                    ):
                        candidates.append((h.client, a, b, ka[0] == kb[0]))
        return candidates

    cfg, histories, candidates = run_with(cfg, find)
    client, a, b, same_sender = data.draw(st.sampled_from(candidates))
    broken = copy(histories)
    h = next(h for h in broken if h.client == client)
    ea, eb = h.events[a], h.events[b]
    h.events[a], h.events[b] = Received(ea.t, eb.line), Received(eb.t, ea.line)  # type: ignore[union-attr]
    report = check_all(broken, CONFIG)
    got = fired(report)
    assert "agreement" in got
    assert got <= {"agreement", "seq", "fifo"}
    if same_sender:
        assert "fifo" in got
    if cfg.numbering != "none":
        assert "seq" in got
    assert client in str(next(v for v in report.violations if v.check == "agreement").witness)


@SETTINGS
@given(sim_configs, st.data(), st.booleans())
def test_a_relabelled_message_breaks_membership(cfg: SimConfig, data: st.DataObject, phantom: bool) -> None:

    def find(histories: list[ClientHistory]) -> list[tuple[str, int]]:
        return [(c, i) for c, i in msg_receipts(histories) if payload(event_line(histories, c, i))]

    cfg, histories, candidates = run_with(cfg, find)
    names = {
        e.line[3:].lower()
        for h in histories
        for e in h.events
        if isinstance(e, Received) and e.line.startswith("OK ")
    }
    client, i = data.draw(st.sampled_from(candidates))
    broken = copy(histories)
    h = next(h for h in broken if h.client == client)
    msg = msg_of(h.events[i].line)  # type: ignore[union-attr]
    others = sorted(n for n in names if n != msg.name.lower())
    # With no other name to borrow (a run with a single name), a phantom is the only relabelling.
    new = "zz-nobody" if phantom or not others else data.draw(st.sampled_from(others))
    h.events[i] = Received(h.events[i].t, server_line(dataclasses.replace(msg, name=new)))
    report = check_all(broken, CONFIG)
    assert "membership" in fired(report)
    assert fired(report) <= {"membership", "agreement"}


@SETTINGS
@given(sim_configs, st.data())
def test_a_missing_leave_breaks_membership(cfg: SimConfig, data: st.DataObject) -> None:

    def find(histories: list[ClientHistory]) -> list[tuple[str, int]]:
        candidates = []
        for h in members(histories):
            s = stream(h)
            for a, i in enumerate(s):
                line = h.events[i].line  # type: ignore[union-attr]
                if not line.startswith("LEAVE ") or line.endswith(" slow"):
                    continue
                # The leaver asked to leave (or closed) after this member's OK arrived...
                t = h.events[i].t
                leaver = event(line).name  # type: ignore[union-attr]
                if leave_started(histories, leaver, t) <= ok_time(h):
                    continue
                # ...and the member stays long after: it gets messages sent well after the leave.
                later = (payload(h.events[k].line) for k in s[a + 1 :] if h.events[k].line.startswith("MSG "))  # type: ignore[union-attr]
                if any(p is not None and p[2] > t + 2 * CONFIG.delivery_bound for p in later):
                    candidates.append((h.client, i))
        return candidates

    grown = dataclasses.replace(cfg, quits=max(1, cfg.quits), messages=cfg.messages + 40)
    cfg, histories, candidates = run_with(grown, find)
    client, i = data.draw(st.sampled_from(candidates))
    broken = copy(histories)
    del next(h for h in broken if h.client == client).events[i]
    report = check_all(broken, CONFIG)
    assert "membership" in fired(report)
    assert fired(report) <= {"membership", "seq"}
    if cfg.numbering != "none":
        assert "seq" in fired(report)


@SETTINGS
@given(sim_configs, st.data())
def test_a_missing_join_breaks_membership(cfg: SimConfig, data: st.DataObject) -> None:

    def find(histories: list[ClientHistory]) -> list[tuple[str, int]]:
        candidates = []
        for h in members(histories):
            s = stream(h)
            for a, i in enumerate(s):
                line = h.events[i].line  # type: ignore[union-attr]
                if not line.startswith("JOIN "):
                    continue
                name = event(line).name  # type: ignore[union-attr]
                own = a == 0
                # Someone else's JOIN only counts if a MSG of that name follows.
                follows = any(
                    h.events[k].line.startswith("MSG ") and msg_of(h.events[k].line).name == name  # type: ignore[union-attr]
                    for k in s[a + 1 :]
                )
                if own or follows:
                    candidates.append((h.client, i))
        return candidates

    cfg, histories, candidates = run_with(dataclasses.replace(cfg, quits=max(1, cfg.quits)), find)
    client, i = data.draw(st.sampled_from(candidates))
    broken = copy(histories)
    del next(h for h in broken if h.client == client).events[i]
    report = check_all(broken, CONFIG)
    assert "membership" in fired(report)
    assert fired(report) <= {"membership", "seq"}


@SETTINGS
@given(sim_configs.filter(lambda c: c.numbering != "none"), st.data(), st.sampled_from((-1, 1, 5)))
def test_a_misnumbered_broadcast_breaks_seq(cfg: SimConfig, data: st.DataObject, shift: int) -> None:

    def find(histories: list[ClientHistory]) -> list[tuple[str, int]]:
        return [(h.client, i) for h in members(histories) for i in stream(h)[1:]]

    cfg, histories, candidates = run_with(cfg, find)
    client, i = data.draw(st.sampled_from(candidates))
    broken = copy(histories)
    h = next(h for h in broken if h.client == client)
    e: Event = h.events[i]
    ev = event(e.line)  # type: ignore[union-attr]
    assert isinstance(ev, (Join, Msg, Leave)) and ev.seq is not None
    h.events[i] = Received(e.t, server_line(dataclasses.replace(ev, seq=ev.seq + shift)))
    report = check_all(broken, CONFIG)
    assert "seq" in fired(report)
    assert fired(report) <= {"seq", "agreement"}


def test_a_swap_whose_first_receipts_tie_still_breaks_agreement() -> None:
    """Found by the property above: b4 swaps MSG 27 and 28 of its own; b4's new time for 28 equals b1's
    first receipt of 27, so the first-receipt candidate order ranks them equal. A tie is no order."""
    cfg = SimConfig(4, 20, 4549, "global", seq_start=1, quits=1, drops=2, slow=0, whos=0, racers=2)
    cfg = dataclasses.replace(cfg, lag=0.0005)
    broken = copy(simulate_run(cfg))
    h = next(h for h in broken if h.client == "b4")
    ea, eb = h.events[9], h.events[11]
    assert isinstance(ea, Received) and isinstance(eb, Received)
    assert ea.line.startswith("MSG 27 ") and eb.line.startswith("MSG 28 ")
    h.events[9], h.events[11] = Received(ea.t, eb.line), Received(eb.t, ea.line)
    assert "agreement" in fired(check_all(broken, CONFIG))
