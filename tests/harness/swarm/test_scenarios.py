"""Scenarios: the plans (pure functions of the settings and the seed) and the dealing of bots to hives."""

from __future__ import annotations

import pytest

from harness.record.history import Role
from harness.swarm.hives import split_round_robin
from harness.swarm.scenarios import BEHAVIOURS, SCENARIOS, Plan, default_burst_size, describe, plan


@pytest.mark.parametrize("scenario", SCENARIOS)
@pytest.mark.parametrize("clients", [1, 2, 5, 10, 30, 101])
def test_plan_has_one_spec_per_bot_with_unique_ids(scenario: str, clients: int) -> None:
    p = plan(scenario, clients, rate=10, duration=2, seed=7)
    assert len(p.specs) == clients
    assert len({s.bot for s in p.specs}) == clients
    assert all(s.role in BEHAVIOURS for s in p.specs)
    if any(s.role == "racer" for s in p.specs):
        assert p.contested_names
        assert all(name == name.lower() for name in p.contested_names)


def test_plan_is_a_pure_function_of_its_arguments() -> None:
    assert plan("mixed", 30, rate=20, duration=8, seed=3) == plan("mixed", 30, rate=20, duration=8, seed=3)
    assert plan("mixed", 30, rate=20, duration=8, seed=3) != plan("mixed", 30, rate=20, duration=8, seed=4)


def test_mixed_has_every_role_and_chat_sends_who() -> None:
    p = plan("mixed", 30, rate=20, duration=8, seed=1)
    roles = p.role_counts()
    assert set(roles) == {"chat", "churn", "racer", "slow", "burst"}
    assert any(s.who_every for s in p.specs if s.role == "chat")
    chat = [s for s in p.specs if s.role == "chat"]
    assert all(s.count == 160 for s in chat)


def test_roles_are_spread_over_processes() -> None:
    p = plan("mixed", 30, rate=20, duration=8, seed=1)
    for group in split_round_robin(p.specs, 2):
        assert {s.role for s in group} == {"chat", "churn", "racer", "slow", "burst"}


def test_burst_size_is_bounded() -> None:
    assert default_burst_size(10) == 500
    assert 5 <= default_burst_size(500) <= 500
    assert default_burst_size(50) * 50 * 50 <= 600_000


def test_plan_object_is_hashable_and_describable() -> None:
    p: Plan = plan("churn", 4, rate=1, duration=1, seed=0)
    assert describe(p) == "4 bots: 2 chat, 2 churn"
    assert p.steady == 2


def test_steady_bots_join_at_the_ramp_rate_and_the_others_at_the_start() -> None:
    p = plan("mixed", 30, rate=10, duration=2, seed=1, ramp=10.0)
    steady = [s for s in p.specs if s.role in ("chat", "slow", "burst")]
    assert [s.join_at for s in steady] == [i / 10.0 for i in range(len(steady))]
    assert all(s.join_at == 0.0 for s in p.specs if s.role in ("churn", "racer"))
    assert all(s.join_at == 0.0 for s in plan("chat", 30, rate=10, duration=2, seed=1, ramp=0).specs)


def test_a_seed_replays_the_plan_of_earlier_records() -> None:
    """The roles are enums now; the deal (ties broken by the role's name) and the seeds are the same."""
    p = plan("mixed", 30, rate=20, duration=8, seed=3)
    letters = {Role.CHAT: "c", Role.CHURN: "h", Role.RACER: "r", Role.SLOW: "s", Role.BURST: "b"}
    assert "".join(letters[s.role] for s in p.specs) == "chrcbscchrcccbhrsccchrccbschrc"
    assert (round(p.specs[0].phase, 6), p.specs[0].seed, sorted(p.contested_names)) == (
        0.369955,
        2337446730,
        ["race0"],
    )
    assert all(type(s.role) is Role for s in p.specs)
