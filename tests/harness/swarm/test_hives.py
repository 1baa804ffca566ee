"""Hives without sockets: the named messages, the phases, a stop, and the dealing of bots."""

from __future__ import annotations

import asyncio
import dataclasses
import multiprocessing
import pickle
import threading
import time

import pytest

from harness.common.latency import LatencyHistogram
from harness.record.counters import LiveCounts
from harness.record.history import ClientHistory, Role
from harness.swarm.bot import BotContext, HiveConfig, Phase
from harness.swarm.hives import (
    Arrived,
    Done,
    Exit,
    Hive,
    HiveReport,
    Release,
    Stop,
    split_round_robin,
)
from harness.swarm.scenarios import BotSpec
from tests.harness.swarm.parent import Parent


def report() -> HiveReport:
    latency = LatencyHistogram()
    latency.add(3.0)
    return HiveReport(1, 100.0, 5, LiveCounts(connected=5, delivered=40), latency, 1.5)


MESSAGES = [
    Release(Phase.JOINED, 123.5),
    Stop(),
    Exit(),
    Arrived(2, Phase.DRAINED),
    Done(0, histories=[ClientHistory("b0", "b0", Role.SLOW)]),
    Done(1, part_path="/tmp/events.part1.jsonl"),
    Done(3, error="OSError: boom"),
]


@pytest.mark.parametrize("message", MESSAGES, ids=lambda m: type(m).__name__)
def test_messages_are_frozen_named_records_that_cross_processes(message: object) -> None:
    assert dataclasses.is_dataclass(message)
    assert pickle.loads(pickle.dumps(message)) == message
    fields = dataclasses.fields(message)  # type: ignore[arg-type]
    if fields:
        with pytest.raises(dataclasses.FrozenInstanceError):
            setattr(message, fields[0].name, None)


def test_a_report_crosses_processes_with_its_counts_and_latency() -> None:
    back = pickle.loads(pickle.dumps(report()))
    assert (back.wid, back.counts, back.cpu) == (1, LiveCounts(connected=5, delivered=40), 1.5)
    assert back.latency.count == 1


def test_messages_pass_through_a_multiprocessing_queue() -> None:
    q = multiprocessing.get_context("spawn").Queue()
    try:
        for message in MESSAGES:
            q.put(message)
        assert [q.get(timeout=10) for _ in MESSAGES] == MESSAGES
    finally:
        q.close()
        q.join_thread()


def hive(parent: Parent, behaviour: object, n: int = 2, hard_limit: float = 30.0) -> Hive:
    specs = [BotSpec(f"b{i}", Role.CHAT) for i in range(n)]
    config = HiveConfig("127.0.0.1", 1, duration=1.0, hard_limit=hard_limit)
    return Hive(0, specs, config, {Role.CHAT: behaviour}, parent, parent.commands)  # type: ignore[dict-item]


def test_the_phases_are_released_by_the_parent_and_reported_once_per_hive() -> None:
    released: list[tuple[str, float]] = []

    async def behaviour(ctx: BotContext) -> None:
        released.append((ctx.bot, await ctx.barrier(Phase.JOINED)))
        await ctx.barrier(Phase.DRAINED)

    parent = Parent()
    assert hive(parent, behaviour).run() == []  # no connection was made
    arrivals = [r for r in parent.reports if isinstance(r, Arrived)]
    assert arrivals == [Arrived(0, Phase.JOINED), Arrived(0, Phase.DRAINED)]
    assert len({t for _, t in released}) == 1 and len(released) == 2  # one release time for every bot
    assert isinstance(parent.reports[-1], HiveReport) and parent.reports[-1].bots == 2


def test_a_stop_ends_bots_that_would_run_on() -> None:
    async def behaviour(ctx: BotContext) -> None:
        ctx.arrive(Phase.JOINED)
        await asyncio.sleep(3600)

    parent = Parent()
    h = hive(parent, behaviour)
    thread = threading.Thread(target=h.run)
    t0 = time.monotonic()
    thread.start()
    parent.wait_for(Arrived)
    parent.commands.put(Stop())
    thread.join(15)
    assert not thread.is_alive() and time.monotonic() - t0 < 15
    # A bot that ends, however it ends, counts as arrived everywhere: no phase waits for it.
    assert {r.phase for r in parent.reports if isinstance(r, Arrived)} == set(Phase)


def test_the_hard_limit_ends_a_hive_whose_parent_never_answers() -> None:
    async def behaviour(ctx: BotContext) -> None:
        await ctx.barrier(Phase.JOINED)  # never released

    parent = Parent(release=False)
    t0 = time.monotonic()
    hive(parent, behaviour, hard_limit=0.5).run()
    assert time.monotonic() - t0 < 10


def test_a_failing_behaviour_costs_its_bot_only() -> None:
    async def behaviour(ctx: BotContext) -> None:
        if ctx.bot == "b0":
            raise RuntimeError("a bug in a role")
        await ctx.barrier(Phase.JOINED)

    parent = Parent()
    hive(parent, behaviour).run()
    assert Arrived(0, Phase.JOINED) in parent.reports


def test_dealing_round_robin() -> None:
    assert split_round_robin(range(7), 3) == [[0, 3, 6], [1, 4], [2, 5]]
    assert split_round_robin([], 2) == [[], []]
    assert split_round_robin([1, 2], 0) == [[1, 2]]
