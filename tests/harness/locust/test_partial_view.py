"""The checker's partial view (``CheckConfig(foreign_clients=True)``), as a distributed locust worker uses it.

A worker holds only its own users' histories while other workers' users share
the room. Judged with ``foreign_clients=True``, a part of a correct run must
pass (no false alarm), and the faults its own users can prove must still be
found. Pure: simulated runs of a correct server (harness.checker.simulate_run).
"""

from __future__ import annotations

import random

import pytest

from harness.checker import CheckConfig, SimConfig, check_all, simulate_run
from harness.record.history import ClientHistory, Received


def partial_run(seed: int) -> tuple[list[ClientHistory], SimConfig]:
    """A random correct run, and the histories of about half its bots (the rest are 'foreign')."""
    rng = random.Random(seed)
    cfg = SimConfig(
        clients=rng.randint(3, 8),
        messages=60,
        seed=seed,
        numbering=rng.choice(["global", "per-recipient", "none"]),
        quits=rng.randint(0, 3),
        drops=rng.randint(0, 2),
        slow=rng.randint(0, 1),
        whos=rng.randint(0, 5),
        racers=rng.randint(0, 4),
    )
    histories = simulate_run(cfg)
    bots = sorted({h.bot for h in histories})
    kept = set(rng.sample(bots, max(1, len(bots) // 2)))
    return [h for h in histories if h.bot in kept], cfg


PARTIAL = CheckConfig(foreign_clients=True, contested_names=frozenset({"race0"}))


@pytest.mark.parametrize("seed", range(60))
def test_a_part_of_a_correct_run_passes_with_foreign_clients(seed: int) -> None:
    histories, cfg = partial_run(seed)
    report = check_all(histories, PARTIAL)
    assert report.passed(), (cfg, report.summary_line(), report.violations[:3])


def test_the_whole_view_flags_the_others_as_phantoms() -> None:
    histories, _ = partial_run(3)
    report = check_all(histories, CheckConfig())
    assert report.counts["membership"] > 0
    assert any("no client ever offered" in v.message for v in report.violations)


def test_a_partial_view_still_finds_a_loss_among_its_own_users() -> None:
    histories = simulate_run(SimConfig(clients=6, messages=80, seed=11))
    own = histories[:3]
    # Its later messages: sent well after everyone joined (beyond the checker's clock slack).
    sent = {e.line for e in own[0].events if e.kind == "sent" and e.line.startswith("b=")}
    sent = set(sorted(sent, key=lambda line: int(line.split()[1][2:]))[len(sent) // 2 :])
    victim = own[1]
    # Drop, at one own member, one message another own member sent while both were there.
    lost = next(
        i
        for i, e in enumerate(victim.events)
        if isinstance(e, Received) and e.line.startswith("MSG") and e.line.split(" ", 3)[3] in sent
    )
    del victim.events[lost]
    report = check_all(own, PARTIAL)
    assert report.counts["seq"] >= 1 and report.counts["loss"] >= 1, report.summary_line()
